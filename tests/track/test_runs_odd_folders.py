"""`runs`, `compare` and `report` on odd folders and paths: a settings file named config.json beside the runs
hid them all (read as the one run); a run given twice was compared with itself as "seed noise"; two runs of
one name were one curve; --out could replace another run's report.html; --out '' ended in a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.report.build import compare_context
from nnrecipe.testing import small_table


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    a = train_table(small_table(90, seed=0), "y", out=out, train_config=TrainConfig(epochs=2, seed=0), checks=(),
                    audit=False).run_dir
    b = train_table(small_table(90, seed=0), "y", out=out, train_config=TrainConfig(epochs=3, seed=1), checks=(),
                    audit=False).run_dir
    return out, a, b


def test_a_settings_file_named_config_json_beside_the_runs_hides_none(two_runs, tmp_path, cli):
    out, a, b = two_runs
    folder = shutil.copytree(out, tmp_path / "project")
    (folder / "config.json").write_text(json.dumps({"train": {"epochs": 3, "lr": 0.01}}))  # a --config file
    code, printed, _ = cli("runs", folder)
    assert code == 0 and a.name in printed and b.name in printed


def test_a_run_given_twice_is_refused_and_two_of_one_name_stay_two(two_runs, tmp_path, cli):
    _, a, b = two_runs
    code, _, err = cli("compare", a, b, a)
    assert code != 0 and err.strip().endswith(f"compare: {a} is given twice (also as {a}); give each run once")
    copy = shutil.copytree(b, tmp_path / "elsewhere" / a.name)  # another folder, the same run name
    context = compare_context([a, copy])
    assert [r["id"] for r in context["rows"]] == [f"{a.parent.name}/{a.name}", f"elsewhere/{a.name}"]


def test_out_never_replaces_another_runs_file_and_is_never_empty(two_runs, cli, tmp_path):
    _, a, b = two_runs
    before = (b / "report.html").read_bytes()
    code, _, err = cli("report", a, "--out", b / "report.html")
    assert code != 0 and f"is a file of run folder {b}, which it would replace; write elsewhere" in err
    code, _, err = cli("compare", a, b, "--out", b / "report.html")
    assert code != 0 and f"is a file of run folder {b}" in err
    assert (b / "report.html").read_bytes() == before
    code, printed, _ = cli("report", a, "--out", a / "report.html")  # its own page, written again
    assert code == 0 and printed.strip() == str(a / "report.html")
    for argv in (("report", a), ("compare", a, b)):
        code, _, err = cli(*argv, "--out", "")
        assert code != 0 and "--out is empty; give a file name, such as" in err


def test_runs_on_a_file_says_it_is_a_file(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = cli("runs", tmp_path / "notes.txt")
    assert code != 0 and f"{tmp_path / 'notes.txt'} is a file; give the folder" in err


def test_a_projects_own_config_json_beside_its_checkpoints_is_no_run(tmp_path, two_runs, cli):
    """Only an nnrecipe run's files are protected: a project folder with its own config.json and checkpoints/
    keeps taking predictions written again over the last ones."""
    _, a, _ = two_runs
    project = tmp_path / "project"
    (project / "checkpoints").mkdir(parents=True)
    (project / "config.json").write_text('{"lr": 1}')
    (project / "out").mkdir()
    (project / "out" / "compare.html").write_text("old")
    code, _, err = cli("report", a, "--out", project / "out" / "compare.html")
    assert code == 0, err
    assert (project / "out" / "compare.html").read_text().startswith("<!DOCTYPE html>")


def test_compare_says_when_runs_of_other_tasks_or_data_do_not_compare(two_runs, tmp_path, cli):
    """A regression's MSE and a classifier's cross-entropy overlaid as one 'loss', with nothing said."""
    _, a, b = two_runs
    code, printed, _ = cli("compare", a, b, "--out", tmp_path / "same.html")
    assert code == 0 and "note:" not in printed  # one table, one task: nothing to say
    html = (tmp_path / "same.html").read_text()
    assert "Note:" not in html and "<th>test</th>" in html and "accuracy " in html
    other = train_table(small_table(90, seed=0, task="regression"), "y", out=tmp_path / "r",
                        train_config=TrainConfig(epochs=2, seed=0), checks=(), audit=False).run_dir
    code, printed, _ = cli("compare", a, other, "--out", tmp_path / "mixed.html")
    assert code == 0 and "note: the runs are of different tasks (binary, regression)" in printed
    assert "Note: the runs are of different tasks (binary, regression)" in (tmp_path / "mixed.html").read_text()
    third = train_table(small_table(90, seed=5), "y", out=tmp_path / "d", train_config=TrainConfig(epochs=2, seed=0),
                        checks=(), audit=False).run_dir  # the same task, another table
    code, printed, _ = cli("compare", a, third, "--out", tmp_path / "data.html")
    assert code == 0 and "note: the runs were trained on different data" in printed
