"""Engine overhead: seconds per training epoch of nnrecipe's Trainer against plain PyTorch loops.

The workload (the issue's spec): an MLP 64-256-256-10 (ReLU), CrossEntropyLoss, Adam lr 1e-3, batch 256,
on seeded synthetic data of --rows x 64 float32 with 10 classes. Three contenders train one epoch each:

  trainer      nnrecipe.Trainer with its per-step checks and logging on: the default TrainConfig except
               epochs, batch_size, lr and patience=None, and a 10k-row validation set it does not use
               while timed. What is timed is `trainer._train_epoch()`, one epoch's training pass and
               nothing else: the Trainer (and its model and optimizer) is built untimed each round, so the
               timing excludes construction, seeding, validation, history and checkpointing, which
               happen once per epoch or once per fit and are not what the engine adds per step.
  hand         a hand-written loop over pre-collated tensors: a randperm, index each batch, zero_grad,
               forward, loss, backward, step, and the epoch loss summed in a tensor as the Trainer does.
  dataloader   the usual loop over DataLoader(TensorDataset(X, y), batch_size=256, shuffle=True).

Each round builds every contender a freshly initialized model from the same seed and runs them
interleaved (trainer, hand, dataloader, trainer, ...), so drift in the machine's speed hits all three
alike; one untimed warm-up round comes first. Reported: median seconds per epoch over the rounds (with
mean ± std and min), the ratios of medians against the hand-written loop, and the per-round ratios.
The issue's goal: the Trainer within 1.05x of the hand-written loop.

On a shared or small machine, torch's default of one thread per core makes the timings swing several-fold
whenever another process takes a core (its OpenMP threads wait on each other); --threads 1 is steadier.

    python benchmarks/engine.py              # 200k rows, 5 rounds (a few minutes on 2 CPU cores)
    python benchmarks/engine.py --quick      # a smoke run on small sizes
    python benchmarks/engine.py --threads 1 --rounds 9
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnrecipe.config import TrainConfig
from nnrecipe.train.trainer import Trainer

SEED = 0
FEATURES, HIDDEN, CLASSES = 64, 256, 10
BATCH = 256  # rows per step
LR = 1e-3  # Adam's default (Kingma & Ba 2015)
VAL_ROWS = 10_000


def make_data(rows: int, seed: int = SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs; labels from a fixed random linear map plus noise, so the task is learnable."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, FEATURES, generator=g)  # (N, 64) float32
    w = torch.randn(FEATURES, CLASSES, generator=g)
    y = (x @ w + 0.5 * torch.randn(rows, CLASSES, generator=g)).argmax(1)  # (N,) int64 in [0, 10)
    return x, y


def make_model() -> nn.Module:
    torch.manual_seed(SEED)  # every contender starts from the same weights
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, CLASSES))


def trainer_epoch(x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor]) -> Callable[[], float]:
    cfg = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, patience=None, device="cpu", seed=SEED)
    trainer = Trainer(make_model(), nn.CrossEntropyLoss(), (x, y), val_data=val, config=cfg)
    return lambda: trainer._train_epoch()["train_loss"]


def hand_epoch(x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def run() -> float:
        model.train()
        n = len(x)
        loss_sum = torch.zeros(())
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = x[idx], y[idx]
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(yb)
        return float(loss_sum / n)
    return run


def dataloader_epoch(x: torch.Tensor, y: torch.Tensor) -> Callable[[], float]:
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)

    def run() -> float:
        model.train()
        loss_sum = torch.zeros(())
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(yb)
        return float(loss_sum / len(x))
    return run


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="timed rounds, one epoch per contender each (default 5)")
    p.add_argument("--rows", type=int, default=200_000, help="training rows (default 200000)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20000 rows, 2 rounds")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads(N) first; default: torch's own choice (one per core)")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.rows, args.rounds = 20_000, 2
    if args.rounds < 1 or args.rows < BATCH:
        p.error(f"need --rounds >= 1 and --rows >= {BATCH}; got {args.rounds} and {args.rows}")
    logging.basicConfig(level=logging.WARNING)

    x, y = make_data(args.rows)
    val = make_data(VAL_ROWS, seed=SEED + 1)
    builders: dict[str, Callable[[], Callable[[], float]]] = {
        "trainer": lambda: trainer_epoch(x, y, val),
        "hand": lambda: hand_epoch(x, y),
        "dataloader": lambda: dataloader_epoch(x, y),
    }
    labels = {"trainer": "nnrecipe Trainer", "hand": "hand-written tensor loop",
              "dataloader": "DataLoader loop"}

    print(f"engine benchmark: MLP {FEATURES}-{HIDDEN}-{HIDDEN}-{CLASSES} ReLU, Adam lr {LR}, batch {BATCH}, "
          f"{args.rows} x {FEATURES} float32 rows, {CLASSES} classes, "
          f"{-(-args.rows // BATCH)} steps per epoch")
    print(f"hardware: {cpu_model()}, {torch.multiprocessing.cpu_count()} cores, "
          f"torch.get_num_threads()={torch.get_num_threads()}")
    print(f"versions: torch {torch.__version__}, python {platform.python_version()}")
    print(f"1 warm-up round, then {args.rounds} timed rounds, interleaved; seconds per epoch")

    times: dict[str, list[float]] = {k: [] for k in builders}
    for r in range(args.rounds + 1):
        for name, build in builders.items():
            epoch = build()  # untimed: fresh model, optimizer and (for the Trainer) its setup
            t0 = time.perf_counter()
            loss = epoch()
            dt = time.perf_counter() - t0
            if r > 0:
                times[name].append(dt)
            print(f"  round {r if r else 'warm-up'}: {name:<10} {dt:7.3f} s  (train loss {loss:.4f})",
                  flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    for name, v in times.items():
        std = statistics.stdev(v) if len(v) > 1 else 0.0
        print(f"{labels[name]:<26} median {med[name]:7.3f} s/epoch   "
              f"mean {statistics.mean(v):.3f} ± {std:.3f} s, min {min(v):.3f} s, n={len(v)}")
    print()
    ratio = med["trainer"] / med["hand"]
    print(f"trainer / hand-written tensor loop: {ratio:.2f}x   (goal: <= 1.05x)")
    print(f"DataLoader loop / hand-written tensor loop: {med['dataloader'] / med['hand']:.2f}x")
    # Ratios within a round cancel drift between rounds; their spread shows how far to trust the above.
    for name in ("trainer", "dataloader"):
        paired = [a / b for a, b in zip(times[name], times["hand"])]
        print(f"  {name} / hand per round: median {statistics.median(paired):.2f}x, "
              f"range {min(paired):.2f}x to {max(paired):.2f}x")
    spread = max(max(v) / min(v) for v in times.values())
    if spread > 1.25:
        print(f"note: one contender's epoch times vary {spread:.1f}x between rounds, so the machine was busy "
              "or throttling; rerun on a quiet machine, or with --threads 1 and more --rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
