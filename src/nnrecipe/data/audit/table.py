"""The audit's findings on the table as it was read, before any preprocessing: D1 the label distribution,
D2 text lengths, D3 exact duplicates, corrupted rows (no target, NaN/inf, unparsable cells) and the
columns the schema leaves out (constant, ID-like), D8 the raw numeric columns' scales. Column kinds come
from the schema's own rule (data/schema.py), cells are read as numbers the way the preprocessing reads
them (data/transforms.py), so the audit and `train` never disagree on what a column or a cell is."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...checks.data_checks import ROWS_SHOWN, scale_stats
from ...checks.verdict import Verdict
from ...config import DataConfig
from ...errors import clean_command, flag, shorten
from ...figures import plain_text
from ...io import atomic_write
from ..load import row_labels
from ..schema import Schema, _kind, target_columns
from ..transforms import _as_numbers, label_strings, mean_std

KARPATHY_DATA = "Karpathy's recipe ('Familiar with Data')"

# D1: the long tail in Karpathy's recipe is "900 instances of good emotion against 10 of bad" (90:1) and
# its imbalanced init example 1:10. From 10:1 the smallest class is a tail worth a warning; below it the output bias
# at the prior (M6), or the class weights of a run that optimises a balanced metric (D6, from 3:1), handle it
# quietly. The clean tables of tests/audit read at most 1.7:1 (breast cancer).
IMBALANCE_WARN = 10.0
# D2: Karpathy's recipe, "set the appropriate maximum sequence length": the length that covers 95% of the rows.
LENGTH_COVER = 95
# D8: a column with a cell this many interquartile ranges from its median has outliers heavy enough that
# the default standardization squeezes the bulk of the column into a sliver (one such cell sets the std).
# Measured maxima on the clean tables: breast cancer 18.9 (column 'area error'), wine 3.4, diabetes 3.4,
# digits' pixel columns have IQR 0 (the std stands in; 11.9). Tukey's 1.5 IQR fences give the outlier share.
OUTLIER_IQRS = 50.0
TUKEY = 1.5


@dataclass
class Cells:
    """Per feature column, what its cells hold: the column kinds by the schema's rule and the masks of the
    problems; `blanked`: the frame with unparsable and infinite numeric cells emptied, so the findings that
    need the prepared table still run (the preprocessing imputes empty cells)."""

    kinds: dict[str, str] = field(default_factory=dict)
    nan: dict[str, np.ndarray] = field(default_factory=dict)
    inf: dict[str, np.ndarray] = field(default_factory=dict)
    unparsable: dict[str, np.ndarray] = field(default_factory=dict)
    numbers: dict[str, np.ndarray] = field(default_factory=dict)  # numeric columns as float64, problems NaN
    blanked: pd.DataFrame | None = None


def read_cells(df: pd.DataFrame, cfg: DataConfig) -> Cells:
    cells = Cells()
    targets = target_columns(cfg.target)
    fixed: dict[str, np.ndarray] = {}
    for col in df.columns:
        if col in targets or col in cfg.drop:
            continue
        s = df[col]
        kind, _ = _kind(s, col, cfg)
        cells.kinds[col] = kind
        if kind != "numeric":
            continue
        values = _as_numbers(s)
        missing = s.isna().to_numpy()
        unparsable = np.isnan(values) & ~missing
        inf = np.isinf(values)
        cells.nan[col], cells.inf[col], cells.unparsable[col] = missing, inf, unparsable
        if unparsable.any() or inf.any():
            values = np.where(inf, np.nan, values)
            fixed[col] = values
        cells.numbers[col] = values
    cells.blanked = df.assign(**fixed) if fixed else df
    return cells


# ---------------------------------------------------------------- D1
def label_distribution(y: pd.Series | pd.DataFrame, task: str) -> tuple[Verdict, dict[str, Any]]:
    """D1: the class counts (or the target's quantiles), the imbalance ratio and the long tail; and what
    the plot draws."""
    source = f"{KARPATHY_DATA}: 'know the label distribution ... and visualize it'; D1"
    name = "label distribution"
    if task == "regression":
        v = y.to_numpy(dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: see mean_std
            q = np.percentile(v, [0, 1, 25, 50, 75, 99, 100])
        mean, std = mean_std(v)
        skew = float((((v - mean) / std) ** 3).mean()) if std > 0 else 0.0
        ev = {"rows": len(v), "mean": mean, "std": std, "skew": round(skew, 3),
              "quantiles": dict(zip(("min", "p1", "p25", "median", "p75", "p99", "max"), map(float, q)))}
        return Verdict("D1", name, "pass", f"regression target over {len(v)} rows: median {q[3]:.4g}, "
                       f"[p1, p99] = [{q[1]:.4g}, {q[5]:.4g}], skew {skew:.2f}", ev, "", source), \
            {"kind": "hist", "values": v}
    if task == "multilabel":
        counts = {str(c): int(y[c].sum()) for c in y.columns}
    else:
        vc = label_strings(y).value_counts()
        counts = {str(k): int(n) for k, n in vc.items()}
    ordered = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    largest, smallest = max(ordered.values()), min(ordered.values())
    ratio = largest / max(smallest, 1)
    tail = [c for c, n in ordered.items() if n * IMBALANCE_WARN <= largest]
    ev = {"rows": int(len(y)), "classes": len(ordered), "counts": ordered,
          "shares": {c: round(n / max(len(y), 1), 4) for c, n in ordered.items()},
          "imbalance_ratio": round(ratio, 2), "tail_classes": tail, "tail_rows": sum(ordered[c] for c in tail),
          "warn_at": IMBALANCE_WARN}
    shown = ", ".join(f"'{shorten(c, 40)}' {n}" for c, n in list(ordered.items())[:ROWS_SHOWN])
    more = " ..." if len(ordered) > ROWS_SHOWN else ""
    what = "labels (rows holding each)" if task == "multilabel" else "classes"
    summary = f"{len(ordered)} {what}: {shown}{more}; the largest outnumbers the smallest {ratio:.3g} to 1"
    plot = {"kind": "bar", "counts": ordered}
    if ratio < IMBALANCE_WARN:
        return Verdict("D1", name, "pass", summary, ev, "", source), plot
    tail_shown = ", ".join(repr(shorten(c, 40)) for c in tail[:ROWS_SHOWN])
    return Verdict("D1", name, "warn", f"{summary}; long tail: {tail_shown} "
                   f"({ev['tail_rows']} rows)", ev,
                   "judge the model by per-class recall on the test rows (train's summary.txt shows it, and report.html "
                   "beside this finding), not by accuracy alone (predicting the largest class alone scores "
                   f"{largest / max(len(y), 1):.1%}); when every class counts alike, train with --metric "
                   "balanced_accuracy (or macro_f1), which weights the classes by inverse frequency (--balance auto), "
                   "and collect more rows of the tail classes", source), plot


@plain_text
def save_plot(plot: dict[str, Any], file: str | os.PathLike, target: str) -> None:
    """The D1 plot as a PNG: class counts as bars (a log scale from 10:1), or a regression target's
    histogram. matplotlib's object API (Figure, no pyplot), imported here: no display needed, the process's
    backend left as it is, nothing to close, and `import nnrecipe` stays light."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.subplots()
    if plot["kind"] == "bar":
        counts = plot["counts"]
        names = list(counts)[:50]
        ax.bar(range(len(names)), [counts[c] for c in names], color="#4878a8")
        # labels are user text: a 10 MB cell on an axis asks matplotlib for an image millions of pixels long
        ax.set_xticks(range(len(names)), [shorten(c, 30) for c in names], rotation=90 if len(names) > 8 else 0,
                      fontsize=8)
        if max(counts.values()) >= IMBALANCE_WARN * min(counts.values()):
            ax.set_yscale("log")
        ax.set_ylabel("rows")
        ax.set_title(f"'{shorten(target, 40)}': {len(counts)} classes"
                     + (" (the 50 largest)" if len(counts) > 50 else ""))
    else:
        values = np.asarray(plot["values"], dtype=np.float64)
        values = values[np.isfinite(values)]
        top = float(np.abs(values).max()) if len(values) else 0.0
        # values near the float64 limits (1e308) or below its normal range: their range overflows (or its
        # 50 bins underflow); histogram them in units of the largest
        unit = top if top and (top > 1e300 or top < 1e-300) else 1.0
        ax.hist(values / unit, bins=50, color="#4878a8")
        ax.set_xlabel(shorten(target, 40) + (f" (in units of {unit:.3g})" if unit != 1.0 else ""))
        ax.set_ylabel("rows")
        ax.set_title(f"'{shorten(target, 40)}': distribution")
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # an emoji in a label or the target's name has no glyph in the font
        warnings.filterwarnings("ignore", "Glyph .* missing from", UserWarning)
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    atomic_write(file, buffer.getvalue())


# ---------------------------------------------------------------- D2
def text_lengths(df: pd.DataFrame, cells: Cells) -> Verdict:
    """D2: per column of strings (categorical, embedded, ID-like text), the length of its cells in characters
    and in words: percentiles, and the maximum length that covers 95% of the rows. Text columns get D2 in
    tokens (audit/text.py)."""
    source = f"{KARPATHY_DATA}: 'the distribution of the length of sequence ... set the appropriate maximum length'; D2"
    out: dict[str, Any] = {}
    for col, kind in cells.kinds.items():
        s = df[col]
        if kind in ("numeric", "boolean", "datetime", "text") or pd.api.types.is_numeric_dtype(s) \
                or pd.api.types.is_datetime64_any_dtype(s):
            continue
        # each distinct cell measured once, weighted by its count: a categorical column of a million rows
        # holds a few hundred distinct cells (2.9 s -> 0.3 s on benchmarks/audit.py's two text columns)
        counts = s.dropna().astype("string").value_counts(sort=False)
        if not len(counts):
            continue
        text, weight = counts.index.to_series(), counts.to_numpy(dtype=np.int64)
        chars = text.str.len().to_numpy(dtype=np.int64)
        words = text.str.count(r"\S+").to_numpy(dtype=np.int64)
        stats = {}
        for unit, v in (("chars", chars), ("words", words)):
            p = _weighted_percentiles(v, weight, [50, 90, LENGTH_COVER, 99])
            stats[unit] = {"p50": p[0], "p90": p[1], f"p{LENGTH_COVER}": p[2], "p99": p[3], "max": int(v.max())}
        stats["suggested_max_words"] = int(np.ceil(stats["words"][f"p{LENGTH_COVER}"]))
        stats["suggested_max_chars"] = int(np.ceil(stats["chars"][f"p{LENGTH_COVER}"]))
        out[col] = stats
    if not out:
        texts = "text" in cells.kinds.values()  # their lengths are in tokens: 'text lengths in tokens'
        return Verdict("D2", "text lengths", "pass", "no string columns besides the text columns" if texts
                       else "no text columns", {}, "", source)
    shown = "; ".join(f"'{shorten(c, 40)}' median {s['words']['p50']:.0f} words, "
                      f"max length {s['suggested_max_words']} words "
                      f"({s['suggested_max_chars']} characters) covers {LENGTH_COVER}% of rows"
                      for c, s in list(out.items())[:4])
    more = f"; and {len(out) - 4} more" if len(out) > 4 else ""
    return Verdict("D2", "text lengths", "pass", f"{len(out)} text columns: {shown}{more}",
                   {"columns": out, "cover": LENGTH_COVER}, "", source)


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float]:
    """The smallest value whose share of the rows at or below it reaches q% (numpy's 'inverted_cdf'): a
    length that occurs, and the one that covers q% of the rows."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    return [float(v[np.searchsorted(cum, q / 100 * cum[-1] - 1e-9)]) for q in qs]


# ---------------------------------------------------------------- D3
def duplicate_rows(df: pd.DataFrame, path: str | os.PathLike | None, target: str,
                   found: dict[str, Any] | None = None) -> tuple[Verdict, np.ndarray]:
    """D3: rows that repeat an earlier row in every column (target included); their data rows. `found`: the
    prepared inputs' repeats (checks/data_checks.py `repeats`): when they are the data's own (coarse
    inputs), repeated rows are rows alike, reported without a warning and without advice to remove them."""
    source = f"{KARPATHY_DATA}: 'detecting the duplicate instances'; D3"
    dup = df.duplicated(keep="first").to_numpy()
    rows = np.flatnonzero(dup)
    n = len(df)
    ev: dict[str, Any] = {"rows": n, "duplicate_rows": len(rows), "share": round(len(rows) / n, 4)}
    if not len(rows):
        return Verdict("D3", "duplicate rows", "pass", f"no row of {n} repeats another", ev, "", source), rows
    ev["first_rows"] = rows[:ROWS_SHOWN].tolist()
    where = ", ".join(row_labels(path, [int(r) for r in rows[:3]])) + (" ..." if len(rows) > 3 else "")
    if found is not None and found["coarse"]:
        ev["repeats"] = found
        return Verdict("D3", "duplicate rows", "pass",
                       f"{len(rows)} of {n} rows ({len(rows) / n:.1%}) repeat an earlier row exactly ({where}), as "
                       f"coarse inputs do: {found['near']:.0%} of rows differ from another in one column only; rows "
                       "alike, not copies (removing them would change what the table says)", ev, "", source), rows
    return Verdict("D3", "duplicate rows", "warn",
                   f"{len(rows)} of {n} rows ({len(rows) / n:.1%}) repeat an earlier row exactly ({where}): they "
                   "weigh double in training and can land in both the training and the test split", ev,
                   f"remove them: {clean_command(path, target)} (keeps each row's first copy)",
                   source), rows


MOSTLY_EMPTY = 0.5  # a numeric column empty in at least this share of the rows is an optional column


def corrupted_rows(df: pd.DataFrame, y_missing: np.ndarray, cells: Cells, path: str | os.PathLike | None,
                   target: str) -> tuple[Verdict, dict[int, str]]:
    """D3: rows with no target, numeric columns with empty (NaN), infinite or unparsable cells; and each
    such row's data row with what is wrong with it (the first problem found)."""
    source = f"{KARPATHY_DATA}: 'instances which are corrupted (e.g. lack of the label)'; D3"
    # a row keeps its first problem: no target, then the columns in order, unparsable before inf before nan;
    # `seen` marks the rows that have one (a mask, not a loop over every bad cell: 1M rows x 3 columns with
    # 30% empty cells took 0.67 s cell by cell)
    seen = np.asarray(y_missing, dtype=bool).copy()
    why: dict[int, str] = dict.fromkeys(np.flatnonzero(seen).tolist(), "no target")
    columns: dict[str, dict[str, int]] = {}
    # a column empty in most rows is an optional column (a finding about the column): its empty cells do not
    # make the rows corrupted (issue 19: 53,573 of 58,788 rows were called corrupted for one such column, with
    # the advice to drop them)
    optional = {col: float(cells.nan[col].mean()) for col in cells.numbers
                if len(df) and cells.nan[col].mean() >= MOSTLY_EMPTY}
    for col in cells.numbers:
        for problem, mask in (("unparsable", cells.unparsable[col]), ("inf", cells.inf[col]),
                              ("nan", cells.nan[col])):
            k = int(mask.sum())
            if not k or (problem == "nan" and col in optional):
                continue
            columns.setdefault(col, {})[problem] = k
            new = np.flatnonzero(mask & ~seen)
            seen[new] = True
            if problem == "unparsable":
                why.update(zip(new.tolist(), (f"column '{shorten(col, 40)}': not a number: {shorten(cell, 40)!r}"
                                              for cell in df[col].iloc[new].tolist())))
            else:
                why.update(dict.fromkeys(new.tolist(), f"column '{shorten(col, 40)}': {problem}"))
    totals = {p: sum(c.get(p, 0) for c in columns.values()) for p in ("nan", "inf", "unparsable")}
    ev: dict[str, Any] = {"rows": len(df), "rows_affected": len(why), "missing_target": int(y_missing.sum()),
                          "cells": totals, "columns": columns,
                          "optional_columns": {c: round(v, 4) for c, v in optional.items()}}
    told = ("; optional columns, empty in most rows (train fills them with the training centre and an indicator; "
            "--drop COL if one says nothing): " + ", ".join(f"'{shorten(c, 40)}' {v:.0%} empty"
                                                            for c, v in list(optional.items())[:ROWS_SHOWN])
            ) if optional else ""
    if not why:
        return Verdict("D3", "corrupted rows", "pass",
                       f"every row of {len(df)} has its target and finite numbers{told}", ev, "", source), why
    # the rows shown: those that stop train (unparsable or infinite cells) first, then the others, in row order
    rows = np.flatnonzero(seen)  # `seen` marks exactly the rows of `why`
    stops = np.fromiter((why[r].startswith("column") and not why[r].endswith(": nan") for r in rows.tolist()),
                        dtype=bool, count=len(rows))
    first = [int(r) for r in [*rows[stops][:ROWS_SHOWN], *rows[~stops][:ROWS_SHOWN]][:ROWS_SHOWN]]
    ev["first_rows"] = first
    parts = [f"{ev['missing_target']} with no target"] if ev["missing_target"] else []
    for p, label in (("unparsable", "unparsable"), ("inf", "infinite"), ("nan", "empty (NaN)")):
        if totals[p]:  # each problem with the columns that have it
            having = [c for c, found in columns.items() if found.get(p)]
            parts.append(f"{totals[p]} {label} cells in " + ", ".join(f"'{shorten(c, 40)}'" for c in having[:ROWS_SHOWN])
                         + (" ..." if len(having) > ROWS_SHOWN else ""))
    where = ", ".join(f"{label} ({why[r]})" for r, label in zip(first[:3], row_labels(path, first[:3])))
    summary = f"{len(why)} of {len(df)} rows are corrupted: {', '.join(parts)}; first: {where}{told}"
    # train stops on unparsable or infinite cells (schema.numeric_problems); it leaves out rows without a
    # target and imputes empty cells, so those two only warn
    status = "fail" if totals["unparsable"] or totals["inf"] else "warn"
    empty = next((c for c, found in columns.items() if found.get("nan")), None)
    fix = (f"fix or empty the unparsable and infinite cells (train stops on them), or drop the rows: "
           f"{clean_command(path, target)}" if status == "fail" else
           "train leaves out rows without a target and fills empty cells with the training split's centre"
           + (f", plus an indicator column ('{shorten(empty, 40)}__missing')" if empty else "")
           + f"; to drop those rows instead: {clean_command(path, target)}")
    return Verdict("D3", "corrupted rows", status, summary, ev, fix, source), why


