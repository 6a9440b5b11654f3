"""One input measured on a coarse grid (MASS's cats: heart weight to 0.1 g, body weight the target): its
rows repeat one another by chance, and the split puts some repeats in two splits; that is the column's
resolution, not copied rows. A continuous column with rows copied into it still fails."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnrecipe import audit


def shared(df: pd.DataFrame) -> object:
    return next(v for v in audit(df, "y") if v.name == "rows shared between splits")


def measured(n: int = 100, seed: int = 0) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    hwt = np.round(g.normal(11, 2.5, n), 1)  # a weight to 0.1 g: ~150 grid points for 100 rows
    return pd.DataFrame({"hwt": hwt, "y": np.round(1 + 0.15 * hwt + g.normal(0, 0.2, n), 1)})


def test_repeats_of_a_coarse_measurement_are_not_copied_rows():
    df = measured()
    assert df.duplicated().sum() >= 1  # rows alike in both the input and the target
    verdict = shared(df)
    assert verdict.status == "pass" and "coarse grid" in verdict.summary
    assert verdict.evidence["repeats"]["coarse"]


def test_rows_copied_into_a_continuous_column_still_fail():
    g = np.random.default_rng(1)
    x = g.normal(size=200)
    df = pd.DataFrame({"x": x, "y": 2 * x + g.normal(0, 0.1, 200)})
    df = pd.concat([df, df.iloc[:40]], ignore_index=True)  # 40 rows copied: a fifth of the table
    verdict = shared(df)
    assert verdict.status == "fail" and not verdict.evidence["repeats"]["coarse"]
