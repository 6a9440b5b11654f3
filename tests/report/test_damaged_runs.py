"""A run folder whose record files are torn or edited, or that never finished, gets a page that says so:
not a page that reads as a run that recorded nothing (a torn checks.json read as "nothing failed or
warned"), and never a traceback (results.json holding a list, a metrics line holding a number)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from nnrecipe.config import DataConfig, TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.report.build import write_report
from nnrecipe.testing import small_table
from nnrecipe.track.runs import format_runs, list_runs, read_run

BANNER = "Files of this run folder cannot be read"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train_table(small_table(120, seed=0), "y", out=out, train_config=TrainConfig(epochs=2, seed=0)).run_dir


def _copy(run_dir, tmp_path):
    return shutil.copytree(run_dir, tmp_path / run_dir.name)


def test_a_healthy_run_has_no_banner(run_dir):
    html = (run_dir / "report.html").read_text()
    assert BANNER not in html and "has not finished" not in html and "not a held-out test" not in html


def test_a_torn_checks_json_is_named_and_nothing_is_called_clean(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "checks.json").write_text((run_dir / "checks.json").read_text()[:200])
    html = write_report(run).read_text()
    assert f"{BANNER}</b> (damaged or edited): checks.json." in html
    assert "nothing failed or warned" not in html
    assert "the verdicts of checks.json cannot be read" in html


@pytest.mark.parametrize("name, content", [("results.json", "[1, 2]"), ("checks.json", '{"a": 1}'),
                                           ("watch.json", "[]"), ("metrics.jsonl", None),
                                           ("val_predictions.csv", None)])
def test_a_record_of_the_wrong_shape_is_named_not_a_traceback(run_dir, tmp_path, name, content):
    run = _copy(run_dir, tmp_path)
    if name == "metrics.jsonl":
        lines = (run / name).read_text().splitlines()
        content = "\n".join(["42", *lines]) + "\n"  # a number where an epoch's object was
    elif name == "val_predictions.csv":
        content = "row,loss\n1,0.5\n"  # a file of another layout: no target, no prediction
    (run / name).write_text(content)
    html = write_report(run).read_text()
    assert BANNER in html and name in html.split(BANNER)[1].split("</p>")[0]
    if name in ("results.json", "checks.json", "metrics.jsonl"):  # what `runs` and `compare` read too
        assert name in read_run(run).damaged
    [listed] = list_runs(run)  # runs lists it
    assert listed.id == run.name and listed.finished  # results.json is there: damaged, not missing
    assert "has not finished" not in html


def test_a_run_without_results_says_it_has_not_finished(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "results.json").unlink()
    html = write_report(run).read_text()
    assert "This run has not finished" in html and f"--resume {run}" in html
    assert BANNER not in html  # a missing results.json is a run not finished, not a damaged one
    listed = format_runs(list_runs(run))  # `runs` says it too (a killed run and a finished one looked alike)
    assert listed.splitlines()[1].endswith("- (not finished: training, or stopped)")


def test_without_a_test_split_the_test_line_says_where_it_was_measured(tmp_path):
    run = train_table(small_table(120, seed=0), "y", out=tmp_path,
                      data_config=DataConfig(test_fraction=0.0), train_config=TrainConfig(epochs=2, seed=0))
    html = (run.run_dir / "report.html").read_text()
    assert "(measured on the validation rows" in html and "not a held-out test)" in html


def test_a_multilabel_row_with_no_label_shows_an_empty_cell_not_nan(tmp_path):
    g = np.random.default_rng(0)
    n = 150
    frame = pd.DataFrame({"a": g.normal(size=n), "b": g.normal(size=n)})
    frame["p"], frame["q"] = (frame["a"] > 1).astype(int), (frame["b"] > 1).astype(int)  # most rows: no label
    run = train_table(frame, "p,q", out=tmp_path, train_config=TrainConfig(epochs=2, seed=0))
    predictions = pd.read_csv(run.run_dir / "val_predictions.csv", keep_default_na=False)
    assert (predictions["target"] == "").any()  # rows of no label are there
    html = (run.run_dir / "report.html").read_text()
    assert "<td>nan</td>" not in html
