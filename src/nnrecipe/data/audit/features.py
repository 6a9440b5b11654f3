"""The audit's findings on the table as the model sees it (the prepared features of every row, as `train`
makes them): D4 conflicting labels and label noise, leakage (rows shared between the splits, or with an
external test table; one column that predicts the target), D5 the data's size against the model's, D15
clusters. D4 and the one-column leak are the doctor's own checks (checks/data_checks.py), run here on
every row rather than the doctor's sample of 512."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...checks.simple_models import lsa
from ...checks.data_checks import (OVERLAP_FAIL, ROWS_SHOWN, DataView, check_target_leak, conflicts, groups,
                                  label_noise, repeats, row_keys)
from ...checks.verdict import Verdict
from ...errors import DataError, clean_command, shorten
from ..prepare import SPLITS, PreparedTable
from ..text.bag import bag_matrix
from ..schema import multilabel_frame, target_columns
from ..transforms import label_strings, mean_std

# D4 label noise on a big table: a stratified, seeded sample of this many rows (the issue allows 20k-50k).
# Five logistic regressions on 20,000 rows of benchmarks/audit.py's table (28 features, 5 classes) took
# 7-9 s on 2 shared cores, the largest share of the audit's 60 s budget; the share's standard error on
# 20,000 rows is below 0.4 points, far under the 15-point warning.
NOISE_ROWS = 20_000
# leakage by one column: the leave-one-out 1-nearest-neighbour score on a seeded sample of this many rows
# (every column sorted in float64, with int64 sort indices and labels: over 1 GB for 1M rows x 40; 100,000
# rows took 3.5-5.9 s in benchmarks/audit.py); a leaked column scores 1.0 on any sample, and a healthy
# one's score moves by under 0.01 (binomial standard error at 100,000 rows: 0.0016).
LEAK_ROWS = 100_000
# D15: k-means on at most this many rows (MiniBatchKMeans beyond 10,000; 0.7-2 s in benchmarks/audit.py).
CLUSTER_ROWS = 20_000
# D15: the number of clusters. For classes, one per class (at least 2, at most 10), so that clusters that
# follow the classes read a purity near 1; for regression, 5 (the target's mean per cluster is the mix).
CLUSTERS_MAX, CLUSTERS_REGRESSION = 10, 5
# D5: a validation or test split under 20 rows moves its accuracy in steps of 5 points or more, with a
# binomial standard error above 11 points at 50%: runs cannot be compared on it. The clean tables of
# tests/audit hold at least 27 rows per held-out split (wine).
MIN_HELD_OUT = 20
SOURCE_D5 = ("Lavanya Shukla (start big, then let dropout and early stopping size it down); Karpathy's recipe "
             "('more data is better'); D5")


def full_view(prep: PreparedTable, seed: int, floats_only: bool = False) -> DataView:
    """Every prepared row (train, validation, test), each with its 0-based data row; beside the features, the
    codes and a key per row of its text bags (rows with the same words have the same key), unless
    `floats_only`."""
    x = (prep.features,) if floats_only or prep.codes is None else (prep.features, prep.codes)
    if not floats_only and prep.terms is not None:
        x += (text_keys(prep),)
    return DataView(x, prep.y, prep.task, torch.from_numpy(prep.rows), feature_names=prep.pre.feature_names,
                    seed=seed, sampled=False)


def text_keys(prep: PreparedTable) -> torch.Tensor:
    """(N, 1) int64: one code per distinct text bag (the terms the model reads, with their weights)."""
    return torch.from_numpy(groups(row_keys((prep.terms, prep.weights)))[0].astype(np.int64))[:, None]


def text_dense(prep: PreparedTable, seed: int, dims: int = 64) -> np.ndarray:
    """The text bags as (N, <= dims) float32: latent semantic analysis (scikit-learn's TruncatedSVD of the
    TF-IDF rows), the dense form of the default encoder's view of the text that k-means can cluster."""
    x = bag_matrix(prep.terms.numpy(), prep.weights.numpy(), prep.pre.text_terms)  # type: ignore[union-attr]
    return lsa(x, None, dims, seed)[0]


