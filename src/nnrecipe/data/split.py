"""Seeded train/validation/test split, stratified by class for classification; the folds of a
cross-validation ensemble (T14)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from ..errors import DataError, shorten

log = logging.getLogger("nnrecipe")

MIN_ROWS = 10  # fewer rows cannot give a training, a validation and a test split their share


def split_indices(labels: np.ndarray | None, n: int, val_fraction: float, test_fraction: float,
                  seed: int, classes: list[str] | None = None, *, where: str = "the table",
                  target: str | None = None, rows: int | None = None) -> dict[str, np.ndarray]:
    """Row positions of each split. `labels` (classification) stratifies every split: class labels, or
    their codes into `classes` (sorted, as pd.factorize(sort=True) gives them). `where` ("file 'x.csv'"),
    `target` and `rows` (the table's rows before those without a target were left out) name the input in
    the messages."""
    if n < MIN_ROWS:
        left_out = f" (of {rows}: rows without a target, or with the neutral label, are left out)" \
            if rows is not None and rows != n else ""
        raise DataError(f"{where} has {n} usable rows{left_out}; training needs at least {MIN_ROWS} to hold out "
                        "validation and test rows: add rows")
    idx = np.arange(n)
    if labels is not None:
        # integer codes in the labels' sorted order: the same split as the labels themselves (sklearn
        # stratifies on np.unique's inverse), without sorting a million strings (6 s on 1M rows)
        if classes is None:
            labels, values = pd.factorize(labels, sort=True)
        else:
            values = classes
        counts = np.bincount(labels, minlength=len(values))
        rare = [f"'{shorten(v, 30)}' ({c})" for v, c in zip(values, counts) if c < 3]
        if rare:
            listed = ", ".join(rare[:5]) + (f" and {len(rare) - 5} more" if len(rare) > 5 else "")
            column = f"target column '{target}' in {where}: " if target is not None else ""
            raise DataError(f"{column}classes {listed} have fewer than 3 rows, too few to appear in the "
                            "training, validation and test splits; add rows, merge or remove those classes")
    try:
        rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                      stratify=labels)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                      stratify=None if labels is None else labels[rest])
    except ValueError as e:  # a class too small for the requested fractions
        log.warning("stratified split impossible (%s); splitting without stratification", e)
        rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed)
        train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def fold_indices(labels: np.ndarray | None, n: int, folds: int, seed: int) -> list[np.ndarray]:
    """T14: the held-out positions of each of `folds` folds over n rows (every row held out once),
    stratified by the integer class codes `labels` when given (multilabel and regression: None)."""
    positions = np.zeros(n)
    counts = np.bincount(labels) if labels is not None else None
    if counts is not None and counts.max() >= folds:
        with warnings.catch_warnings():  # a class with fewer rows than folds misses some folds: logged below
            warnings.simplefilter("ignore", UserWarning)
            parts = [held for _, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(positions, labels)]
        small = int(counts[counts > 0].min())
        if small < folds:
            log.info("a class has %d training and validation rows, fewer than the %d folds: some folds hold "
                     "none of it out", small, folds)
        return [np.sort(p) for p in parts]
    return [np.sort(held) for _, held in KFold(folds, shuffle=True, random_state=seed).split(positions)]
