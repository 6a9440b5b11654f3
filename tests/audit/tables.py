"""Seeded tables for the audit's tests: a healthy one, and the same with one planted fault each."""

from __future__ import annotations

import numpy as np
import pandas as pd

NAMES = np.array(["cat", "dog", "eel"])


def healthy(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Three separable classes over four numeric columns, a categorical column that follows one of them."""
    g = np.random.default_rng(seed)
    y = g.integers(0, 3, n)
    x = g.normal(0, 2.5, (3, 4))[y] + g.normal(0, 1, (n, 4))
    df = pd.DataFrame(x, columns=list("abcd"))
    df["kind"] = np.where(x[:, 0] > 0, "up", "down")
    df["y"] = NAMES[y]
    return df


def flipped(df: pd.DataFrame, share: float, seed: int = 1) -> tuple[pd.DataFrame, set[int]]:
    """`share` of the rows, at random, relabelled to another class at random; and those rows."""
    g = np.random.default_rng(seed)
    rows = g.choice(len(df), int(share * len(df)), replace=False)
    out = df.copy()
    for r in rows:
        out.loc[r, "y"] = g.choice([c for c in NAMES if c != out.loc[r, "y"]])
    return out, set(rows.tolist())


def imbalanced(ratio: int = 50, rare: int = 20, seed: int = 2) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    y = np.r_[np.zeros(ratio * rare), np.ones(rare)]
    df = pd.DataFrame(g.normal(0, 1, (len(y), 3)) + 2 * y[:, None], columns=list("abc"))
    df["y"] = np.where(y == 1, "rare", "common")
    return df