# ---------------------------------------------------------------- D4
# The doctor's thresholds hold on every row (checks/data_checks.py: conflicts fail from 1%, noise warn 15%,
# fail 25%): measured noise shares on all rows of the clean tables: breast cancer 0.2%, wine 0%, digits
# 0.2%, small_table binary 0%, multiclass (4 binned classes) 10.3-11.3%; tests/audit's 30% flipped table
# reads 28.7% with a precision of 0.94 against the flipped rows. No clean table holds a conflict.
def label_checks(prep: PreparedTable, seed: int, noise_rows: int,
                 found: dict[str, Any] | None = None) -> tuple[list[Verdict], dict[str, np.ndarray]]:
    """D4 conflicting labels and label noise on every row (noise on a sample past `noise_rows`); and the
    data rows each flags (conflicting: every row of a conflicting group; noise: most suspicious first)."""
    view = full_view(prep, seed)
    conflict, positions = conflicts(view, shown=50, found=found)
    if prep.terms is not None:
        # a linear model on the other columns misses what the text says: every hard text row would look mislabelled
        noise = Verdict("D4", "label noise", "skipped", "the table has text columns: a linear model on its other "
                        "columns is no judge of the labels (the text's duplicates under other labels are checked)",
                        {}, "", "confident learning (Northcutt, Jiang and Chuang, JAIR 2021) with cleanlab")
        return [conflict, noise], {"conflicting": prep.rows[positions], "suspicious": np.zeros(0, dtype=np.int64)}
    noise, flagged = label_noise(full_view(prep, seed, floats_only=True), max_rows=noise_rows, shown=50)
    return [conflict, noise], {"conflicting": prep.rows[positions], "suspicious": flagged}


# ---------------------------------------------------------------- leakage
def _keys(prep: PreparedTable) -> np.ndarray:
    """A key per prepared row: its inputs and its target (identical rows, identical keys)."""
    xs = (prep.features,) + ((prep.codes,) if prep.codes is not None else ())
    xs += (text_keys(prep),) if prep.terms is not None else ()
    return row_keys(xs + (prep.y.reshape(len(prep.y), -1),))


