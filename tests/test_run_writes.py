"""What a run writes is never half-done: every file of a run folder reaches its name by a rename (written
under a temporary name first), a run folder holds its settings from the moment it exists and resumes from
there, the LR range test's rate survives a stop, and the temporary files a killed writer leaves are swept
by a resume and by `nnrecipe runs --clean` (issue 16)."""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nnrecipe.cli import main
from nnrecipe.config import DataConfig, TrainConfig
from nnrecipe.io import TEMP, read_json
from nnrecipe.models import load_model
from nnrecipe.recipes import pipeline, train_table
from nnrecipe.testing import small_table
from nnrecipe.track.recorder import RunRecorder

TINY = TrainConfig(epochs=3, device="cpu")


@pytest.fixture
def table(tmp_path) -> Path:
    frame = small_table(160, seed=1)
    frame.loc[frame.index[:12], "y"] = "unsure"  # D7: rows that go to review.csv
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def test_every_file_of_a_run_folder_reaches_its_name_by_a_rename(table, tmp_path, monkeypatch):
    opened: list[Path] = []
    real = builtins.open

    def watching(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and not isinstance(file, int):
            opened.append(Path(file).resolve())
        return real(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching)
    monkeypatch.setattr(io, "open", watching)
    runs = (tmp_path / "runs").resolve()
    run = train_table(table, "y", out=runs, train_config=TINY, lr_find="on",
                      data_config=DataConfig(neutral_label="unsure"))
    written = [p for p in opened if runs in p.parents]
    finals = {p.relative_to(run.run_dir).as_posix() for p in run.run_dir.rglob("*") if p.is_file()}
    assert {"config.json", "metrics.jsonl", "summary.txt", "review.csv", "label_distribution.png", "report.html",
            "model.safetensors", "model.json", "lr_find.json", "checkpoints/last.safetensors"} <= finals
    assert written and [p for p in written if not TEMP.match(p.name)] == []  # only temporary names are opened


def test_a_run_stopped_as_its_folder_appeared_resumes_as_if_never_stopped(table, tmp_path, monkeypatch):
    straight = train_table(table, "y", out=tmp_path / "a", train_config=TINY, report=False)

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(pipeline, "Fit", killed)
        with pytest.raises(Killed):
            train_table(table, "y", out=tmp_path / "b", train_config=TINY, report=False)
    [folder] = (tmp_path / "b").iterdir()
    assert [p.name for p in folder.iterdir()] == ["config.json"]  # the settings, from the start
    code = main(["train", str(table), "--target", "y", "--resume", str(folder), "--no-report"])
    assert code in (0, 1)
    assert read_json(folder / "results.json")["test"] == straight.test


def test_a_stop_after_the_lr_range_test_resumes_at_its_rate(table, tmp_path, monkeypatch):
    straight = train_table(table, "y", out=tmp_path / "a", train_config=TINY, report=False, lr_find="on")

    class Killed(Exception):
        pass

    def killed(self, config):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(RunRecorder, "start", killed)  # the full config is written after the range test
        with pytest.raises(Killed):
            train_table(table, "y", out=tmp_path / "b", train_config=TINY, report=False, lr_find="on")
    [folder] = (tmp_path / "b").iterdir()
    found = read_json(folder / "lr_find.json")["suggestion"]
    assert read_json(folder / "config.json")["train"]["lr"] == 2e-3 != found  # TabM's rate: the stop came before the range test's
    resumed = train_table(table, "y", resume=folder, report=False)
    assert read_json(folder / "config.json")["train"]["lr"] == found == straight.config["train"]["lr"]
    assert read_json(folder / "config.json")["lr_find"] == "on" == straight.config["lr_find"]  # as asked
    assert resumed.test == straight.test


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_clean_removes_what_killed_writers_left_and_nothing_else(table, tmp_path, cli):
    run = train_table(table, "y", out=tmp_path / "runs", train_config=TrainConfig(epochs=1, device="cpu"),
                      report=False).run_dir
    gone = dead_pid()
    torn = run / "checkpoints" / f".last.safetensors.tmp-{gone}"
    torn.write_bytes(b"x" * 300)
    staged = tmp_path / "runs" / f".20260101-000000-t-y.tmp-{gone}"  # a run folder killed before its rename
    staged.mkdir()
    (staged / "config.json").write_text("{}")
    live = run / f".summary.txt.tmp-{os.getpid()}"  # a writer still at work
    live.write_text("...")
    elsewhere = run / f".metrics.jsonl.tmp-another-host-{gone}"  # another machine's writer, on a shared folder
    elsewhere.write_text("...")
    code, out, err = cli("runs", tmp_path / "runs")
    assert code == 0 and staged.name not in out  # a staged folder is not a run
    code, out, err = cli("runs", tmp_path / "runs", "--clean")
    assert code == 0 and not torn.exists() and not staged.exists() and live.exists() and elsewhere.exists()
    assert err.splitlines() == ["removed 2 temporary files left by killed runs (302 bytes)", f"  {staged}", f"  {torn}"]
    assert run.name in out
    load_model(run)  # the run itself is whole


def test_a_model_whose_weights_do_not_match_its_description_is_refused_by_predict(table, tmp_path, cli):
    run = train_table(table, "y", out=tmp_path / "runs", train_config=TrainConfig(epochs=1, device="cpu"),
                      report=False).run_dir
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    code, out, err = cli("predict", run, table)
    assert (code, out) == (2, "")
    assert err == (f"nnrecipe: error: '{weights}' is not the weights '{run / 'model.json'}' describes (their hash "
                   "differs: a run killed while saving its model, or files from two runs); train the run again\n")
    assert re.search("Traceback", err) is None


def test_predict_out_writes_through_a_symlink_and_into_a_pipe(tmp_path):
    """A rename would replace a symlink, a device or a pipe with a regular file: a symlink is written through
    to its target, a special file into."""
    import stat
    import threading

    from nnrecipe.io import write_output

    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_output(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text()))
    reader.start()
    write_output(pipe, "rows\n")
    reader.join()
    assert got == ["rows\n"] and stat.S_ISFIFO(pipe.stat().st_mode)


def test_edited_or_damaged_records_are_named_not_raised(table, tmp_path, cli):
    run = train_table(table, "y", out=tmp_path / "runs", train_config=TrainConfig(epochs=1, device="cpu"),
                      report=False).run_dir
    meta = read_json(run / "model.json")
    (run / "model.json").write_text(json.dumps({**meta, "classes": None}))
    assert cli("predict", run, table) == (2, "", f"nnrecipe: error: '{run / 'model.json'}' holds 'classes' in a form "
                                                 "predict cannot read; the file is damaged or was edited: restore the "
                                                 "run folder, or train the run again\n")
    (run / "config.json").write_text("[1, 2]")
    assert cli("train", table, "--target", "y", "--resume", run) == (
        2, "", f"nnrecipe: error: --resume {run}: its config.json cannot be read as a run's settings (damaged or "
               "edited); restore the file, or train the run again without --resume\n")
    config = tmp_path / "settings.json"
    config.write_bytes('{"data": {"drop": ["caf\u00e9"]}}'.encode("cp1252"))
    assert cli("train", table, "--target", "y", "--config", config, "--out", tmp_path / "x") == (
        2, "", f"nnrecipe: error: config file '{config}' is not UTF-8 text (byte 23); save it as UTF-8\n")
