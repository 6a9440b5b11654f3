"""Seeded train/validation/test split (--split: stratified by class for classification by default; at random;
by time, the latest rows tested; by group, each group in one split); the folds of a cross-validation
ensemble (T14), groups kept whole. docs/recipe.md, "Splits"."""

from __future__ import annotations

import logging
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold, train_test_split

from ..config import DataConfig
from ..errors import ConfigError, DataError, did_you_mean_column, shorten
from .load import row_labels
from .schema import target_columns
from .transforms import day_first

log = logging.getLogger("nnrecipe")

MIN_ROWS = 10  # fewer rows cannot give a training, a validation and a test split their share


def split_indices(labels: np.ndarray | None, n: int, val_fraction: float, test_fraction: float,
                  seed: int, classes: list[str] | None = None, *, where: str = "the table",
                  target: str | None = None, rows: int | None = None, how: str = "auto") -> dict[str, np.ndarray]:
    """Row positions of each split. `labels` (classification) stratifies every split: class labels, or
    their codes into `classes` (sorted, as pd.factorize(sort=True) gives them). `where` ("file 'x.csv'"),
    `target` and `rows` (the table's rows before those without a target were left out) name the input in
    the messages. `how`: "auto" and "stratified" stratify by `labels` when given (auto falls back to a
    random split, with a warning, when a class is too small for the fractions; stratified raises);
    "random" never stratifies (the same split as auto on the same rows without labels)."""
    check_rows(n, where, rows)
    idx = np.arange(n)
    if how == "random":
        labels = None
    if labels is not None:
        # integer codes in the labels' sorted order: the same split as the labels themselves (sklearn
        # stratifies on np.unique's inverse), without sorting a million strings (6 s on 1M rows)
        if classes is None:
            labels, values = pd.factorize(labels, sort=True)
        else:
            values = classes
        counts = np.bincount(labels, minlength=len(values))
        least = 3 if test_fraction else 2  # a row in each split
        rare = [f"'{shorten(v, 30)}' ({c})" for v, c in zip(values, counts) if c < least]
        if rare:
            listed = ", ".join(rare[:5]) + (f" and {len(rare) - 5} more" if len(rare) > 5 else "")
            column = f"target column '{target}' in {where}: " if target is not None else ""
            splits = "training, validation and test splits" if test_fraction else "training and validation splits"
            counts_like = all(re.fullmatch(r"-?\d+", str(v)) for v in values)  # whole numbers: a count, perhaps
            raise DataError(f"{column}classes {listed} have fewer than {least} rows, too few to appear in the "
                            f"{splits}; add rows, merge or remove those classes"
                            + ("; the target holds whole numbers, read as classes (at most 20 distinct values): if "
                               "they are counts or amounts, pass --task regression" if counts_like else ""))
    try:
        rest, test = _held(idx, test_fraction, seed, labels)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                      stratify=None if labels is None else labels[rest])
    except ValueError as e:  # a class too small for the requested fractions
        if how == "stratified":
            column = f"target column '{target}' in {where}" if target is not None else where
            raise DataError(f"--split stratified: {column} has a class too small to stratify with these fractions "
                            f"({e}); pass --split random, or raise --val-fraction and --test-fraction") from None
        log.warning("stratified split impossible (%s); splitting without stratification", e)
        rest, test = _held(idx, test_fraction, seed, None)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def fold_indices(labels: np.ndarray | None, n: int, folds: int, seed: int,
                 groups: np.ndarray | None = None) -> list[np.ndarray]:
    """T14: the held-out positions of each of `folds` folds over n rows (every row held out once),
    stratified by the integer class codes `labels` when given (multilabel and regression: None). `groups`
    (a group split: each row's group code, at least `folds` groups): every group in one fold, so that no
    member stops early on rows of a group it trained on (StratifiedGroupKFold for classes, else GroupKFold;
    both seeded)."""
    positions = np.zeros(n)
    if groups is not None:
        with warnings.catch_warnings():  # a class with fewer groups than folds misses some folds
            warnings.simplefilter("ignore", UserWarning)
            if labels is not None:
                split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(positions, labels, groups)
            else:
                split = GroupKFold(folds, shuffle=True, random_state=seed).split(positions, groups=groups)
            return [np.sort(held) for _, held in split]
    counts = np.bincount(labels) if labels is not None else None
    if counts is not None and counts.max() >= folds:
        with warnings.catch_warnings():  # a class with fewer rows than folds misses some folds: logged below
            warnings.simplefilter("ignore", UserWarning)
            parts = [held for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(positions, labels)]
        small = int(counts[counts > 0].min())
        if small < folds:
            log.info("a class has %d training and validation rows, fewer than the %d folds: some folds hold "
                     "none of it out", small, folds)
        return [np.sort(p) for p in parts]
    return [np.sort(held) for _, held in KFold(folds, shuffle=True, random_state=seed).split(positions)]


