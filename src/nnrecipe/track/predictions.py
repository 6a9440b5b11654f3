"""What the report shows of the model's outputs, recorded in the run folder so that the report can be
made again from the folder alone:
- C10 `PredictionWatch`: a callback that records the predictions on a fixed set of validation rows after
  every epoch (watch.json); seed 003: "visualize prediction dynamics ... on a fixed test batch during the
  course of training".
- C9 `record_predictions`: every validation row's target, prediction, confidence and loss at the end
  (val_predictions.csv): the worst mispredicted rows first (seed 003: "visualize the misclassified
  samples"), and the confusion matrix or the residuals.
- D14 `record_samples`: a few training rows exactly as they enter the network (samples.json); seed 003:
  "visualize just before the net ... the exact data that goes into your network"."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..model.heads import Head
from ..train.callbacks import Callback
from ..train.checkpoint import atomic_write
from .run import write_json

WATCH = "watch.json"
VAL_PREDICTIONS = "val_predictions.csv"
SAMPLES = "samples.json"
WATCH_ROWS = 8
SAMPLE_ROWS = 5


def _readable(head: Head, outputs: torch.Tensor, scale: Mapping[str, float]) -> np.ndarray:
    """Probabilities (binary: P(class 1)), or regression values in the target's units."""
    p = head.predict(outputs.float()).numpy().astype(np.float64)
    return p * scale["std"] + scale["mean"] if head.task == "regression" else p


def _targets(head: Head, y: torch.Tensor, scale: Mapping[str, float]) -> np.ndarray:
    """Targets as the report shows them: class codes, 0/1 per label, or values in the target's units."""
    y = y.numpy()
    if head.task == "regression":
        return y.reshape(-1).astype(np.float64) * scale["std"] + scale["mean"]
    return y.astype(np.int64).reshape(-1) if head.task != "multilabel" else y.astype(np.int64)


def watch_rows(y: torch.Tensor, task: str, n: int = WATCH_ROWS) -> list[int]:
    """Positions of n validation rows to watch: the classes in turn (the first rows of each), so every
    class is seen; for regression, rows at evenly spaced quantiles of the target. Deterministic."""
    if len(y) == 0:
        return []
    if task in ("binary", "multiclass"):
        codes = y.reshape(-1).long().numpy()
        queues = [list(np.flatnonzero(codes == c)) for c in np.unique(codes)]
        picked: list[int] = []
        while len(picked) < min(n, len(codes)):
            for q in queues:
                if q and len(picked) < n:
                    picked.append(int(q.pop(0)))
        return sorted(picked)
    if task == "regression":
        order = np.argsort(y.reshape(-1).numpy(), kind="stable")
        return sorted({int(order[round(i)]) for i in np.linspace(0, len(order) - 1, min(n, len(order)))})
    return list(range(min(n, len(y))))


class PredictionWatch(Callback):
    """C10: after each epoch, the model's predictions on fixed rows, kept in memory (state_dict, so a
    resumed run keeps the epochs before the kill) and written to run_dir/watch.json. The forward pass is
    Trainer.predict (eval mode, no gradient, no random numbers drawn): training is left bit-identical."""

    def __init__(self, inputs: Sequence[torch.Tensor], targets: torch.Tensor, rows: Sequence[int], task: str,
                 classes: Sequence[str] = (), target_scale: Mapping[str, float] | None = None):
        self.inputs, self.target = tuple(inputs), targets
        self.head = Head(task, len(classes))
        self.scale = dict(target_scale or {"mean": 0.0, "std": 1.0})
        self.meta = {"task": task, "classes": list(classes), "rows": [int(r) for r in rows],
                     "targets": _targets(self.head, targets, self.scale).tolist()}
        self.epochs: list[int] = []
        self.predictions: list[list[Any]] = []  # per epoch, per row: probabilities or a value

    @classmethod
    def from_prepared(cls, prep: Any, split: str = "val", n: int = WATCH_ROWS) -> PredictionWatch:
        """Watch n rows of a PreparedTable's split (data/prepare.py)."""
        return cls.of_rows(prep.inputs(split), prep.target(split), prep.data_rows(split), prep, n)

    @classmethod
    def of_rows(cls, inputs: Sequence[torch.Tensor], y: torch.Tensor, data_rows: Sequence[int], prep: Any,
                n: int = WATCH_ROWS) -> PredictionWatch:
        """Watch n of these rows (inputs, target and their data rows) of a PreparedTable."""
        picked = torch.tensor(watch_rows(y, prep.task, n), dtype=torch.long)
        return cls([t[picked] for t in inputs], y[picked], [int(data_rows[i]) for i in picked.tolist()],
                   prep.task, prep.classes, prep.target_scale)

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        outputs = trainer.predict((*self.inputs, self.target))  # the target is dropped: predict's convention
        self.epochs.append(int(logs["epoch"]))
        self.predictions.append(np.round(_readable(self.head, outputs, self.scale), 6).tolist())
        if trainer.run_dir is not None:
            self.save(trainer.run_dir)

    def save(self, run_dir: str | os.PathLike) -> None:
        write_json(Path(run_dir) / WATCH, {**self.meta, "epochs": self.epochs, "predictions": self.predictions})

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "predictions": self.predictions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.predictions = list(state["epochs"]), state["predictions"]


def record_predictions(run_dir: str | os.PathLike, outputs: torch.Tensor, targets: torch.Tensor,
                       rows: Sequence[int], task: str, classes: Sequence[str] = (),
                       target_scale: Mapping[str, float] | None = None) -> pd.DataFrame:
    """C9: val_predictions.csv, one line per validation row (its 0-based data row), worst first: target,
    prediction, confidence (the probability given to the prediction) and the row's loss (cross-entropy
    of the true class, or the absolute error in the target's units for regression). `outputs` are the
    model's raw outputs (logits), as Trainer.predict returns them."""
    scale = dict(target_scale or {"mean": 0.0, "std": 1.0})
    head = Head(task, len(classes))
    p, t = _readable(head, outputs, scale), _targets(head, targets, scale)
    frame = pd.DataFrame({"row": np.asarray(rows, dtype=np.int64)})
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
    frame = frame.sort_values("loss", ascending=False, kind="stable")
    atomic_write(Path(run_dir) / VAL_PREDICTIONS, frame.to_csv(index=False, float_format="%.6g"))
    return frame


def record_samples(run_dir: str | os.PathLike, inputs: Sequence[torch.Tensor], targets: torch.Tensor,
                   rows: Sequence[int], feature_names: Sequence[str], embedding_names: Sequence[str] = (),
                   n: int = SAMPLE_ROWS) -> dict[str, Any]:
    """D14: the first n rows exactly as the network gets them (features after scaling and one-hot, the
    embedding codes) and the target as the loss gets it (class code, 0/1, standardized value)."""
    features = inputs[0][:n].double().numpy()
    sample = {"rows": [int(r) for r in rows[:n]], "feature_names": list(feature_names),
              "features": [[_num(v) for v in r] for r in features],
              "targets": targets[:n].double().numpy().tolist()}
    if len(inputs) > 1:
        sample["embedding_names"] = list(embedding_names)
        sample["codes"] = inputs[1][:n].tolist()
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
    frame = record_predictions(run_dir, outputs, y, rows, prep.task, prep.classes, prep.target_scale)
    record_samples(run_dir, prep.inputs("train"), prep.target("train"), prep.data_rows("train"),
                   prep.pre.feature_names, [c for c, s in prep.pre.columns.items() if s["kind"] == "embedding"])
    return frame


def _num(v: float) -> float | None:
    return round(float(v), 6) if math.isfinite(v) else None
