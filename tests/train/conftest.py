"""Fixtures for the training-engine tests: seeded tiny MLPs, blobs, and a CPU TrainConfig factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from nnrecipe import TrainConfig
from nnrecipe.testing import assert_identical, blobs, states_equal


def _mlp(seed: int = 0, dropout: float = 0.0, features: int = 8, hidden: int = 16, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)  # the weights' init; fit() seeds everything else from config.seed
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes))


@pytest.fixture
def make_mlp() -> Callable[..., nn.Module]:
    """A seeded 8-16-3 MLP (Linear, ReLU, Dropout, Linear); each call builds the same weights for a seed."""
    return _mlp


@pytest.fixture
def train_config() -> Callable[..., TrainConfig]:
    """TrainConfig on the CPU, batch 32, no early stopping unless asked; keyword arguments override."""

    def make(**kw: Any) -> TrainConfig:
        return TrainConfig(**{"device": "cpu", "batch_size": 32, "epochs": 3, "patience": None, **kw})

    return make


@pytest.fixture(scope="session")
def _blobs384() -> tuple[torch.Tensor, torch.Tensor]:
    return blobs(384, 8, 3, seed=0)


@pytest.fixture(scope="session")
def blob_data(_blobs384: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """256 rows of 3 separable classes in 8 features."""
    X, y = _blobs384
    return X[:256], y[:256]


@pytest.fixture(scope="session")
def blob_val(_blobs384: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """128 more rows from the same blobs, for validation."""
    X, y = _blobs384
    return X[256:], y[256:]


@pytest.fixture
def same_state() -> Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], bool]:
    return states_equal


@pytest.fixture
def identical() -> Callable[..., None]:
    """Asserts two state trees are identical: types all the way down, tensors bit for bit."""
    return assert_identical
