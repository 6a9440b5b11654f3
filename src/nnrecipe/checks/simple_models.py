"""C4 after training: simple models on the run's own split, scored on the same test rows as the network
(Karpathy's recipe: "set up ... a few dumb baselines"; a network earns its cost by beating them), and the
verdict that says when one of them beats the network by more than the test rows' noise.

The models: the majority class (the training mean for regression); a linear model, LogisticRegression or
Ridge; and HistGradientBoosting with scikit-learn's defaults, seeded. They read the inputs as the network
gets them: float features (N, F) and, optionally, the integer codes (N, E) of embedded categorical
columns, with loss-shaped targets (class indices, 0/1 columns, a standardized value). Nothing here is tied
to tables: images and text can pass flattened or pooled features.

Their scores use the task's own metric functions on outputs in the network's form (logits; standardized
values), so results.json's "baselines" carry the same names and meaning as its "test". The before-training
C4 (checks/baselines.py) asks whether a short run beats these models at all; this one judges the trained
network on the test rows."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..tasks import Task
from .baselines import LINEAR_MAX_FEATURES
from .verdict import Verdict

# images with more pixels than this (a 64 x 64 grey image) are not given to the linear model and the trees, as
# the doctor's C4 before training does not give them to its linear model
MAX_FEATURES = LINEAR_MAX_FEATURES
# the trees bin every input: on 400 RGB images of 32 px (3,072 inputs) they took 26 s of a run's minute on
# one thread; up to 1,024 (a grey 32 px image) they stay a few seconds
TREES_MAX_FEATURES = 1024

SOURCE = ("Karpathy's recipe ('simple baselines'); the noise: the paired difference on the same test rows "
          "(McNemar 1947 for proportions)")

# The linear model and HistGradientBoosting fit on at most this many rows, sampled with the seed, so that a
# big table's run stays fast. Measured on 2 shared CPU cores (scikit-learn 1.9): breast cancer's 483 rows,
# 0.4 s for the three; 100,000 rows x 20 features and an embedded column, 2.4 s (regression), 5.8 s (binary),
# 10 s (4 classes), most of it the trees; twice the rows, about twice the time. The majority/mean uses every row.
MAX_FIT_ROWS = 200_000
# HistGradientBoosting takes a categorical feature of at most max_bins (255) categories; an embedded column
# with more codes is given to it as a number (its codes in order), which trees can still split
HGB_MAX_CATEGORIES = 255
# C4 warns when a simple model leads the network by more than NOISE_SE standard errors of the paired
# difference (about a 2.3% one-sided chance for a model no better than the network, per model compared)
# and, for proportions, by more than one row
NOISE_SE = 2.0
LSA_DIMS = 64  # the trees read text as this many SVD components of its TF-IDF (they cannot split 20,000 sparse terms)
PROB_FLOOR = 1e-7  # probabilities clipped into [PROB_FLOOR, 1 - PROB_FLOOR] before their logits are taken

NAMES = {"majority": "the majority class", "mean": "the training mean", "logistic_regression": "LogisticRegression",
         "ridge": "Ridge", "hist_gradient_boosting": "HistGradientBoosting"}


@dataclass
class SimpleModels:
    """The simple models' outputs on the test rows (the network's form) and their scores."""

    task: Task
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    fit_rows: int = 0  # the rows the linear model and the trees fit on (after the cap)
    rows: int = 0  # the rows given to fit on
    inputs: str = ""

    def record(self, fit_on: str) -> dict[str, Any]:
        """results.json's "baselines"."""
        return {"models": self.scores, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "fit_on": fit_on, "rows": self.rows, "fit_rows": self.fit_rows, "max_fit_rows": MAX_FIT_ROWS,
                "inputs": self.inputs, **({"skipped": self.skipped} if self.skipped else {})}


