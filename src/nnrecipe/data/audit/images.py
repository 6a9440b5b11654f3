"""The audit of a set of images (issue 20), before training: Karpathy's "become one with the data" for
pictures. Findings, each a Verdict like the table audit's:
  D3 unreadable images (left out by the reader), D3 channels (grey images among colour ones, transparency and
  palettes converted), D2 image sizes (what the resize rule does to them: the crop, the upscaling; D2 is
  the table audit's "maximum length" finding, here the side), D3 duplicate images (exact and near, within a
  split and across splits: image_duplicates.py), D1 label distribution (the table audit's own) and nearly
  empty classes, D8 pixel statistics (the per-channel mean and std the model standardises with; blank
  images); and samples.png, a grid of images per class (Audit.save writes it beside audit.json)."""

from __future__ import annotations

import io
import os
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...checks.data_checks import ROWS_SHOWN
from ...checks.verdict import Verdict
from ...errors import shorten
from ...figures import plain_text
from ...io import atomic_write
from ..image.decode import GREY_MODES, unreadable_fix
from ..image.read import MAX_SIDE, SEPARATOR, ImageSet, label_set
from . import image_duplicates as dups
from . import table
from .run import Audit

KARPATHY_DATA = table.KARPATHY_DATA
SAMPLES = "samples.png"
RULE = (f"the median shorter side rounded to the nearest multiple of 8 (halves up), at least 8, at most {MAX_SIDE}; "
        "each image's shorter side resized to it, then the centre cropped to a square")
# D2: a centre crop that keeps less than 3/4 of the area throws away what the image's edges show (an
# aspect ratio outside [0.75, 4/3]); upscaling more than 2x invents detail. Either on more than 10% of the
# images is the data's shape, not an outlier's, and worth deciding on.
CROP_KEEP = 0.75
UPSCALE = 2.0
SHARE_WARN = 0.10
DUPLICATES_WARN = 0.05  # within a split: copies weigh double, a nuisance worth a warning from 5%
# Nearly empty classes: fewer than max(5, 10% of the median class) images: a handful of images train little
# and, split 70/15/15, leave one or none to test on (the test score of such a class is noise)
EMPTY_FLOOR, EMPTY_SHARE = 5, 0.10
CONVERTED = {"RGBA": "RGBA (composited on white)", "LA": "grey with alpha (composited on white)",
             "P": "palette (converted through RGBA)", "PA": "palette with alpha (composited on white)",
             "CMYK": "CMYK (converted to RGB)", "YCbCr": "YCbCr (converted to RGB)"}


class ImageAudit(Audit):
    """The image audit's findings; `save` writes audit.json, label_distribution.png and samples.png."""

    def __init__(self, images: ImageSet, seed: int = 0) -> None:
        super().__init__()
        self.images = images
        self.seed = seed

    def summary(self) -> str:
        i = self.info
        head = (f"audit of {i.get('source')}: {i.get('images')} images ({i.get('unreadable')} unreadable), resized to "
                f"{i.get('size')}x{i.get('size')}, {i.get('channels')} channel(s), {i.get('classes')} classes")
        return "\n".join([head, self.table(), self.counts_line()])

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_sample_grid(self.images, folder / SAMPLES, self.seed)
        self.info["samples"] = SAMPLES
        return super().save(folder)


def audit_images(images: ImageSet, splits: dict[str, np.ndarray] | None, seed: int = 0) -> Audit:
    """The findings on `images`; `splits` maps "train"/"val"/"test" to indices into images.pixels (None: not
    split yet: duplicates are looked for among all the images, the pixel statistics over all of them)."""
    result = ImageAudit(images, seed)
    n = len(images.pixels)
    labels = images.labels
    multi = labels is not None and images.separated and any(SEPARATOR in label for label in labels)
    classes = sorted({c for label in labels for c in label_set(label, multi)}) if labels is not None else []
    result.info = {"source": images.source, "images": n, "unreadable": len(images.unreadable), "size": images.size,
                   "channels": images.channels, "classes": len(classes), "target": "label",
                   "task": None if labels is None else "multilabel" if multi else
                   "binary" if len(classes) == 2 else "multiclass", "seed": seed,
                   "splits": {k: len(v) for k, v in splits.items()} if splits is not None else None}
    steps = [("D3 unreadable", lambda: unreadable(images)), ("D3 channels", lambda: channels(images)),
             ("D2 sizes", lambda: sizes(images)), ("D3 duplicates", lambda: duplicates(images, splits, seed)),
             ("D1", lambda: _label_findings(result, images, multi, classes)),
             ("D8 pixels", lambda: pixel_statistics(images, splits))]
    for name, step in steps:
        started = time.perf_counter()
        found = step()
        result.extend(found if isinstance(found, list) else [found])
        result.seconds[name] = time.perf_counter() - started
    return result


