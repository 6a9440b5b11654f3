"""The callback protocol: plain objects with a few no-op hooks taking (trainer, logs) (Keras and
skorch's design). A callback stops training by setting `trainer.stop_training = True`. A callback that
holds state across epochs defines state_dict()/load_state_dict(); the trainer saves it in checkpoints."""

from __future__ import annotations

from typing import Any


class Callback:
    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        """Before the first epoch (also on resume; logs['resumed'] says which)."""

    def on_epoch_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        """Before an epoch's first batch; logs['epoch'] is the 1-based epoch about to run."""

    def on_batch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        """After each batch; logs['loss'] is the batch's loss as a 0-d tensor (no sync forced)."""

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        """After an epoch's validation; logs is the epoch's history row and may be extended."""

    def on_fit_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        """After the last epoch, once the best weights are restored."""
