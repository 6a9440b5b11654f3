"""R6: a tqdm bar with the live loss and the epoch's metrics (the CLI adds it when stdout is a terminal). In a
Jupyter kernel with ipywidgets, tqdm's notebook widget (issue 23); elsewhere one line on the stream, redrawn in
place. Not tqdm.auto: it picks the widget in every kernel and warns when ipywidgets is missing."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, TextIO

from .base import Callback


def in_notebook() -> bool:
    """True inside a Jupyter kernel: IPython's shell there is a ZMQInteractiveShell (a terminal IPython's is
    not). IPython is looked up, never imported: a process that has not loaded it is no kernel."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    # a subclass counts too: Google Colab's shell is one
    return any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def tqdm_class() -> Any:
    """tqdm.notebook's bar in a kernel that can draw it (ipywidgets importable), else tqdm's plain bar."""
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


class ProgressBar(Callback):
    def __init__(self, stream: TextIO | None = None, every: int = 10):
        self.stream = stream or sys.stderr
        self.every = every  # batches between loss refreshes: reading the loss forces a device sync
        self.bar: Any = None
        self.postfix: dict[str, str] = {}

    def on_epoch_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        tqdm = tqdm_class()
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
        tqdm = tqdm_class()
        shown = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if isinstance(v, float) and k != "lr")
        tqdm.write(f"epoch {logs['epoch']:>3}  {shown}", file=self.stream)