def split_overlap(prep: PreparedTable, target: str, seed: int = 0, found: dict[str, Any] | None = None) -> Verdict:
    """leakage: rows (inputs and target identical) that the split train_table makes puts in two splits."""
    source = "Karpathy's recipe (split hygiene); D3 duplicates"
    group, _ = groups(_keys(prep))
    bounds = np.cumsum([0] + [prep.counts[s] for s in SPLITS])
    part = {s: group[bounds[i]:bounds[i + 1]] for i, s in enumerate(SPLITS)}
    rows = {s: prep.rows[bounds[i]:bounds[i + 1]] for i, s in enumerate(SPLITS)}
    pairs: dict[str, Any] = {}
    worst = 0.0
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = np.isin(part[b], part[a])
        share = float(shared.mean()) if len(shared) else 0.0
        pairs[f"{a}/{b}"] = {"rows": int(shared.sum()), f"share_of_{b}": round(share, 4),
                             "first_rows": np.sort(rows[b][shared])[:ROWS_SHOWN].tolist()}
        worst = max(worst, share)
    ev = {"splits": dict(prep.counts), "shared": pairs, "fail_at": OVERLAP_FAIL}
    if not any(p["rows"] for p in pairs.values()):
        return Verdict("leakage", "rows shared between splits", "pass",
                       f"no row is in two of the splits (train {prep.counts['train']}, validation "
                       f"{prep.counts['val']}, test {prep.counts['test']} rows)", ev, "", source)
    told = ", ".join(f"{k} {p['rows']}" for k, p in pairs.items() if p["rows"])
    # repeats that are the data's own (checks/data_checks.py, REPEAT_ROWS): coarse inputs repeat, and a
    # random split puts a repeat in two splits as often as in one
    view = full_view(prep, seed)
    rep = found if found is not None else repeats(view)
    ev["repeats"] = rep
    if rep["coarse"]:
        how = ("the one input column's values repeat on their own: few distinct values, or a coarse grid of them"
               if rep.get("columns") == 1 else f"{rep['near']:.0%} differ from another in one column only")
        return Verdict("leakage", "rows shared between splits", "pass",
                       f"rows repeat as coarse inputs do ({rep['exact']:.0%} of rows repeat another's inputs; {how}), "
                       f"so the split puts repeats in two splits ({told}): rows alike, not rows copied", ev, "", source)
    # a copied row carries its label; rows whose inputs repeat under several labels are records of one
    # input (an entity seen several times), which a group split keeps together
    differing = conflicts(view, found=rep)[0].evidence.get("conflicting_rows", 0)
    if differing and differing * 4 >= int(rep["exact"] * len(view.y)):
        return Verdict("leakage", "rows shared between splits", "warn",
                       f"rows repeat ({told} shared between splits), and a quarter or more of the repeated inputs "
                       "carry different labels: records of one entity seen several times rather than copied rows? "
                       f"Then up to {worst:.1%} of a held-out split is an entity the training rows hold", ev,
                       "if a column names the entity, keep its rows in one split: --split group:COL; if the rows "
                       f"are copies, remove them before splitting: {clean_command(prep.source, target)}", source)
    return Verdict("leakage", "rows shared between splits", "fail" if worst >= OVERLAP_FAIL else "warn",
                   f"duplicated rows put the same row in two splits ({told}); up to {worst:.1%} of a held-out split "
                   "is also in an earlier one: its score is inflated", ev,
                   f"remove the duplicate rows before splitting: {clean_command(prep.source, target)}",
                   source)


def test_overlap(prep: PreparedTable, test: pd.DataFrame, target: str, name: str) -> Verdict:
    """leakage: rows of an external test table that are also in the training table (inputs and target)."""
    source = "Karpathy's recipe (split hygiene); a test set must hold rows the model never saw"
    cols = [c for c in prep.pre.columns if c not in test.columns]
    if cols:
        raise DataError(f"{name} lacks {len(cols)} column(s) of the training table: "
                        f"{', '.join(repr(shorten(c, 40)) for c in cols[:10])}{' ...' if len(cols) > 10 else ''}; "
                        "give a test table with the same columns")
    features, codes, _ = prep.pre.transform(test)
    y = _encode_like(prep, test, target, name)
    xs = (torch.from_numpy(features),) + ((torch.from_numpy(codes),) if codes is not None else ()) + (y,)
    train_keys = _keys(prep)
    shared = np.isin(row_keys(xs), train_keys)
    n, k = len(shared), int(shared.sum())
    ev = {"test_rows": n, "shared_rows": k, "share": round(k / max(n, 1), 4),
          "first_rows": np.flatnonzero(shared)[:ROWS_SHOWN].tolist(), "fail_at": OVERLAP_FAIL}
    if not k:
        return Verdict("leakage", "test table overlap", "pass", f"none of {n} rows of {name} is in the training table",
                       ev, "", source)
    return Verdict("leakage", "test table overlap", "fail" if k / n >= OVERLAP_FAIL else "warn",
                   f"{k} of {n} rows of {name} ({k / n:.1%}) are also in the training table: the test score "
                   "is inflated", ev, "remove those rows from the test table (or from the training table)", source)


def _encode_like(prep: PreparedTable, df: pd.DataFrame, target: str, name: str) -> torch.Tensor:
    """The test table's target encoded as the prepared table's (classes by name, -1 for an unseen one;
    a regression target standardized with the training statistics)."""
    if prep.task == "multilabel":
        return torch.tensor(multilabel_frame(df, target_columns(target), None).to_numpy(dtype=np.float32))
    if target not in df.columns:
        raise DataError(f"{name} has no target column '{target}'; the overlap is judged on the inputs and the "
                        "target together: give a test table with the same columns")
    y = df[target]
    if prep.task == "regression":
        v = (y.to_numpy(dtype=np.float64) - prep.target_scale["mean"]) / prep.target_scale["std"]
        return torch.from_numpy(v.astype(np.float32))[:, None]
    codes = pd.Index(prep.classes).get_indexer(label_strings(y).to_numpy(dtype=object))
    t = torch.from_numpy(codes.astype(np.int64))
    return t.float()[:, None] if prep.task == "binary" else t