def left_out_columns(schema: Schema) -> Verdict:
    """D3: the columns train leaves out as constant or ID-like (the schema's rule, data/schema.py). An
    ID-like column warns: the rule is a guess (a distinct integer or text in every row), and a real
    feature it takes for an ID would be lost; a constant column carries nothing and only passes."""
    source = f"{KARPATHY_DATA}: 'understand the data'; the schema's rules (README, 'How columns are read'); D3"
    constant = {c: why for c, why in schema.dropped.items() if why.startswith("constant")}
    ids = {c: why for c, why in schema.dropped.items() if why.startswith("ID-like")}
    ev = {"constant": list(constant), "id_like": list(ids), "reasons": {**constant, **ids}}
    if not constant and not ids:
        return Verdict("D3", "constant and ID-like columns", "pass", "no constant or ID-like column", ev, "", source)
    parts = [f"constant: {', '.join(repr(shorten(c, 40)) for c in constant)}"] if constant else []
    parts += [f"ID-like (a distinct value in every row): {', '.join(repr(shorten(c, 40)) for c in ids)}"] if ids else []
    first = next(iter(ids or constant))
    fix = (f"check that '{shorten(first, 40)}' is a row identifier: train leaves it out; if it is a real feature, pass "
           f"{flag('--numeric', first)} or {flag('--categorical', first)}; to say it is an ID, pass "
           f"{flag('--drop', first)}" if ids else
           f"nothing is needed (train leaves constant columns out); to silence the notice, pass {flag('--drop', first)}")
    return Verdict("D3", "constant and ID-like columns", "warn" if ids else "pass",
                   f"train leaves out {len(constant) + len(ids)} column{'s' if len(constant) + len(ids) > 1 else ''}; "
                   f"{'; '.join(parts)}", ev, fix, source)


