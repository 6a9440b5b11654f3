"""A study run again after the machine stopped it (a review of crash safety): a full disk in a trial is
the machine's failure, queued again as a kill is; the best trial's retraining, found in best/ by a rerun,
goes on there (or is read again) instead of a second folder beside it."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.testing import small_table
from nnrecipe.tune import tune_table

from .scripted import Fits

TINY = TrainConfig(epochs=3, device="cpu")


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, Path]:
    csv, space = tmp_path / "t.csv", tmp_path / "space.yaml"
    small_table(200).to_csv(csv, index=False)
    space.write_text("model:\n  layers: 1\n  units: {int: [8, 32], step: 8}\n")
    return csv, space


class DiskFullAtFit(Fits):
    """OSError(ENOSPC) when this process starts its `fit`-th training."""

    def __init__(self, fit: int) -> None:
        super().__init__()
        self.fit = fit

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        super().on_fit_start(trainer, logs)
        if self.fits == self.fit:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_in_a_trial_queues_it_again_as_a_kill_does(table, tmp_path):
    csv, space = table
    out = tmp_path / "studies"
    with pytest.raises(OSError):
        tune_table(csv, "y", trials=3, space=space, pruner="none", out=out, study="disk", train_config=TINY,
                   refit=False, callbacks=(DiskFullAtFit(2),))
    result = tune_table(csv, "y", trials=3, space=space, pruner="none", out=out, study="disk", train_config=TINY,
                        refit=False)
    assert result.counts == {"COMPLETE": 3, "FAIL": 1}  # the budget's 3 trials ran: the lost one again


def test_a_rerun_of_a_finished_study_keeps_one_retrained_best(table, tmp_path):
    csv, space = table
    out = tmp_path / "studies"
    first = tune_table(csv, "y", trials=2, space=space, pruner="none", out=out, study="again", train_config=TINY)
    again = tune_table(csv, "y", trials=2, space=space, pruner="none", out=out, study="again", train_config=TINY)
    folders = [p for p in (out / "again" / "best").iterdir() if not p.name.startswith(".")]
    assert folders == [first.refit.run_dir] and again.refit.run_dir == first.refit.run_dir
    assert again.refit.test == first.refit.test
