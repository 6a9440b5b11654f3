"""A rank other than 0 trains in a private folder removed at exit; a killed one (SIGKILL: no exit handler)
left it behind for ever, a resumed run's copy of its run folder included. The next launch sweeps the folders
of processes that are gone and keeps those of processes still running."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from nnrecipe.train.distributed import _sweep_private_folders


def test_the_folders_of_killed_ranks_are_swept_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(gone.stdout), os.getppid()
    left = tmp_path / f"nnrecipe-rank1-pid{dead}-abc"
    (left / "run" / "checkpoints").mkdir(parents=True)
    running = tmp_path / f"nnrecipe-rank1-pid{alive}-def"
    running.mkdir()
    other = tmp_path / "nnrecipe-fit-123"  # another of nnrecipe's temporary folders: not a rank's
    other.mkdir()
    _sweep_private_folders()
    assert not left.exists() and running.is_dir() and other.is_dir()