def _n(k: int, one: str, many: str) -> str:
    """'1 image is' / '3 images are': the count with its noun (and verb) agreeing."""
    return f"{k} {one if k == 1 else many}"


def _files(files: list[str], k: int = ROWS_SHOWN) -> str:
    more = f" and {len(files) - k} more" if len(files) > k else ""
    return ", ".join(repr(shorten(f, 60)) for f in files[:k]) + more


# ---------------------------------------------------------------- D3 unreadable
def unreadable(images: ImageSet) -> Verdict:
    source = f"{KARPATHY_DATA}: 'instances which are corrupted'; D3"
    bad = images.unreadable
    ev = {"unreadable": len(bad), "files": [{"file": f, "reason": r} for f, r in bad]}
    if not bad:
        return Verdict("D3", "unreadable images", "pass", f"every one of {len(images.files)} image files decoded",
                       ev, "", source)
    shown = "; ".join(f"'{shorten(f, 60)}': {r}" for f, r in bad[:ROWS_SHOWN])
    more = f"; and {len(bad) - ROWS_SHOWN} more" if len(bad) > ROWS_SHOWN else ""
    lost = images.lost_classes
    if lost:
        ev["lost_classes"] = lost
    gone = (f"no image of class(es) {', '.join(repr(shorten(c, 40)) for c in lost[:10])} could be read: the model "
            "will not know them; " if lost else "")
    return Verdict("D3", "unreadable images", "warn",
                   f"{gone}{len(bad)} of {len(bad) + len(images.files)} files could not be read and were left out: "
                   f"{shown}{more}", ev,
                   f"{unreadable_fix([r for _, r in bad])}; the run left them out", source)


# ---------------------------------------------------------------- D3 channels
def channels(images: ImageSet) -> Verdict:
    source = f"{KARPATHY_DATA}: 'understand the data'; D3"
    counts = dict(Counter(images.modes).most_common())
    converted = {m: k for m, k in counts.items() if m in CONVERTED}
    ev: dict[str, Any] = {"modes": counts, "channels": images.channels, "converted": converted}
    told = ("; converted: " + ", ".join(f"{k} {CONVERTED[m]}" for m, k in converted.items())) if converted else ""
    grey = [f for f, m in zip(images.files, images.modes) if m in GREY_MODES] if images.channels == 3 else []
    if grey:
        ev["grey_files"] = grey
        return Verdict("D3", "channels", "warn",
                       f"{len(grey)} of {len(images.files)} images {'is' if len(grey) == 1 else 'are'} grey among colour ones ({_files(grey)}); they "
                       f"were converted to RGB by repeating the grey channel{told}", ev,
                       "check that they belong (a scan, a placeholder, another source?); if they do, nothing is needed, "
                       "else remove them or convert every image alike", source)
    kind = "grey (1 channel)" if images.channels == 1 else "colour (3 channels)"
    modes = ", ".join(f"{m} {k}" for m, k in counts.items())
    return Verdict("D3", "channels", "pass", f"every image is {kind}; modes as read: {modes}{told}", ev, "", source)


