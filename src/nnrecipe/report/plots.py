"""The report's figures, each returned as a PNG data URI (`data:image/png;base64,...`) so the HTML holds
its images and needs no network and no side files. matplotlib's object API (Figure, no pyplot): no
global figure state, no display, nothing to close, safe in a thread; PNG needs only the Agg renderer.
matplotlib is imported here, when a report is made (`import nnrecipe` stays light)."""

from __future__ import annotations

import base64
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import shorten
from ..figures import plain_text

DPI = 80  # 8 x 3 inches -> 640 x 240 pixels: readable, and a report of ten figures stays under 1 MB
WIDE = (8.0, 3.0)
# User text on an axis or in a legend (class labels, column names, run names) is cut to this many
# characters: a 10 MB cell as a tick label asked matplotlib for an image 48 million pixels tall.
LABEL_CHARS = 30
# image_grid's layout in pixels at DPI: a 64 px square an image (an 8 px digit drawn 8x), a caption line above
# it, the gaps, the title line
CELL, CAPTION, GAP, TITLE = 64, 16, 6, 28


def label(text: object) -> str:
    """User text as a plot shows it: one line, at most LABEL_CHARS characters."""
    return shorten(text, LABEL_CHARS)


def _figure(size: tuple[float, float] = WIDE, panels: int = 1, left: float = 0.6, bottom: float = 0.5,
            right: float = 0.15) -> tuple[Any, list[Any]]:
    """A figure with `panels` axes side by side and fixed margins in inches: matplotlib's layout engines
    ('constrained', bbox 'tight') measure every text and cost a third of a figure's time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    w, h = size
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - 0.3 / h,
                        wspace=0.3 if panels > 1 else 0.2)
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, list(axes)


def _log(axis: Any) -> None:
    """A log axis labelled '0.001' rather than with mathtext powers of ten (their typesetting is slow)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def to_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    # ticks over values near 1e308 overflow, harmlessly; an emoji in a label has no glyph in the font
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})  # no version stamp: same bytes each time
    return png_uri(buffer.getvalue())


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _finite(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pairs = [(int(r["epoch"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))
             and math.isfinite(r[key])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def metric_names(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics logged for train and/or validation besides the loss: 'accuracy', 'rmse', ..."""
    names: dict[str, None] = {}
    for row in history:
        for key in row:
            for prefix in ("train_", "val_"):
                if key.startswith(prefix) and key != f"{prefix}loss":
                    names[key.removeprefix(prefix)] = None
    return list(names)


@plain_text
def curves(history: Sequence[Mapping[str, Any]], best_epoch: int | None = None) -> str:
    """R5: loss, the other metrics, and the learning rate per epoch (train dashed, validation solid)."""
    metrics = metric_names(history)
    has_lr = any("lr" in r for r in history)
    fig, axes = _figure((4.0 * (1 + len(metrics) + has_lr), 3.0), 1 + len(metrics) + has_lr)
    for ax, name in zip(axes, ["loss", *metrics]):
        for prefix, style in (("train_", "--"), ("val_", "-")):
            x, y = _finite(history, prefix + name)
            if x:
                ax.plot(x, y, style, marker="." if len(x) < 30 else None, label=prefix.rstrip("_"))
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label=f"best epoch {best_epoch}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    if has_lr:
        x, y = _finite(history, "lr")
        axes[-1].plot(x, y, color="tab:green")
        if y and min(y) > 0 and max(y) / min(y) > 10:
            axes[-1].set_yscale("log")
            _log(axes[-1].yaxis)
        axes[-1].set_title("learning rate (after the epoch)")
        axes[-1].set_xlabel("epoch")
    return to_uri(fig)


@plain_text
def headline(scores: Mapping[str, float], metric: str) -> str:
    """The answer at a glance: the test metric of the network and of each simple model, one bar each (the
    network's first, in its own colour), the value written at the bar's end."""
    names = list(scores)
    fig, (ax,) = _figure((8.0, 0.6 + 0.45 * len(names)), left=2.2, bottom=0.45)
    ax.grid(False)
    values = [scores[n] for n in names]
    colors = ["tab:blue" if i == 0 else "0.7" for i in range(len(names))]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), [label(n) for n in names])
    ax.invert_yaxis()
    top = max((abs(v) for v in values if math.isfinite(v)), default=1.0) or 1.0
    for i, v in enumerate(values):
        ax.text(v + 0.01 * top, i, f"{v:.4g}", va="center", fontsize=9)
    ax.set_xlim(min(0.0, min(values)), top * 1.15)
    ax.set_xlabel(f"{metric} on the test rows" + (" (lower is better)" if metric in ("rmse", "mae", "loss") else ""))
    return to_uri(fig)


@plain_text
def lr_range(found: Mapping[str, Any]) -> str:
    """T4's range test: raw and smoothed loss against the rate, the diverging rate and the candidate."""
    fig, (ax,) = _figure()
    ax.plot(found["lrs"][: len(found["raw_losses"])], found["raw_losses"], color="0.7", lw=0.8, label="loss")
    ax.plot(found["lrs"][: len(found["losses"])], found["losses"], label="smoothed")
    if found.get("diverge_lr"):
        ax.axvline(found["diverge_lr"], color="tab:red", ls=":", label=f"diverges {found['diverge_lr']:.3g}")
    if found.get("suggestion"):
        ax.axvline(found["suggestion"], color="tab:green", ls="--", label=f"candidate {found['suggestion']:.3g}")
    ax.set_xscale("log")
    _log(ax.xaxis)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in found["losses"] if math.isfinite(v)]
    if finite:  # the end of the sweep explodes: keep the axis on the part worth reading
        lo, hi = min(finite), sorted(finite)[len(finite) // 2]
        ax.set_ylim(lo - 0.1 * abs(lo), max(hi * 1.5, lo + 1e-9) if hi > 0 else hi + abs(hi) + 1e-9)
    ax.legend(fontsize=8)
    return to_uri(fig)


@plain_text
def confusion(matrix: np.ndarray, classes: Sequence[str]) -> str:
    """Rows: the true class; columns: the predicted one; counts in the cells."""
    n = len(classes)
    names = [label(c) for c in classes]
    side = min(2.5 + 0.45 * n, 9.0)
    fig, (ax,) = _figure((side, side), left=0.4 + 0.07 * max(map(len, names), default=1),
                         bottom=0.5 + (0.07 * max(map(len, names), default=1) if n > 3 else 0))
    ax.grid(False)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                        color="white" if matrix[i, j] > top / 2 else "black", fontsize=8)
    return to_uri(fig)


def in_units(*arrays: Any) -> tuple[list[np.ndarray], float, str]:
    """The arrays in units of their largest finite magnitude when it is near the float64 limits (a target
    near 1e308: matplotlib's transforms overflow and it raised 'Singular matrix') or below its normal range,
    the unit, and the words for an axis label; non-finite values become NaN (not drawn)."""
    out = [np.where(np.isfinite(a), a, np.nan) for a in (np.asarray(x, dtype=np.float64) for x in arrays)]
    finite = [np.abs(a[np.isfinite(a)]) for a in out]
    top = max((float(f.max()) for f in finite if f.size), default=0.0)
    if top and (top > 1e300 or top < 1e-300):
        return [a / top for a in out], top, f" (in units of {top:.3g})"
    return out, 1.0, ""


@plain_text
def residuals(prediction: np.ndarray, error: np.ndarray) -> str:
    """Regression: prediction minus target against the prediction; a pattern means a missed trend."""
    fig, (ax,) = _figure()
    (prediction, error), _, unit = in_units(prediction, error)
    ax.scatter(prediction, error, s=8, alpha=0.6)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("prediction" + unit)
    ax.set_ylabel("prediction - target" + unit)
    return to_uri(fig)


@plain_text
def label_errors(error_rate: Mapping[str, float]) -> str:
    """Multi-label: the share of validation rows each label is wrong on."""
    fig, (ax,) = _figure()
    ax.bar([label(c) for c in error_rate], list(error_rate.values()))
    ax.set_ylabel("error rate (validation)")
    return to_uri(fig)


@plain_text
def watched(watch: Mapping[str, Any]) -> str:
    """C10: each watched row's prediction over the epochs: the probability of its true class (labels
    named in the legend), or the predicted value with the target as a dotted line of the same colour."""
    fig, (ax,) = _figure((8.0, 3.5))
    epochs, preds, task = watch["epochs"], np.asarray(watch["predictions"], dtype=np.float64), watch["task"]
    classes = watch.get("classes") or []
    targets, unit = watch["targets"], ""
    if task == "regression":  # in units of the largest value when it is near 1e308 (see in_units)
        (preds, values), _, unit = in_units(preds, np.asarray(targets, dtype=np.float64))
        targets = values.tolist()
    for i, (row, target) in enumerate(zip(watch["rows"], targets)):
        color = f"C{i % 10}"
        series = preds[:, i]
        if task == "regression":
            ax.plot(epochs, series, color=color, label=f"row {row}")
            if np.isfinite(target):
                ax.axhline(target, color=color, ls=":", lw=0.8)
        elif task == "binary":
            ax.plot(epochs, series if target == 1 else 1 - series, color=color,
                    label=f"row {row} ({label(classes[target])})")
        elif task == "multiclass":
            ax.plot(epochs, series[:, target], color=color, label=f"row {row} ({label(classes[target])})")
        else:  # multilabel: the mean probability given to each label's true value
            t = np.asarray(target, dtype=np.float64)
            ax.plot(epochs, (series * t + (1 - series) * (1 - t)).mean(axis=1), color=color, label=f"row {row}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("prediction" + unit if task == "regression" else "P(true label)")
    if task != "regression":
        ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return to_uri(fig)


@plain_text
def samples_heatmap(features: np.ndarray, rows: Sequence[int], names: Sequence[str]) -> str:
    """D14: the feature values the network gets, a row per sample; scaled features sit in a few units
    of 0, so a column far out (or constant) stands out."""
    n_features = features.shape[1] if features.ndim == 2 else 0
    names = [label(n) for n in names]
    long = max(map(len, names), default=1) if n_features <= 30 else 0
    fig, (ax,) = _figure((8.0, 1.0 + 0.3 * len(rows) + 0.06 * long), left=0.8, bottom=0.3 + 0.06 * long, right=0.5)
    ax.grid(False)
    image = ax.imshow(features, aspect="auto", cmap="coolwarm", vmin=-3, vmax=3, interpolation="nearest")
    ax.set_yticks(range(len(rows)), [f"row {r}" for r in rows])
    if n_features <= 30:
        ax.set_xticks(range(n_features), list(names), rotation=60, ha="right", fontsize=8)
    else:
        ax.set_xlabel(f"{n_features} features")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    return to_uri(fig)


@plain_text
def overlay(histories: Mapping[str, Sequence[Mapping[str, Any]]], names: Sequence[str]) -> str:
    """R7: several runs' curves in one chart, a panel per metric (loss first), a colour per run; train
    dashed, validation solid."""
    fig, axes = _figure((4.5 * len(names), 3.5), len(names))
    for ax, name in zip(axes, names):
        for i, (run, history) in enumerate(histories.items()):
            for prefix, style in (("train_", "--"), ("val_", "-")):
                x, y = _finite(history, prefix + name)
                if x:
                    ax.plot(x, y, style, color=f"C{i % 10}", label=f"{label(run)} {prefix.rstrip('_')}")
        ax.set_title(name)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    return to_uri(fig)


@plain_text
def image_grid(pixels: Any, captions: Sequence[str], title: str, cols: int = 8) -> bytes:
    """A PNG of images (N, C, H, W), uint8 or floats in [0, 1] (grey or RGB), each captioned above, `cols` a
    row: the images of a run as the report shows them (issue 20: the batch as the network sees it, the worst
    validation images). Each image is drawn in a CELL-pixel square (nearest pixels: an 8 px digit's pixels
    stay sharp). The images are laid into one mosaic drawn once, the captions written over it: a subplot per
    image (16 axes) took 0.3-1 s a grid, four grids an image run."""
    x = np.asarray(pixels)
    x = x.astype(np.float64) / 255 if x.dtype == np.uint8 else np.clip(x.astype(np.float64), 0, 1)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)  # grey as grey in an RGB mosaic (what cmap='gray', vmin 0, vmax 1 drew)
    n = len(x)
    rows, cols = max(1, math.ceil(n / cols)), max(1, min(cols, n))
    cell_w, cell_h = CELL + 2 * GAP, CELL + CAPTION + GAP
    width, height = cols * cell_w + 16, rows * cell_h + TITLE
    mosaic = np.ones((height, width, 3))
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = TITLE + r * cell_h + CAPTION, 8 + c * cell_w + GAP
        h, w = x.shape[2:]
        ys, xs = np.arange(CELL) * h // CELL, np.arange(CELL) * w // CELL  # nearest pixels, up or down
        mosaic[top:top + CELL, left:left + CELL] = x[i].transpose(1, 2, 0)[ys][:, xs]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.imshow(mosaic, interpolation="nearest", extent=(0, width, height, 0), aspect="auto")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.text(width / 2, TITLE / 2, label(title) if len(title) <= LABEL_CHARS else title[:120], fontsize=8,
            ha="center", va="center")
    for i in range(min(n, len(captions))):
        r, c = divmod(i, cols)
        ax.text(8 + c * cell_w + cell_w / 2, TITLE + r * cell_h + CAPTION - 3, label(captions[i]), fontsize=6,
                ha="center", va="bottom", clip_on=True)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
