"""What the report shows of the model's outputs, recorded in the run folder so that the report can be
made again from the folder alone (the C10 callback that records predictions over the epochs,
PredictionWatch, is in train/callbacks/watch.py):
- C9 `record_predictions`: every validation row's target, prediction, confidence and loss at the end
  (val_predictions.csv): the worst mispredicted rows first (Karpathy's recipe: "visualize the
  misclassified samples"), and the confusion matrix or the residuals.
- D14 `record_samples`: a few training rows exactly as they enter the network (samples.json); Karpathy's
  recipe: "visualize just before the net ... the exact data that goes into your network"."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..io import atomic_write, write_json

if TYPE_CHECKING:
    import pandas as pd
from ..tasks import Task, create_task

WATCH = "watch.json"  # written by train/callbacks/watch.py
VAL_PREDICTIONS = "val_predictions.csv"
SAMPLES = "samples.json"
SAMPLE_ROWS = 5


def readable(head: Task, outputs: torch.Tensor, scale: Mapping[str, float]) -> np.ndarray:
    """Probabilities (binary: P(class 1)), or regression values in the target's units."""
    p = head.predict(outputs.float()).numpy().astype(np.float64)
    return p * scale["std"] + scale["mean"] if head.name == "regression" else p


def shown_targets(head: Task, y: torch.Tensor, scale: Mapping[str, float]) -> np.ndarray:
    """Targets as the report shows them: class codes, 0/1 per label, or values in the target's units."""
    y = y.numpy()
    if head.name == "regression":
        return y.reshape(-1).astype(np.float64) * scale["std"] + scale["mean"]
    return y.astype(np.int64).reshape(-1) if head.name != "multilabel" else y.astype(np.int64)


