"""Issue 19, item 5: `runs` shows the headline test metric with its name; `compare` prints each run's
validation and test metrics beside the setting that changed; `predict --keep COL` copies input columns to
the output, and the rows that hold a target are scored even when others lack it (the count said)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.testing import small_table

QUICK = {"checks": (), "report": False, "audit": False, "model_config": ModelConfig(model="mlp")}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("two")
    small_table(n=120).to_csv(folder / "train.csv", index=False)
    runs = [train_table(folder / "train.csv", "y", out=folder / "runs",
                        train_config=TrainConfig(epochs=2, lr=lr, refit="off"), **QUICK) for lr in (1e-3, 1e-2)]
    return folder, runs


def test_runs_shows_the_test_metric_and_its_name(cli, two_runs):
    folder, runs = two_runs
    code, out, err = cli("runs", folder / "runs")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[-2:] == ["best", "test"]
    for run in runs:
        line = next(r for r in rows if r.startswith(run.run_dir.name))
        assert line.endswith(f"accuracy {run.test['accuracy']:.4g}")
    code, out, _ = cli("runs", folder / "runs", "--sort=-test")  # the column sorts too
    assert code == 0 and len(out.splitlines()) == 3


def test_compare_prints_each_runs_metrics_beside_the_changed_setting(cli, two_runs, tmp_path):
    folder, runs = two_runs
    code, out, err = cli("compare", *(r.run_dir for r in runs), "--out", tmp_path / "c.html")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "one setting changed: train.lr"
    header = lines[1].split()
    assert "lr" in header and header[-2:] == ["best", "test"]
    for run in runs:
        line = next(s for s in lines if s.startswith(run.run_dir.name))
        lr = run.config["train"]["lr"]
        assert f"{lr:.4g}" in line and f"val_loss {run.results['best_value']:.4g}" in line
        assert line.endswith(f"accuracy {run.test['accuracy']:.4g}")
    assert lines[-1] == str(tmp_path / "c.html")


def test_predict_keeps_columns_and_scores_the_rows_with_a_target(cli, two_runs, tmp_path):
    folder, runs = two_runs
    new = small_table(n=30, seed=3)
    new.insert(0, "customer", [f"c{i}" for i in range(30)])
    new.loc[[2, 5, 7], "y"] = None  # three rows without a target
    data = tmp_path / "new.csv"
    new.to_csv(data, index=False)
    code, out, err = cli("predict", runs[0].run_dir, data, "--keep", "customer", "--out", tmp_path / "p.csv")
    assert code == 0, err
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns[:2]) == ["customer", "prediction"] and written["customer"].tolist() == new["customer"].tolist()
    _, report = predict_table(runs[0].run_dir, data)
    assert (report["scored_rows"], report["unscored_rows"]) == (27, 3)
    truth = new["y"].dropna().astype(str).tolist()
    preds, _ = predict_table(runs[0].run_dir, data)
    kept = [p for p, y in zip(preds["prediction"].astype(str), new["y"]) if pd.notna(y)]
    assert report["accuracy"] == pytest.approx(sum(p == t for p, t in zip(kept, truth)) / 27)
    assert f"accuracy against the target column: {report['accuracy']:.4f} (on the 27 rows that hold a target; " \
           "3 without one not scored)" in out


def test_predict_keep_names_a_missing_column(cli, two_runs, tmp_path):
    folder, runs = two_runs
    data = tmp_path / "new.csv"
    small_table(n=5, seed=1).to_csv(data, index=False)
    code, out, err = cli("predict", runs[0].run_dir, data, "--keep", "custmer")
    assert code == 2 and out == ""
    assert err.splitlines()[-1].startswith(f"nnrecipe: error: --keep custmer: file '{data}' has no column 'custmer'")