def one_column_leak(prep: PreparedTable, seed: int) -> Verdict:
    """leakage: the doctor's one-column check on every row (a seeded sample past LEAK_ROWS)."""
    view = full_view(prep, seed, floats_only=True)
    n = len(view.y)
    if not prep.features.shape[1]:
        return Verdict("leakage", "leaked target", "skipped", "no numeric or categorical column (text columns: "
                       "'text column leaks the target')", {}, "", "Karpathy's recipe (leakage)")
    if n > LEAK_ROWS:
        pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:LEAK_ROWS]
        view = dataclasses.replace(view, x=(view.x[0][pick],), y=view.y[pick], index=view.index[pick])
    v = check_target_leak(view)
    if n > LEAK_ROWS and v.evidence:
        v = dataclasses.replace(v, evidence={**v.evidence, "sampled_from": n})
    return v


# ---------------------------------------------------------------- D5
def size_advice(prep: PreparedTable, params: int, hidden: list[int]) -> Verdict:
    """D5: training rows against the parameters of the model train builds, with the articles' advice."""
    rows = prep.counts["train"]
    ratio = rows / max(params, 1)
    ev = {"train_rows": rows, "parameters": params, "hidden": hidden, "rows_per_parameter": round(ratio, 4),
          "held_out": {"val": prep.counts["val"], "test": prep.counts["test"]}, "min_held_out": MIN_HELD_OUT}
    if ratio < 1:
        advice = ("fewer training rows than parameters: the model can overfit them, as Karpathy's recipe wants of a "
                  "first model; dropout and early stopping then size it down, and more rows are the best regularizer")
    else:
        advice = ("more training rows than parameters: if the training loss stays high, a wider or deeper model "
                  "(--hidden) has room to help before it overfits")
    summary = (f"{rows} training rows for a model of {params:,} parameters (hidden {hidden}; "
               f"{ratio:.3g} rows per parameter): {advice}")
    held = [n for n in (prep.counts["val"], prep.counts["test"]) if n]  # a surrogate (T15) holds rows out of none
    small = min(held) if held else MIN_HELD_OUT
    if small >= MIN_HELD_OUT:
        return Verdict("D5", "data size", "pass", summary, ev, "", SOURCE_D5)
    return Verdict("D5", "data size", "warn",
                   f"{summary}; but the validation and test splits hold {prep.counts['val']} and "
                   f"{prep.counts['test']} rows (< {MIN_HELD_OUT}): "
                   + (f"their scores move in steps of {100 / max(small, 1):.0f} points" if prep.task != "regression"
                      else "one row can move their error a long way"), ev,
                   "collect more rows (Karpathy's recipe: 'more data is better'); meanwhile compare runs over several "
                   "seeds (--seed) rather than on one split, and keep the model small (--hidden 32)", SOURCE_D5)


def count_parameters(prep: PreparedTable, model_config: Any) -> tuple[int, list[int]]:
    """The parameter count and hidden widths of the model train would build for this table."""
    from ...models.tables import make_table_model
    from ...tasks import create_task

    head = create_task(prep.task, n_classes=max(len(prep.classes), 1))
    # the network train builds (auto: TabM, its members counted), its bins fitted on the training rows
    model = make_table_model(model_config, prep.task, prep.features[:prep.counts["train"]], head.out_features,
                             prep.counts["train"], prep.pre.embeddings, head.activation, prep.pre.text_terms,
                             prep.pre.raw_features, prep.words)
    return sum(p.numel() for p in model.parameters()), list(model.spec["hidden"])


