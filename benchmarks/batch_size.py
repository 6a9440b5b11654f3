"""T17 (issue 22, item 6): does the batch size that `nnrecipe batchsize` recommends hold up in training?

For each table (scikit-learn's bundled sets, nothing downloaded: breast_cancer binary, digits multiclass,
diabetes regression), on one thread:

  measure   nnrecipe.batch_sizes_table(frame, 'target', model_config=ModelConfig(model=MODEL)) at seed 0:
            samples/s at batch 8..min(1024, training rows), the gradient noise scale B_simple (McCandlish et
            al. 2018) at the initialisation, the throughput knee and the recommended batch R; its seconds.
  train     train_table at R / 4 (at least 2), R and 4 R for each seed (0, 1, 2): the recipe's defaults
            except the batch size, no R2 refit (the validation rows must stay out of training to be scored),
            no doctor and no audit (their time is not the batch's). Reported per batch, mean +- std over the
            seeds: the headline validation metric at the best epoch (the weights the run keeps: accuracy, or
            RMSE in target units), the validation loss there, the best epoch (and its ratio to the recommended
            batch's, beside the ratio the noise scale predicts: epochs to a given loss ~ 1 + B / B_noise), and the
            training seconds.

The claim checked: the recommended batch trains about as well as the 4x smaller one, in less time, and as
well or better than the 4x larger one. Usage: `python benchmarks/batch_size.py [--model mlp|tabm] [--seeds 3]
[--json FILE]`. The MLP by default: TabM at batch 2 takes minutes a run on one CPU thread."""

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
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402

from nnrecipe import batch_sizes_table  # noqa: E402
from nnrecipe.config import ModelConfig, TrainConfig  # noqa: E402
from nnrecipe.recipes import train_table  # noqa: E402

TABLES = {"breast_cancer": load_breast_cancer, "digits": load_digits, "diabetes": load_diabetes}


def _ms(values: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} +- {sd:.{digits}f}"


def train_at(frame, batch: int, seed: int, model: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        run = train_table(frame, "target", out=out, model_config=ModelConfig(model=model),
                          train_config=TrainConfig(seed=seed, batch_size=batch, refit="off"), checks=(), audit=False,
                          report=False)
    metric = "rmse" if run.task == "regression" else "accuracy"
    best = run.results["best_epoch"]
    row = next(r for r in run.history if r["epoch"] == best)
    return {"metric": metric, "val": row[f"val_{metric}"], "val_loss": row["val_loss"], "best_epoch": best,
            "seconds": run.results["train_seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp", choices=("mlp", "tabm"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tables", default=",".join(TABLES))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)  # the tables' notices (constant pixels left out) are not the result
    print(f"T17 batch-size benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (1 thread "
          f"used), Python {platform.python_version()}, torch {torch.__version__}, model {args.model}, "
          f"seeds 0..{args.seeds - 1}")
    record = {}
    for name in args.tables.split(","):
        frame = TABLES[name](as_frame=True).frame
        started = time.perf_counter()
        report, _, rule = batch_sizes_table(frame, "target", model_config=ModelConfig(model=args.model),
                                        train_config=TrainConfig(seed=0, device="cpu"))
        wall = time.perf_counter() - started
        rec = report.recommended
        print(f"\n{name}: {report.rows} training rows; B_simple {report.noise_scale:.1f} ({report.noise_bound}), "
              f"knee {report.knee}, recommended {rec} (the rule's batch: {rule}); measured in {report.seconds:.2f} s "
              f"({wall:.2f} s with building the model)")
        print("  samples/s: " + ", ".join(f"{b}: {s:.0f}" for b, s in zip(report.batch_sizes, report.samples_per_s)))
        rows = {}
        for label, batch in (("R", rec), ("R/4", max(2, rec // 4)), ("4R", 4 * rec)):
            runs = [train_at(frame, batch, seed, args.model) for seed in range(args.seeds)]
            rows[label] = {"batch": batch, "runs": runs}
            metric = runs[0]["metric"]
            # the model's epochs to a given loss, E ~ 1 + B / B_noise (McCandlish et al. 2018), against the
            # best epochs measured, both relative to the recommended batch
            predicted = (1 + batch / report.noise_scale) / (1 + rec / report.noise_scale)
            measured = statistics.fmean(r["best_epoch"] for r in runs) / statistics.fmean(
                r["best_epoch"] for r in rows["R"]["runs"])
            print(f"  {label:>3} batch {batch:4d}: val {metric} {_ms([r['val'] for r in runs])}, val loss "
                  f"{_ms([r['val_loss'] for r in runs])}, best epoch {_ms([r['best_epoch'] for r in runs], 1)} "
                  f"(x{measured:.2f} of R's; predicted x{predicted:.2f}), train seconds "
                  f"{_ms([r['seconds'] for r in runs], 2)}")
        record[name] = {"report": report.to_dict(), "rule_batch": rule, "trained": rows}
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
