"""Issue 8's acceptance on breast cancer: `tune` with 20 trials (the default space, random search, the
median pruner) against the untuned default run, and the retrained best (R2) predicting.

  default  nnrecipe.train_table(csv, 'diagnosis', train_config=TrainConfig(seed=0)): the recipe's defaults.
           Its validation score: val_accuracy at its best epoch (the weights the run keeps).
  tuned    nnrecipe.tune.tune_table(csv, 'diagnosis', trials=20, workers=W, seed=S): each trial's score is
           val_accuracy at its best epoch, on the same split (train seed 0); the best is retrained on
           train+validation for its best epoch count and tested on the test split neither saw.

Printed: both validation scores (the goal: tuned >= default), the test accuracies of the default run, of
the best trial's own run and of the retrained best, the retrained run's predictions on the whole table,
the trial counts per state, and the wall time, with the machine and the versions. One seed of the search:
a claim about the search's quality over seeds wants --seeds.

    python benchmarks/tune.py [--trials 20] [--workers 2] [--seeds 1] [--out DIR]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

import nnrecipe
from nnrecipe.config import TrainConfig
from nnrecipe.io import read_json
from nnrecipe.recipes import predict_table
from nnrecipe.testing import breast_cancer_csv
from nnrecipe.tune import tune_table

sys.path.insert(0, str(Path(__file__).parent))
from tabular import hardware, versions  # noqa: E402 (the benchmarks' shared lines on hardware and versions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1, help="searches with sampler seeds 0..n-1")
    ap.add_argument("--out", default=None, help="where the studies go (default: a temporary folder)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = Path(args.out or tempfile.mkdtemp(prefix="nnrecipe-tune-"))
    out.mkdir(parents=True, exist_ok=True)
    csv = breast_cancer_csv(out / "breast_cancer.csv")
    print(f"hardware: {hardware()}")
    print(f"versions: {versions()}, optuna {optuna.__version__}")

    started = time.perf_counter()
    default = nnrecipe.train_table(csv, "diagnosis", out=out / "runs", train_config=TrainConfig(seed=0))
    results = default.results
    default_val = next(r["val_accuracy"] for r in default.history if r["epoch"] == results["best_epoch"])
    print(f"default run: val_accuracy {default_val:.4f}, test accuracy {default.test['accuracy']:.4f} "
          f"({time.perf_counter() - started:.0f} s)")

    tuned_vals, refit_tests = [], []
    for seed in range(args.seeds):
        started = time.perf_counter()
        result = tune_table(csv, "diagnosis", trials=args.trials, workers=args.workers, seed=seed,
                            out=out / "studies", study=f"breast-cancer-seed{seed}")
        seconds = time.perf_counter() - started
        best_run = Path(next(t["run_dir"] for t in result.trials if t["number"] == result.best_trial))
        best_test = read_json(best_run / "results.json")["test"]["accuracy"]
        preds, report = predict_table(result.refit.run_dir, csv)
        tuned_vals.append(result.best_value)
        refit_tests.append(result.refit.test["accuracy"])
        print(f"search seed {seed}: {result.counts}; best trial {result.best_trial} val_accuracy "
              f"{result.best_value:.4f} (>= default {default_val:.4f}: {result.best_value >= default_val}); "
              f"its test accuracy {best_test:.4f}; retrained on train+val: test accuracy "
              f"{result.refit.test['accuracy']:.4f}, predicts {len(preds)} rows (accuracy on the whole table "
              f"{report['accuracy']:.4f}); {seconds:.0f} s with {args.workers} workers")
        print(f"  best parameters: {result.best_params}")
        print(f"  report: {result.report}")
    if args.seeds > 1:
        print(f"over {args.seeds} searches: best val_accuracy {statistics.mean(tuned_vals):.4f} +- "
              f"{statistics.stdev(tuned_vals):.4f}; retrained test accuracy {statistics.mean(refit_tests):.4f} +- "
              f"{statistics.stdev(refit_tests):.4f}")


if __name__ == "__main__":
    main()
