"""Issue 7 through the command line: `train` leaves the journal, the recorded outputs and report.html;
`--parent` records what changed; `runs`, `compare`, `report` and `export` on the run folders; a run
inside a git repository with uncommitted changes records the commit and the diff."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nnrecipe.cli import main
from nnrecipe.testing import small_table


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A git repository holding the table and a config file, with an uncommitted edit of the config."""
    repo = tmp_path_factory.mktemp("project")
    small_table(150).to_csv(repo / "table.csv", index=False)
    (repo / "settings.json").write_text('{"train": {"epochs": 3}}')
    if shutil.which("git"):
        git(repo, "init", "-q")
        git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "0")
        git(repo, "add", "settings.json")
        git(repo, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-q", "-m", "settings")
        (repo / "settings.json").write_text('{"train": {"epochs": 3, "seed": 0}}')
    return repo


@pytest.fixture(scope="module")
def two_runs(project):
    """`train` twice from inside the repository, the second at 3x the rate with --parent the first."""
    paths: list[Path] = []
    cwd = os.getcwd()
    os.chdir(project)
    try:
        for extra in ([], ["--lr", "0.003", "--parent", "PARENT", "--note", "lr x3"]):
            extra = [str(paths[0]) if e == "PARENT" else e for e in extra]
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(["train", "table.csv", "--target", "y", "--out", str(project / "runs"),
                             "--config", "settings.json", "--lr", "0.001", *extra])
            assert code == 0  # healthy runs: no check fails
            paths.append(Path(out.getvalue().splitlines()[-1]))
    finally:
        os.chdir(cwd)
    return paths


def test_train_leaves_the_record_and_the_report(two_runs):
    first, second = two_runs
    for name in ("journal.json", "report.html", "val_predictions.csv", "watch.json", "samples.json",
                 "launch/settings.json"):
        assert (first / name).is_file(), name
    journal = json.loads((second / "journal.json").read_text())
    assert journal["note"] == "lr x3"
    assert journal["parent"]["run"] == first.name and journal["parent"]["changed"] == {"train.lr": [0.001, 0.003]}
    assert journal["data"]["rows"] == 150 and journal["data"]["columns"] == ["a", "b", "color", "y"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_run_inside_a_dirty_repository_records_the_commit_and_the_diff(project, two_runs):
    journal = json.loads((two_runs[0] / "journal.json").read_text())
    assert journal["git"]["commit"] == git(project, "rev-parse", "HEAD").strip()
    assert journal["git"]["dirty"] is True
    assert '+{"train": {"epochs": 3, "seed": 0}}' in (two_runs[0] / "git.diff").read_text()


def test_runs_lists_sorts_and_filters(cli, project, two_runs):
    code, out, _ = cli("runs", project / "runs", "--sort=-lr")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["id", "date", "note", "data"] and "lr" in lines[0].split()
    assert [line.split()[0] for line in lines[1:]] == [two_runs[1].name, two_runs[0].name]
    code, out, _ = cli("runs", project / "runs", "--filter", "note~x3")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [two_runs[1].name]
    code, out, err = cli("runs", project / "runs", "--filter", "lr=1")
    assert (code, out) == (0, "") and err.startswith("no run in ")


def test_compare_names_the_learning_rate(cli, two_runs, tmp_path):
    code, out, _ = cli("compare", *two_runs, "--out", tmp_path / "c.html")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "one setting changed: train.lr" and lines[-1] == str(tmp_path / "c.html")
    assert lines[1].split()[-3:] == ["lr", "best", "test"] and len(lines) == 5  # a line per run (issue 19)


def test_report_makes_the_page_again(cli, two_runs, tmp_path):
    code, out, _ = cli("report", two_runs[0], "--out", tmp_path / "r.html")
    assert (code, out.strip()) == (0, str(tmp_path / "r.html"))
    assert '<section id="verdicts">' in (tmp_path / "r.html").read_text()


def test_a_bad_parent_or_run_folder_exits_2_with_the_fix(cli, project, tmp_path):
    code, _, err = cli("train", project / "table.csv", "--target", "y", "--out", tmp_path, "--parent", tmp_path / "x")
    assert code == 2
    assert err == (f"nnrecipe: error: --parent {tmp_path / 'x'}: no config.json there; give a run folder that "
                   "`nnrecipe train` made (`nnrecipe runs` lists them)\n")
    code, _, err = cli("report", tmp_path)
    assert code == 2 and "no config.json there" in err


def test_export_to_tensorboard(cli, two_runs):
    pytest.importorskip("tensorboard", reason="the export extra: pip install 'nnrecipe[export]'")
    code, out, _ = cli("export", two_runs[0], "--to", "tensorboard")
    assert (code, out.strip()) == (0, str(two_runs[0] / "tensorboard"))


@pytest.mark.parametrize("command", ["runs", "compare", "report", "export"])
def test_help_works(cli, command):
    code, out, _ = cli(command, "--help")
    assert code == 0 and out.startswith("usage: nnrecipe " + command)
