"""M1/M3/M6: what the task decides: output units and activation, the loss, the output bias at init,
the loss a model should start at (C2), and how raw outputs become predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

TASK_TYPES = ("binary", "multiclass", "multilabel", "regression")


@dataclass(frozen=True)
class Head:
    """Targets as the loss wants them: binary (N, 1) float 0/1; multiclass (N,) int64 class indices;
    multilabel (N, L) float 0/1, one column per label; regression (N, 1) float, standardized by the
    caller (predictions are unscaled afterwards)."""

    task: str
    n_classes: int = 0  # classification only
    class_weights: tuple[float, ...] | None = None  # D6: per-class loss weights
    regression_loss: str = "mse"  # M3: mse | huber | mae

    @property
    def out_features(self) -> int:
        return self.n_classes if self.task in ("multiclass", "multilabel") else 1

    @property
    def activation(self) -> str:
        """The output activation, applied at prediction time; the loss takes raw outputs (logits) so
        that log-sum-exp stays stable (PyTorch's CrossEntropyLoss and BCEWithLogitsLoss)."""
        return {"binary": "sigmoid", "multiclass": "softmax", "multilabel": "sigmoid", "regression": "none"}[self.task]

    def loss(self) -> nn.Module:
        w = None if self.class_weights is None else torch.tensor(self.class_weights, dtype=torch.float32)
        if self.task == "multiclass":
            return nn.CrossEntropyLoss(weight=w)
        if self.task == "binary":
            return nn.BCEWithLogitsLoss(pos_weight=None if w is None else w[1:] / w[0])
        if self.task == "multilabel":  # M1 (seed 000): an independent sigmoid per label
            return nn.BCEWithLogitsLoss()
        # M3 (seed 002): MSE, or a loss that an outlier cannot dominate; Huber's delta of 1 is one
        # standard deviation of the standardized target
        return {"mse": nn.MSELoss, "huber": nn.HuberLoss, "mae": nn.L1Loss}[self.regression_loss]()

    def output_bias(self, y: torch.Tensor) -> torch.Tensor:
        """M6 (seeds 000, 003): start at the prior. Binary: log(pos/neg); multiclass: the classes'
        log-priors; regression: the target's mean."""
        if self.task == "regression":
            return y.float().mean().reshape(1)
        if self.task == "multilabel":  # each label's log-odds
            p = y.float().mean(0).clamp(1e-6, 1 - 1e-6)
            return torch.log(p / (1 - p))
        # with class weights the best constant prediction is the weighted prior: start there
        w = torch.ones(2 if self.task == "binary" else self.n_classes) if self.class_weights is None \
            else torch.tensor(self.class_weights, dtype=torch.float32)
        if self.task == "binary":
            pos, neg = float(y.sum()) * w[1], float(len(y) - y.sum()) * w[0]
            p = (pos / (pos + neg)).clamp(1e-6, 1 - 1e-6)
            return torch.log(p / (1 - p)).reshape(1)
        counts = (torch.bincount(y, minlength=self.n_classes).float() * w).clamp_min(1e-6)
        return torch.log(counts / counts.sum())

    def prior_loss(self, y_fit: torch.Tensor, y_eval: torch.Tensor) -> float:
        """C2's expected loss at init: the loss on y_eval of a model that predicts y_fit's prior (or
        mean) for every row. For balanced classes it is -log(1/C); binary, the prior entropy; MSE, var(y)."""
        bias = self.output_bias(y_fit)
        return float(self.loss()(bias.expand(len(y_eval), bias.numel()), y_eval))

    def uniform_loss(self) -> float:
        """The loss of a model that gives every class the same probability: ln C (ln 2 for binary)."""
        return math.log(max(self.n_classes, 2))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Probabilities for classification ((N,) for binary: P(class 1); (N, C) for multiclass);
        values for regression, still standardized."""
        if self.task == "binary":
            return torch.sigmoid(outputs.squeeze(-1))
        if self.task == "multilabel":
            return torch.sigmoid(outputs)
        if self.task == "multiclass":
            return torch.softmax(outputs, dim=-1)
        return outputs.squeeze(-1)

    def metrics(self, y_scale: float = 1.0) -> dict[str, object]:
        """Metrics on raw outputs and loss-shaped targets: accuracy for classes; RMSE in the target's units."""
        if self.task in ("binary", "multilabel"):  # multilabel: the share of labels right (Hamming)
            return {"accuracy": lambda out, y: float(((out > 0).float() == y).float().mean())}
        if self.task == "multiclass":
            return {"accuracy": lambda out, y: float((out.argmax(-1) == y).float().mean())}
        return {"rmse": lambda out, y: float(torch.sqrt(torch.mean((out - y) ** 2))) * y_scale}
