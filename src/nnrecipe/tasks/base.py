"""What a task decides (M1, M3, M6): the output units and activation, the loss, the output bias at init,
the loss a model should start at (C2), the metrics, and how raw outputs become predictions. Each task
is a small class registered by name; `create_task(name, ...)` is the one way to make one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean

_TASKS: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: make a Task subclass creatable by `name` (timm's register_model pattern)."""
    def add(cls: type[Task]) -> type[Task]:
        cls.name = name
        _TASKS[name] = cls
        return cls
    return add


def create_task(name: str | Task, **options: Any) -> Task:
    """The task called `name` (a Task is returned as it is). `options`: n_classes, class_weights (D6),
    loss (regression: mse | huber | mae), target_scale ({"mean", "std"} of a standardized target),
    n_features (reconstruction); a task ignores the options that do not concern it."""
    if isinstance(name, Task):
        return name
    if name not in _TASKS:
        raise ConfigError(f"task={name!r} is not a task{did_you_mean(name, _TASKS)}; "
                          f"choose one of: {', '.join(_TASKS)}")
    return _TASKS[name](**options)


def list_tasks() -> list[str]:
    return list(_TASKS)


class Task:
    """Targets as the loss wants them (each task's docstring says the shape), raw model outputs (logits)
    in, so that log-sum-exp stays stable (PyTorch's CrossEntropyLoss and BCEWithLogitsLoss)."""

    name = "task"
    activation = "none"  # the output activation, applied at prediction time
    headline = "loss"  # the metric a run of this task is judged by
    epoch_metrics: tuple[str, ...] = ()  # logged every epoch (cheap, a mean over rows)
    test_metrics: tuple[str, ...] = ()  # computed on the test rows of every run

    def __init__(self, n_classes: int = 0, class_weights: Sequence[float] | None = None, loss: str | None = None,
                 target_scale: dict[str, float] | None = None, n_features: int = 0):
        self.n_classes = int(n_classes)
        self.class_weights = tuple(class_weights) if class_weights is not None else None
        self.loss_name = loss
        self.target_scale = dict(target_scale or {"mean": 0.0, "std": 1.0})
        self.n_features = int(n_features)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_classes={self.n_classes})"

    @property
    def out_features(self) -> int:
        return 1

    def loss(self) -> nn.Module:
        raise NotImplementedError

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        """M6 (the article "Tips and tricks for Neural Networks"; Karpathy's recipe, "init well"): the
        output bias that makes the untrained model predict the training prior."""
        raise NotImplementedError

    def prior_loss(self, y_fit: torch.Tensor, y_eval: torch.Tensor) -> float:
        """C2's expected loss at init: the loss on y_eval of a model that predicts y_fit's prior (or mean)
        for every row. For balanced classes it is -log(1/C); binary, the prior entropy; MSE, var(y)."""
        bias = self.output_bias(y_fit)
        outputs = bias.expand(len(y_eval), bias.numel())
        if y_eval.ndim == 1 and bias.numel() == 1:  # one output and (N,) targets: the model's outputs are (N,) too
            outputs = outputs[:, 0]
        return float(self.loss()(outputs, y_eval))

    def uniform_loss(self) -> float:
        """The loss of a model that gives every class the same probability: ln C (ln 2 for binary)."""
        return math.log(max(self.n_classes, 2))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Probabilities for classes ((N,) for binary: P(class 1); (N, C) multiclass; (N, L) multilabel);
        values for regression, still standardized."""
        return outputs

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        """The decision from raw outputs: class codes (N,), 0/1 per label (N, L), or values."""
        return self.predict(outputs)

    def unscale(self, values: Any) -> Any:
        """Standardized regression values (a tensor or an array) back in the target's units."""
        return values * self.target_scale["std"] + self.target_scale["mean"]

    def metrics(self, names: Sequence[str] | None = None) -> dict[str, Callable[[torch.Tensor, torch.Tensor], float]]:
        """The metrics `names` (default: the epoch metrics) bound to this task: fn(outputs, target) -> float
        on raw outputs and loss-shaped targets, in the target's units for regression."""
        from .metrics import bind

        return bind(self, self.epoch_metrics if names is None else names)


# M3 (Lavanya Shukla, "How To Design Deep Learning Architecture"): MSE, or a loss that an outlier cannot
# dominate; Huber's delta of 1 is one standard deviation of the standardized target
REGRESSION_LOSSES: dict[str, type[nn.Module]] = {"mse": nn.MSELoss, "huber": nn.HuberLoss, "mae": nn.L1Loss}
