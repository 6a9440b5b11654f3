"""The GPU path, smoke-tested (issue 16): run it whenever a machine with CUDA is at hand; CI has none.

Each check prints PASS or FAIL with what it saw:
  1. the Trainer on CUDA in float32, bf16 (autocast) and fp16 (autocast with loss scaling): it learns on
     separable blobs, its epoch sums (loss, gradient norm) live on the device (torch refuses to add a CUDA
     loss into a CPU tensor in place), and the metrics by name (scikit-learn's take CPU copies) are finite;
  2. a resume on CUDA: a run stopped mid-epoch and resumed ends with the same weights as one straight run
     (bit for bit with deterministic=True);
  3. `nnrecipe.train_table` on breast cancer with device cuda: the recipe end to end, its test accuracy;
  4. predict on the CPU from the run folder a CUDA run wrote.

    python benchmarks/cuda_smoke.py            # about a minute on one GPU
"""

from __future__ import annotations

import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import nnrecipe
from nnrecipe import Callback, TrainConfig, Trainer
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.testing import blobs, breast_cancer_csv, states_equal

RESULTS: list[bool] = []


def check(name: str, ok: bool, seen: str) -> None:
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} {name}: {seen}", flush=True)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 4))


def precisions(x: torch.Tensor, y: torch.Tensor) -> None:
    for precision in ("32", "bf16", "fp16"):
        cfg = TrainConfig(device="cuda", precision=precision, epochs=5, batch_size=64, lr=3e-3, patience=None)
        t = Trainer(mlp(), nn.CrossEntropyLoss(), (x[:1536], y[:1536]), (x[1536:], y[1536:]), config=cfg,
                    metrics=["accuracy", "f1", "auc"], train_metrics=True)
        history = t.fit()
        sums = t._new_accumulators()
        last = history[-1]
        ok = (last["val_accuracy"] > 0.9 and last["train_loss"] < history[0]["train_loss"]
              and sums["loss_sum"].device.type == "cuda" and all(v == v for v in last.values()))
        check(f"Trainer on CUDA, precision {precision}", ok,
              f"val_accuracy {last['val_accuracy']:.4f}, val_f1 {last['val_f1']:.4f}, val_auc {last['val_auc']:.4f}, "
              f"train_loss {history[0]['train_loss']:.4f} -> {last['train_loss']:.4f}, sums on "
              f"{sums['loss_sum'].device}")


class StopAt(Callback):
    def __init__(self, batch: int):
        self.batch = batch

    def on_batch_end(self, trainer, logs):
        if trainer.global_step == self.batch:
            raise KeyboardInterrupt


def resume(x: torch.Tensor, y: torch.Tensor, folder: Path) -> None:
    cfg = TrainConfig(device="cuda", epochs=3, batch_size=64, lr=3e-3, patience=None, deterministic=True,
                      checkpoint_every=5)
    straight = Trainer(mlp(), nn.CrossEntropyLoss(), (x, y), config=cfg, run_dir=folder / "a", report=False)
    straight.fit()
    try:
        Trainer(mlp(), nn.CrossEntropyLoss(), (x, y), config=cfg, run_dir=folder / "b", report=False,
                callbacks=[StopAt(40)]).fit()
    except KeyboardInterrupt:
        pass
    resumed = Trainer(mlp(), nn.CrossEntropyLoss(), (x, y), config=cfg, run_dir=folder / "b", report=False,
                      resume=True)
    resumed.fit()
    same = states_equal({k: v.cpu() for k, v in straight.model.state_dict().items()},
                        {k: v.cpu() for k, v in resumed.model.state_dict().items()})
    check("a resume on CUDA", same, f"stopped at step 40 of {3 * len(straight.batches)}, resumed; weights "
          f"{'bit for bit equal to' if same else 'differ from'} one straight run")


def recipe(folder: Path) -> None:
    csv = breast_cancer_csv(folder / "breast_cancer.csv")
    started = time.perf_counter()
    run = train_table(csv, "diagnosis", out=folder / "runs", train_config=TrainConfig(device="cuda", seed=0))
    seconds = time.perf_counter() - started
    check("train_table on CUDA", run.test["accuracy"] > 0.93,
          f"test accuracy {run.test['accuracy']:.4f}, {run.results['epochs_run']} epochs, {seconds:.1f} s")
    preds, report = predict_table(run.run_dir, csv)
    check("predict on the CPU from a CUDA run", len(preds) == 569 and report["accuracy"] > 0.93,
          f"{len(preds)} rows, accuracy on the whole table {report['accuracy']:.4f}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("no CUDA device here: run this on a machine with a GPU")
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"python {platform.python_version()}, nnrecipe {nnrecipe.__version__}")
    x, y = blobs(2048, 16, 4, seed=0)
    precisions(x, y)
    with tempfile.TemporaryDirectory(prefix="nnrecipe-cuda-") as tmp:
        resume(x, y, Path(tmp))
        recipe(Path(tmp))
    print(f"{sum(RESULTS)} of {len(RESULTS)} checks passed")
    return 0 if all(RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
