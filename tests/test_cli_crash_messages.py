"""What a user sees when the machine, not the input, stops a command (a review of crash safety): Ctrl-C and
a full disk end in one line with the way on, not a traceback; an --out that cannot be written is refused
before the work; a run killed before its first checkpoint is offered --resume."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from nnrecipe import cli
from nnrecipe.cli import main
from nnrecipe.testing import small_table


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    path = tmp_path / "t.csv"
    small_table(120).to_csv(path, index=False)
    return path


def _stop_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def stop(*args, **kwargs):
        raise error

    monkeypatch.setattr("nnrecipe.recipes.train_table", stop)


def test_ctrl_c_in_train_ends_in_one_line_with_the_way_to_resume(table, tmp_path, monkeypatch, capsys):
    _stop_with(monkeypatch, KeyboardInterrupt())
    assert main(["train", str(table), "--target", "y", "--out", str(tmp_path / "runs")]) == 130
    err = capsys.readouterr().err
    assert err.startswith("nnrecipe: interrupted; a run folder resumes from its last checkpoint") and "--resume" in err
    assert "Traceback" not in err


def test_a_full_disk_ends_in_one_line_naming_the_file_and_the_fix(table, tmp_path, monkeypatch, capsys):
    _stop_with(monkeypatch, OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "x")))
    assert main(["train", str(table), "--target", "y", "--out", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"nnrecipe: error: No space left on device '{tmp_path / 'runs' / 'x'}': free disk space")
    assert "--resume RUN" in err


def test_an_out_under_a_file_is_refused_before_the_work(table, tmp_path, monkeypatch, capsys):
    _stop_with(monkeypatch, AssertionError("the work began"))
    assert main(["train", str(table), "--target", "y", "--out", str(table / "runs")]) == 2
    assert f"'{table}' is a file, not a folder" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), str(table), "--out", str(table / "p.csv")]) == 2
    assert f"'{table}' is a file, not a folder" in capsys.readouterr().err  # it said the folder does not exist


def test_an_out_that_cannot_be_written_is_refused_before_the_work(table, tmp_path, monkeypatch, capsys):
    _stop_with(monkeypatch, AssertionError("the work began"))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cli.tempfile, "mkdtemp", read_only)  # root writes anywhere: the system says no instead
    assert main(["train", str(table), "--target", "y", "--out", str(tmp_path / "runs")]) == 2
    assert "cannot be written to (Read-only file system); write elsewhere" in capsys.readouterr().err
    assert main(["clean", str(table), "--target", "y", "--out", str(tmp_path / "c.csv")]) == 2
    assert not (tmp_path / "c.csv").exists()


def test_a_run_killed_before_its_first_checkpoint_is_offered_resume(tmp_path, capsys):
    run = tmp_path / "runs" / "20261207-000000-t-y"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data": {}}))  # the folder appears with its settings in it
    data = tmp_path / "new.csv"
    small_table(20).to_csv(data, index=False)
    assert main(["predict", str(run), str(data)]) == 2
    assert f"go on with it (nnrecipe train DATA --resume {run})" in capsys.readouterr().err
