"""T7: early stopping on any logged metric.

`patience` epochs without an improvement larger than `min_delta` stop training (T7's sources in docs/techniques.md
advise a patience of 5-20). Prechelt's criteria ("Early Stopping - But When?", 1998) are options for a
validation loss: GL_alpha stops when the generalization loss 100 * (E_va / E_opt - 1) exceeds alpha;
PQ_alpha when GL divided by the training progress P_k = 1000 * (sum / (k * min) - 1) over a strip of
k epochs exceeds alpha. Which weights the model ends with is the Trainer's job (restore_best)."""

from __future__ import annotations

import math
from typing import Any

from ...errors import ConfigError, check_choice
from .base import Callback


class EarlyStopping(Callback):
    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 10, min_delta: float = 0.0,
                 criterion: str = "patience", alpha: float = 5.0, strip: int = 5):
        check_choice("mode", mode, ("min", "max"))
        check_choice("criterion", criterion, ("patience", "gl", "pq"))
        if criterion != "patience" and mode != "min":
            raise ConfigError(f"criterion={criterion!r} needs a monitored loss (mode='min'), got mode={mode!r}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, abs(min_delta)
        self.criterion, self.alpha, self.strip = criterion, alpha, strip
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.train_strip: list[float] = []

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        if self.monitor not in logs:
            raise ConfigError(f"early stopping monitors '{self.monitor}', which is not logged; logged: "
                              f"{', '.join(k for k in logs if k != 'epoch')}")
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        if self.criterion == "patience":
            stop = self.wait > 0 and self.wait >= self.patience  # patience 0: the first epoch without gain
        else:
            gl = 100.0 * (value / self.best - 1.0) if self.best > 0 else 0.0
            logs["gl"] = gl
            if self.criterion == "gl":
                stop = gl > self.alpha
            else:
                self.train_strip = (self.train_strip + [float(logs["train_loss"])])[-self.strip:]
                k = len(self.train_strip)
                progress = 1000.0 * (sum(self.train_strip) / (k * min(self.train_strip)) - 1.0)
                logs["pq"] = gl / progress if progress > 0 else 0.0
                # Prechelt checks PQ only at the end of each strip of k epochs
                stop = k == self.strip and logs["epoch"] % self.strip == 0 and progress > 0 and logs["pq"] > self.alpha
        if stop:
            self.stopped_epoch = logs["epoch"]
            trainer.stop_training = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch,
                "train_strip": list(self.train_strip)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]
        self.stopped_epoch, self.train_strip = state["stopped_epoch"], list(state["train_strip"])