def record_predictions(run_dir: str | os.PathLike, outputs: torch.Tensor, targets: torch.Tensor,
                       rows: Sequence[int], task: str, classes: Sequence[str] = (),
                       target_scale: Mapping[str, float] | None = None,
                       inputs: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """C9: val_predictions.csv, one line per validation row (its 0-based data row), worst first: target,
    prediction, confidence (the probability given to the prediction) and the row's loss (cross-entropy
    of the true class, or the absolute error in the target's units for regression). `outputs` are the
    model's raw outputs (logits), as Trainer.predict returns them. `inputs`: columns shown after the row
    (a text column's terms as the model reads them), a value per row."""
    frame = prediction_frame(outputs, targets, rows, task, classes, target_scale, inputs)
    atomic_write(Path(run_dir) / VAL_PREDICTIONS, frame.to_csv(index=False, float_format="%.6g"))
    return frame


def prediction_frame(outputs: torch.Tensor, targets: torch.Tensor, rows: Sequence[int], task: str,
                     classes: Sequence[str] = (), target_scale: Mapping[str, float] | None = None,
                     inputs: Mapping[str, Sequence[Any]] | None = None) -> Any:
    """record_predictions' table, worst first, written nowhere (the test images' pictures use it too)."""
    scale = dict(target_scale or {"mean": 0.0, "std": 1.0})
    head = create_task(task, n_classes=len(classes))
    p, t = readable(head, outputs, scale), shown_targets(head, targets, scale)
    import pandas as pd  # on use: the Trainer's watch callback imports this module, and `import nnrecipe` stays light

    frame = pd.DataFrame({"row": np.asarray(rows, dtype=np.int64), **(inputs or {})})
    eps = 1e-12
    if task == "regression":
        frame["target"], frame["prediction"] = t, p
        frame["error"] = p - t
        frame["loss"] = np.abs(p - t)
    elif task == "multilabel":
        on = p > 0.5
        frame["target"] = ["|".join(c for c, v in zip(classes, r) if v) for r in t]
        frame["prediction"] = ["|".join(c for c, v in zip(classes, r) if v) for r in on]
        frame["wrong"] = (on != (t > 0)).sum(axis=1)
        frame["loss"] = -np.mean(t * np.log(p + eps) + (1 - t) * np.log(1 - p + eps), axis=1)
        for i, c in enumerate(classes):
            frame[f"p_{c}"] = p[:, i]
    else:
        probs = np.stack([1 - p, p], axis=1) if task == "binary" else p
        chosen = probs.argmax(axis=1)
        names = np.asarray(classes, dtype=object)
        frame["target"], frame["prediction"] = names[t], names[chosen]
        frame["confidence"] = probs[np.arange(len(t)), chosen]
        frame["loss"] = -np.log(probs[np.arange(len(t)), t] + eps)
        for i, c in enumerate(classes):
            frame[f"p_{c}"] = probs[:, i]
    return frame.sort_values("loss", ascending=False, kind="stable")


def record_samples(run_dir: str | os.PathLike, inputs: Sequence[torch.Tensor], targets: torch.Tensor,
                   rows: Sequence[int], feature_names: Sequence[str], embedding_names: Sequence[str] = (),
                   n: int = SAMPLE_ROWS, texts: Callable[[Any, Any], list[str]] | None = None) -> dict[str, Any]:
    """D14: the first n rows exactly as the network gets them (features after scaling and one-hot, the
    embedding codes, the terms of the text columns with their TF-IDF weights: `texts` names them) and the
    target as the loss gets it (class code, 0/1, standardized value)."""
    features = inputs[0][:n].double().numpy()
    sample = {"rows": [int(r) for r in rows[:n]], "feature_names": list(feature_names),
              "features": [[_num(v) for v in r] for r in features],
              "targets": targets[:n].double().numpy().tolist()}
    if len(inputs) > 1 and inputs[1].shape[1]:
        sample["embedding_names"] = list(embedding_names)
        sample["codes"] = inputs[1][:n].tolist()
    if len(inputs) > 3 and texts is not None:
        sample["texts"] = texts(inputs[2][:n].numpy(), inputs[3][:n].numpy())
    write_json(Path(run_dir) / SAMPLES, sample)
    return sample


def record_outputs(run_dir: str | os.PathLike, predict: Callable[[tuple[torch.Tensor, ...]], torch.Tensor],
                   prep: Any, split: str = "val",
                   held_out: tuple[torch.Tensor, torch.Tensor, Sequence[int]] | None = None) -> pd.DataFrame:
    """record_predictions and record_samples for a `train_table` run from its PreparedTable
    (data/prepare.py). `predict`: raw outputs for (inputs..., target), e.g. Trainer.predict once fit()
    has restored the best weights. `held_out`: a cross-validation ensemble's (outputs, targets, data rows)
    of every row some member did not train on, recorded instead of the split's (T14)."""
    if held_out is None:
        inputs, y = prep.inputs(split), prep.target(split)
        with torch.no_grad():
            outputs = predict((*inputs, y))
        rows: Sequence[int] = prep.data_rows(split)
    else:
        outputs, y, rows = held_out
    shown = None  # C9 on text: the worst rows' text as read (when the run kept it) and terms as the model reads them
    if prep.pre.text_columns:
        shown = {}
        if prep.texts is not None:
            cells = prep.texts.loc[list(rows)]
            names = list(cells.columns)
            shown["text"] = list(cells.iloc[:, 0]) if len(names) == 1 else \
                [" | ".join(f"{c}: {v}" for c, v in zip(names, r) if v) for r in cells.itertuples(index=False)]
        if held_out is None:
            shown["text terms"] = prep.pre.terms_read(*(t.numpy() for t in prep.inputs(split)[2:4]))
    frame = record_predictions(run_dir, outputs, y, rows, prep.task, prep.classes, prep.target_scale, shown)
    record_samples(run_dir, prep.inputs("train"), prep.target("train"), prep.data_rows("train"),
                   prep.pre.feature_names, [c for c, s in prep.pre.columns.items() if s["kind"] == "embedding"],
                   texts=prep.pre.terms_read if prep.pre.text_columns else None)
    return frame


def _num(v: float) -> float | None:
    return round(float(v), 6) if math.isfinite(v) else None
