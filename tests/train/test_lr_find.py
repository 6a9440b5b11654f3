"""T4: the learning-rate range test."""

import pytest
import torch
from torch import nn

from nnrecipe import TrainConfig, Trainer
from nnrecipe.testing import blobs


class Quadratic(nn.Module):
    """loss = L/2 * |w|^2 whatever the input: curvature L, so SGD diverges for lr > 2/L."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.w.expand(len(x), -1)


@pytest.mark.parametrize("L", [2.0, 30.0, 1000.0])
def test_range_test_on_quadratic_suggests_below_two_over_L_and_leaves_model_unchanged(L):
    model = Quadratic()
    loss_fn = lambda out, y: 0.5 * L * (out ** 2).sum(dim=1).mean()  # noqa: E731
    X, y = torch.zeros(64, 1), torch.zeros(64)
    trainer = Trainer(model, loss_fn, (X, y), config=TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1,
                                                                 batch_size=16, patience=None))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = trainer.optimizer.state_dict()
    rng_before = torch.get_rng_state()
    result = trainer.lr_find()
    assert result.suggestion is not None
    assert result.suggestion < 2.0 / L
    assert result.suggestion > 0.05 / L  # and not uselessly small
    assert result.rule.startswith("half the rate")
    assert len(result.lrs) == len(result.losses) == len(result.raw_losses)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert trainer.optimizer.state_dict() == opt_before
    assert torch.equal(torch.get_rng_state(), rng_before)


def test_range_test_stops_when_loss_diverges():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g)
    y = X @ torch.randn(8, 1, generator=g)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    trainer = Trainer(model, nn.MSELoss(), (X, y), config=TrainConfig(optimizer="sgd", momentum=0.0, batch_size=32))
    result = trainer.lr_find(steps=200)
    assert len(result.lrs) < 200 and result.lrs[-1] < 10.0  # stopped on divergence, before the end of the range
    assert result.diverge_lr < result.lrs[-1]
    assert 1e-4 < result.suggestion < 1.0
    assert not result.warnings


def test_flat_curve_warns():
    X, y = blobs(128, 4, 2)
    model = nn.Linear(4, 2)
    for p in model.parameters():
        p.requires_grad_(False)
    model.weight.requires_grad_(True)
    trainer = Trainer(model, nn.CrossEntropyLoss(), (X, y), config=TrainConfig(batch_size=128))  # full batch
    result = trainer.lr_find(start_lr=1e-9, end_lr=1e-7, steps=30)
    assert any("flat" in w for w in result.warnings)


def test_noisy_curve_warns():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(512, 4, generator=g), torch.randn(512, 1, generator=g)  # the target is noise
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    # one row per step: each step's squared error is a chi-square draw, far from the smoothed curve
    trainer = Trainer(model, nn.MSELoss(), (X, y), config=TrainConfig(batch_size=1))
    result = trainer.lr_find(steps=60)
    assert any("noisy" in w for w in result.warnings)


def test_confirmation_runs_keep_the_best_of_three():
    X, y = blobs(512, 8, 3)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    trainer = Trainer(model, nn.CrossEntropyLoss(), (X[:400], y[:400]), (X[400:], y[400:]),
                      config=TrainConfig(batch_size=32))
    result = trainer.lr_find(confirm=True)
    assert len(result.confirmation) == 3
    best = min(result.confirmation, key=lambda r: r["val_loss"])
    assert result.suggestion == best["lr"]