def fit_simple_models(task: Task, features: torch.Tensor, codes: torch.Tensor | None, y: torch.Tensor,
                      test_features: torch.Tensor, test_codes: torch.Tensor | None, test_y: torch.Tensor,
                      seed: int = 0, balanced: bool = False, max_rows: int = MAX_FIT_ROWS,
                      text: tuple[Any, Any] | None = None) -> SimpleModels:
    """The majority class (mean), the linear model and HistGradientBoosting fit on (features, codes, y) and
    scored on the test rows. `balanced`: the run rebalances its classes (D6), so the linear model and the
    trees weigh the classes alike too (class_weight='balanced'). Multi-label: the trees are skipped (one
    model per label); the majority and the linear model are per label. `text`: the text columns' TF-IDF
    rows (scipy sparse) of the fit rows and of the test rows: the linear model reads them (TF-IDF + logistic
    regression, the number a text model has to beat), the trees LSA_DIMS SVD components of them."""
    out = SimpleModels(task, rows=len(y))
    x, x_test = _flat(features), _flat(test_features)
    c, c_test = _codes(codes), _codes(test_codes)
    if c is not None and not c.shape[1]:
        c = c_test = None  # a table of text without embedded columns passes (N, 0) codes
    t = y.detach().cpu().numpy()
    n = len(t)
    trivial = "mean" if task.name == "regression" else "majority"
    started = time.perf_counter()
    out.outputs[trivial] = _trivial(task, t, len(test_y))
    out.seconds[trivial] = time.perf_counter() - started
    keep = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False)) if n > max_rows else np.arange(n)
    out.fit_rows = len(keep)
    x, t = x[keep], t[keep]
    c = None if c is None else c[keep]
    bags = None if text is None else (text[0][keep], text[1])
    embedded = "" if c is None else f", and {c.shape[1]} embedded column(s) one-hot"
    embedded += "" if bags is None else ", and the text columns' TF-IDF (word 1-2-grams)"
    out.inputs = (f"linear: the {x.shape[1]} feature{'s' if x.shape[1] != 1 else ''} standardized{embedded}; trees: "
                  "the features"
                  + ("" if c is None else ", the embedded columns' codes as categories (as numbers past "
                     f"{HGB_MAX_CATEGORIES - 1} codes)")
                  + ("" if bags is None else f", {LSA_DIMS} SVD components of the text's TF-IDF"))
    classes = task.name in ("binary", "multiclass")
    linear = "logistic_regression" if task.name != "regression" else "ridge"
    image = features.dim() > 2  # (N, C, H, W): a table's features are (N, F), whatever their number
    if classes and len(np.unique(t)) < 2:
        out.skipped = {m: "one class in the rows fit on" for m in ("logistic_regression", "hist_gradient_boosting")}
    elif image and x.shape[1] > MAX_FEATURES:
        out.skipped = {m: f"{x.shape[1]:,} inputs, over {MAX_FEATURES:,} (an image's pixels): minutes and GBs to fit"
                       for m in (linear, "hist_gradient_boosting")}
    elif not (np.isfinite(x).all() and np.isfinite(x_test).all()):
        out.skipped[linear] = "non-finite features"
    else:
        started = time.perf_counter()
        name, outputs = _linear(task, x, c, t, x_test, c_test, balanced, bags)
        out.outputs[name], out.seconds[name] = outputs, time.perf_counter() - started
    if task.name == "multilabel":
        out.skipped["hist_gradient_boosting"] = "multi-label: it would take one model per label"
    elif image and x.shape[1] > TREES_MAX_FEATURES and "hist_gradient_boosting" not in out.skipped:
        out.skipped["hist_gradient_boosting"] = (f"{x.shape[1]:,} inputs, over {TREES_MAX_FEATURES:,} (an image's "
                                                 "pixels): the trees' binning alone takes minutes")
    elif "hist_gradient_boosting" not in out.skipped:
        started = time.perf_counter()
        if bags is not None:
            dense, dense_test = lsa(*bags, LSA_DIMS, seed)
            x, x_test = np.hstack([x, dense]), np.hstack([x_test, dense_test])
        out.outputs["hist_gradient_boosting"] = _trees(task, x, c, t, x_test, c_test, seed, balanced)
        out.seconds["hist_gradient_boosting"] = time.perf_counter() - started
    out.seconds["total"] = sum(out.seconds.values())
    out.scores = {name: scores(task, o, test_y) for name, o in out.outputs.items()}
    return out


def scores(task: Task, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float | None]:
    """The test metrics of `task` (and its loss) on outputs in the network's form; None where undefined."""
    values = {"loss": float(task.loss()(outputs, y))}
    values |= {k: fn(outputs, y) for k, fn in task.metrics(task.test_metrics).items()}
    return {k: (float(v) if math.isfinite(v) else None) for k, v in values.items()}


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().reshape(len(t), -1).numpy()


def _codes(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy().reshape(len(t), -1).astype(np.int64)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, PROB_FLOOR, 1 - PROB_FLOOR)
    return np.log(p / (1 - p))


def _as_outputs(task: Task, values: np.ndarray) -> torch.Tensor:
    """Probabilities (classes) or standardized values (regression) as the network's raw outputs."""
    if task.name == "multiclass":
        return torch.from_numpy(np.log(np.clip(values, PROB_FLOOR, 1.0))).float()
    if task.name in ("binary", "multilabel"):
        return torch.from_numpy(_logit(values)).float().reshape(len(values), -1)
    return torch.from_numpy(values).float().reshape(len(values), 1)


