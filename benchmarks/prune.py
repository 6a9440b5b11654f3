"""M14: what pruning keeps, and what it buys, on the demo table (`make demo`: breast cancer, 569 rows, 30
numeric columns, `nnrecipe train` with the recipe's defaults).

For each seed, two runs are trained on the same split: the defaults (TabM, with the R2 pair: an ensemble of
two), pruned globally (`nnrecipe prune RUN`), and `--model mlp` (two MLPs of 128, 128), pruned structured
(`--method structured`: the MLPs rebuilt with fewer neurons). Both to 0.5, 0.8 and 0.9 with the defaults: 5
epochs of fine-tuning at the run's own rate after each step, the best epoch on the validation rows kept.

Printed, per method and sparsity: the parameters (nonzero / total), the test accuracy (86 rows: one row is
1.16 points) as mean +- std over the seeds and its change against the unpruned model, the time of one
forward pass over 1024 rows (the test rows repeated; median of 7) and its ratio to the unpruned model's, and
the seconds the step took (prune, fine-tune, test). One thread (torch.set_num_threads(1)): the machine's
other work moves the timings less.

    python benchmarks/prune.py                  # 3 seeds (about 70 s on 2 CPU cores)
    python benchmarks/prune.py --seeds 1        # one seed, a smoke run
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.recipes.prune import prune_run
from nnrecipe.recipes import train_table
from nnrecipe.testing import breast_cancer_csv

SPARSITIES = (0.5, 0.8, 0.9)
CASES = (("global", "auto"), ("structured", "mlp"))  # (method, --model): structured shrinks MLPs only


def cpu() -> str:
    """The CPU's model name (Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default=None, help="the breast cancer CSV (default: written from scikit-learn)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(args.data) if args.data else breast_cancer_csv(Path(tmp) / "breast_cancer.csv")
        rows: dict[tuple[str, float], list[dict]] = {}
        started = time.perf_counter()
        for seed in range(args.seeds):
            for method, model in CASES:
                run = train_table(csv, "diagnosis", out=Path(tmp) / "runs", model_config=ModelConfig(model=model),
                                  train_config=TrainConfig(seed=seed), checks=(), audit=False, report=False)
                result = prune_run(run.run_dir, SPARSITIES, method=method)
                base = result.unpruned
                rows.setdefault((method, 0.0), []).append({**base, "seconds": None, "base": base})
                for step in result.steps:
                    rows.setdefault((method, step["sparsity"]), []).append({**step, "base": base})
                print(f"seed {seed} {method:10s} unpruned {base['test']['accuracy']:.4f} -> "
                      + ", ".join(f"{s['sparsity']:g}: {s['test']['accuracy']:.4f}" for s in result.steps), flush=True)
        total = time.perf_counter() - started
    print(f"\nbreast cancer (demo table), {args.seeds} seeds; torch {torch.__version__}, python "
          f"{platform.python_version()}, {cpu()} ({os.cpu_count()} cores), {torch.get_num_threads()} thread; "
          f"{total:.0f} s in all")
    header = ("method", "sparsity", "nonzero / parameters", "test accuracy", "change", "predict ms", "x unpruned",
              "step s")
    lines = [header]
    for (method, sparsity), found in rows.items():
        acc = [r["test"]["accuracy"] for r in found]
        change = [r["test"]["accuracy"] - r["base"]["test"]["accuracy"] for r in found]
        ms = [r["predict_ms"] for r in found]
        ratio = [r["predict_ms"] / r["base"]["predict_ms"] for r in found]
        seconds = [r["seconds"] for r in found if r["seconds"] is not None]
        lines.append((method, "0 (run)" if sparsity == 0 else f"{sparsity:g}",
                      f"{statistics.mean(r['nonzero'] for r in found):,.0f} / "
                      f"{statistics.mean(r['parameters'] for r in found):,.0f}",
                      mean_std(acc), "-" if sparsity == 0 else f"{statistics.mean(change):+.4f}",
                      f"{statistics.mean(ms):.2f}", f"{statistics.mean(ratio):.2f}",
                      f"{statistics.mean(seconds):.1f}" if seconds else "-"))
    widths = [max(len(str(x)) for x in col) for col in zip(*lines)]
    for line in lines:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


if __name__ == "__main__":
    main()
