"""D8/D9: preprocessing fitted on the training split only, stored as JSON with the model, applied
identically at prediction time. Numeric columns are standardized (missing cells take the training mean,
plus an indicator column); categorical ones are one-hot encoded (unseen categories: all zeros, counted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MISSING = "<missing>"


def _as_categories(s: pd.Series) -> np.ndarray:
    return s.astype("string").fillna(MISSING).to_numpy(dtype=object)


def _as_numbers(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(s.astype("string").str.strip(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass
class TablePreprocessor:
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def fit(cls, df: pd.DataFrame, kinds: dict[str, str]) -> TablePreprocessor:
        columns: dict[str, dict[str, Any]] = {}
        for col, kind in kinds.items():
            if kind == "numeric":
                x = _as_numbers(df[col])
                ok = x[~np.isnan(x)]
                mean = float(ok.mean()) if len(ok) else 0.0
                std = float(ok.std()) if len(ok) else 1.0
                columns[col] = {"kind": "numeric", "mean": mean, "std": std if std > 0 else 1.0,
                                "indicator": bool(np.isnan(x).any())}
            else:
                cats = sorted(set(_as_categories(df[col])))
                columns[col] = {"kind": "categorical", "categories": cats}
        return cls(columns)

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for col, c in self.columns.items():
            if c["kind"] == "numeric":
                names += [col] + ([f"{col}__missing"] if c["indicator"] else [])
            else:
                names += [f"{col}={v}" for v in c["categories"]]
        return names

    def transform(self, df: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """The (N, F) float32 features, and per column the count of cells outside what training saw
        (missing numbers, unseen categories)."""
        blocks: list[np.ndarray] = []
        unknown: dict[str, int] = {}
        for col, c in self.columns.items():
            if c["kind"] == "numeric":
                x = _as_numbers(df[col])
                miss = np.isnan(x)
                z = (np.where(miss, c["mean"], x) - c["mean"]) / c["std"]
                blocks.append(z[:, None])
                if c["indicator"]:
                    blocks.append(miss[:, None].astype(np.float64))
                elif miss.any():
                    unknown[col] = int(miss.sum())
            else:
                values = _as_categories(df[col])
                index = {v: i for i, v in enumerate(c["categories"])}
                codes = np.array([index.get(v, -1) for v in values], dtype=np.int64)
                onehot = np.zeros((len(values), len(index)))
                seen = codes >= 0
                onehot[np.flatnonzero(seen), codes[seen]] = 1.0
                blocks.append(onehot)
                if (~seen).any():
                    unknown[col] = int((~seen).sum())
        return np.hstack(blocks).astype(np.float32), unknown

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TablePreprocessor:
        return cls(dict(d["columns"]))


def label_strings(y: pd.Series) -> pd.Series:
    """Class labels as the strings a prediction file will show: integer-valued floats lose their '.0'."""
    if pd.api.types.is_float_dtype(y) and np.all(np.mod(y.dropna(), 1) == 0):
        y = y.astype("Int64")
    return y.astype("string")
