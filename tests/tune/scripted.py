"""Callbacks the tune tests plant in trials (module level: the tests' worker script imports them)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from nnrecipe.train.callbacks import Callback


class Fits(Callback):
    """Counts the trainings this process ran (one per trial of a one-worker study)."""

    def __init__(self) -> None:
        self.fits = 0

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.fits += 1


class EpochsRun(Callback):
    """Counts the epochs this process trained."""

    def __init__(self) -> None:
        self.epochs = 0

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        self.epochs += 1


class PlantedCurve(Fits):
    """Overwrites the validation accuracy with a scripted curve: a rising one (0.5 + 0.05 per epoch), and
    a flat bad one (0.1) in the trainings numbered in `bad` (1-based, in this process)."""

    def __init__(self, bad: set[int]):
        super().__init__()
        self.bad = bad

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        logs["val_accuracy"] = 0.1 if self.fits in self.bad else 0.5 + 0.05 * logs["epoch"]


class BlockAtFit(Fits):
    """At this process's `fit`-th training, writes `marker` and blocks: the test kills the process there."""

    def __init__(self, fit: int, marker: str):
        super().__init__()
        self.fit, self.marker = fit, marker

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        super().on_fit_start(trainer, logs)
        if self.fits == self.fit:
            Path(self.marker).write_text("blocked")
            threading.Event().wait()


class WaitForWorkers(Callback):
    """Holds each training's start until `n` distinct workers have claimed trials in the study (or 120 s
    have passed): the test's two processes then each run trials whatever their start-up times."""

    def __init__(self, url: str, study: str, n: int = 2):
        self.url, self.study, self.n = url, study, n

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        import optuna

        study = optuna.load_study(study_name=self.study, storage=self.url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False)} - {None}
            if len(workers) >= self.n:
                return
            time.sleep(0.1)  # a barrier on the storage's state, not a timer the test depends on


class InterruptAtFit(Fits):
    """Raises KeyboardInterrupt (Ctrl-C) when this process starts its `fit`-th training, or with
    `at_end` when that training has run its last epoch (its checkpoint written, its results not yet)."""

    def __init__(self, fit: int, at_end: bool = False):
        super().__init__()
        self.fit, self.at_end = fit, at_end

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        super().on_fit_start(trainer, logs)
        if self.fits == self.fit and not self.at_end:
            raise KeyboardInterrupt

    def on_fit_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        if self.fits == self.fit and self.at_end:
            raise KeyboardInterrupt
