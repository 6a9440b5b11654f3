"""Shared helpers for tests: small seeded tables and tensors (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch


def breast_cancer_csv(path: str | Path, target: str = "diagnosis") -> Path:
    """scikit-learn's bundled breast cancer data as a CSV with class names 'malignant'/'benign'."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame[target] = frame.pop("target").map({0: "malignant", 1: "benign"})
    path = Path(path)
    frame.to_csv(path, index=False)
    return path


def blobs(n: int = 512, features: int = 8, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian blobs: (X float32 (n, features), y int64 (n,))."""
    g = np.random.default_rng(seed)
    centers = g.normal(0, 3, size=(classes, features))
    y = g.integers(0, classes, size=n)
    X = centers[y] + g.normal(0, 1, size=(n, features))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def small_table(n: int = 300, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A mixed table: two numeric columns, a categorical one, and a target that depends on them."""
    g = np.random.default_rng(seed)
    a, b = g.normal(size=n), g.normal(size=n)
    color = g.choice(["red", "green", "blue"], size=n)
    signal = a + 0.5 * b + (color == "red")
    frame = pd.DataFrame({"a": a, "b": b, "color": color})
    if task == "regression":
        frame["y"] = 3 * signal + g.normal(0, 0.1, size=n)
    elif task == "multiclass":
        frame["y"] = np.digitize(signal, [-0.5, 0.5, 1.5])
    else:
        frame["y"] = np.where(signal > 0.3, "yes", "no")
    return frame
