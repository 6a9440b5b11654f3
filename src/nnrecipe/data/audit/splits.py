"""The audit's findings on the split itself (leakage the split lets through, though no row is in two
splits): a table whose rows follow a date column, split at random, so that the model trains on rows later
than the ones it is tested on; an identifier column (a patient, a user, a store) whose values sit in both
the training and the test rows, so that the test score measures known entities. Each fires only under a
random or stratified split (auto included) and says which --split to pass instead; the user who chose a
time or group split is not second-guessed. Both appear only when they warn."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ...checks.verdict import Verdict
from ...config import DataConfig
from ...errors import flag, shorten
from ..prepare import SPLITS, PreparedTable
from ..schema import _kind, target_columns
from ..split import parse_times, time_numbers

SOURCE_TIME = ("Karpathy's recipe (split hygiene); time series are validated forward in time (Hyndman & "
               "Athanasopoulos, 'Forecasting: Principles and Practice', 5.10 'time series cross-validation')")
SOURCE_GROUP = ("Karpathy's recipe (split hygiene); rows of one patient or user are not independent: scikit-learn's "
                "GroupKFold / GroupShuffleSplit ('Cross-validation iterators for grouped data')")

# Time order: |Spearman rho| between the rows' order in the file and a date column. Measured (tests/data/
# test_splits.py's series): 1.000 on a daily series of 400 rows in file order, 0.9997 with 10 rows a day,
# 0.9996 / 0.989 / 0.959 / 0.896 with each date moved at random by up to +-5 / 30 / 60 / 100 days (of 400);
# the same 400 rows shuffled, over 1,000 shuffles: median 0.036, largest 0.146 (100 rows: 0.365; 20 rows:
# median 0.16, 99th percentile 0.57, largest 0.78). 0.95 fires on a series near-sorted to within ~60 rows
# in 400 and nowhere near a shuffled table.
TIME_RHO = 0.95
TIME_ROWS = 20  # fewer rows with a time: no finding (a rank correlation over a handful of rows is luck)
TIME_SAMPLE = 20_000  # rows the correlation is measured on (seeded), past it; its standard error there is < 0.01

# Groups: an identifier-like column (an ID's name, or text of 50 values or more; integers without an ID's
# name are quantities such as an age) with between 2% and 50% as many values as rows, most of its values on
# 2 rows or more. Under a random split a test row's value is in training with probability 1 - 0.3^(r-1) for
# a value of r rows: 70% at 2 rows, 99% at 5. It warns from half the test rows. Measured on 400-row tables of
# patients: 100% of the test rows at 80 patients x 5 rows (integer 'patient_id', or text 'user'), 84% at
# 100 x 3, 77% at 200 x 2; 0 under --split group:patient_id. A 3-level categorical, an integer 'age' (18-90),
# an integer 'visit_code' (no ID's word) and every clean table of tests/audit never qualify.
GROUP_MIN_SHARE, GROUP_MAX_SHARE = 0.02, 0.5  # values per row
GROUP_TEXT_LEVELS = 50  # a text column with fewer values is an ordinary categorical ('sex', 'colour')
GROUP_ID_LEVELS = 10  # a column named as an ID needs this many values
GROUP_REPEATED = 0.5  # share of its values on 2 rows or more
GROUP_WARN = 0.5  # share of test rows whose value is also in training
# words that name an entity whose rows belong together (a column 'PatientID', 'user_id', 'store_nbr')
ID_WORDS = frozenset({"id", "uuid", "guid", "key", "patient", "user", "customer", "client", "store", "shop",
                      "subject", "person", "account", "session", "device", "household", "player", "driver",
                      "vendor", "merchant", "member", "visitor", "student", "school", "hospital", "sku"})


def split_findings(df: pd.DataFrame, cfg: DataConfig, prep: PreparedTable, kinds: dict[str, str],
                   seed: int) -> list[Verdict]:
    """The findings that warn (none when the split is a time or group split). `df`: every row read (its
    index the 0-based data rows); `kinds`: the schema's kind of each feature column (table.read_cells)."""
    if cfg.split_kind not in ("auto", "random", "stratified"):
        return []
    return [v for v in (time_order(df, cfg, prep, kinds, seed), group_overlap(df, cfg, prep, kinds)) if v is not None]


