"""M1/M3/M6: tasks by name (their units, activation, loss, output bias at the prior, predictions) and metrics by
name, equal to scikit-learn's on the same predictions; the Trainer's metrics by name, logged per epoch, and
`TrainConfig.metric` as the monitor that the best epoch and early stopping follow."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from nnrecipe import ConfigError, TrainConfig, Trainer
from nnrecipe.tasks import classification_report, create_task, get_metric, infer_task, list_metrics, list_tasks
from nnrecipe.testing import blobs

G = torch.Generator().manual_seed(0)
MC_Y = torch.tensor([0, 1, 2, 1] * 10)
MC_OUT = torch.randn(40, 3, generator=G) * 2 + 2 * nn.functional.one_hot(MC_Y, 3)  # hand-made logits, some right
BIN_OUT = torch.randn(40, 1, generator=G) * 2
BIN_Y = (torch.arange(40) % 3 == 0).float().reshape(-1, 1)
ML_OUT = torch.randn(40, 4, generator=G) * 2
ML_Y = (torch.rand(40, 4, generator=G) < 0.4).float()


# ---------------------------------------------------------------- tasks
def test_the_tasks_by_name():
    assert list_tasks() == ["binary", "multiclass", "multilabel", "regression", "reconstruction"]
    for name in list_tasks():
        assert create_task(name, n_classes=3, n_features=5).name == name
    task = create_task("binary")
    assert create_task(task) is task


def test_an_unknown_task_is_refused_with_a_did_you_mean():
    with pytest.raises(ConfigError) as e:
        create_task("multiclas")
    assert str(e.value) == ("task='multiclas' is not a task (did you mean 'multiclass'?); choose one of: binary, "
                            "multiclass, multilabel, regression, reconstruction")


@pytest.mark.parametrize("name, units, activation, loss", [
    ("binary", 1, "sigmoid", nn.BCEWithLogitsLoss),
    ("multiclass", 3, "softmax", nn.CrossEntropyLoss),
    ("multilabel", 3, "sigmoid", nn.BCEWithLogitsLoss),
    ("regression", 1, "none", nn.MSELoss),
    ("reconstruction", 5, "none", nn.MSELoss),
])
def test_units_activation_and_loss(name, units, activation, loss):
    task = create_task(name, n_classes=3, n_features=5)
    assert (task.out_features, task.activation, type(task.loss())) == (units, activation, loss)


def test_regression_losses_and_reconstructions_width():
    assert type(create_task("regression", loss="huber").loss()) is nn.HuberLoss
    assert type(create_task("regression", loss="mae").loss()) is nn.L1Loss
    with pytest.raises(ConfigError) as e:
        _ = create_task("reconstruction").out_features
    assert str(e.value) == "task 'reconstruction' needs n_features=... (the width of the input it rebuilds)"


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_the_output_bias_starts_at_the_prior_loss():
    y = torch.tensor([1.0, 0.0, 0.0, 0.0] * 5).reshape(-1, 1)  # P(1) = 1/4
    binary = create_task("binary")
    assert binary.output_bias(y).item() == pytest.approx(math.log(1 / 3), rel=1e-6)
    assert binary.prior_loss(y, y) == pytest.approx(entropy(np.array([0.25, 0.75])), rel=1e-5)

    y = torch.tensor([0, 1, 1, 2, 2, 2, 2, 2, 1, 2])  # priors 0.1, 0.3, 0.6
    multiclass = create_task("multiclass", n_classes=3)
    assert torch.softmax(multiclass.output_bias(y), 0).tolist() == pytest.approx([0.1, 0.3, 0.6], rel=1e-5)
    assert multiclass.prior_loss(y, y) == pytest.approx(entropy(np.array([0.1, 0.3, 0.6])), rel=1e-5)

    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # label priors 0.5, 0.25
    multilabel = create_task("multilabel", n_classes=2)
    expected = (entropy(np.array([0.5, 0.5])) + entropy(np.array([0.25, 0.75]))) / 2
    assert multilabel.prior_loss(y, y) == pytest.approx(expected, rel=1e-5)

    y = torch.tensor([[1.0], [2.0], [3.0], [6.0]])
    regression = create_task("regression")
    assert regression.output_bias(y).tolist() == [3.0]
    assert regression.prior_loss(y, y) == pytest.approx(float(np.var([1, 2, 3, 6])), rel=1e-6)


def test_predict_and_decide_shapes():
    binary = create_task("binary")
    assert binary.predict(BIN_OUT).shape == (40,) and binary.decide(BIN_OUT).tolist() == (BIN_OUT[:, 0] > 0).long().tolist()
    multiclass = create_task("multiclass", n_classes=3)
    probs = multiclass.predict(MC_OUT)
    assert probs.shape == (40, 3) and torch.allclose(probs.sum(1), torch.ones(40))
    assert multiclass.decide(MC_OUT).shape == (40,) and multiclass.decide(MC_OUT).dtype == torch.int64
    multilabel = create_task("multilabel", n_classes=4)
    assert multilabel.predict(ML_OUT).shape == (40, 4) and multilabel.decide(ML_OUT).shape == (40, 4)
    regression = create_task("regression", target_scale={"mean": 10.0, "std": 2.0})
    assert regression.predict(torch.ones(5, 1)).shape == (5,)
    assert regression.unscale(torch.ones(3)).tolist() == [12.0, 12.0, 12.0]


# ---------------------------------------------------------------- metrics by name, against scikit-learn
def test_multiclass_metrics_equal_sklearns():
    task = create_task("multiclass", n_classes=3)
    fns = task.metrics(["accuracy", "balanced_accuracy", "macro_f1", "f1", "roc_auc", "auc", "log_loss"])
    y, pred, probs = MC_Y.numpy(), MC_OUT.argmax(1).numpy(), torch.softmax(MC_OUT, 1).numpy()
    expected = {"accuracy": skm.accuracy_score(y, pred), "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
                "macro_f1": skm.f1_score(y, pred, average="macro"), "f1": skm.f1_score(y, pred, average="macro"),
                "roc_auc": skm.roc_auc_score(y, probs, multi_class="ovr"),
                "auc": skm.roc_auc_score(y, probs, multi_class="ovr"), "log_loss": skm.log_loss(y, probs)}
    got = {name: fn(MC_OUT, MC_Y) for name, fn in fns.items()}
    assert got == pytest.approx(expected, rel=1e-5)
    assert 0.4 < expected["accuracy"] < 0.9  # the logits are neither all right nor all wrong


def test_binary_metrics_equal_sklearns():
    fns = create_task("binary").metrics(["accuracy", "balanced_accuracy", "f1", "auc", "log_loss"])
    y, p = BIN_Y[:, 0].long().numpy(), torch.sigmoid(BIN_OUT[:, 0]).numpy()
    pred = (p > 0.5).astype(int)
    expected = {"accuracy": skm.accuracy_score(y, pred), "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
                "f1": skm.f1_score(y, pred, average="macro"), "auc": skm.roc_auc_score(y, p),
                "log_loss": skm.log_loss(y, p)}
    assert {name: fn(BIN_OUT, BIN_Y) for name, fn in fns.items()} == pytest.approx(expected, rel=1e-5)


def test_multilabel_metrics_equal_sklearns():
    fns = create_task("multilabel", n_classes=4).metrics(["accuracy", "macro_f1", "roc_auc"])
    y, p = ML_Y.long().numpy(), torch.sigmoid(ML_OUT).numpy()
    pred = (p > 0.5).astype(int)
    expected = {"accuracy": float((pred == y).mean()), "macro_f1": skm.f1_score(y, pred, average="macro"),
                "roc_auc": skm.roc_auc_score(y, p, average="macro")}
    assert {name: fn(ML_OUT, ML_Y) for name, fn in fns.items()} == pytest.approx(expected, rel=1e-5)


def test_regression_metrics_are_in_the_targets_units():
    scale = {"mean": 50.0, "std": 8.0}
    out, y = torch.randn(30, 1, generator=G), torch.randn(30, 1, generator=G)
    fns = create_task("regression", target_scale=scale).metrics(["rmse", "mae", "r2"])
    true, pred = (y * 8 + 50).double().numpy().ravel(), (out * 8 + 50).double().numpy().ravel()
    expected = {"rmse": math.sqrt(skm.mean_squared_error(true, pred)), "mae": skm.mean_absolute_error(true, pred),
                "r2": skm.r2_score(true, pred)}
    assert {name: fn(out, y) for name, fn in fns.items()} == pytest.approx(expected, rel=1e-5)


def test_a_metric_that_does_not_apply_is_refused():
    with pytest.raises(ConfigError) as e:
        create_task("binary").metrics(["r2"])
    assert str(e.value) == ("metric 'r2' does not apply to a binary task; choose one of: accuracy, balanced_accuracy, "
                            "macro_f1, roc_auc, log_loss")
    with pytest.raises(ConfigError) as e:
        get_metric("acuracy", "regression")
    assert str(e.value) == "metric 'acuracy' is not known (did you mean 'accuracy'?); choose one of: rmse, mae, r2"
    assert list_metrics("multilabel") == ["accuracy", "macro_f1", "roc_auc", "log_loss"]


def test_classification_report_equals_sklearns():
    task = create_task("multiclass", n_classes=3)
    report = classification_report(task, MC_OUT, MC_Y, ["a", "b", "c"])
    y, pred = MC_Y.numpy(), MC_OUT.argmax(1).numpy()
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    assert report["classes"] == ["a", "b", "c"]
    assert report["precision"] == pytest.approx(precision.tolist(), abs=1e-6)
    assert report["recall"] == pytest.approx(recall.tolist(), abs=1e-6)
    assert report["f1"] == pytest.approx(f1.tolist(), abs=1e-6)
    assert report["support"] == support.tolist() == [10, 20, 10]
    assert report["confusion"] == skm.confusion_matrix(y, pred, labels=[0, 1, 2]).tolist()


# ---------------------------------------------------------------- the Trainer's metrics by name
def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"device": "cpu", "batch_size": 32, "epochs": 3, "patience": None, "lr": 3e-3, **kw})


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def noisy_blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Blobs that overlap: validation accuracy climbs over epochs instead of reaching 1 at once."""
    X, y = blobs(384, 8, 3, seed=0)
    return X + 2.5 * torch.randn(X.shape, generator=torch.Generator().manual_seed(1)), y