# ---------------------------------------------------------------- D15
def clusters(prep: PreparedTable, seed: int) -> Verdict:
    """D15: k-means on the prepared features (numeric columns standardized by train's own preprocessing,
    categories one-hot), each cluster's size and label mix; the purity (the share of each cluster's majority
    class, weighted by size) against the largest class's share, what clusters blind to the labels reach."""
    source = "Karpathy's recipe ('gain their representation. Then you can cluster them'); D15"
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = prep.features.numpy()
    if prep.terms is not None:  # the text as the default encoder reads it, in 64 dimensions
        x = np.concatenate([x, text_dense(prep, seed)], axis=1)
    y = prep.y.reshape(len(prep.y), -1).numpy()
    n = len(x)
    if n > CLUSTER_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(n, CLUSTER_ROWS, replace=False))
        x, y = x[pick], y[pick]
    classes = prep.task in ("binary", "multiclass")
    k = min(CLUSTERS_MAX, max(2, len(prep.classes))) if classes else CLUSTERS_REGRESSION
    k = min(k, len(np.unique(x, axis=0)) if len(x) <= 2000 else k)
    if k < 2:
        return Verdict("D15", "clusters", "skipped", "fewer than 2 distinct rows", {}, "", source)
    km = (MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096) if len(x) > 10_000
          else KMeans(k, random_state=seed, n_init=3))
    label = km.fit_predict(x)
    out: list[dict[str, Any]] = []
    if classes:
        codes = y[:, 0].astype(np.int64)
        names = prep.classes
        for c in range(k):
            mix = np.bincount(codes[label == c], minlength=len(names))
            size = int(mix.sum())
            top = np.argsort(-mix)[:3]
            out.append({"cluster": c, "rows": size, "majority": names[int(top[0])],
                        "purity": round(float(mix.max() / max(size, 1)), 4),
                        "mix": {names[int(i)]: int(mix[i]) for i in top if mix[i]}})
        purity = sum(c["purity"] * c["rows"] for c in out) / len(x)
        base = float(np.bincount(codes).max() / len(codes))
        summary = (f"{k} k-means clusters of {len(x)} rows: purity {purity:.1%} against {base:.1%} for the largest "
                   f"class alone" + (", the classes separate in feature space" if purity >= (1 + base) / 2 else
                                     ", the classes mix in feature space"))
        ev = {"k": k, "rows": len(x), "purity": round(purity, 4), "largest_class_share": round(base, 4), "clusters": out}
    elif prep.task == "regression":
        with np.errstate(over="ignore"):  # in float64: a target near 1e308 overflows float32
            t = y[:, 0].astype(np.float64) * prep.target_scale["std"] + prep.target_scale["mean"]
        for c in range(k):
            vals = t[label == c]
            mean, std = mean_std(vals) if len(vals) else (None, None)
            out.append({"cluster": c, "rows": len(vals), "target_mean": mean, "target_std": std})
        means = [c["target_mean"] for c in out if c["target_mean"] is not None]
        overall = mean_std(t)
        summary = (f"{k} k-means clusters of {len(x)} rows: the target's mean per cluster ranges "
                   f"{min(means):.4g} to {max(means):.4g} (overall {overall[0]:.4g}, std {overall[1]:.4g})")
        ev = {"k": k, "rows": len(x), "clusters": out}
    else:
        return Verdict("D15", "clusters", "skipped", f"task {prep.task}: the label mix is shown for one target",
                       {}, "", source)
    if n > CLUSTER_ROWS:
        ev["sampled_from"] = n
    ev["rule"] = (f"k = the number of classes in [2, {CLUSTERS_MAX}]; {CLUSTERS_REGRESSION} for regression; "
                  "prepared features (numeric standardized, categories one-hot"
                  + (", text as 64 TF-IDF SVD components)" if prep.terms is not None else ")"))
    return Verdict("D15", "clusters", "pass", summary, ev, "", source)
