"""M1: a multi-label target (several 0/1 columns) gets one sigmoid output per label."""

import json

import numpy as np
import pandas as pd
import pytest

from nnrecipe import DataError, TrainConfig, predict_table, train_table


def tagged(n=600, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "sport": (x[:, 0] > 0).astype(int), "news": (x[:, 1] > 0.5).astype(int),
                         "local": np.where(x[:, 0] + x[:, 2] > 0, "true", "false")})


def test_multilabel_learns_each_label_and_predicts_label_sets(tmp_path):
    frame = tagged()
    run = train_table(frame, "sport,news,local", out=tmp_path, train_config=TrainConfig(epochs=25))
    assert run.task == "multilabel"
    # T16 may say "train longer" of 25 epochs (0.98-1.0 on seeds 0-2); no other check warns
    assert {v.status for v in run.verdicts if v.id != "T16"} <= {"pass", "skipped"}
    assert {"C1", "C2"} <= {v.id for v in run.verdicts}
    assert run.test["accuracy"] > 0.9  # share of labels right
    meta = json.loads((run.run_dir / "model.json").read_text())
    assert meta["classes"] == ["sport", "news", "local"] and meta["architecture"]["members"][0]["out_features"] == 3
    assert meta["feature_names"] == ["a", "b", "c"]  # no target column among the inputs
    preds, report = predict_table(run.run_dir, frame.head(50))
    assert list(preds.columns) == ["prediction", "p_sport", "p_news", "p_local"]
    row = frame.iloc[0]
    expected = {"sport": row["a"] > 0, "news": row["b"] > 0.5, "local": row["a"] + row["c"] > 0}
    if min(abs(row["a"]), abs(row["b"] - 0.5), abs(row["a"] + row["c"])) > 0.3:  # far from every boundary
        assert set(filter(None, preds["prediction"][0].split("|"))) == {k for k, v in expected.items() if v}
    assert report["accuracy"] > 0.9


def test_multilabel_column_that_is_not_zero_one_is_named(tmp_path):
    frame = tagged().assign(news=lambda f: np.where(f["news"] == 1, "yes", "maybe"))
    with pytest.raises(DataError, match=r"^target column 'news' of a multi-label target in the table holds 600 "
                                        r"values that are "
                                        r"not 0/1 \(first: '.*'\); each label column must hold 0/1 or true/false$"):
        train_table(frame, "sport,news", out=tmp_path)
