"""D6: rebalancing an imbalanced classification target (the article "Tips and tricks for Neural Networks";
Karpathy's recipe): class weights in the loss, oversampling the minority classes, or undersampling the
majority, on the training split only; by default only when the metric the run optimises weighs every
class alike (issue 18)."""

from __future__ import annotations

import numpy as np

from ..errors import check_choice
from ..tasks.metrics import ALIASES

BALANCES = ("auto", "none", "weights", "oversample", "undersample")
# auto rebalances for a balanced metric once the largest class outnumbers the smallest 3 to 1: below it the
# output bias from the priors (M6) is enough; past it a model drifts to the majority (at 1:50 its predictions
# collapse to it)
IMBALANCE_RATIO = 3.0
# The metrics that weigh every class alike, whatever its rows (issue 18): class weights optimise them.
# Accuracy, log loss and ROC AUC judge the rows as they come: weights trade the majority's rows for the
# minority's and move the calibrated prior (M6) away from the one they are judged on (on a real table the
# same run scored accuracy 0.774 without weights, 0.700 with them).
BALANCED_METRICS = ("balanced_accuracy", "macro_f1")


def imbalance_ratio(codes: np.ndarray, n_classes: int) -> float:
    counts = np.bincount(codes, minlength=n_classes)
    counts = counts[counts > 0]
    return float(counts.max() / counts.min())


def resolve_balance(requested: str, codes: np.ndarray, n_classes: int, metric: str | None = None) -> tuple[str, str]:
    """The method to use and why. 'auto' follows the metric the run optimises (TrainConfig.metric; None:
    the validation loss, judged by accuracy): class weights for a balanced metric (BALANCED_METRICS) past
    IMBALANCE_RATIO, as they keep every row (oversampling repeats rows and invites overfitting;
    undersampling throws rows away); no rebalancing for the others, which judge the rows as they come.
    An explicit method wins."""
    check_choice("balance", requested, BALANCES)
    ratio = imbalance_ratio(codes, n_classes)
    if requested != "auto":
        return requested, f"--balance {requested} (imbalance {ratio:.1f}:1)"
    name = ALIASES.get(metric, metric) if metric is not None else None
    said = f"--metric {name}" if name is not None else "--metric accuracy (the default)"
    if name not in BALANCED_METRICS:
        return "none", f"{said} is judged on the rows as they come; imbalance {ratio:.1f}:1"
    if ratio >= IMBALANCE_RATIO:
        return "weights", f"{said} weighs every class alike; imbalance {ratio:.1f}:1 >= {IMBALANCE_RATIO:g}:1"
    return "none", f"{said} weighs every class alike; imbalance {ratio:.1f}:1 < {IMBALANCE_RATIO:g}:1"


def class_weights(codes: np.ndarray, n_classes: int) -> tuple[float, ...]:
    """Inverse class frequency scaled to a mean of 1 over the rows (scikit-learn's 'balanced':
    n / (k * count_c)); a class absent from training gets weight 1."""
    counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    w[present] = len(codes) / (present.sum() * counts[present])
    return tuple(float(v) for v in w)


def resample(codes: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Positions into `codes` after over- or undersampling every class to the largest (smallest) count."""
    g = np.random.default_rng(seed)
    classes, counts = np.unique(codes, return_counts=True)
    target = counts.max() if method == "oversample" else counts.min()
    parts = []
    for c, n in zip(classes, counts):
        rows = np.flatnonzero(codes == c)
        if method == "oversample":
            extra = g.choice(rows, size=target - n, replace=True) if target > n else np.array([], dtype=np.int64)
            parts.append(np.concatenate([rows, extra]))
        else:
            parts.append(g.choice(rows, size=target, replace=False))
    return np.sort(np.concatenate(parts))
