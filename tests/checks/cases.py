"""The base setups of the doctor's planted-fault cases, seeded and small: each returns a Case that the doctor
tests plant one fault in (and leave healthy for the twin).

A = MLP 64-128-10 on scikit-learn's digits (inputs scaled to [0, 1]); B = MLP on make_moons (binary);
C = MLP regressor on diabetes (standardized target); D = small CNN on digits as 1x8x8 images;
T = breast cancer with raw feature scales (about 1e-3 to 4e3). Healthy extras: imbalanced binary, an
MLP with BatchNorm and dropout."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class Case:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loss_fn: nn.Module
    make_optimizer: Callable[[Any], torch.optim.Optimizer]
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    task: str = "multiclass"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimizer over the model's parameters (built on first use, then the same one)."""
        if "optimizer" not in self.extra:
            self.extra["optimizer"] = self.make_optimizer(self.model.parameters())
        return self.extra["optimizer"]

    def kwargs(self) -> dict[str, Any]:
        """doctor(**case.kwargs())"""
        val = (self.val_x, self.val_y) if self.val_x is not None else None
        return {"model": self.model, "data": (self.x, self.y), "loss_fn": self.loss_fn,
                "optimizer": self.optimizer, "val_data": val, "task": self.task}


def _split(x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.25):
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - val))
    tr, va = order[:cut], order[cut:]
    return x[tr], y[tr], x[va], y[va]


def mlp(sizes: list[int], act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), act()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def adam(lr: float = 1e-3) -> Callable[[Any], torch.optim.Optimizer]:
    return lambda params: torch.optim.Adam(params, lr=lr)


def digits_mlp(seed: int = 0, hidden: tuple[int, ...] = (128,), act: type[nn.Module] = nn.ReLU) -> Case:
    """A: MLP 64-128-10 on digits scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xtr, ytr, xva, yva = _split(d.data / 16.0, d.target, seed)
    torch.manual_seed(seed)
    return Case(mlp([64, *hidden, 10], act), torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr),
                nn.CrossEntropyLoss(), adam(), torch.tensor(xva, dtype=torch.float32), torch.tensor(yva))


def moons_mlp(seed: int = 0) -> Case:
    """B: MLP 2-32-32-1 on make_moons, binary with BCEWithLogitsLoss."""
    from sklearn.datasets import make_moons

    x, y = make_moons(600, noise=0.15, random_state=seed)
    xtr, ytr, xva, yva = _split(x, y, seed)
    torch.manual_seed(seed)
    return Case(mlp([2, 32, 32, 1]), torch.tensor(xtr, dtype=torch.float32),
                torch.tensor(ytr, dtype=torch.float32)[:, None], nn.BCEWithLogitsLoss(), adam(1e-2),
                torch.tensor(xva, dtype=torch.float32), torch.tensor(yva, dtype=torch.float32)[:, None], "binary")


def diabetes_mlp(seed: int = 0) -> Case:
    """C: MLP 10-64-64-1 regressor on diabetes, features and target standardized."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    y = (d.target - d.target.mean()) / d.target.std()
    x = (d.data - d.data.mean(0)) / d.data.std(0)
    xtr, ytr, xva, yva = _split(x, y, seed)
    torch.manual_seed(seed)
    return Case(mlp([10, 64, 64, 1]), torch.tensor(xtr, dtype=torch.float32),
                torch.tensor(ytr, dtype=torch.float32)[:, None], nn.MSELoss(), adam(),
                torch.tensor(xva, dtype=torch.float32), torch.tensor(yva, dtype=torch.float32)[:, None], "regression")


class SmallCNN(nn.Module):
    """D: conv 1->8 3x3, ReLU, conv 8->16 3x3, ReLU, global average pool, linear 16->10."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def digits_cnn(seed: int = 0) -> Case:
    """D: the CNN on digits as (N, 1, 8, 8) images in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xtr, ytr, xva, yva = _split(d.data.reshape(-1, 1, 8, 8) / 16.0, d.target, seed)
    torch.manual_seed(seed)
    return Case(SmallCNN(), torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr), nn.CrossEntropyLoss(),
                adam(3e-3), torch.tensor(xva, dtype=torch.float32), torch.tensor(yva))


def breast_cancer_raw(seed: int = 0) -> Case:
    """T: MLP 30-64-1 on breast cancer with the raw feature scales (about 1e-3 to 4e3)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    xtr, ytr, xva, yva = _split(d.data, d.target, seed)
    torch.manual_seed(seed)
    return Case(mlp([30, 64, 1]), torch.tensor(xtr, dtype=torch.float32),
                torch.tensor(ytr, dtype=torch.float32)[:, None], nn.BCEWithLogitsLoss(), adam(),
                torch.tensor(xva, dtype=torch.float32), torch.tensor(yva, dtype=torch.float32)[:, None], "binary")


def breast_cancer_scaled(seed: int = 0) -> Case:
    """T's healthy twin: the same with standardized features."""
    case = breast_cancer_raw(seed)
    mean, std = case.x.mean(0), case.x.std(0)
    case.x = (case.x - mean) / std
    case.val_x = (case.val_x - mean) / std  # type: ignore[operator]
    return case


def imbalanced_binary(seed: int = 0, weights: tuple[float, float] = (0.9, 0.1)) -> Case:
    """A healthy imbalanced binary task (make_classification), the output bias at the prior (M6)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(1200, 10, n_informative=5, weights=list(weights), random_state=seed)
    xtr, ytr, xva, yva = _split(x, y, seed)
    torch.manual_seed(seed)
    model = mlp([10, 64, 64, 1])
    p = float(ytr.mean())
    with torch.no_grad():
        model[-1].bias.fill_(float(np.log(p / (1 - p))))
    return Case(model, torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr, dtype=torch.float32)[:, None],
                nn.BCEWithLogitsLoss(), adam(), torch.tensor(xva, dtype=torch.float32),
                torch.tensor(yva, dtype=torch.float32)[:, None], "binary")


def digits_bn_dropout(seed: int = 0) -> Case:
    """A healthy MLP with BatchNorm and dropout on digits."""
    case = digits_mlp(seed)
    torch.manual_seed(seed)
    case.model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3),
                               nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3),
                               nn.Linear(128, 10))
    return case


HEALTHY = {"A": digits_mlp, "B": moons_mlp, "C": diabetes_mlp, "D": digits_cnn, "T": breast_cancer_scaled,
           "imbalanced": imbalanced_binary, "bn_dropout": digits_bn_dropout}
