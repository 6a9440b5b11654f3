"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nnrecipe.cli import main
from nnrecipe.train import cross_fit

USERS_CV_MAX_ROWS = cross_fit.CV_MAX_ROWS  # the T14 bound users get, before the suite lowers it

# The tests train tiny models, where intra-op threads only add synchronization: on a shared 2-core machine
# the OpenMP workers contend with other processes and a 300-row multiclass run went from 0.8 s to 14 s.
# One thread gives the same numbers here (checked on the breast cancer and small-table runs).
torch.set_num_threads(1)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `nnrecipe ARGS...` in-process: (exit code, stdout, stderr). argparse ends `--help` and its own
    usage errors with SystemExit; its code is returned like the one `main` returns."""

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()  # drop what earlier steps of the test printed
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session", autouse=True)
def _table_cache_for_the_session(tmp_path_factory: pytest.TempPathFactory):
    """No test writes the real ~/.cache/nnrecipe: read_table caches parsed tables (D13) under
    $NNRECIPE_CACHE. Session-wide, for the module-scoped fixtures that train before any test runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNRECIPE_CACHE", str(tmp_path_factory.mktemp("nnrecipe-cache")))
        yield


@pytest.fixture(autouse=True)
def _table_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own empty table cache, so no test hits a table another one cached."""
    monkeypatch.setenv("NNRECIPE_CACHE", str(tmp_path_factory.mktemp("nnrecipe-cache")))


@pytest.fixture(scope="session", autouse=True)
def _one_model_per_run():
    """The suite's tables are small, and below 2,000 rows `train` trains a 10-member cross-validation
    ensemble by default (T14): each of the suite's runs would train 10 models. The tests train one model
    per run unless they ask for the ensemble (cv_folds, or the `cv_default` fixture for the default
    itself: tests/train/test_cross_fit.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cross_fit, "CV_MAX_ROWS", 0)
        yield


@pytest.fixture
def cv_default(monkeypatch: pytest.MonkeyPatch) -> int:
    """The T14 default as users get it (an ensemble below CV_MAX_ROWS rows); returns that bound."""
    monkeypatch.setattr(cross_fit, "CV_MAX_ROWS", USERS_CV_MAX_ROWS)
    return USERS_CV_MAX_ROWS