def _trivial(task: Task, t: np.ndarray, n: int) -> torch.Tensor:
    """The training prior (its logits: the decision is the majority class) or the training mean."""
    if task.name == "multiclass":
        prior = np.bincount(t.reshape(-1).astype(np.int64), minlength=task.n_classes) / len(t)
        return _as_outputs(task, np.tile(prior, (n, 1)))
    mean = t.reshape(len(t), -1).mean(0)
    return _as_outputs(task, np.tile(mean, (n, 1)))


def lsa(x: Any, x_other: Any, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Latent semantic analysis: scikit-learn's TruncatedSVD of TF-IDF rows `x` (fitted on them) in at most
    `dims` float32 dimensions, and `x_other` in the same ones (None: not asked)."""
    from sklearn.decomposition import TruncatedSVD

    k = min(dims, x.shape[1] - 1, x.shape[0] - 1)
    if k < 1:
        empty = np.zeros((x.shape[0], 0), np.float32)
        return empty, (None if x_other is None else np.zeros((x_other.shape[0], 0), np.float32))
    svd = TruncatedSVD(k, random_state=seed)
    a = svd.fit_transform(x).astype(np.float32)
    return a, (None if x_other is None else svd.transform(x_other).astype(np.float32))


def _one_hot(c: np.ndarray, c_test: np.ndarray) -> tuple[Any, Any]:
    """The codes of the embedded columns one-hot, sparse (they can have thousands of categories)."""
    from scipy import sparse

    sizes = np.maximum(c.max(0, initial=0), c_test.max(0, initial=0)) + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def encode(codes: np.ndarray) -> Any:
        rows = np.repeat(np.arange(len(codes)), codes.shape[1])
        return sparse.csr_matrix((np.ones(codes.size), (rows, (codes + offsets).reshape(-1))),
                                 shape=(len(codes), int(sizes.sum())))

    return encode(c), encode(c_test)


def _linear(task: Task, x: np.ndarray, c: np.ndarray | None, t: np.ndarray, x_test: np.ndarray,
            c_test: np.ndarray | None, balanced: bool, bags: tuple[Any, Any] | None = None) -> tuple[str, torch.Tensor]:
    """LogisticRegression (per label for multi-label) or Ridge on the features standardized with the fit
    rows' statistics, the embedded columns one-hot, the text's TF-IDF rows (`bags`) as they are."""
    from scipy import sparse
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    a, b = (x - mean) / std, (x_test - mean) / std
    if c is not None and c_test is not None:
        ca, cb = _one_hot(c, c_test)
        a, b = sparse.hstack([sparse.csr_matrix(a), ca]).tocsr(), sparse.hstack([sparse.csr_matrix(b), cb]).tocsr()
    if bags is not None:
        a, b = sparse.hstack([sparse.csr_matrix(a), bags[0]]).tocsr(), sparse.hstack([sparse.csr_matrix(b), bags[1]]).tocsr()
    weight = "balanced" if balanced else None
    with warnings.catch_warnings():  # a baseline that stops short of convergence is still a baseline
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task.name == "regression":
            return "ridge", _as_outputs(task, Ridge(alpha=1.0).fit(a, t.reshape(-1)).predict(b))
        if task.name == "multilabel":
            t = t.reshape(len(t), -1)
            cols = [LogisticRegression(max_iter=1000, class_weight=weight).fit(a, t[:, k]).predict_proba(b)[:, 1]
                    if len(np.unique(t[:, k])) == 2 else np.full(b.shape[0], t[:, k].mean())
                    for k in range(t.shape[1])]
            return "logistic_regression", _as_outputs(task, np.stack(cols, axis=1))
        model = LogisticRegression(max_iter=1000, class_weight=weight).fit(a, t.reshape(-1).astype(np.int64))
        return "logistic_regression", _as_outputs(task, _class_probs(task, model, b))


def _class_probs(task: Task, model: Any, x: Any) -> np.ndarray:
    """predict_proba over every class of the task (a class absent from the fit rows gets PROB_FLOOR);
    binary: the probability of class 1."""
    p = model.predict_proba(x)
    classes = model.classes_.astype(np.int64)
    if task.name == "binary":
        return p[:, list(classes).index(1)] if 1 in classes else np.zeros(len(p))
    full = np.full((len(p), task.n_classes), PROB_FLOOR)
    full[:, classes] = p
    return full


def _trees(task: Task, x: np.ndarray, c: np.ndarray | None, t: np.ndarray, x_test: np.ndarray,
           c_test: np.ndarray | None, seed: int, balanced: bool) -> torch.Tensor:
    """HistGradientBoostingClassifier/Regressor, scikit-learn's defaults and random_state=seed; the codes of
    the embedded columns as categorical features where they fit in max_bins."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    categorical = [False] * x.shape[1]
    if c is not None and c_test is not None:
        top = np.maximum(c.max(0, initial=0), c_test.max(0, initial=0))
        categorical += [bool(m < HGB_MAX_CATEGORIES) for m in top]
        x, x_test = np.hstack([x, c]), np.hstack([x_test, c_test])
    chosen = categorical if any(categorical) else None
    if task.name == "regression":
        model = HistGradientBoostingRegressor(random_state=seed, categorical_features=chosen)
        return _as_outputs(task, model.fit(x, t.reshape(-1)).predict(x_test))
    model = HistGradientBoostingClassifier(random_state=seed, categorical_features=chosen,
                                           class_weight="balanced" if balanced else None)
    return _as_outputs(task, _class_probs(task, model.fit(x, t.reshape(-1).astype(np.int64)), x_test))


# ---------------------------------------------------------------- C4 on the test rows


@dataclass
class Lead:
    """A simple model against the network on the same rows: its lead (positive: the model is better) and
    the standard error of the paired difference."""

    name: str
    model: float  # its value of the metric
    network: float
    lead: float  # in the metric (for rmse: the network's MSE minus the model's, on the standardized target)
    se: float
    one_row: float  # the most one row can move the metric (0 for rmse: not a proportion)
    unit: float = 1.0  # lead and se times unit are in the metric's units (rmse: the target's std squared)

    @property
    def beats(self) -> bool:
        return self.lead > NOISE_SE * self.se and self.lead > self.one_row


def leads(task: Task, metric: str, outputs: torch.Tensor, y: torch.Tensor, models: SimpleModels) -> list[Lead]:
    """Each simple model's lead over the network on `metric` (accuracy, balanced_accuracy or rmse), paired
    row by row. Proportions: the mean of d = right_model - right_network over the rows, whose standard
    error sqrt(sum (d - mean)^2) / n is McNemar's for two paired proportions, sqrt(b + c - (b - c)^2 / n) / n
    (b, c: the rows only one of the two gets right); balanced accuracy weighs each class's rows by
    1 / (K n_class), so its error adds the classes' errors. rmse: d = the network's squared error minus
    the model's, row by row (the lead in MSE, in the target's units squared)."""
    y = y.detach().cpu()
    out: list[Lead] = []
    net = _per_row(task, metric, outputs.detach().cpu(), y)
    weights = _row_weights(task, metric, y)
    for name, o in models.outputs.items():
        d = _per_row(task, metric, o, y) - net
        if metric == "rmse":  # judged on the standardized target: a std near 1e308 squared would overflow
            std = float(task.target_scale["std"])
            mse_net = float(np.mean(-net))
            mse_model = mse_net - float(d.mean())
            se = float(np.sqrt(np.sum((d - d.mean()) ** 2)) / len(d))
            with np.errstate(over="ignore"):
                unit = float(np.float64(std) ** 2)
            out.append(Lead(name, math.sqrt(max(mse_model, 0.0)) * std, math.sqrt(max(mse_net, 0.0)) * std,
                            float(d.mean()), se, 0.0, unit))
            continue
        groups = _groups(task, metric, y)
        lead = float(np.sum(weights * d))
        var = sum(float(np.sum((d[g] - d[g].mean()) ** 2)) * float(weights[g][0]) ** 2 for g in groups)
        out.append(Lead(name, float(np.sum(weights * (net + d))), float(np.sum(weights * net)), lead,
                        math.sqrt(var), float(weights.max())))
    return out


def _per_row(task: Task, metric: str, outputs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per row: right (1) or not (0), the share of labels right (multi-label), or minus the squared error
    (rmse, standardized units), so that larger is better for every metric."""
    if metric == "rmse":
        return -((outputs.float().reshape(len(y), -1) - y.float().reshape(len(y), -1)) ** 2).mean(1).double().numpy()
    decided = task.decide(outputs.float())
    if task.name == "multilabel":
        return (decided == y.long()).double().mean(1).numpy()
    return (decided.reshape(-1) == y.reshape(-1).long()).double().numpy()


def _groups(task: Task, metric: str, y: torch.Tensor) -> list[np.ndarray]:
    """The rows whose differences share a weight: each class's rows (balanced accuracy), else all rows."""
    if metric != "balanced_accuracy":
        return [np.arange(len(y))]
    codes = y.reshape(-1).long().numpy()
    return [np.flatnonzero(codes == k) for k in np.unique(codes)]


def _row_weights(task: Task, metric: str, y: torch.Tensor) -> np.ndarray:
    """Each row's weight in the metric: 1/n, or 1 / (K n_class) for balanced accuracy (K: the classes
    present in these rows, as scikit-learn's balanced_accuracy_score counts them)."""
    n = len(y)
    if metric != "balanced_accuracy":
        return np.full(n, 1.0 / max(n, 1))
    codes = y.reshape(-1).long().numpy()
    present, counts = np.unique(codes, return_counts=True)
    per = dict(zip(present.tolist(), counts.tolist()))
    return np.array([1.0 / (len(present) * per[c]) for c in codes.tolist()])


def check_simple_models(task: Task, metric: str, outputs: torch.Tensor, y: torch.Tensor,
                        models: SimpleModels, split: str = "test") -> Verdict:
    """C4 on the test rows: warn when a simple model leads the network by more than NOISE_SE standard errors
    of the paired difference (and, for proportions, by more than one row), naming the model with the
    largest lead among those; pass otherwise. `metric`: accuracy, balanced_accuracy or rmse. `split`: the
    rows' name, 'validation' where they stand in for a test split the run does not have."""
    name = f"simple baselines ({split})"
    n = len(y)
    if n == 0 or not models.outputs:
        return Verdict("C4", name, "skipped", f"no {split} rows" if n == 0 else "no simple model could be fit",
                       {"skipped": models.skipped}, source=SOURCE)
    if not torch.isfinite(outputs).all():
        return Verdict("C4", name, "skipped", f"the network's {split} outputs are not finite", source=SOURCE)
    found = leads(task, metric, outputs, y, models)
    ev: dict[str, Any] = {"metric": metric, "test_rows": n, "network": _r(found[0].network),
                          **{f"{m.name}": _r(m.model) for m in found},
                          "leads": {m.name: _r(_times(m.lead, m.unit)) for m in found},
                          "two_se": {m.name: _r(_times(NOISE_SE * m.se, m.unit)) for m in found},
                          "rule": f"warn when a model leads by > {NOISE_SE:g} se of the paired difference"
                                  + ("" if metric == "rmse" else " and by > one row")}
    winners = [m for m in found if m.beats]
    best = max(winners or found, key=lambda m: m.lead)
    what = _said(metric, best, n, split)
    if not winners:
        return Verdict("C4", name, "pass", f"no simple model beats the network by more than the noise of the {n} {split} "
                       f"rows; the closest: {what}", ev, "", SOURCE)
    return Verdict("C4", name, "warn", what[0].upper() + what[1:], ev | {"best": best.name}, _fix(best.name), SOURCE,
                   fault="simpler-model-wins")


def _said(metric: str, m: Lead, n: int, split: str = "test") -> str:
    """'HistGradientBoosting scores 0.861 accuracy on the 200 test rows against the network's 0.790 (+0.071,
    2 se = 0.041)'."""
    model = NAMES.get(m.name, m.name)
    if metric == "rmse":
        return (f"{model} scores RMSE {m.model:.4g} on the {n} {split} rows against the network's {m.network:.4g} "
                f"(its MSE {'lower' if m.lead > 0 else 'higher'} by {_times(abs(m.lead), m.unit):.4g}, 2 se = "
                f"{_times(NOISE_SE * m.se, m.unit):.4g})")
    return (f"{model} scores {m.model:.3f} {metric} on the {n} {split} rows against the network's {m.network:.3f} "
            f"({m.lead:+.3f}, 2 se = {NOISE_SE * m.se:.3f})")


def _fix(best: str) -> str:
    if best in ("majority", "mean"):
        return (f"the network does worse than predicting {NAMES[best]}: it learns nothing that carries to the test "
                "rows; see C1 (overfit one batch), C3 (zeroed inputs) and C8 (the curves)")
    if best in ("logistic_regression", "ridge"):
        return (f"use {NAMES[best]}, or find why the network falls short of a linear model: it underfits (more epochs "
                "or --lr-find on: T16, C8) or overfits (more dropout or weight decay, fewer units: C8)")
    return ("use HistGradientBoosting (scikit-learn), or give the network what the trees find: thresholds and "
            "interactions of the raw columns (binned or crossed features), more epochs or --lr-find on (T16, C8); "
            "on tables, trees often win (Grinsztajn et al., NeurIPS 2022)")


def _times(v: float, unit: float) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.float64(v) * unit)


def _r(v: float) -> float | None:
    """Rounded for the evidence; None when not finite (JSON holds no infinity)."""
    return round(v, 4) if math.isfinite(v) else None
