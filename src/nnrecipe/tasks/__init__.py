"""Tasks by name (M1, M3, M6): each owns its loss, output activation, output bias from the priors, prior
loss (C2), metrics and how raw outputs become predictions."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import kinds  # noqa: F401  (registers the tasks)
from .base import Task, create_task, list_tasks, register_task
from .metrics import METRICS, BoundMetric, bind, classification_report, get_metric, list_metrics

TASK_NAMES = ("binary", "multiclass", "multilabel", "regression")  # the tasks a table's target can have


def infer_task(loss_fn: Any, y: torch.Tensor | None) -> str:
    """The task of a caller's setup: from the loss when it says (CrossEntropyLoss, NLLLoss: classes; BCE*:
    binary or multi-label; MSE, L1, Huber: regression), else from the targets (integers: classes)."""
    if isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss):
        return "multiclass"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss | nn.BCELoss):
        return "multilabel" if y is not None and y.ndim == 2 and y.shape[1] > 1 else "binary"
    if isinstance(loss_fn, nn.MSELoss | nn.L1Loss | nn.HuberLoss | nn.SmoothL1Loss):
        return "regression"
    if y is None:
        return "regression"
    return "multiclass" if not torch.is_floating_point(y) else "regression"


__all__ = ["METRICS", "TASK_NAMES", "BoundMetric", "Task", "bind", "classification_report", "create_task",
           "get_metric", "infer_task", "list_metrics", "list_tasks", "register_task"]