# ---------------------------------------------------------------- D2 sizes
def sizes(images: ImageSet) -> Verdict:
    source = f"{KARPATHY_DATA}: 'set the appropriate maximum length', for images the side; D2"
    wh = np.asarray(images.sizes, dtype=np.float64).reshape(-1, 2)
    w, h = wh[:, 0], wh[:, 1]
    short, aspect = wh.min(1), w / h
    s = images.size
    cropped = short / wh.max(1) < CROP_KEEP
    upscaled = s / short > UPSCALE
    ev: dict[str, Any] = {
        "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
        "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        "aspect_ratio": dict(zip(("p1", "p10", "p50", "p90", "p99"),
                                 (round(float(q), 3) for q in np.percentile(aspect, [1, 10, 50, 90, 99])))),
        "side": s, "rule": RULE, "cropped_share": round(float(cropped.mean()), 4),
        "upscaled_share": round(float(upscaled.mean()), 4), "crop_keeps_below": CROP_KEEP, "upscale_above": UPSCALE}
    summary = (f"{len(wh)} images, widths {ev['width']['min']}-{ev['width']['max']} (median {ev['width']['median']:g}), "
               f"heights {ev['height']['min']}-{ev['height']['max']} (median {ev['height']['median']:g}), resized to "
               f"{s}x{s}")
    problems, fixes = [], []
    if cropped.mean() > SHARE_WARN:
        files = [f for f, c in zip(images.files, cropped) if c]
        ev["cropped_files"] = files[:100]
        problems.append(f"{cropped.mean():.0%} lose more than a quarter of their area to the centre crop (aspect ratio "
                        f"outside [0.75, 1.33]: {_files(files, 5)})")
        fixes.append("crop or pad them to squares yourself where the edges matter, or accept the centre crop")
    if upscaled.mean() > SHARE_WARN:
        files = [f for f, u in zip(images.files, upscaled) if u]
        ev["upscaled_files"] = files[:100]
        problems.append(f"{upscaled.mean():.0%} are enlarged more than {UPSCALE:g}x ({_files(files, 5)})")
        fixes.append("pass a smaller --image-size, or leave those small images out (enlarging adds no detail)")
    if not problems:
        return Verdict("D2", "image sizes", "pass", summary, ev, "", source)
    return Verdict("D2", "image sizes", "warn", f"{summary}; " + "; ".join(problems), ev, "; ".join(fixes), source)