def _columns(df: pd.DataFrame, cfg: DataConfig) -> list[Any]:
    """The columns that are not the target, --drop'ed ones included: they still say how rows belong together."""
    targets = target_columns(cfg.target)
    return [c for c in df.columns if c not in targets and isinstance(df[c], pd.Series)]


# ---------------------------------------------------------------- time order
def as_times(s: pd.Series) -> pd.Series:
    """A date column as UTC times (NaT where a cell is none), the way --split time:COL reads it."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    return parse_times(s.astype("string").str.strip())


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN when either is constant."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def time_order(df: pd.DataFrame, cfg: DataConfig, prep: PreparedTable, kinds: dict[str, str],
               seed: int) -> Verdict | None:
    """leakage: a date column that orders the rows (|rho| with the rows' order >= TIME_RHO) under a random
    split: the model is trained on rows later than most of its test rows."""
    found: dict[str, dict[str, Any]] = {}
    # each data row's split (0 train, 1 validation, 2 test; -1 no target)
    which = np.full(len(df), -1)
    bounds = np.cumsum([0] + [prep.counts[s] for s in SPLITS])
    for i in range(3):
        which[prep.rows[bounds[i]:bounds[i + 1]]] = i
    pick = np.arange(len(df))
    if len(df) > TIME_SAMPLE:
        pick = np.sort(np.random.default_rng(seed).choice(len(df), TIME_SAMPLE, replace=False))
    for col in _columns(df, cfg):
        kind = kinds.get(col) or (_kind(df[col], col, cfg)[0] if col in cfg.drop else None)
        if kind != "datetime":
            continue
        times = as_times(df[col].iloc[pick])
        have = times.notna().to_numpy()
        if have.sum() < TIME_ROWS:
            continue
        keys = time_numbers(times[have])
        rho = rank_correlation(pick[have].astype(np.float64), keys.astype(np.float64))
        if not abs(rho) >= TIME_RHO:  # NaN (a constant date) too
            continue
        side = which[pick[have]]
        train, test = keys[side == 0], keys[side == 2]
        share = float((test < train.max()).mean()) if len(train) and len(test) else 0.0
        found[str(col)] = {"rho": round(rho, 4), "rows": int(have.sum()), "test_before_last_train": round(share, 4)}
    if not found:
        return None
    col = max(found, key=lambda c: abs(found[c]["rho"]))
    ev = {"columns": found, "split": cfg.split, "warn_at_rho": TIME_RHO}
    first = found[col]
    order = "newest first" if first["rho"] < 0 else "oldest first"
    return Verdict("leakage", "time order under a random split", "warn",
                   f"the rows follow date column '{shorten(col, 40)}' ({order}: rank correlation {first['rho']:.3f} "
                   f"with the rows' order), but the split is {_split_name(cfg, prep)}: "
                   f"{first['test_before_last_train']:.0%} of the test rows are older than the newest training row, "
                   "so the model is tested on a past it has seen the future of, and its score overstates what it "
                   "will do on new rows", ev,
                   f"split by time: {flag('--split', f'time:{col}')} (the earliest rows train, the latest test)",
                   SOURCE_TIME, fault="train-test-overlap")


def _split_name(cfg: DataConfig, prep: PreparedTable) -> str:
    if cfg.split_kind == "auto":
        return "stratified at random" if prep.task in ("binary", "multiclass") else "random"
    return "stratified at random" if cfg.split_kind == "stratified" else "random"


# ---------------------------------------------------------------- groups
def name_words(name: str) -> set[str]:
    """The words of a column's name, lowercased: 'PatientID' -> {patient, id}, 'store_nbr' -> {store, nbr}."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name))
    return {w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w}


def id_candidate(s: pd.Series, name: str, kind: str | None) -> bool | None:
    """Whether a column may hold identifiers, by its type alone: None when it cannot (floats, booleans,
    dates; integers without an ID's word in the name, which are quantities such as an age; text the
    schema reads as dates, numbers or free text), else whether its name holds an ID's word."""
    named = bool(name_words(name) & ID_WORDS)
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_float_dtype(s) or pd.api.types.is_datetime64_any_dtype(s):
        return None
    if pd.api.types.is_integer_dtype(s):
        return True if named else None
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return None
    return named if kind in ("categorical", "embedding", "drop") else None


def looks_like_groups(s: pd.Series, named: bool) -> dict[str, Any] | None:
    """The column's values (`s`: the rows split) as groups when it looks like an identifier that repeats
    (the rule above; `named`: an ID's word in its name): its counts, else None."""
    filled = s.dropna()
    n, levels = len(s), int(filled.nunique())
    if levels < (GROUP_ID_LEVELS if named else GROUP_TEXT_LEVELS):
        return None
    if not GROUP_MIN_SHARE * n <= levels <= GROUP_MAX_SHARE * n:
        return None
    counts = filled.value_counts()
    repeated = float((counts >= 2).mean())
    if repeated < GROUP_REPEATED:
        return None
    return {"values": levels, "rows_per_value_median": float(counts.median()), "values_repeated": round(repeated, 4),
            "id_name": named}


def group_overlap(df: pd.DataFrame, cfg: DataConfig, prep: PreparedTable, kinds: dict[str, str]) -> Verdict | None:
    """leakage: an identifier column whose values are in both the training and the test rows, at least
    GROUP_WARN of the test rows, under a random split."""
    bounds = np.cumsum([0] + [prep.counts[s] for s in SPLITS])
    found: dict[str, dict[str, Any]] = {}
    for col in _columns(df, cfg):
        kind = kinds.get(col) or (_kind(df[col], col, cfg)[0] if col in cfg.drop else None)
        named = id_candidate(df[col], str(col), kind)
        if named is None:
            continue
        s = df[col].take(prep.rows)  # the rows split (those with a target), in split order
        stats = looks_like_groups(s, named)
        if stats is None:
            continue
        codes, _ = pd.factorize(s.astype("string").str.strip())  # -1: an empty cell
        part = {k: codes[bounds[i]:bounds[i + 1]] for i, k in enumerate(SPLITS)}
        part = {k: c[c >= 0] for k, c in part.items()}
        share = {k: float(np.isin(part[k], part["train"]).mean()) if len(part[k]) else 0.0 for k in ("val", "test")}
        if share["test"] >= GROUP_WARN:
            found[str(col)] = {**stats, "share_of_test_in_train": round(share["test"], 4),
                               "share_of_val_in_train": round(share["val"], 4)}
    if not found:
        return None
    col = max(found, key=lambda c: found[c]["share_of_test_in_train"])
    first = found[col]
    ev = {"columns": found, "split": cfg.split, "warn_at": GROUP_WARN,
          "rule": (f"an ID's name ({GROUP_ID_LEVELS}+ values) or text of {GROUP_TEXT_LEVELS}+ values; "
                   f"{GROUP_MIN_SHARE:.0%}-{GROUP_MAX_SHARE:.0%} as many values as rows; "
                   f"{GROUP_REPEATED:.0%} of values on 2+ rows")}
    return Verdict("leakage", "groups shared between splits", "warn",
                   f"column '{shorten(col, 40)}' looks like an identifier ({first['values']} values, a median of "
                   f"{first['rows_per_value_median']:g} rows each), and the split is {_split_name(cfg, prep)}: "
                   f"{first['share_of_test_in_train']:.1%} of the test rows share their '{shorten(col, 40)}' with "
                   "training rows, so the test score measures entities the model has seen, not new ones", ev,
                   f"keep each value in one split: {flag('--split', f'group:{col}')}; if new rows will come from the "
                   "same entities, the random split is the right one and this is no leak",
                   SOURCE_GROUP, fault="train-test-overlap")
