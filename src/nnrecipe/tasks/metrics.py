"""Metrics by name, on raw outputs (logits) and loss-shaped targets. The cheap ones that are a mean over
rows (accuracy, mae, log loss; rmse as the Trainer has always averaged it per batch) are computed in torch
and may be logged for the training pass batch by batch; the others need every row at once and come
from scikit-learn (balanced accuracy, macro F1, ROC AUC, R2), on validation and test rows."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, did_you_mean
from .base import Task

CLASSES = ("binary", "multiclass", "multilabel")
VALUES = ("regression", "reconstruction")


def _accuracy(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    if task.name == "multiclass":
        return float((out.argmax(-1) == y).float().mean())
    return float(((out > 0).float() == y).float().mean())  # binary and multilabel (the share of labels right)


def _rmse(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((out - y) ** 2))) * task.target_scale["std"]


def _mae(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.mean((out - y).abs())) * task.target_scale["std"]


def _n_classes(task: Task, out: torch.Tensor) -> int:
    """The classes of a multiclass task: as created, or the outputs' width (a task inferred from a loss)."""
    return task.n_classes or (out.shape[-1] if out.ndim > 1 else 2)


def _codes(task: Task, out: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class codes, or 0/1 matrices for multi-label."""
    return y.reshape(-1).long().numpy() if task.name != "multilabel" else y.long().numpy(), task.decide(out).numpy()


def _balanced_accuracy(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(*_codes(task, out, y)))


def _macro_f1(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    from sklearn.metrics import f1_score

    true, pred = _codes(task, out, y)
    labels = None if task.name == "multilabel" else list(range(max(_n_classes(task, out), 2)))
    return float(f1_score(true, pred, labels=labels, average="macro", zero_division=0))


def _roc_auc(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    """Binary; one-vs-rest macro average for multiclass (Hand & Till's pairwise is the other choice) and
    multi-label. NaN when a class has no row (the area is undefined)."""
    from sklearn.metrics import roc_auc_score

    p = task.predict(out.float()).numpy()
    true = y.reshape(-1).long().numpy() if task.name != "multilabel" else y.long().numpy()
    try:
        if task.name == "multiclass":
            n = _n_classes(task, out)
            if len(np.unique(true)) < n:
                return float("nan")
            return float(roc_auc_score(true, p, multi_class="ovr", labels=list(range(n))))
        return float(roc_auc_score(true, p, average="macro"))
    except ValueError:  # one class only in these rows
        return float("nan")


def _log_loss(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    """The mean cross-entropy of the true labels, unweighted (the training loss may carry class weights)."""
    out = out.float()
    if task.name == "multiclass":
        return float(torch.nn.functional.cross_entropy(out, y.reshape(-1).long()))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(y.shape), y.float()))


def _r2(task: Task, out: torch.Tensor, y: torch.Tensor) -> float:
    from sklearn.metrics import r2_score

    if len(y) < 2:
        return float("nan")
    return float(r2_score(y.reshape(-1).double().numpy(), out.reshape(-1).double().numpy()))


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Task, torch.Tensor, torch.Tensor], float]
    tasks: tuple[str, ...]
    batchable: bool  # a mean over rows: a training epoch may average it over its batches


METRICS = {m.name: m for m in (
    Metric("accuracy", _accuracy, CLASSES, True),
    Metric("balanced_accuracy", _balanced_accuracy, ("binary", "multiclass"), False),
    Metric("macro_f1", _macro_f1, CLASSES, False),
    Metric("roc_auc", _roc_auc, CLASSES, False),
    Metric("log_loss", _log_loss, CLASSES, True),
    Metric("rmse", _rmse, VALUES, True),
    Metric("mae", _mae, VALUES, True),
    Metric("r2", _r2, ("regression",), False),
)}
ALIASES = {"acc": "accuracy", "f1": "macro_f1", "auc": "roc_auc", "balanced_acc": "balanced_accuracy",
           "cross_entropy": "log_loss"}


def list_metrics(task: str | None = None) -> list[str]:
    """The metric names (for `task` when given)."""
    return [n for n, m in METRICS.items() if task is None or task in m.tasks]


def get_metric(name: str, task: str) -> Metric:
    """The metric called `name` (or an alias: f1, auc, acc), checked against the task."""
    metric = METRICS.get(ALIASES.get(name, name))
    if metric is None:
        raise ConfigError(f"metric {name!r} is not known{did_you_mean(name, [*METRICS, *ALIASES])}; "
                          f"choose one of: {', '.join(list_metrics(task))}")
    if task not in metric.tasks:
        raise ConfigError(f"metric {name!r} does not apply to a {task} task; choose one of: "
                          f"{', '.join(list_metrics(task))}")
    return metric


class BoundMetric:
    """A metric bound to a task: called with (outputs, target) as the Trainer's metrics are."""

    def __init__(self, metric: Metric, task: Task):
        self.metric, self.task = metric, task
        self.batchable = metric.batchable

    def __call__(self, outputs: torch.Tensor, target: torch.Tensor) -> float:
        if not self.batchable:  # scikit-learn's: numpy arrays, from tensors on the CPU
            outputs, target = outputs.detach().cpu(), target.detach().cpu()
        with warnings.catch_warnings():
            # scikit-learn's words on rows that lack a class (a time or group split; 'y_pred contains classes not
            # in y_true', UndefinedMetricWarning): printed raw on the screen, several an epoch; the value it returns
            # is the documented one, and the run names the class no split holds itself
            warnings.filterwarnings("ignore", category=UserWarning, module=r"sklearn\.")
            return self.metric.fn(self.task, outputs, target)

    def __repr__(self) -> str:
        return f"metric {self.metric.name} ({self.task.name})"


def bind(task: Task, names: Sequence[str]) -> dict[str, BoundMetric]:
    """{name: fn(outputs, target)} for each metric name (kept as given: 'f1' logs as val_f1)."""
    return {name: BoundMetric(get_metric(name, task.name), task) for name in names}


def classification_report(task: Task, outputs: torch.Tensor, y: torch.Tensor,
                          classes: Sequence[str]) -> dict[str, Any]:
    """Per class (per label for multi-label): precision, recall, F1 and support; and for one label per row
    the confusion matrix (rows: the true class, columns: the predicted one), as scikit-learn computes them."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    true, pred = _codes(task, outputs.detach().cpu(), y.detach().cpu())
    labels = None if task.name == "multilabel" else list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    report: dict[str, Any] = {"classes": list(classes), "precision": [round(float(v), 6) for v in precision],
                              "recall": [round(float(v), 6) for v in recall], "f1": [round(float(v), 6) for v in f1],
                              "support": [int(v) for v in support]}
    if task.name != "multilabel":
        report["confusion"] = confusion_matrix(true, pred, labels=labels).tolist()
    return report
