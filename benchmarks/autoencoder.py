"""M13: autoencoder features with few labels and many unlabelled rows, against the raw features in the same run.

Per table and seed, 30% of the rows are held out (stratified) as fresh test rows; of the rest, a share
(--fractions: 5% and 10% of the table) keeps its labels and trains `train_table` (its own validation and test
rows drawn from those: --val-fraction 0.2, --test-fraction 0.05), and every other row is given as
--unlabelled, its target dropped. Arms, on the same rows and seed:

  raw       no pretraining (the reference)
  features  --pretrain features: the frozen encoder's code beside the raw features
  latent    --pretrain latent: the frozen code alone
  init      --pretrain init: the encoder as the network's first layers, fine-tuned

Scored by `predict_table` on the fresh rows; seconds are the whole run's (the autoencoder's training included
in each arm that pretrains: each trains its own, the cache is emptied between arms). Tables that ship with
scikit-learn (no download): digits as a table (1,797 rows, 64 pixel columns, 10 classes) and breast cancer
(569 rows, 30 numeric columns, 2 classes). Mean +- std over seeds, one torch thread.

    python benchmarks/autoencoder.py --seeds 0 1 2
    python benchmarks/autoencoder.py --model mlp --seeds 0 1 2 --plot autoencoder.png
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ARMS = ("off", "features", "latent", "init")
NAMES = {"off": "raw", "features": "features", "latent": "latent", "init": "init"}


def tables() -> dict[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer, load_digits

    return {"digits": load_digits(as_frame=True).frame, "breast_cancer": load_breast_cancer(as_frame=True).frame}


def split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(labelled, unlabelled without the target, fresh test rows): 30% fresh, `fraction` of the table labelled."""
    from sklearn.model_selection import train_test_split

    pool, fresh = train_test_split(frame, test_size=0.3, stratify=frame["target"], random_state=seed)
    labelled, unlabelled = train_test_split(pool, train_size=int(round(fraction * len(frame))),
                                            stratify=pool["target"], random_state=seed)
    return (labelled.reset_index(drop=True), unlabelled.drop(columns="target").reset_index(drop=True),
            fresh.reset_index(drop=True))


def one(frame: pd.DataFrame, fraction: float, seed: int, mode: str, model: str, out: Path) -> tuple[float, float, dict]:
    """(accuracy on the fresh rows, seconds, the pretraining record or {}) of one arm."""
    from nnrecipe import DataConfig, ModelConfig, TrainConfig, train_table
    from nnrecipe.recipes.tabular import predict_table

    labelled, unlabelled, fresh = split(frame, fraction, seed)
    file = out / f"unlabelled-{seed}-{fraction}.csv"
    unlabelled.to_csv(file, index=False)
    cache = Path(os.environ["NNRECIPE_CACHE"]) / "autoencoders"
    shutil.rmtree(cache, ignore_errors=True)  # each arm pays for its own autoencoder
    started = time.perf_counter()
    run = train_table(labelled, "target", out=out, report=False,
                      data_config=DataConfig(val_fraction=0.2, test_fraction=0.05),
                      model_config=ModelConfig(model=model, pretrain=mode, unlabelled=str(file) if mode != "off" else None),
                      train_config=TrainConfig(seed=seed))
    seconds = time.perf_counter() - started
    _, report = predict_table(run.run_dir, fresh)
    meta = json.loads((run.run_dir / "model.json").read_text())
    return report["accuracy"], seconds, meta.get("pretrain", {})


def mean_std(xs: list[float], digits: int = 4) -> str:
    return f"{statistics.mean(xs):.{digits}f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10])
    ap.add_argument("--tables", nargs="+", default=["digits", "breast_cancer"])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--model", default="auto", help="the network: auto (TabM) or mlp")
    ap.add_argument("--plot", default=None, help="also draw accuracy against the labelled share to this PNG")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; model {args.model}; seeds {args.seeds}")
    found: dict[tuple[str, float, str], list[tuple[float, float, dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NNRECIPE_CACHE"] = str(Path(tmp) / "cache")
        frames = tables()
        for name in args.tables:
            for fraction in args.fractions:
                for seed in args.seeds:
                    for mode in args.arms:
                        found.setdefault((name, fraction, mode), []).append(
                            one(frames[name], fraction, seed, mode, args.model, Path(tmp)))
                lines = []
                for mode in args.arms:
                    rows = found[(name, fraction, mode)]
                    acc = [r[0] for r in rows]
                    gain = [a - r[0] for a, r in zip(acc, found[(name, fraction, "off")])] if "off" in args.arms else []
                    record = rows[0][2]
                    extra = (f"; autoencoder {record['inputs']} -> {record['latent']}, "
                             f"{record['rows']['training']} + {record['rows']['unlabelled']} rows, reconstruction "
                             f"{record['reconstruction_loss']:.3f} of variance {record['variance']:.3f}") if record else ""
                    lines.append(f"{name:14s} {fraction:4.0%} labelled  {NAMES[mode]:8s} accuracy {mean_std(acc)}"
                                 + (f"  gain {mean_std(gain)}" if mode != "off" and gain else "")
                                 + f"  {statistics.mean(r[1] for r in rows):5.1f} s{extra}")
                print("\n".join(lines), flush=True)
    if args.plot:
        _plot(found, args, Path(args.plot))


def _plot(found: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.tables), figsize=(5 * len(args.tables), 3.6), squeeze=False)
    for ax, name in zip(axes[0], args.tables):
        for mode in args.arms:
            acc = [[r[0] for r in found[(name, f, mode)]] for f in args.fractions]
            ax.errorbar([100 * f for f in args.fractions], [np.mean(a) for a in acc], yerr=[np.std(a) for a in acc],
                        marker="o", capsize=3, label=NAMES[mode])
        ax.set(title=f"{name} ({args.model})", xlabel="labelled rows, % of the table", ylabel="accuracy, fresh rows")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
