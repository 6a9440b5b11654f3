"""T14 (Karpathy's recipe, for a lack of data: "split the data several times ... use separate data to
train some models. Then we can ensemble them to gain the final prediction"): the members of a
cross-validation ensemble behind one module, so that evaluation, the saved model and `predict` treat it as one network."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .registry import build_model, register_model


@register_model("ensemble")
class Ensemble(nn.Module):
    """The members' predictions averaged: their probabilities for sigmoid and softmax outputs, their
    values for regression. The output stays in the members' raw form (logits, or standardized values),
    so the head's loss, activation and metrics apply unchanged: log of the mean probability for softmax
    (a valid set of logits), log-odds of the mean probability for sigmoid, both by log-sum-exp
    (no probability is rounded to 0 or 1 on the way)."""

    def __init__(self, members: list[Any], activation: str):
        """`members`: modules, or their specs (a saved ensemble built again)."""
        super().__init__()
        members = [build_model(m) if isinstance(m, dict) else m for m in members]
        if activation not in ("sigmoid", "softmax", "none"):
            raise ValueError(f"activation={activation!r}; allowed: sigmoid, softmax, none")
        self.members = nn.ModuleList(members)
        self.activation = activation
        self.spec = {"name": "ensemble", "activation": activation,
                     "members": [m.spec for m in members]}  # type: ignore[attr-defined]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return mean_prediction(torch.stack([m(*inputs) for m in self.members]), self.activation)


def mean_prediction(outs: torch.Tensor, activation: str, dim: int = 0) -> torch.Tensor:
    """The mean prediction of members' raw outputs stacked along `dim`, in the raw form of one output:
    log of the mean probability for softmax (a valid set of logits), log-odds of the mean probability for
    sigmoid, both by log-sum-exp (no probability is rounded to 0 or 1 on the way); the mean value else."""
    log_k = math.log(outs.shape[dim])
    if activation == "softmax":
        return torch.logsumexp(torch.log_softmax(outs, dim=-1), dim=dim) - log_k
    if activation == "sigmoid":
        log_p = torch.logsumexp(nn.functional.logsigmoid(outs), dim=dim) - log_k
        log_q = torch.logsumexp(nn.functional.logsigmoid(-outs), dim=dim) - log_k
        return log_p - log_q
    return outs.mean(dim)
