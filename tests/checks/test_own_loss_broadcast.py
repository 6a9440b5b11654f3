"""A regression loss of the user's own on outputs (N, 1) and targets (N,): torch broadcasts them to (N, N)
and the model trains towards the targets' mean without an error. The lint names it; a loss that matches the
shapes itself, or targets already (N, 1), are quiet."""

from __future__ import annotations

import torch
from torch import nn

import nnrecipe


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    return x, x @ torch.randn(5, generator=g) + 0.1 * torch.randn(400, generator=g)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))


def shape_verdicts(loss_fn, y_column: bool = False) -> list:
    x, y = data()
    found = nnrecipe.doctor(model(), (x, y[:, None] if y_column else y), loss_fn=loss_fn, checks=["lint"])
    return [v for v in found if v.name == "target shape"]


def test_a_broadcasting_loss_of_ones_own_is_named_with_the_fix():
    (v,) = shape_verdicts(lambda out, y: ((out - y) ** 2).mean())
    assert v.status == "fail" and "the loss broadcasts them" in v.summary
    assert v.evidence["output_shape"] == [400, 1] and v.evidence["y_shape"] == [400]
    assert "y[:, None]" in v.fix


def test_a_loss_that_matches_the_shapes_itself_is_quiet():
    assert shape_verdicts(lambda out, y: ((out.squeeze(1) - y) ** 2).mean()) == []
    assert shape_verdicts(lambda out, y: ((out - y) ** 2).mean(), y_column=True) == []


def test_a_loss_that_reads_the_outputs_shape_itself_is_quiet():
    # a sum over the outputs' last axis: another value on the reshaped outputs, and nothing broadcast
    assert shape_verdicts(lambda out, y: ((out.sum(-1) - y) ** 2).mean()) == []
