"""The pictures of an image run's report (issue 20): the batch as the network gets it (D14), the worst
validation and test images (C9), the watched images' predictions over the epochs (C10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.image.read import SEPARATOR
from ..io import atomic_write, read_json_or_none
from ..track.predictions import WATCH, prediction_frame
from .pipeline import Prepared



GRID = 16  # images in each of the report's grids


def pictures(run_dir: Path, prepared: Prepared, frame: pd.DataFrame) -> None:
    """The report's pictures of an image run: batch.png, training images as the network sees them (a seeded
    sample, augmented by the run's step with the first batch's draws: D14, Karpathy's 'visualize just before
    the net'), and worst_images.png, the validation images of the highest loss with their label, prediction and
    its probability (C9: 'visualize the misclassified samples')."""
    from ..data.image.augment import batch_generator
    from ..report.plots import image_grid

    prep = prepared.data
    step = prepared.step
    while step is not None and not hasattr(step, "augment"):  # the augmentation under a T12/T13 step
        step = getattr(step, "base", None)
    train = prepared.inputs["train"][0]  # the split is in file order (class by class): a seeded sample instead
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(step.seed if step else 0))[:GRID]
    x, y = train[picked], prepared.targets["train"][picked]
    if step is not None:
        x = step.augment(x, batch_generator(step.seed, 0))
    names = [_label_of(t, prep) for t in y]
    title = f"training images as the network gets them ({prep.augment} augmentation)"
    atomic_write(run_dir / "batch.png", image_grid(x.numpy(), names, title))
    _worst_grid(run_dir, "worst_images.png", prepared, frame,
                "validation images of the highest loss: label -> prediction")


def _label_of(target: torch.Tensor, prep: Any) -> str:
    """A target as its class name(s)."""
    if prep.task == "multilabel":
        return SEPARATOR.join(c for c, on in zip(prep.classes, target.tolist()) if on > 0.5)
    return prep.classes[int(target.view(-1)[0].item())]


def _worst_grid(run_dir: Path, name: str, prepared: Prepared, frame: pd.DataFrame, title: str) -> None:
    """`name`: the images of the highest loss in `frame` (record_predictions' order), label -> prediction p."""
    from ..report.plots import image_grid

    worst = frame.head(GRID)
    pixels = prepared.data.images.pixels[torch.tensor(worst["row"].to_numpy(dtype=np.int64))]
    captions = [f"{t} -> {p}" + (f" {c:.2f}" if "confidence" in worst else "")
                for t, p, c in zip(worst["target"], worst["prediction"],
                                   worst["confidence"] if "confidence" in worst else [None] * len(worst))]
    atomic_write(run_dir / name, image_grid(pixels.numpy(), captions, title))


def test_pictures(run_dir: Path, prepared: Prepared, model: nn.Module) -> None:
    """worst_test_images.png: the final model's test images of the highest loss, label -> prediction and its
    probability (C9, on the images the headline metric is measured on)."""
    x, y = prepared.inputs["test"][0], prepared.targets["test"]
    if not len(y):
        return
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x[i:i + 256].to(device)).cpu() for i in range(0, len(x), 256)])
    frame = prediction_frame(outputs, y, prepared.rows["test"], prepared.data.task, prepared.data.classes)
    _worst_grid(run_dir, "worst_test_images.png", prepared, frame,
                "test images of the highest loss (the final model): label -> prediction")


def watched_pictures(run_dir: Path, prepared: Prepared) -> None:
    """watched_images.png: C10's fixed validation images, each captioned with the probability the model gave
    its label after the first, the middle and the last epoch (watch.json): which images it learnt late,
    which it unlearnt."""
    from ..report.plots import image_grid

    watch = read_json_or_none(run_dir / WATCH)
    if not isinstance(watch, dict) or not watch.get("epochs") or watch.get("task") not in ("binary", "multiclass"):
        return
    preds, epochs = watch["predictions"], watch["epochs"]
    picks = sorted({0, len(preds) // 2, len(preds) - 1})
    classes, binary = watch.get("classes") or prepared.data.classes, watch["task"] == "binary"

    def p_true(p: Any, target: int) -> float:
        return float(p if target == 1 else 1 - p) if binary else float(p[target])

    captions = [f"{classes[t]}: " + ">".join(f"{p_true(preds[k][i], t):.2f}" for k in picks)
                for i, t in enumerate(watch["targets"])]
    pixels = prepared.data.images.pixels[torch.tensor(watch["rows"], dtype=torch.long)]
    title = ("watched validation images: the probability of the label after epochs "
             + ", ".join(str(epochs[k]) for k in picks))
    atomic_write(run_dir / "watched_images.png", image_grid(pixels.numpy(), captions[:len(pixels)], title))