# ---------------------------------------------------------------- D3 duplicates
def duplicates(images: ImageSet, splits: dict[str, np.ndarray] | None, seed: int) -> Verdict:
    source = (f"{KARPATHY_DATA}: 'detecting the duplicate instances'; phash (hackerfactor, 'Looks Like It') confirmed "
              "by pixel correlation; D3")
    n = len(images.pixels)
    found = dups.find_duplicates(images.pixels, seed)
    split_of = np.full(n, "all", dtype=object)
    for name, idx in (splits or {}).items():
        split_of[np.asarray(idx, dtype=np.int64)] = name
    files, labels = images.files, images.labels

    def item(p: dups.Pair) -> dict[str, Any]:
        out = {"a": files[p.a], "b": files[p.b], "kind": p.kind, "similarity": p.similarity,
               "splits": [split_of[p.a], split_of[p.b]]}
        if labels is not None:
            out["labels"] = [labels[p.a], labels[p.b]]
        return out

    def named(ps: list[dups.Pair], k: int = 5) -> str:
        more = f"; and {len(ps) - k} more" if len(ps) > k else ""
        return "; ".join(f"'{shorten(files[p.a], 50)}' ({split_of[p.a]}) = '{shorten(files[p.b], 50)}' "
                         f"({split_of[p.b]}, {p.kind})" for p in ps[:k]) + more

    across = [p for p in found.pairs if split_of[p.a] != split_of[p.b]]
    within = [p for p in found.pairs if split_of[p.a] == split_of[p.b]]
    conflicting = [p for p in found.pairs if labels is not None and labels[p.a] != labels[p.b]]
    repeats = _repeats(within)
    ev: dict[str, Any] = {
        "compared": found.compared, "exact_pairs": sum(p.kind == "exact" for p in found.pairs),
        "near_pairs": sum(p.kind == "near" for p in found.pairs), "across_splits": [item(p) for p in across[:200]],
        "across_count": len(across), "within_count": repeats, "within_share": round(repeats / max(found.compared, 1), 4),
        "within": [item(p) for p in within[:200]], "conflicting_labels": [item(p) for p in conflicting[:200]],
        "method": (f"exact: identical resized pixels; near: phash within {dups.HASH_DISTANCE} bits and a grey-pixel "
                   f"correlation >= {dups.NEAR_CORRELATION} (or >= {dups.NEAR_CORRELATION_HALF} at half resolution); "
                   f"below {dups.MIN_SIDE_NEAR} px: correlation >= {dups.NEAR_CORRELATION_TINY} only; colour images also "
                   f"keep each channel's share of the mean colour within {dups.NEAR_COLOUR_SHIFT}"),
        "hash_pairs_checked": found.candidates, "search_capped": found.capped}
    sampled = f" (a sample of {found.compared})" if found.compared < n else ""
    clash = (f"; {_n(len(conflicting), 'pair carries', 'pairs carry')} different labels: {named(conflicting, 3)}"
             if conflicting else "")
    fix = ("remove one image of each pair listed in evidence (or keep both copies in one split); where the labels "
           "differ, decide which is right")
    if across:
        shared = sorted({s for p in across for s in (split_of[p.a], split_of[p.b]) if s != "train"})
        return Verdict("D3", "duplicate images", "warn",
                       f"{_n(len(across), 'image', 'images')} of {', '.join(shared) or 'one split'} "
                       f"{'repeats' if len(across) == 1 else 'repeat'} images of another split: "
                       f"{named(across)}; the model is tested on images it trained on, so the test score is inflated"
                       + (f"; and {repeats} of {found.compared} images repeat another within a split "
                          f"({repeats / max(found.compared, 1):.1%})" if repeats else "")
                       + clash, ev, fix, source)
    where = "within a split" if splits is not None else "among the images"
    if repeats / max(found.compared, 1) > DUPLICATES_WARN or conflicting:
        return Verdict("D3", "duplicate images", "warn",
                       f"{repeats} of {found.compared} images{sampled} repeat another {where} "
                       f"({repeats / max(found.compared, 1):.1%}): {named(within)}; copies weigh double in training"
                       f"{clash}", ev, fix, source)
    shown = f": {named(within, 3)}" if repeats else ""
    if splits is None:
        summary = f"{repeats} of {found.compared} images{sampled} repeat another{shown}"
    else:
        summary = f"no image{sampled} repeats one of another split" + (
            f"; {repeats} of {found.compared} repeat another {where} ({repeats / max(found.compared, 1):.1%}){shown}"
            if repeats else ", nor another image of its own split")
    return Verdict("D3", "duplicate images", "pass", summary, ev, "", source)


