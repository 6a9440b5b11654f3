"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nnrecipe.cli import main

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
