"""R6: a tqdm bar with the live loss and the epoch's metrics (the CLI adds it when stdout is a terminal)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .base import Callback


class ProgressBar(Callback):
    def __init__(self, stream: TextIO | None = None, every: int = 10):
        self.stream = stream or sys.stderr
        self.every = every  # batches between loss refreshes: reading the loss forces a device sync
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_epoch_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.steps_per_epoch, initial=trainer.batch_in_epoch, file=self.stream,
                        desc=f"epoch {logs['epoch']}/{trainer.config.epochs}", leave=False, dynamic_ncols=True)
        if self.postfix:
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_batch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.bar.update(1)
        if self.bar.n % self.every == 0:
            self.bar.set_postfix({**self.postfix, "loss": f"{float(logs['loss']):.4f}"}, refresh=False)

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.postfix = {k: f"{v:.4g}" for k, v in logs.items()
                        if k.startswith("val_") and isinstance(v, float)}
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.bar_line(trainer, logs)

    def bar_line(self, trainer: Any, logs: dict[str, Any]) -> None:
        from tqdm.auto import tqdm

        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"epoch {logs['epoch']:>3}  {shown}", file=self.stream)
