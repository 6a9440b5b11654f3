"""C10 (Karpathy's recipe: "visualize prediction dynamics ... on a fixed test batch during the course of
training"): a callback that records the model's predictions on a fixed set of validation rows after every
epoch (watch.json), which the report plots."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io import write_json
from ...tasks import create_task
from ...track.predictions import WATCH, readable, shown_targets
from .base import Callback

WATCH_ROWS = 8


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
        self.head = create_task(task, n_classes=len(classes))
        self.scale = dict(target_scale or {"mean": 0.0, "std": 1.0})
        self.meta = {"task": task, "classes": list(classes), "rows": [int(r) for r in rows],
                     "targets": shown_targets(self.head, targets, self.scale).tolist()}
        self.epochs: list[int] = []
        self.predictions: list[list[Any]] = []  # per epoch, per row: probabilities or a value

    @classmethod
    def of_rows(cls, inputs: Sequence[torch.Tensor], y: torch.Tensor, data_rows: Sequence[int], task: str,
                classes: Sequence[str] = (), target_scale: Mapping[str, float] | None = None,
                n: int = WATCH_ROWS) -> PredictionWatch:
        """Watch n of these rows (inputs, target and their data rows), picked by watch_rows."""
        picked = torch.tensor(watch_rows(y, task, n), dtype=torch.long)
        return cls([t[picked] for t in inputs], y[picked], [int(data_rows[i]) for i in picked.tolist()],
                   task, classes, target_scale)

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        outputs = trainer.predict((*self.inputs, self.target))  # the target is dropped: predict's convention
        self.epochs.append(int(logs["epoch"]))
        self.predictions.append(np.round(readable(self.head, outputs, self.scale), 6).tolist())
        if trainer.run_dir is not None:
            self.save(trainer.run_dir)

    def save(self, run_dir: str | os.PathLike) -> None:
        write_json(Path(run_dir) / WATCH, {**self.meta, "epochs": self.epochs, "predictions": self.predictions})

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "predictions": self.predictions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.predictions = list(state["epochs"]), state["predictions"]