# ---------------------------------------------------------------- D8
def feature_scales(cells: Cells, scaling: str) -> Verdict:
    """D8: each raw numeric column's min, max, mean, std and outlier share (beyond Tukey's 1.5 IQR fences),
    the span of their scales (the doctor's measure, checks/data_checks.scale_stats), and the advice."""
    source = ("'Tips and tricks for Neural Networks' ('(Re-)Scale numerical values'); Tukey's fences (1.5 IQR); "
              "robust scaling for heavy outliers; D8")
    stats: dict[str, Any] = {}
    heavy: dict[str, float] = {}
    for col, v in cells.numbers.items():
        ok = v[np.isfinite(v)]
        if not len(ok):
            continue
        mean, std = mean_std(ok)
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: an IQR or a distance may be inf
            q1, med, q3 = np.percentile(ok, [25, 50, 75])
            iqr = q3 - q1
            outside = float(((ok < q1 - TUKEY * iqr) | (ok > q3 + TUKEY * iqr)).mean()) if iqr > 0 else 0.0
            spread = iqr or std
            far = float(np.abs(ok - med).max() / spread) if spread > 0 else 0.0
        far = far if np.isfinite(far) else 0.0
        stats[col] = {"min": float(ok.min()), "max": float(ok.max()), "mean": mean,
                      "std": std, "median": float(med), "iqr": float(iqr),
                      "outlier_share": round(outside, 4), "max_iqrs_from_median": round(far, 1)}
        if far >= OUTLIER_IQRS:
            heavy[col] = round(far, 1)
    if not stats:
        return Verdict("D8", "feature scales", "pass", "no numeric columns", {}, "", source)
    matrix = torch.from_numpy(np.stack([np.nan_to_num(cells.numbers[c], nan=0.0, posinf=0.0, neginf=0.0)
                                        for c in stats], 1))
    span = scale_stats((matrix,))
    names = list(stats)
    ev: dict[str, Any] = {"columns": stats, "scaling": scaling, "heavy_outliers": heavy,
                          "outliers_warn_at_iqrs": OUTLIER_IQRS}
    if span:
        ev["span"] = span["span"]
        ev["largest"] = names[span["largest"]["feature"]]
        ev["smallest"] = names[span["smallest"]["feature"]]
        scales = (f"the scales (max |x|) of {len(stats)} numeric columns span {span['span']:.3g}x "
                  f"('{shorten(ev['smallest'], 40)}' to '{shorten(ev['largest'], 40)}')")
    else:
        scales = f"{len(stats)} numeric columns, all zero"
    told = "train rescales them itself" + (f" (--scaling {scaling})" if scaling else "")
    if not heavy or scaling == "robust":
        extra = (f"; heavy outliers in {', '.join(repr(shorten(c, 40)) for c in heavy)}, scaled robustly"
                 if heavy else "")
        return Verdict("D8", "feature scales", "pass", f"{scales}: {told}{extra}", ev, "", source)
    first = next(iter(heavy))
    return Verdict("D8", "feature scales", "warn",
                   f"{scales}; {len(heavy)} columns have heavy outliers (cells >= {OUTLIER_IQRS:g} IQRs from the "
                   f"median: {', '.join(f'{shorten(c, 40)!r} {k:g}' for c, k in list(heavy.items())[:ROWS_SHOWN])}): "
                   f"standardizing squeezes the rest of '{shorten(first, 40)}' into a sliver", ev,
                   "pass --scaling robust (median and IQR), or check those cells: a unit or entry error?", source)
