"""Tables (issue 4): the speed of loading and preparing a table, and the quality of the recipe's defaults.

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

QUALITY (`--part quality`). For each of scikit-learn's bundled tables (no download):

  breast_cancer  binary       569 rows x 30 features      accuracy
  wine           multiclass   178 rows x 13 features      accuracy (3 classes)
  digits         multiclass  1797 rows x 64 pixel columns accuracy (10 classes)
  diabetes       regression   442 rows x 10 features      R^2 (sklearn.metrics.r2_score, target units)

and each seed (0, 1, 2 by default):

  nnrecipe   the table is written as a CSV (target column 'target'; integer labels kept) to a temporary
             folder and trained with `nnrecipe.train_table(csv, 'target', out=tmp,
             train_config=TrainConfig(seed=seed))`: nothing else set, the recipe's defaults. Accuracy is
             the run's test accuracy (checked against `predict_table` on the test rows); R^2 comes from
             `predict_table` on the test rows.
  sklearn    on exactly the run's split (its splits.json), the CSV's columns through StandardScaler (fitted
             on the rows the model is fitted on) into MLPClassifier/MLPRegressor() and
             HistGradientBoostingClassifier/Regressor(), all with default settings and random_state=seed,
             scored on the same test rows. One exception: MLPRegressor's max_iter on diabetes is 2000
             (MLP_MAX_ITER says why; the default's numbers are printed under the table).
             Two variants: fitted on train+val rows (the table's default: the fair one, since nnrecipe
             uses its val rows only to stop early and scikit-learn's models have no use for a val set)
             and on the train rows alone (`--sklearn-rows train`; both are printed with `--both`).
             With `--cv-folds K`, nnrecipe trains a K-member cross-validation ensemble (T14) on the
             train+val rows: then train+val are the rows both sides fit.

Printed: a markdown table (mean ± std over the seeds), the hardware and versions, nnrecipe's total
seconds per dataset, and scikit-learn's convergence warnings. The acceptance of the issue: nnrecipe with
no flags beats scikit-learn's MLP defaults on all four datasets (mean over the seeds).

    python benchmarks/tabular.py                       # both parts (about 5 minutes on 2 cores)
    python benchmarks/tabular.py --part speed --rows 200000 --rounds 5
    python benchmarks/tabular.py --part quality --both  # also the sklearn models fitted on train rows only
    python benchmarks/tabular.py --part quality --datasets wine diabetes --seeds 0 1 2 3 4
    python benchmarks/tabular.py --part quality --cv-folds 10  # T14: nnrecipe as a 10-member CV ensemble
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn import datasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nnrecipe
from nnrecipe import DataConfig, ModelConfig, TrainConfig

from engine import cpu_model  # noqa: E402 (the benchmarks share it; this folder is on the path)

TARGET = "target"
DATASETS = {  # name: (loader, task, metric)
    "breast_cancer": (datasets.load_breast_cancer, "binary", "accuracy"),
    "wine": (datasets.load_wine, "multiclass", "accuracy"),
    "digits": (datasets.load_digits, "multiclass", "accuracy"),
    "diabetes": (datasets.load_diabetes, "regression", "r2"),
}
SKLEARN_MAX_ITER = 200  # MLPClassifier/MLPRegressor's default
# Raised only where the default fails badly: MLPRegressor on diabetes' raw target (values 25-346, mean
# ~150) has not left the neighbourhood of its zero init after 200 epochs (2 Adam steps each at batch 200):
# test R^2 about -1.4. At 1000/2000/5000 iterations R^2 is about 0.34/0.34/0.30 over seeds 0-2 (it never
# meets sklearn's tol on a loss in squared target units, so it warns at any max_iter); 2000 = 10x the
# default. The table also prints the max_iter=200 numbers for it.
MLP_MAX_ITER = {"diabetes": 2000}


def load_table(name: str) -> pd.DataFrame:
    """The bundled table as a DataFrame: its feature columns and the target as 'target' (integer class
    labels for classification; digits' 8x8 image as 64 pixel columns)."""
    bunch = DATASETS[name][0](as_frame=True)
    df = bunch.frame.copy()
    df = df.rename(columns={bunch.target.name: TARGET}) if bunch.target.name != TARGET else df
    return df


def hardware() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def versions() -> str:
    return (f"python {platform.python_version()}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
            f"numpy {np.__version__}, pandas {pd.__version__}, nnrecipe {getattr(nnrecipe, '__version__', '?')} "
            f"(from {Path(nnrecipe.__file__).parent})")


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(r2_score(y_true, y_pred) if metric == "r2" else accuracy_score(y_true, y_pred))


@dataclass
class NNResult:
    value: float
    seconds: float
    epochs: int
    best_epoch: int
    splits: dict[str, list[int]]
    info: dict[str, Any] = field(default_factory=dict)


def run_nnrecipe(csv: Path, df: pd.DataFrame, metric: str, seed: int, out: Path,
                 data_config: DataConfig | None = None, model_config: ModelConfig | None = None,
                 train_config: TrainConfig | None = None) -> NNResult:
    """train_table on the CSV with the recipe's defaults (or the configs given, for experiments), and the
    test metric: accuracy from the run (cross-checked with predict_table), R^2 from predict_table."""
    tcfg = train_config or TrainConfig(seed=seed)
    started = time.perf_counter()
    run = nnrecipe.train_table(csv, TARGET, out=out, train_config=tcfg, data_config=data_config,
                               model_config=model_config)
    seconds = time.perf_counter() - started
    splits = json.loads((run.run_dir / "splits.json").read_text())
    test = df.iloc[splits["test"]]
    preds, report = nnrecipe.predict_table(run.run_dir, test)
    if metric == "r2":
        value = score("r2", test[TARGET].to_numpy(dtype=np.float64), preds["prediction"].to_numpy(dtype=np.float64))
    else:
        value = float(report["accuracy"])  # float64; the run's own (float32) must agree
        if abs(float(run.test["accuracy"]) - value) > 1e-6:
            raise AssertionError(f"{csv.name} seed {seed}: run accuracy {run.test['accuracy']} != predict_table's {value}")
    results = json.loads((run.run_dir / "results.json").read_text())
    config = json.loads((run.run_dir / "config.json").read_text())
    info = {"hidden": config["model"]["hidden"], "dropout": config["model"]["dropout"],
            "batch_size": config["train"]["batch_size"], "rows": results["rows"]}
    return NNResult(value, seconds, results["epochs_run"], results["best_epoch"], splits, info)


def run_sklearn(df: pd.DataFrame, task: str, metric: str, splits: dict[str, list[int]], seed: int,
                rows: str, mlp_max_iter: int = 200) -> dict[str, tuple[float, int]]:
    """MLP and HistGradientBoosting with default settings (random_state=seed) behind a StandardScaler
    fitted on the training rows; fitted on `rows` ('trainval' or 'train'), scored on the test rows.
    Returns {model: (test metric, ConvergenceWarnings raised)}."""
    fit_idx = splits["train"] + splits["val"] if rows == "trainval" else splits["train"]
    X = df.drop(columns=[TARGET]).to_numpy(dtype=np.float64)
    y = df[TARGET].to_numpy()
    y = y.astype(np.float64) if task == "regression" else y.astype(np.int64)
    Xf, yf = X[fit_idx], y[fit_idx]
    Xt, yt = X[splits["test"]], y[splits["test"]]
    if task == "regression":
        models = {"mlp": MLPRegressor(random_state=seed, max_iter=mlp_max_iter),
                  "hgb": HistGradientBoostingRegressor(random_state=seed)}
    else:
        models = {"mlp": MLPClassifier(random_state=seed, max_iter=mlp_max_iter),
                  "hgb": HistGradientBoostingClassifier(random_state=seed)}
    out = {}
    for name, model in models.items():
        pipe = make_pipeline(StandardScaler(), model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            pipe.fit(Xf, yf)
        n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        out[name] = (score(metric, yt, pipe.predict(Xt)), n_warn)
    return out


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("speed", "quality", "all"), default="all")
    p.add_argument("--rows", type=int, default=1_000_000, help="speed: rows of the table")
    p.add_argument("--rounds", type=int, default=3, help="speed: rounds")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sklearn-rows", choices=("trainval", "train"), default="trainval",
                   help="rows scikit-learn's models are fitted on (default: train+val)")
    p.add_argument("--both", action="store_true", help="also print the table for the other sklearn-rows variant")
    p.add_argument("--mlp-max-iter", type=int, default=None,
                   help="MLP max_iter for every dataset (default: 200, sklearn's, except diabetes: 2000, see "
                        "MLP_MAX_ITER)")
    p.add_argument("--cv-folds", type=int, default=1,
                   help="nnrecipe's TrainConfig(cv_folds=K): a K-member cross-validation ensemble (T14) on the "
                        "train+val rows; 1 (default): the recipe's defaults, one model")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--json", type=Path, help="also write every per-seed number here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    if args.part in ("speed", "all"):
        print("## Loading and preparing a table\n")
        speed(args.rows, args.rounds)
        print()
    if args.part in ("quality", "all"):
        print("## Quality of the defaults\n")
        quality(args)
    return 0


