"""What a table holds: the task its target implies, and the kind of each feature column."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError, did_you_mean
from .load import row_label

log = logging.getLogger("nnrecipe")

# An integer-valued numeric target with at most this many distinct values is taken as class labels
# (README, "How the task is inferred"); past it, as a quantity to regress.
MAX_CLASSES_FOR_INTEGERS = 20
# A text column whose non-empty cells are at least this share numbers is a numeric column with typos,
# not a categorical one: we stop and say so rather than one-hot encode numbers.
NUMERIC_SHARE = 0.9


def check_target(df: pd.DataFrame, target: str, path: str | os.PathLike | None) -> pd.Series:
    name = f"file '{path}'" if path is not None else "the table"
    if not target:
        raise DataError("no target column given; pass --target COLUMN")
    if target not in df.columns:
        cols = ", ".join(map(str, df.columns[:30])) + (" ..." if len(df.columns) > 30 else "")
        raise DataError(f"target column '{target}' is not in {name}{did_you_mean(target, df.columns)}; "
                        f"its columns are: {cols}")
    y = df[target]
    if y.isna().all():
        raise DataError(f"target column '{target}' in {name} is empty in all {len(y)} rows; "
                        "fill it in, or choose another --target")
    return y


def infer_task(y: pd.Series, requested: str = "auto") -> tuple[str, str]:
    """The task and the reason, by the rule in the README. `y` has no missing values."""
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
        raise DataError(f"target column '{y.name}' has a single class ({str(y.iloc[0])!r}) in all {len(y)} rows; "
                        "a classifier needs at least two: check the target column, or choose another --target")
    if task == "binary" and n_unique != 2:
        raise DataError(f"--task binary but target column '{y.name}' holds {n_unique} distinct values; "
                        "use --task multiclass")
    if task == "regression" and not numeric:
        raise DataError(f"--task regression but target column '{y.name}' is not numeric; "
                        "use --task binary or multiclass")
    return task, reason


def infer_columns(df: pd.DataFrame, cfg: DataConfig, path: str | os.PathLike | None) -> dict[str, str]:
    """'numeric' or 'categorical' for each feature column. Every problem is collected, then raised together."""
    problems: list[str] = []
    for flag, cols in (("--categorical", cfg.categorical), ("--numeric", cfg.numeric), ("--drop", cfg.drop)):
        problems += [f"{flag} names column '{c}', which is not in the table{did_you_mean(c, df.columns)}"
                     for c in cols if c not in df.columns]
    kinds: dict[str, str] = {}
    for col in df.columns:
        if col == cfg.target or col in cfg.drop:
            continue
        s = df[col]
        if s.isna().all():
            log.warning("column '%s' is empty in every row: left out", col)
            continue
        if col in cfg.categorical:
            kinds[col] = "categorical"
            continue
        is_bool = pd.api.types.is_bool_dtype(s)
        if pd.api.types.is_numeric_dtype(s) and not is_bool:
            values = s
        elif is_bool and col not in cfg.numeric:
            kinds[col] = "categorical"
            continue
        else:
            values = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
            bad = values.isna() & s.notna()
            filled = int(s.notna().sum())
            if bad.any() and col not in cfg.numeric and (filled - bad.sum()) < NUMERIC_SHARE * filled:
                kinds[col] = "categorical"  # mostly words: a category, not a number with typos
                continue
        found = numeric_problems(df, [col], path)
        problems += found
        if not found:
            kinds[col] = "numeric"
    if problems:
        where = f"file '{path}'" if path is not None else "the table"
        raise DataError(f"{where}: " + "; ".join(problems))
    if not kinds:
        raise DataError("no feature columns are left besides the target; the model needs at least one input column")
    return kinds


def numeric_problems(df: pd.DataFrame, columns: list[str], path: str | os.PathLike | None) -> list[str]:
    """For each column that must hold numbers: the cells that are not numbers, or are infinite. Rows are
    named by `df`'s integer index, the 0-based data row in the file (read_table's RangeIndex; train_table
    keeps it when it leaves out rows without a target), else by position."""
    problems = []
    for col in columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            values = s.to_numpy(dtype=float, na_value=np.nan)
            bad = np.zeros(len(s), dtype=bool)
        else:
            values = pd.to_numeric(s.astype("string").str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            bad = np.isnan(values) & s.notna().to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            where = row_label(path, _row(s, first))
            problems.append(
                f"column '{col}' has {int(bad.sum())} values that are not numbers (first at {where}: "
                f"{str(s.iloc[first])!r}); fix them, leave them empty to impute, or pass --categorical {col}")
            continue
        inf = np.isinf(values)
        if inf.any():
            first = int(np.flatnonzero(inf)[0])
            where = row_label(path, _row(s, first))
            problems.append(f"column '{col}' has {int(inf.sum())} infinite values (first at {where}); "
                            "replace them with finite numbers, or leave the cells empty to impute")
    return problems


def _row(s: pd.Series, position: int) -> int:
    """The data row of `s`'s cell at `position`: its index label when that is an integer."""
    label = s.index[position]
    return int(label) if isinstance(label, (int, np.integer)) else position