def _repeats(pairs: list[dups.Pair]) -> int:
    """Images that repeat an earlier one: the images the pairs join, less one per group they form."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in pairs:
        parent[root(p.a)] = root(p.b)
    return len(parent) - len({root(i) for i in list(parent)})


# ---------------------------------------------------------------- D1
def _label_findings(result: ImageAudit, images: ImageSet, multi: bool, classes: list[str]) -> list[Verdict]:
    if images.labels is None:
        return [Verdict("D1", "label distribution", "skipped", "the images carry no labels", {}, "",
                        f"{KARPATHY_DATA}; D1")]
    labels = pd.Series(images.labels)
    if multi:
        parts = [label_set(label) for label in images.labels]
        y: pd.Series | pd.DataFrame = pd.DataFrame({c: [int(c in p) for p in parts] for c in classes})
        task = "multilabel"
    else:
        y, task = labels, "binary" if len(classes) == 2 else "multiclass"
    d1, result.plot = table.label_distribution(y, task)
    return [d1, nearly_empty(d1.evidence["counts"])]


def nearly_empty(counts: dict[str, int]) -> Verdict:
    """Classes (folders) with fewer than max(5, 10% of the median class's count) images."""
    source = f"{KARPATHY_DATA}: 'the long tail'; D1"
    median = float(np.median(list(counts.values())))
    floor = max(EMPTY_FLOOR, EMPTY_SHARE * median)
    few = {c: k for c, k in counts.items() if k < floor}
    ev = {"counts": counts, "median": median, "below": floor, "classes": few}
    if not few:
        return Verdict("D1", "nearly empty classes", "pass",
                       f"every class has at least {floor:g} images (max(5, 10% of the median class's {median:g}))",
                       ev, "", source)
    shown = ", ".join(f"'{shorten(c, 40)}' ({k})" for c, k in list(few.items())[:ROWS_SHOWN])
    return Verdict("D1", "nearly empty classes", "warn",
                   f"{_n(len(few), 'class holds', 'classes hold')} fewer than {floor:g} images (max(5, 10% of the median class's "
                   f"{median:g})): {shown}; such a class barely trains and its test score is noise", ev,
                   "add images to those classes, or merge each into a related class or remove its folder", source)


# ---------------------------------------------------------------- D8 pixel statistics
def pixel_statistics(images: ImageSet, splits: dict[str, np.ndarray] | None) -> Verdict:
    source = "the per-channel mean and std the model standardises its input with (the training images'); D8"
    pixels = images.pixels
    train = np.asarray(splits["train"], dtype=np.int64) if splits is not None and "train" in splits \
        else np.arange(len(pixels))
    total = torch.zeros(pixels.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(train), 4096):  # float64 sums in chunks: memory stays small, no rounding drift
        chunk = pixels[torch.from_numpy(train[start:start + 4096])].to(torch.float64).div_(255)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = max(len(train) * pixels.shape[2] * pixels.shape[3], 1)
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    flat = pixels.reshape(len(pixels), -1)
    blank = torch.nonzero(flat.amin(1) == flat.amax(1)).view(-1).tolist()
    blank_files = [images.files[i] for i in blank]
    ev = {"mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std],
          "over": "training images" if splits is not None else "all images", "images": len(train),
          "blank": len(blank), "blank_files": blank_files[:200]}
    stats = ", ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(ev["mean"], ev["std"]))
    summary = f"per-channel mean ± std over the {ev['over']} (0-1 scale): {stats}"
    if not blank:
        return Verdict("D8", "pixel statistics", "pass", summary, ev, "", source)
    return Verdict("D8", "pixel statistics", "warn",
                   f"{summary}; {_n(len(blank), 'image is', 'images are')} blank (one value in every pixel): {_files(blank_files)}", ev,
                   "check and remove the blank images (failed exports, placeholders): they carry no signal", source)


# ---------------------------------------------------------------- samples.png
@plain_text
def save_sample_grid(images: ImageSet, file: str | os.PathLike, seed: int = 0, per_class: int = 8,
                     max_classes: int = 20) -> None:
    """A PNG of up to `per_class` seeded images of each class (the largest `max_classes` classes), a row per
    class named on the left. matplotlib's object API (Figure, no pyplot): no display, the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    labels = images.labels if images.labels is not None else ["(unlabelled)"] * len(images.files)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    rows = sorted(sorted(by_class, key=lambda c: (-len(by_class[c]), c))[:max_classes])
    s, c = images.size, images.channels
    pad = max(1, s // 16)
    grid = np.full((len(rows) * (s + pad), per_class * (s + pad), 3), 255, dtype=np.uint8)
    for r, label in enumerate(rows):
        members = by_class[label]
        picked = sorted(rng.choice(len(members), min(per_class, len(members)), replace=False))
        for col, k in enumerate(picked):
            image = images.pixels[members[k]].permute(1, 2, 0).numpy()
            grid[r * (s + pad):r * (s + pad) + s, col * (s + pad):col * (s + pad) + s] = \
                np.repeat(image, 3, axis=2) if c == 1 else image
    scale = max(1.0, 48 / s)  # tiny images (8 px) drawn larger
    fig = Figure(figsize=(max(4.0, grid.shape[1] * scale / 100 + 1.5), max(2.0, grid.shape[0] * scale / 100 + 0.6)),
                 dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * (s + pad) + s / 2 for r in range(len(rows))],
                  [f"{shorten(label, 24)} ({len(by_class[label])})" for label in rows], fontsize=8)
    more = f", the {max_classes} largest of {len(by_class)} classes" if len(by_class) > max_classes else ""
    ax.set_title(f"{images.size}x{images.size} samples as the network gets them{more}", fontsize=9)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a label with an emoji has no glyph in the font
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    atomic_write(file, buffer.getvalue())
