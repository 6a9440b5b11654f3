"""Gradual unfreezing (Howard & Ruder 2018, ULMFiT, section 3.3: "we first unfreeze the last layer and
fine-tune all unfrozen layers for one epoch. We then unfreeze the next lower frozen layer and repeat"): at
each epoch's start the model is told the epoch, and a model that thaws by epoch (models/transfer.py's
Transfer: `thaw(epoch)`) sets which of its blocks train. The callback holds no state: the epoch decides,
so a run resumed mid-epoch thaws the same blocks it had."""

from __future__ import annotations

from typing import Any

from .base import Callback


class GradualUnfreezing(Callback):
    def on_epoch_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        thaw = getattr(trainer.model, "thaw", None)
        if callable(thaw):
            thaw(int(logs["epoch"]))
