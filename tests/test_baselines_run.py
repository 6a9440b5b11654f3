"""Issue 18: D6 rebalancing follows the metric the run optimises; every run scores simple models (the majority
class or the mean, a linear model, HistGradientBoosting) on its own split, and C4 after training warns when
one of them beats the network on the test rows by more than their noise (checks/simple_models.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnrecipe.checks.simple_models import SimpleModels, leads
from nnrecipe.config import DataConfig, ModelConfig, TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.recipes.tabular import TableRecipe
from nnrecipe.tasks import create_task

QUICK = {"checks": (), "audit": False, "report": False}  # the pipeline's training, test and record only
CLASS_METRICS = {"loss", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"}


def read_json(path: Path):
    return json.loads(path.read_text())


def imbalanced(n: int = 450, seed: int = 0) -> pd.DataFrame:
    """8:1 binary: 'rare' where a noisy linear score is high."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 4))
    score = x[:, 0] + 0.5 * x[:, 1] + 0.3 * g.normal(size=n)
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["y"] = np.where(score > np.quantile(score, 8 / 9), "rare", "common")
    return frame


def linear_table(task: str, n: int = 400, seed: int = 0) -> pd.DataFrame:
    """y a linear function of 30 noisy features: a linear model is near the best there is."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(n, 30))
    signal = x @ g.normal(size=30) + 0.5 * g.normal(size=n)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(30)])
    frame["y"] = signal if task == "regression" else np.where(signal > 0, "pos", "neg")
    return frame


# ---------------------------------------------------------------- D6 follows the metric


@pytest.mark.parametrize("metric, weighted", [(None, False), ("accuracy", False), ("log_loss", False),
                                              ("balanced_accuracy", True), ("macro_f1", True)])
def test_auto_balance_follows_the_metric(metric, weighted):
    prepared = TableRecipe().prepare(imbalanced(), DataConfig(target="y"), ModelConfig(), TrainConfig(metric=metric))
    assert (prepared.task.class_weights is not None) == weighted
    assert prepared.balance == ("weights" if weighted else "none")
    pos_weight = prepared.task.loss().pos_weight
    assert (pos_weight is not None and pos_weight.item() > 7) == weighted  # 'rare' is class 1, 1 in 9 rows
    said = f"--metric {metric}" if metric else "--metric accuracy (the default)"
    assert prepared.head.startswith(f"{'weights' if weighted else 'none'}: {said} ")


def test_an_explicit_balance_wins_over_the_metric():
    prepared = TableRecipe().prepare(imbalanced(), DataConfig(target="y", balance="weights"), ModelConfig(),
                                     TrainConfig(metric="accuracy"))
    assert prepared.task.class_weights is not None and prepared.head.startswith("weights: --balance weights")


@pytest.fixture(scope="module")
def balanced_run(tmp_path_factory):
    """A short run on the 8:1 table that optimises balanced accuracy."""
    out = tmp_path_factory.mktemp("balanced")
    return train_table(imbalanced(), "y", out=out, train_config=TrainConfig(epochs=3, metric="balanced_accuracy"),
                       **QUICK)


def test_a_run_for_balanced_accuracy_trains_with_class_weights_and_says_so(balanced_run, tmp_path):
    config = read_json(balanced_run.run_dir / "config.json")
    assert config["head"] == ("weights: --metric balanced_accuracy weighs every class alike; imbalance 8.0:1 >= 3:1")
    assert config["optimises"] == {
        "metric": "balanced_accuracy",
        "why": "--metric balanced_accuracy: early stopping and the best epoch follow val_balanced_accuracy; class "
               "balance weights: --metric balanced_accuracy weighs every class alike; imbalance 8.0:1 >= 3:1"}
    summary = (balanced_run.run_dir / "summary.txt").read_text()
    assert "\noptimises balanced_accuracy: --metric balanced_accuracy: early stopping" in summary
    plain = train_table(imbalanced(), "y", out=tmp_path, train_config=TrainConfig(epochs=3, metric="accuracy"), **QUICK)
    assert read_json(plain.run_dir / "config.json")["head"] == (
        "none: --metric accuracy is judged on the rows as they come; imbalance 8.0:1")


# ---------------------------------------------------------------- the baselines in every run


def test_results_hold_the_three_baselines_with_the_test_metrics(balanced_run):
    results = read_json(balanced_run.run_dir / "results.json")
    baselines = results["baselines"]
    assert list(baselines["models"]) == ["majority", "logistic_regression", "hist_gradient_boosting"]
    assert set(results["test"]) == CLASS_METRICS
    for scores in baselines["models"].values():
        assert set(scores) == set(results["test"])
    assert baselines["models"]["majority"]["accuracy"] == pytest.approx(8 / 9, abs=0.03)
    assert baselines["models"]["majority"]["balanced_accuracy"] == 0.5
    rows = results["rows"]
    assert baselines["fit_on"] == "training and validation" and baselines["rows"] == rows["train"] + rows["val"]
    assert set(baselines["seconds"]) == {"majority", "logistic_regression", "hist_gradient_boosting", "total"}
    summary = (balanced_run.run_dir / "summary.txt").read_text().splitlines()
    line = next(s for s in summary if s.startswith("baselines "))
    assert line.startswith("baselines accuracy / balanced_accuracy on the test rows: network ")
    assert "; majority " in line and ", LogisticRegression " in line and ", HistGradientBoosting " in line
    assert summary.index(line) == 1 + next(i for i, s in enumerate(summary) if s.startswith("test     "))
    recall = next(s for s in summary if s.startswith("recall   "))
    report = results["test_report"]
    assert recall == "recall   per class on the test rows: " + ", ".join(
        f"'{c}' {r:.3f} of {n}" for c, r, n in zip(report["classes"], report["recall"], report["support"]))


# ---------------------------------------------------------------- C4 after training


@pytest.mark.parametrize("task, best, said", [
    ("binary", "logistic_regression", "LogisticRegression scores "),
    ("regression", "ridge", "Ridge scores RMSE "),
])
def test_c4_warns_when_a_linear_model_beats_a_network_made_weak(tmp_path, task, best, said):
    # one epoch at a rate of 1e-6: the network stays at its prior (M6); the linear model is near the truth
    run = train_table(linear_table(task), "y", out=tmp_path, train_config=TrainConfig(epochs=1, lr=1e-6), **QUICK)
    v = run.verdicts[-1]
    assert (v.id, v.name, v.status, v.fault) == ("C4", "simple baselines (test)", "warn", "simpler-model-wins")
    assert v.evidence["best"] == best and v.summary.startswith(said)
    assert v.evidence["leads"][best] > v.evidence["two_se"][best] > 0
    assert v.fix.startswith(f"use {said.split()[0]}, or find why the network falls short of a linear model")
    assert read_json(run.run_dir / "checks.json")[-1]["id"] == "C4"
    assert f"[WARN] C4 simple baselines (test): {said}" in (run.run_dir / "summary.txt").read_text()


# the default run on breast cancer (C4 quiet, the report's baselines and recall) is tests/test_recipe.py's: it trains
# that run once for both


# ---------------------------------------------------------------- the noise rule on scripted outputs


def scripted(task, outputs: dict[str, torch.Tensor]) -> SimpleModels:
    return SimpleModels(task, outputs=outputs)


def test_the_accuracy_noise_is_mcnemars_paired_standard_error():
    task = create_task("binary", n_classes=2)
    y = torch.ones(100, 1)
    net = torch.full((100, 1), 1.0)
    net[:20] = -1.0  # the network misses rows 0-19
    model = torch.full((100, 1), 1.0)
    model[15:20] = -1.0  # the model misses rows 15-19 and 90-92: b = 15 rows only it gets right, c = 3
    model[90:93] = -1.0
    lead, = leads(task, "accuracy", net, y, scripted(task, {"linear": model}))
    b, c, n = 15, 3, 100
    assert (lead.model, lead.network) == (pytest.approx(0.92), pytest.approx(0.80))
    assert lead.lead == pytest.approx((b - c) / n)
    assert lead.se == pytest.approx(math.sqrt(b + c - (b - c) ** 2 / n) / n)
    assert lead.beats  # 0.12 > 2 x 0.041 and > one row (0.01)
    same, = leads(task, "accuracy", net, y, scripted(task, {"same": net.clone()}))
    assert (same.lead, same.se, same.beats) == (0.0, 0.0, False)


def test_one_row_alone_never_beats_the_network():
    # b = 1, c = 0: the lead is one row (1/n) and 2 se = 2 sqrt(1 - 1/n) / n is above it
    task = create_task("binary", n_classes=2)
    y = torch.ones(10, 1)
    net = torch.ones(10, 1)
    net[0] = -1.0
    lead, = leads(task, "accuracy", net, y, scripted(task, {"m": torch.ones(10, 1)}))
    assert (lead.lead, lead.one_row) == (pytest.approx(0.1), pytest.approx(0.1))
    assert lead.se == pytest.approx(math.sqrt(0.9) / 10) and not lead.beats


def test_balanced_accuracy_weighs_each_class_and_adds_their_errors():
    task = create_task("multiclass", n_classes=2)
    y = torch.tensor([0] * 80 + [1] * 20)
    net = torch.zeros(100, 2)
    net[:, 0] = 1.0  # the majority for every row: balanced accuracy 0.5
    model = net.clone()
    model[80:90] = torch.tensor([0.0, 1.0])  # half the minority right as well
    lead, = leads(task, "balanced_accuracy", net, y, scripted(task, {"m": model}))
    assert (lead.network, lead.model, lead.lead) == (pytest.approx(0.5), pytest.approx(0.75), pytest.approx(0.25))
    # only the minority's rows differ: d is 0/1 with mean 1/2 over 20 rows, weighted 1 / (2 x 20)
    assert lead.se == pytest.approx(math.sqrt(20 * 0.25) / 40)
    assert lead.one_row == pytest.approx(1 / 40)


def test_the_regression_noise_is_the_paired_squared_errors_standard_error():
    task = create_task("regression", target_scale={"mean": 0.0, "std": 2.0})
    g = torch.Generator().manual_seed(0)
    y = torch.randn(200, 1, generator=g)
    net, model = y + torch.randn(200, 1, generator=g), y + 0.1 * torch.randn(200, 1, generator=g)
    lead, = leads(task, "rmse", net, y, scripted(task, {"ridge": model}))
    d = ((net - y) ** 2 - (model - y) ** 2).view(-1).double() * 4  # in the target's units squared
    assert lead.unit == 4 and lead.lead * lead.unit == pytest.approx(float(d.mean()), rel=1e-5)
    assert lead.se * lead.unit == pytest.approx(float(d.std(correction=0)) / math.sqrt(200), rel=1e-5)
    assert lead.network == pytest.approx(2 * float(((net - y) ** 2).mean().sqrt()), rel=1e-5) and lead.beats
