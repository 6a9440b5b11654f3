"""Fixtures for the training-engine tests: seeded tiny MLPs, blobs, and a CPU TrainConfig factory."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from nnrecipe import TrainConfig
from nnrecipe.testing import blobs


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


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit for bit: same keys, dtypes, shapes and values."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def same_state() -> Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], bool]:
    return states_equal


def _bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def assert_identical(a: Any, b: Any, where: str = "state") -> None:
    """Same types all the way down (int keys stay ints, tuples stay tuples), tensors bit for bit."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.device.type) == (b.dtype, b.shape, "cpu"), where
        assert _bits(a) == _bits(b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where  # keys, their types and their order
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"  # -0.0, inf
    else:
        assert a == b, where


@pytest.fixture
def identical() -> Callable[..., None]:
    """Asserts two state trees are identical: types all the way down, tensors bit for bit."""
    return assert_identical
