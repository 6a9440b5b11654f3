"""D6 rebalancing, D7 the neutral class, M3 the robust regression loss: unit rules and runs."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from nnrecipe import DataConfig, ModelConfig, TrainConfig, train_table
from nnrecipe.data.balance import class_weights, imbalance_ratio, resample, resolve_balance
from nnrecipe.tasks import create_task
from nnrecipe.recipes.tabular import heavy_tailed


def test_auto_picks_class_weights_from_a_three_to_one_imbalance_for_a_balanced_metric():
    balanced = np.array([0] * 50 + [1] * 40)
    skewed = np.array([0] * 98 + [1] * 2)
    assert imbalance_ratio(skewed, 2) == 49
    assert resolve_balance("auto", balanced, 2, "balanced_accuracy") == (
        "none", "--metric balanced_accuracy weighs every class alike; imbalance 1.2:1 < 3:1")
    assert resolve_balance("auto", skewed, 2, "balanced_accuracy") == (
        "weights", "--metric balanced_accuracy weighs every class alike; imbalance 49.0:1 >= 3:1")
    assert resolve_balance("auto", skewed, 2, "f1") == (  # the alias of macro_f1
        "weights", "--metric macro_f1 weighs every class alike; imbalance 49.0:1 >= 3:1")
    assert resolve_balance("undersample", balanced, 2)[0] == "undersample"


@pytest.mark.parametrize("metric", [None, "accuracy", "log_loss", "roc_auc"])
def test_auto_keeps_the_prior_for_a_metric_judged_on_the_rows_as_they_come(metric):
    skewed = np.array([0] * 98 + [1] * 2)
    said = f"--metric {metric}" if metric else "--metric accuracy (the default)"
    assert resolve_balance("auto", skewed, 2, metric) == (
        "none", f"{said} is judged on the rows as they come; imbalance 49.0:1")
    # an explicit method wins over the metric
    assert resolve_balance("weights", skewed, 2, metric) == ("weights", "--balance weights (imbalance 49.0:1)")


def test_class_weights_are_inverse_frequency_with_mean_one_over_rows():
    codes = np.array([0] * 90 + [1] * 10)
    w = class_weights(codes, 2)
    assert w == pytest.approx((100 / (2 * 90), 100 / (2 * 10)))
    assert np.mean([w[c] for c in codes]) == pytest.approx(1.0)


@pytest.mark.parametrize("method, count", [("oversample", 90), ("undersample", 10)])
def test_resampling_evens_the_classes(method, count):
    codes = np.array([0] * 90 + [1] * 10)
    rows = resample(codes, method, seed=0)
    assert np.bincount(codes[rows]).tolist() == [count, count]
    assert np.array_equal(rows, resample(codes, method, seed=0))  # seeded


def test_weighted_head_starts_at_the_weighted_prior():
    y = torch.tensor([[1.0]] * 10 + [[0.0]] * 90)
    w = class_weights(y.view(-1).long().numpy(), 2)
    head = create_task("binary", n_classes=2, class_weights=w)
    assert head.output_bias(y).item() == pytest.approx(0.0, abs=1e-6)  # balanced by the weights: p = 0.5
    assert head.prior_loss(y, y) == pytest.approx(head.loss()(torch.zeros(100, 1), y).item())


def imbalanced(n=1000, seed=0):
    g = np.random.default_rng(seed)
    y = (g.random(n) < 0.05).astype(int)  # 1:19
    x = g.normal(size=(n, 4)) + y[:, None] * 1.5
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["y"] = np.where(y == 1, "rare", "common")
    return frame


def test_imbalanced_run_for_balanced_accuracy_uses_class_weights_and_finds_the_minority(tmp_path):
    frame = imbalanced()
    # the MLP: at TabM's faster rate the weighted validation loss of these 300 rows turns up after epoch 5
    # and C8 says so (rightly; early stopping keeps epoch 5): this test is about the weights
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=30, metric="balanced_accuracy"),
                      model_config=ModelConfig(model="mlp"))
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["head"].startswith("weights: --metric balanced_accuracy weighs every class alike; imbalance")
    assert {v.status for v in run.verdicts} <= {"pass", "skipped"} and {"C1", "C2"} <= {v.id for v in run.verdicts}
    test_rows = json.loads((run.run_dir / "splits.json").read_text())["test"]
    from nnrecipe import predict_table

    preds, _ = predict_table(run.run_dir, frame.loc[test_rows])
    truth = frame.loc[test_rows, "y"].to_numpy()
    recall = np.mean(preds["prediction"].to_numpy()[truth == "rare"] == "rare")
    assert recall >= 0.6  # an unweighted model collapses to 'common' here


def test_neutral_rows_stay_out_of_training_and_are_prelabelled_for_review(tmp_path):
    g = np.random.default_rng(0)
    x = g.normal(size=400)
    frame = pd.DataFrame({"x": x, "y": np.where(x > 0, "pos", "neg")})
    frame.loc[[3, 50, 77], "y"] = "unsure"
    frame.loc[3, "x"], frame.loc[50, "x"], frame.loc[77, "x"] = 3.0, -3.0, 0.01
    run = train_table(frame, "y", out=tmp_path, data_config=DataConfig(neutral_label="unsure"),
                      train_config=TrainConfig(epochs=40))
    assert json.loads((run.run_dir / "model.json").read_text())["classes"] == ["neg", "pos"]
    splits = json.loads((run.run_dir / "splits.json").read_text())
    assert not {3, 50, 77} & set(sum(splits.values(), []))
    review = pd.read_csv(run.run_dir / "review.csv")
    assert list(review.columns) == ["row", "prediction", "confidence", "p_neg", "p_pos"]
    assert review["confidence"].is_monotonic_increasing  # least sure first
    by_row = review.set_index("row")
    assert by_row.loc[3, "prediction"] == "pos" and by_row.loc[50, "prediction"] == "neg"
    assert by_row.loc[3, "confidence"] > 0.9 and by_row.loc[77, "confidence"] < by_row.loc[3, "confidence"]


def test_heavy_tailed_regression_target_gets_huber(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    g = np.random.default_rng(0)
    x = g.normal(size=600)
    y = 2 * x + g.normal(0, 0.1, 600)
    y[:12] += 200  # 2% of the rows are wild
    z = torch.tensor((y - y.mean()) / y.std())
    assert heavy_tailed(z) and not heavy_tailed(torch.randn(100_000))
    quick = {"checks": (), "audit": False, "report": False}  # the loss's choice is under test
    run = train_table(pd.DataFrame({"x": x, "y": y}), "y", out=tmp_path, train_config=TrainConfig(epochs=5), **quick)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["loss"] == "HuberLoss" and config["head"] == "regression loss huber"
    forced = train_table(pd.DataFrame({"x": x, "y": y}), "y", out=tmp_path, model_config=ModelConfig(loss="mae"),
                         train_config=TrainConfig(epochs=1), **quick)
    assert json.loads((forced.run_dir / "config.json").read_text())["loss"] == "L1Loss"


def test_a_refit_weighs_the_classes_as_its_study_did(tmp_path):
    """R2: the refit stops on no metric, but retrains a trial that followed --metric balanced_accuracy."""
    run = train_table(imbalanced(), "y", out=tmp_path, train_config=TrainConfig(epochs=2),
                      model_config=ModelConfig(model="mlp"), checks=(), audit=False, report=False,
                      refit={"epochs": 2, "metric": "balanced_accuracy"})
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["head"].startswith("weights: --metric balanced_accuracy")
    assert config["optimises"]["metric"] == "balanced_accuracy"
