"""T10: seconds per training epoch of nnrecipe's Trainer in one process against two processes under torchrun
(gloo on the CPU, one thread each), and how far apart their final weights end.

The workload: an MLP 64-256-256-1 (ReLU), BCEWithLogitsLoss, Adam lr 1e-3, global batch 256, on seeded
synthetic data of --rows x 64 float32 (a linear signal plus noise), no validation set, --epochs epochs. Each
process count runs `python -m torch.distributed.run --standalone --nproc_per_node=N this_file --worker`:
N=1 is the plain one-process Trainer (torchrun with one process starts no process group), N=2 the same
Trainer with distributed=True, each process on its half of every batch. Reported per count: the median
seconds of an epoch's training pass (epoch 1, which warms up, left out), and the largest difference of a
final weight from the one-process run's (float32 sums in another order: not bit for bit, docs/distributed.md).

What to expect: the CPU gloo all-reduce of a 83k-parameter model's gradient costs about as much as half a
step of this small MLP, so the speed-up on a CPU is small, and on a shared 2-core machine it can be none;
the engine is there for GPUs (NCCL) and for models whose step is long next to the all-reduce.

    python benchmarks/distributed.py                  # 100k rows, 4 epochs
    python benchmarks/distributed.py --rows 20000 --epochs 3   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def worker(args: argparse.Namespace) -> None:
    from nnrecipe import Step, Trainer, TrainConfig
    from nnrecipe.train import distributed as dist
    from nnrecipe.train.callbacks import Callback

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.rows, 64, generator=g)
    y = ((x @ torch.randn(64, 1, generator=g)) + 0.5 * torch.randn(args.rows, 1, generator=g) > 0).float()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 1))

    class Clock(Callback):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_epoch_start(self, trainer, logs):  # noqa: ANN001
            self.started = time.perf_counter()

        def on_epoch_end(self, trainer, logs):  # noqa: ANN001
            self.seconds.append(time.perf_counter() - self.started)

    class Halves(Step):
        """The control: one process, each batch's loss the mean of its two strided halves' means (the sum two
        processes take), to show how far float32 reordering alone moves the weights."""

        def loss(self, model, batch):  # noqa: ANN001
            (x, ), t = batch.inputs, batch.target
            a, out = self.supervised(model, type(batch)((x[0::2],), t[0::2]))
            b, _ = self.supervised(model, type(batch)((x[1::2],), t[1::2]))
            return (a * len(t[0::2]) + b * len(t[1::2])) / len(t), out

    clock = Clock()
    trainer = Trainer(model, torch.nn.BCEWithLogitsLoss(), (x, y), None,
                      TrainConfig(epochs=args.epochs, batch_size=256, lr=1e-3, optimizer="adam", patience=None,
                                  schedule="constant", seed=0),
                      callbacks=[clock], distributed=True, step=Halves() if args.halves else None)
    trainer.fit()
    if dist.is_main():
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, args.weights)
        Path(args.weights).with_suffix(".json").write_text(json.dumps(clock.seconds))


def launch(n: int, args: argparse.Namespace, folder: Path, halves: bool = False
           ) -> tuple[list[float], dict[str, torch.Tensor]]:
    weights = folder / f"w{n}{'h' if halves else ''}.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", __file__,
           "--worker", "--rows", str(args.rows), "--epochs", str(args.epochs), "--weights", str(weights),
           *(["--halves"] if halves else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(weights.with_suffix(".json").read_text()), torch.load(weights)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    p.add_argument("--halves", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.rows} x 64 rows, batch 256, {args.epochs} epochs, gloo, 1 thread per process")
    with tempfile.TemporaryDirectory() as tmp:
        results = {"1 process  ": launch(1, args, Path(tmp)), "2 processes": launch(2, args, Path(tmp)),
                   "1 process, the batch as two half-batch means (control)": launch(1, args, Path(tmp), halves=True)}
    seconds, base = results["1 process  "]
    one = statistics.median(seconds[1:] or seconds)
    for name, (seconds, weights) in results.items():
        med = statistics.median(seconds[1:] or seconds)
        diff = max((weights[k] - base[k]).abs().max().item() for k in base)
        print(f"{name}: {med:.2f} s per epoch (median of epochs 2-{len(seconds)}), speed-up {one / med:.2f}x, "
              f"largest weight difference from 1 process {diff:.1e}")


if __name__ == "__main__":
    main()