def quality(args: argparse.Namespace) -> None:
    """The QUALITY part (see the module's docstring)."""

    variants = ["trainval", "train"] if args.both else [args.sklearn_rows]
    if args.both and args.sklearn_rows == "train":
        variants.reverse()
    per: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nnrecipe-quality-") as tmp:
        tmpdir = Path(tmp)
        for name in args.datasets:
            _, task, metric = DATASETS[name]
            df = load_table(name)
            csv = tmpdir / f"{name}.csv"
            df.to_csv(csv, index=False)
            df = pd.read_csv(csv)  # the very values nnrecipe reads
            rec: dict[str, Any] = {"task": task, "metric": metric, "rows": len(df), "features": df.shape[1] - 1,
                                   "nnrecipe": [], "seconds": [], "epochs": [], "best_epoch": [],
                                   **{f"{m}_{v}": [] for m in ("mlp", "hgb") for v in variants},
                                   **{f"mlp_{v}_warnings": 0 for v in variants},
                                   **{f"mlp_default_iter_{v}": [] for v in variants}}
            max_iter = args.mlp_max_iter or MLP_MAX_ITER.get(name, SKLEARN_MAX_ITER)
            rec["mlp_max_iter"] = max_iter
            for seed in args.seeds:
                nn_res = run_nnrecipe(csv, df, metric, seed, tmpdir / "runs",
                                      train_config=TrainConfig(seed=seed, cv_folds=args.cv_folds))
                rec["nnrecipe"].append(nn_res.value)
                rec["seconds"].append(nn_res.seconds)
                rec["epochs"].append(nn_res.epochs)
                rec["best_epoch"].append(nn_res.best_epoch)
                rec["nn_info"] = nn_res.info
                line = f"{name} seed {seed}: nnrecipe {metric} {nn_res.value:.4f} ({nn_res.epochs} epochs, best " \
                       f"{nn_res.best_epoch}, {nn_res.seconds:.1f}s)"
                for v in variants:
                    sk = run_sklearn(df, task, metric, nn_res.splits, seed, v, max_iter)
                    if max_iter != SKLEARN_MAX_ITER:
                        rec[f"mlp_default_iter_{v}"].append(
                            run_sklearn(df, task, metric, nn_res.splits, seed, v, SKLEARN_MAX_ITER)["mlp"][0])
                    for m, (val, n_warn) in sk.items():
                        rec[f"{m}_{v}"].append(val)
                        if m == "mlp":
                            rec[f"mlp_{v}_warnings"] += n_warn
                    line += f"; sklearn[{v}] mlp {sk['mlp'][0]:.4f} hgb {sk['hgb'][0]:.4f}"
                print(line, file=sys.stderr, flush=True)
            per[name] = rec

    print()
    for v in variants:
        rows_note = "train+val rows" if v == "trainval" else "train rows only"
        print(f"### Test metric, mean ± std over seeds {', '.join(map(str, args.seeds))} "
              f"(scikit-learn fitted on {rows_note}; nnrecipe "
              + ("trains on train rows, stops early on val rows)" if args.cv_folds == 1 else
                 f"a {args.cv_folds}-member cross-validation ensemble on train+val rows, T14)"))
        print()
        print("| dataset | metric | nnrecipe mean ± std | MLP (sklearn) mean ± std | HistGradientBoosting mean ± std "
              "| nnrecipe > MLP |")
        print("|---|---|---|---|---|---|")
        for name, rec in per.items():
            beats = statistics.mean(rec["nnrecipe"]) > statistics.mean(rec[f"mlp_{v}"])
            iters = "" if rec["mlp_max_iter"] == SKLEARN_MAX_ITER else f" (max_iter={rec['mlp_max_iter']})"
            print(f"| {name} | {rec['metric']} | {mean_std(rec['nnrecipe'])} | {mean_std(rec[f'mlp_{v}'])}{iters} | "
                  f"{mean_std(rec[f'hgb_{v}'])} | {'yes' if beats else 'NO'} |")
        print()
        wins = sum(statistics.mean(r["nnrecipe"]) > statistics.mean(r[f"mlp_{v}"]) for r in per.values())
        print(f"acceptance (nnrecipe beats sklearn MLP defaults on every dataset): "
              f"{'PASS' if wins == len(per) else 'FAIL'} ({wins}/{len(per)})")
        for n, r in per.items():
            if r[f"mlp_default_iter_{v}"]:
                print(f"- {n}: sklearn MLP with its default max_iter={SKLEARN_MAX_ITER}: "
                      f"{mean_std(r[f'mlp_default_iter_{v}'])} (per seed {[round(x, 4) for x in r[f'mlp_default_iter_{v}']]})")
        warned = {n: r[f"mlp_{v}_warnings"] for n, r in per.items() if r[f"mlp_{v}_warnings"]}
        if warned:
            print(f"- sklearn MLP ConvergenceWarnings (max_iter as in the table), of {len(args.seeds)} fits: "
                  + ", ".join(f"{n} {c}" for n, c in warned.items()))
        print("- per seed: " + "; ".join(
            f"{n} nnrecipe {[round(x, 4) for x in r['nnrecipe']]} mlp {[round(x, 4) for x in r[f'mlp_{v}']]} "
            f"hgb {[round(x, 4) for x in r[f'hgb_{v}']]}" for n, r in per.items()))
        print()
    print("nnrecipe time per dataset (train_table, whole call: checks, training, test, record):")
    for name, rec in per.items():
        info = rec["nn_info"]
        print(f"- {name} ({rec['rows']} rows x {rec['features']} features; split {info['rows']}; hidden "
              f"{info['hidden']}, dropout {info['dropout']}, batch {info['batch_size']}): "
              f"{sum(rec['seconds']):.1f} s for {len(rec['seconds'])} seeds "
              f"({statistics.mean(rec['seconds']):.1f} s/run; epochs run {rec['epochs']}, best epochs {rec['best_epoch']})")
    print()
    print(f"hardware: {hardware()}")
    print(f"versions: {versions()}")
    if args.json:
        args.json.write_text(json.dumps(per, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