def check_rows(n: int, where: str, rows: int | None = None) -> None:
    """At least MIN_ROWS usable rows (`rows`: the table's rows before some were left out)."""
    if n < MIN_ROWS:
        left_out = f" (of {rows}: rows without a target, or with the neutral label, are left out)" \
            if rows is not None and rows != n else ""
        raise DataError(f"{where} has {n} usable rows{left_out}; training needs at least {MIN_ROWS} to hold out "
                        "validation and test rows: add rows")


def _held(idx: np.ndarray, fraction: float, seed: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(the rest, the test rows) of `idx`: a seeded, stratified share, or no test rows at fraction 0."""
    if not fraction:
        return idx, idx[:0]
    rest, test = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    return rest, test


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(validation rows, test rows) of n, rounded as train_test_split rounds them (up)."""
    test = math.ceil(test_fraction * n)
    return math.ceil(val_fraction / (1 - test_fraction) * (n - test)), test


# ---------------------------------------------------------------- what --split asks for
def make_split(df: pd.DataFrame, cfg: DataConfig, task: str, labels: np.ndarray | None, classes: list[str], seed: int,
               path: Path | None, rows: int | None = None, test_from: int | None = None
               ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The split `cfg.split` asks for of `df`'s rows (its index: the 0-based data rows), and the group
    codes of every row for a group split (cross-validation folds keep groups whole), else None.
    `labels`: class codes into `classes` (binary, multiclass), else None. A surrogate (T15) trains on every
    row; `test_from`: the first data row of its second sample, the test rows."""
    where = f"file '{path}'" if path is not None else "the table"
    kind = cfg.split_kind
    if cfg.surrogate:  # T15: a simulator's table trains whole; its error is measured on a second sample
        second = df.index.to_numpy() >= test_from if test_from is not None else np.zeros(len(df), dtype=bool)
        check_rows(int((~second).sum()), where, rows)
        return {"train": np.flatnonzero(~second), "val": np.arange(0), "test": np.flatnonzero(second)}, None
    if kind == "stratified" and labels is None:
        raise ConfigError(f"--split stratified needs class labels, but target '{cfg.target}' in {where} is a "
                          f"{task} target; pass --split random (or leave --split out: auto splits at random)")
    if kind in ("auto", "random", "stratified"):
        return split_indices(labels, len(df), cfg.val_fraction, cfg.test_fraction, seed, classes, where=where,
                             target=cfg.target, rows=rows, how=kind), None
    check_rows(len(df), where, rows)
    values = split_values(df, cfg, path)
    groups = None
    if kind == "time":
        splits = time_split(time_keys(values, cfg.split, path, where), cfg.val_fraction, cfg.test_fraction)
    else:
        groups = group_codes(values)
        sizes = np.bincount(groups)
        alone = float((sizes == 1).sum()) / max(len(groups), 1)
        if alone >= SINGLETONS:  # nearly every row a group of its own: nothing is kept together
            log.warning("--split %s: %.0f%% of the rows of %s have a value of '%s' no other row has (%d rows, %d "
                        "groups), so the split is nearly a random one; name the column that repeats for the rows "
                        "of one patient, user or session (the group column is left out of the features: "
                        "--categorical keeps it)", cfg.split, 100 * alone, where, shorten(str(cfg.split_column)),
                        len(groups), len(sizes))
        splits = group_split(groups, cfg.val_fraction, cfg.test_fraction, seed, where, cfg.split)
    log.info("--split %s: train %d, validation %d, test %d rows", cfg.split, *(len(splits[s]) for s in splits))
    if labels is not None:
        absent_from_training(labels, classes, splits, cfg.split, where, cfg.target)
    return splits, groups


def split_values(df: pd.DataFrame, cfg: DataConfig, path: Path | None) -> pd.Series:
    """The column a time: or group: split names, every cell present."""
    where = f"file '{path}'" if path is not None else "the table"
    column = cfg.split_column
    if column in target_columns(cfg.target):
        raise ConfigError(f"--split {cfg.split} names the target column '{shorten(column)}'; name another column "
                          f"of {where}, such as a date (time:COL) or an ID (group:COL)")
    if column not in df.columns:
        cols = ", ".join(shorten(c, 40) for c in df.columns[:30]) + (" ..." if len(df.columns) > 30 else "")
        raise DataError(f"--split {cfg.split}: column '{shorten(column)}' is not in {where}"
                        f"{did_you_mean_column(column, df.columns)}; its columns are: {cols}; fix the name after "
                        f"'{cfg.split_kind}:'")
    s = df[column]
    if isinstance(s, pd.DataFrame):
        raise DataError(f"--split {cfg.split}: {where} has {s.shape[1]} columns named '{shorten(column)}'; "
                        "give them distinct names")
    empty = s.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_datetime64_any_dtype(s):
        empty = empty | (s.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    if empty.any():
        first = row_labels(path, [_row(s, int(np.flatnonzero(empty)[0]))])[0]
        need = "a time" if cfg.split_kind == "time" else "a group"
        k = int(empty.sum())
        raise DataError(f"--split {cfg.split}: column '{shorten(column)}' in {where} has {k} empty cell"
                        f"{'s' if k > 1 else ''} (first at {first}); a {cfg.split_kind} split needs {need} in every "
                        "row: fill them, or leave those rows out of the file")
    return s


def _row(s: pd.Series, position: int) -> int:
    label = s.index[position]
    return int(label) if isinstance(label, (int, np.integer)) else position


def time_keys(s: pd.Series, split: str, path: Path | None, where: str = "the table") -> np.ndarray:
    """Sortable keys (float64 numbers, or int64 microseconds in UTC) of a column of numbers or of dates and
    times (every cell filled: split_values). Text is read as numbers when every cell is one, else as dates
    and times (pandas' parser, a format per cell when one format does not fit all; a time without a zone
    is taken as UTC)."""
    if pd.api.types.is_bool_dtype(s):
        raise DataError(f"--split {split}: column '{shorten(s.name)}' holds true/false values, not times; "
                        "name a column of dates, times or numbers")
    if pd.api.types.is_datetime64_any_dtype(s):
        return time_numbers(s)
    if pd.api.types.is_numeric_dtype(s):
        values = s.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if not bad.any():
            return values
        shown = s.iloc[int(np.flatnonzero(bad)[0])]
    else:
        text = s.astype("string").str.strip()
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isfinite(numbers).all():
            return numbers
        times = parse_times(text)
        bad = times.isna().to_numpy()
        if not bad.any():
            return time_numbers(times)
        shown = s.iloc[int(np.flatnonzero(bad)[0])]
    first = row_labels(path, [_row(s, int(np.flatnonzero(bad)[0]))])[0]
    k = int(bad.sum())
    what = "cells that are not dates, times or finite numbers" if k > 1 else \
        "cell that is not a date, a time or a finite number"
    raise DataError(f"--split {split}: column '{shorten(s.name)}' in {where} has {k} {what} (first at {first}: "
                    f"{shorten(shown, 40)!r}); fix {'them' if k > 1 else 'it'}, or name another column after 'time:'")


def parse_times(text: pd.Series) -> pd.Series:
    """Dates and times in UTC, NaT where a cell is none: one format inferred for the column (fast), then a
    format per cell (pandas' 'mixed') when that one leaves cells unread."""
    with warnings.catch_warnings():  # pandas warns when it cannot infer one format, or guesses per element
        warnings.simplefilter("ignore")
        try:
            times = pd.to_datetime(text, errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            times = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
        if times.isna().any():
            try:
                mixed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
            except (ValueError, TypeError, OverflowError):
                return times
            if mixed.isna().sum() < times.isna().sum():
                times = mixed
    return day_first(text, times, utc=True)


def time_numbers(times: pd.Series) -> np.ndarray:
    """Times (no NaT) as int64 microseconds since 1970 in UTC: a sortable key. Microseconds, not pandas'
    nanoseconds, so that a date such as 9999-12-31 (a placeholder for 'never') still fits."""
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times.dt.as_unit("us").to_numpy().astype(np.int64)


def time_split(keys: np.ndarray, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """The earliest rows by `keys` train, the next validate, the latest test (rows of equal keys in their
    file order), with the fractions' sizes; a boundary inside a run of equal keys moves to the nearer end
    of the run when every split keeps a row, so that no time is in two splits: every test row is then
    strictly later than every training row (at worst, when a run cannot move, equal)."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")  # stable: ties keep the file's order
    ranked = keys[order]
    n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    cut = [n - n_test - n_val, n - n_test]
    for i in (0, 1) if n_test else (0,):  # no test split: the second boundary is the end
        b = cut[i]
        if ranked[b - 1] != ranked[b]:
            continue
        start = int(np.searchsorted(ranked, ranked[b], side="left"))
        end = int(np.searchsorted(ranked, ranked[b], side="right"))
        low, high = (0, cut[1]) if i == 0 else (cut[0], n)  # the boundary stays strictly inside (low, high)
        fits = [c for c in sorted((start, end), key=lambda c: abs(c - b)) if low < c < high]
        if fits:
            cut[i] = fits[0]
    a, b = cut
    return {"train": np.sort(order[:a]), "val": np.sort(order[a:b]), "test": np.sort(order[b:])}


# A group split whose groups are single rows for this share of the rows or more keeps nothing together: a
# column of measurements or row numbers named by mistake (a patient ID repeats for most of its rows)
SINGLETONS = 0.9


def group_codes(s: pd.Series) -> np.ndarray:
    """Each row's group as an integer code, 0.. in order of first appearance (text compared stripped)."""
    codes, _ = pd.factorize(s if pd.api.types.is_numeric_dtype(s) else s.astype("string").str.strip())
    return codes.astype(np.int64)


def group_split(groups: np.ndarray, val_fraction: float, test_fraction: float, seed: int, where: str,
                split: str) -> dict[str, np.ndarray]:
    """Whole groups to each split: the groups in a seeded random order go to the test split while each
    brings its row count nearer the test fraction's (at least one group), then likewise to validation;
    the rest train. The fractions hold approximately: a group is never cut."""
    sizes = np.bincount(groups)
    n, n_groups = len(groups), len(sizes)
    column = split.partition(":")[2]
    need = 3 if test_fraction else 2  # a group for each split
    if n_groups < need:
        splits = "training, validation and test splits" if test_fraction else "training and validation splits"
        raise DataError(f"--split {split}: column '{shorten(column)}' in {where} holds {n_groups} distinct "
                        f"value{'s' if n_groups != 1 else ''}; a group split needs at least {need} groups to fill the "
                        f"{splits}: name a column with more groups, or pass --split random")
    n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    free = [int(g) for g in np.random.default_rng(seed).permutation(n_groups)]
    where_to = np.zeros(n_groups, dtype=np.int64)  # 0 train, 1 validation, 2 test
    # spare: the groups the later splits need; no test split (test_fraction 0): validation alone is filled
    for part, goal, spare in ((2, n_test, 2), (1, n_val, 1)) if n_test else ((1, n_val, 1),):
        taken, chosen = 0, []
        for g in free:
            if len(free) - len(chosen) <= spare:
                break
            if not chosen or abs(taken + sizes[g] - goal) < abs(taken - goal):
                chosen.append(g)
                taken += sizes[g]
        where_to[chosen] = part
        free = [g for g in free if where_to[g] == 0]
    side = where_to[groups]
    return {"train": np.flatnonzero(side == 0), "val": np.flatnonzero(side == 1), "test": np.flatnonzero(side == 2)}


def absent_from_training(labels: np.ndarray, classes: list[str], splits: dict[str, np.ndarray], split: str,
                         where: str, target: str) -> None:
    """Warn about classes held out but without a training row: the model can never predict them."""
    present = np.bincount(labels[splits["train"]], minlength=len(classes)) > 0
    held = np.bincount(labels[np.concatenate([splits["val"], splits["test"]])], minlength=len(classes)) > 0
    missing = [classes[i] for i in np.flatnonzero(~present & held)]
    if missing:
        shown = ", ".join(f"'{shorten(c, 30)}'" for c in missing[:5]) + (f" and {len(missing) - 5} more"
                                                                         if len(missing) > 5 else "")
        log.warning("--split %s: class%s %s of target '%s' in %s %s no training row, only validation or test rows: "
                    "the model cannot learn %s; add rows of %s, or choose another split", split,
                    "es" if len(missing) > 1 else "", shown, target, where, "have" if len(missing) > 1 else "has",
                    "them" if len(missing) > 1 else "it", "them" if len(missing) > 1 else "it")
