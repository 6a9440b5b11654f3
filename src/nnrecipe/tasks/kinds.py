"""The tasks nnrecipe knows: binary, multiclass, multilabel, regression, reconstruction (M1, M3, M6)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from .base import REGRESSION_LOSSES, Task, register_task

CLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")


class _Classes(Task):
    activation = "sigmoid"
    headline = "accuracy"
    epoch_metrics = ("accuracy",)
    test_metrics = CLASS_METRICS

    def _weights(self, n: int) -> torch.Tensor:
        return torch.ones(n) if self.class_weights is None else torch.tensor(self.class_weights, dtype=torch.float32)


@register_task("binary")
class Binary(_Classes):
    """Targets (N, 1) float 0/1; one output unit, sigmoid, binary cross-entropy (class 1's weight over
    class 0's as pos_weight, D6)."""

    def loss(self) -> nn.Module:
        w = self._weights(2) if self.class_weights is not None else None
        return nn.BCEWithLogitsLoss(pos_weight=None if w is None else w[1:] / w[0])

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        # log(pos/neg); with class weights the best constant prediction is the weighted prior: start there
        w = self._weights(2)
        pos, neg = float(y.sum()) * w[1], float(len(y) - y.sum()) * w[0]
        p = (pos / (pos + neg)).clamp(1e-6, 1 - 1e-6)
        return torch.log(p / (1 - p)).reshape(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs.squeeze(-1))

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return (outputs.squeeze(-1) > 0).long()  # from the logits, exactly as the accuracy logged in training


@register_task("multiclass")
class Multiclass(_Classes):
    """Targets (N,) int64 class indices; C output units, softmax, cross-entropy (class weights, D6)."""

    activation = "softmax"

    @property
    def out_features(self) -> int:
        return self.n_classes

    def loss(self) -> nn.Module:
        return nn.CrossEntropyLoss(weight=None if self.class_weights is None else self._weights(self.n_classes))

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        counts = (torch.bincount(y, minlength=self.n_classes).float() * self._weights(self.n_classes)).clamp_min(1e-6)
        return torch.log(counts / counts.sum())

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs, dim=-1)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)


@register_task("multilabel")
class Multilabel(_Classes):
    """Targets (N, L) float 0/1, one column per label; M1 (the article "Tips and tricks for Neural
    Networks"): an independent sigmoid per label, binary cross-entropy. Accuracy is the share of labels
    right (Hamming)."""

    test_metrics = ("accuracy", "macro_f1", "roc_auc", "log_loss")

    @property
    def out_features(self) -> int:
        return self.n_classes

    def loss(self) -> nn.Module:
        return nn.BCEWithLogitsLoss()

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:  # each label's log-odds
        p = y.float().mean(0).clamp(1e-6, 1 - 1e-6)
        return torch.log(p / (1 - p))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(outputs)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return (outputs > 0).long()


@register_task("regression")
class Regression(Task):
    """Targets (N, 1) float, standardized by the caller (`target_scale` brings predictions and metrics back
    to the target's units); one unit, no activation; MSE, Huber or MAE (`loss`, M3)."""

    headline = "rmse"
    epoch_metrics = ("rmse",)
    test_metrics = ("rmse", "mae", "r2")

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.loss_name = self.loss_name or "mse"
        check_choice("loss", self.loss_name, REGRESSION_LOSSES)

    def loss(self) -> nn.Module:
        return REGRESSION_LOSSES[self.loss_name]()

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y.float().mean().reshape(1)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.squeeze(-1)


@register_task("reconstruction")
class Reconstruction(Task):
    """An autoencoder's task (M13): the target is the input itself, (N, F) float; F linear outputs, MSE.
    A batch needs no target: steps.Reconstruction trains the outputs toward the inputs."""

    headline = "rmse"
    epoch_metrics = ("rmse",)
    test_metrics = ("rmse", "mae")

    @property
    def out_features(self) -> int:
        if self.n_features < 1:
            raise ConfigError("task 'reconstruction' needs n_features=... (the width of the input it rebuilds)")
        return self.n_features

    def loss(self) -> nn.Module:
        return REGRESSION_LOSSES[self.loss_name or "mse"]()

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y.float().reshape(len(y), -1).mean(0)