def test_the_trainer_logs_metrics_by_name():
    X, y = noisy_blobs()
    assert infer_task(nn.CrossEntropyLoss(), y) == "multiclass"
    t = Trainer(mlp(), nn.CrossEntropyLoss(), (X[:256], y[:256]), (X[256:], y[256:]), config=cfg(restore_best=False),
                metrics=["accuracy", "f1"], train_metrics=True)
    history = t.fit()
    for row in history:
        assert {"val_accuracy", "val_f1", "train_accuracy"} <= set(row) and "train_f1" not in row
    pred = t.predict(X[256:]).argmax(1).numpy()  # the last epoch's weights
    assert history[-1]["val_f1"] == pytest.approx(skm.f1_score(y[256:].numpy(), pred, average="macro"), rel=1e-6)
    assert history[-1]["val_accuracy"] == pytest.approx(skm.accuracy_score(y[256:].numpy(), pred), rel=1e-6)


def test_config_metric_is_the_monitor_and_early_stopping_follows_it():
    X, y = noisy_blobs()
    t = Trainer(mlp(), nn.CrossEntropyLoss(), (X[:256], y[:256]), (X[256:], y[256:]),
                config=cfg(epochs=30, patience=3, metric="balanced_accuracy"))
    assert (t.monitor, t.mode) == ("val_balanced_accuracy", "max")
    [stopper] = t.callbacks
    assert (stopper.monitor, stopper.mode, stopper.patience) == ("val_balanced_accuracy", "max", 3)
    history = t.fit()
    values = [row["val_balanced_accuracy"] for row in history]
    best = values.index(max(values)) + 1  # the first epoch at the highest value
    assert (t.best_epoch, t.best_value) == (best, max(values))
    assert len(history) == best + 3 < 30  # stopped 3 epochs after the best
    assert history[-1]["val_loss"] < history[best - 1]["val_loss"]  # the loss still fell: it did not decide


def test_config_metric_and_monitor_must_agree():
    assert TrainConfig(metric="f1", monitor="val_loss").monitor == "val_loss"
    with pytest.raises(ConfigError, match="^" + re.escape(
            "metric='f1' and monitor='train_loss' disagree: metric sets the monitor (val_f1); give one of them") + "$"):
        TrainConfig(metric="f1", monitor="train_loss")
