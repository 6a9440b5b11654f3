"""C1 on a model frozen by design (a transfer mode's backbone, models/transfer.py: it has `thaw`): a head
that cannot separate a batch on frozen features is a warning naming --transfer; a rate of 0 is still a
failure named as such, not blamed on the backbone."""

from __future__ import annotations

import torch
from torch import nn

from nnrecipe.checks.overfit_batch import check_overfit_batch


class FrozenBase(nn.Module):
    """A backbone frozen by design whose features are one constant: no head can separate the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(4, 8)
        self.head = nn.Linear(8, 2)
        for p in self.base.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            self.base.weight.zero_()

    def thaw(self, epoch: int) -> None:  # the transfer mode's: the base stays frozen
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.base(x))


def _c1(lr: float):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), torch.arange(16) % 2
    torch.manual_seed(0)
    return check_overfit_batch(FrozenBase(), nn.CrossEntropyLoss(), (x,), y,
                               lambda params: torch.optim.Adam(params, lr=lr), seed=0, task="multiclass")


def test_frozen_features_that_cannot_separate_a_batch_warn_with_the_transfer_fix():
    v = _c1(1e-2)
    assert v.status == "warn" and "features do not separate these rows" in v.summary
    assert "--transfer last or full" in v.fix


def test_a_rate_of_zero_on_a_frozen_backbone_still_fails_as_a_rate_of_zero():
    v = _c1(0.0)
    assert v.status == "fail" and v.fault == "lr-too-low" and "features do not separate" not in v.summary
