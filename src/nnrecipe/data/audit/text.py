"""The audit's findings on a table's text columns (schema kind "text"):

- D2 in tokens: per column the token-length percentiles for the encoder in use (the default encoder's word
  tokens), the maximum length the model reads (the 95th percentile rounded up to a multiple of 8, or
  --max-tokens), the share of rows truncated and of tokens lost at it, and the padding share of fixed,
  per-batch and length-bucketed batches at the run's batch size (data/text/lengths.py).
- D3 empty and near-empty texts (no word, or one).
- D4 duplicates after normalisation (case and whitespace) that carry different labels.
- leakage: a text column with a word (or word pair) that decides the label: held by 95% of a class's rows
  and of that class in 99% of the rows that hold it, for every class but one (the label written in the
  text). One word, not a model's score: an easy task (spam, a language) is read well from many words,
  which is no leak.

Karpathy's "A Recipe for Training Neural Networks" and the article on NLP data ("know the label and length
distributions, choose the maximum sequence length") are the sources.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ...checks.data_checks import ROWS_SHOWN, DataView, conflicts, groups
from ...checks.verdict import Verdict
from ...errors import shorten
from ..prepare import PreparedTable
from ..text.bag import tokens
from ..text.lengths import length_report

SOURCE_D2 = ("the article on NLP data ('the distribution of the length of sequence ... set the appropriate maximum "
             "length'); D2 in tokens")
# D3: more than this share of a text column's rows hold no word or a single one: a column mostly empty
EMPTY_WARN = 0.05
# leakage: a term that marks a class. On the Rotten Tomatoes snippets (12,808 rows) and the docstring table
# (480) no term reaches either class's rows at 95% (the most common words stay under 60%, and are in both)
LEAK_RECALL, LEAK_PRECISION = 0.95, 0.99
LEAK_ROWS = 20_000  # the leak check's seeded sample
# D4: the doctor's threshold for conflicting duplicates (checks/data_checks.py: fail from 1% of rows)
CONFLICT_FAIL = 0.01


def text_columns(prep: PreparedTable) -> list[str]:
    return prep.pre.text_columns


def text_findings(df: pd.DataFrame, prep: PreparedTable, target: str, seed: int, batch_size: int) -> list[Verdict]:
    """The findings above for every text column of `prep` (`df`: the table as read, every row)."""
    cols = text_columns(prep)
    if not cols:
        return []
    rows = prep.rows  # the prepared rows' data rows, in split order
    frame = df.loc[rows]
    y = prep.y.reshape(len(prep.y), -1)
    return [token_lengths(frame, prep, batch_size, seed), empty_texts(frame, cols),
            normalised_conflicts(frame, cols, y, prep.task), text_leak(frame, cols, y, prep.task, seed)]


def token_lengths(frame: pd.DataFrame, prep: PreparedTable, batch_size: int, seed: int) -> Verdict:
    train = frame.iloc[:prep.counts["train"]]
    out: dict[str, Any] = {}
    for col in text_columns(prep):
        spec = prep.pre.columns[col]
        lengths = np.array([len(w) for w in tokens(train[col])], dtype=np.int64)
        out[col] = length_report(lengths, batch_size, spec["max_length"], seed).to_dict()
        if "encoder" in spec:  # the pretrained encoder's own tokens, at the length it reads
            from ..text.encoder import as_texts, load_encoder

            enc = spec["encoder"]
            found = load_encoder(enc["name"]).lengths(as_texts(train[col]))
            out[f"{col} ({enc['name']} tokens)"] = length_report(found, batch_size, enc["max_length"], seed).to_dict()
    shown = "; ".join(
        f"'{shorten(c, 40)}' median {r['p50']:.0f} tokens, 95th percentile {r['p95']:.0f}: the model reads "
        f"{r['max_length']} (suggested {r['suggested_max_length']}), {r['truncated_share']:.1%} of rows cut and "
        f"{r['tokens_lost_share']:.1%} of tokens lost; padding {r['padding_fixed']:.0%} fixed, "
        f"{r['padding_per_batch']:.0%} per batch, {r['padding_bucketed']:.0%} bucketed"
        for c, r in list(out.items())[:4])
    ev = {"columns": out, "tokenizer": "word tokens (data/text/lengths.py word_tokens)", "batch_size": batch_size}
    cut = {c: r for c, r in out.items() if r["truncated_share"] > 0.25}
    if cut:
        c, r = next(iter(cut.items()))
        return Verdict("D2", "text lengths in tokens", "warn",
                       f"{shown}: the maximum length cuts {r['truncated_share']:.0%} of '{shorten(c, 40)}''s rows", ev,
                       f"raise --max-tokens to the suggestion ({r['suggested_max_length']}) or leave it out",
                       SOURCE_D2)
    return Verdict("D2", "text lengths in tokens", "pass", shown, ev, "", SOURCE_D2)


def empty_texts(frame: pd.DataFrame, cols: list[str]) -> Verdict:
    source = "Karpathy's recipe (look at the data: corrupted and empty examples); D3"
    ev: dict[str, Any] = {}
    for col in cols:
        n_words = np.array([len(w) for w in tokens(frame[col])], dtype=np.int64)
        empty, near = np.flatnonzero(n_words == 0), np.flatnonzero(n_words == 1)
        ev[col] = {"empty_rows": len(empty), "one_word_rows": len(near),
                   "share": round((len(empty) + len(near)) / max(len(frame), 1), 4),
                   "first_rows": frame.index.to_numpy()[np.sort(np.concatenate([empty, near]))][:ROWS_SHOWN].tolist()}
    worst = max(ev, key=lambda c: ev[c]["share"])
    w = ev[worst]
    if w["share"] <= EMPTY_WARN:
        return Verdict("D3", "empty texts", "pass",
                       f"{sum(e['empty_rows'] for e in ev.values())} empty and {sum(e['one_word_rows'] for e in ev.values())}"
                       f" one-word cells in {len(cols)} text column(s)", ev, "", source)
    return Verdict("D3", "empty texts", "warn",
                   f"'{shorten(worst, 40)}': {w['empty_rows']} rows hold no word and {w['one_word_rows']} a single one "
                   f"({w['share']:.1%}; first data rows {w['first_rows'][:5]}): the model reads nothing in them", ev,
                   "fill the texts in, or leave those rows out if they are not examples", source)


def normalised_conflicts(frame: pd.DataFrame, cols: list[str], y: torch.Tensor, task: str) -> Verdict:
    """D4 on the text alone: cells equal after case-folding and collapsing whitespace, under different labels."""
    source = "Karpathy's recipe (duplicates and contradictory labels); D4"
    name = "text duplicates"
    text = frame[cols].astype("string").fillna("").apply(
        lambda s: s.str.casefold().str.replace(r"\s+", " ", regex=True).str.strip())
    keys = pd.util.hash_pandas_object(text, index=False).to_numpy()
    group, sizes = groups(keys)
    dup = int((sizes[group] > 1).sum())
    n = len(frame)
    ev: dict[str, Any] = {"rows": n, "duplicate_rows": dup}
    if task == "regression" or not dup:
        return Verdict("D4", name, "pass", f"{dup} of {n} rows repeat another's text (after case and whitespace)"
                       + (" (regression: labels not judged)" if task == "regression" and dup else ""), ev, "", source)
    # the doctor's D4 on one input, the normalised text's group: its rows under more than one label
    bad = conflicts(DataView((torch.from_numpy(group.astype(np.int64))[:, None],), y, task, sampled=False))[1]
    ev.update(conflicting_rows=len(bad), first_rows=frame.index.to_numpy()[bad][:ROWS_SHOWN].tolist())
    if not len(bad):
        return Verdict("D4", name, "pass", f"{dup} of {n} rows repeat another's text (after case and whitespace), "
                       "each under one label", ev, "", source)
    share = len(bad) / n
    return Verdict("D4", name, "fail" if share >= CONFLICT_FAIL else "warn",
                   f"{len(bad)} rows ({share:.1%}) share their text (after case and whitespace) with a row of another "
                   f"label (first data rows {ev['first_rows'][:5]}): one of each pair is mislabelled, or the text does "
                   "not decide the label", ev, "relabel or remove the contradicting rows", source)


def text_leak(frame: pd.DataFrame, cols: list[str], y: torch.Tensor, task: str, seed: int) -> Verdict:
    """leakage: a text column in which one term marks a class (LEAK_RECALL of its rows hold it, LEAK_PRECISION of
    the rows that hold it are of that class), for every class but one: the label is written in the text."""
    from sklearn.feature_extraction.text import CountVectorizer

    source = "Karpathy's recipe (leakage: the label recorded in an input)"
    name = "text column leaks the target"
    if task not in ("binary", "multiclass"):
        return Verdict("leakage", name, "skipped", f"task {task}: judged for classes", {}, "", source)
    labels = y[:, 0].long().numpy()
    pick = np.arange(len(labels))
    if len(pick) > LEAK_ROWS:
        pick = np.sort(np.random.default_rng(seed).choice(len(pick), LEAK_ROWS, replace=False))
    labels = labels[pick]
    classes, labels = np.unique(labels, return_inverse=True)
    per_class = np.bincount(labels)
    marked: dict[str, dict[str, str]] = {}
    for col in cols:
        texts = [" ".join(w) for w in tokens(frame[col].iloc[pick])]
        try:  # presence of each word and word pair, per row
            x = CountVectorizer(binary=True, token_pattern=r"\S+", ngram_range=(1, 2)).fit(texts)
        except ValueError:  # no word at all
            continue
        counts = x.transform(texts).tocsc()
        terms = x.get_feature_names_out()
        held = np.asarray(counts.sum(0)).ravel()
        found = {}
        for k in range(len(classes)):
            in_class = np.asarray(counts[labels == k].sum(0)).ravel()
            ok = (in_class >= LEAK_RECALL * per_class[k]) & (in_class >= LEAK_PRECISION * held)
            if ok.any():
                found[str(k)] = str(terms[int(np.flatnonzero(ok)[0])])
        if len(found) >= max(1, len(classes) - 1):
            marked[col] = found
    ev = {"rows": len(pick), "recall_at_least": LEAK_RECALL, "precision_at_least": LEAK_PRECISION,
          "marking_terms": {c: {str(classes[int(k)]): t for k, t in f.items()} for c, f in marked.items()}}
    if not marked:
        return Verdict("leakage", name, "pass", f"no text column has a word that marks a class (in {LEAK_RECALL:.0%} of "
                       f"its rows and {LEAK_PRECISION:.0%} of the rows holding it)", ev, "", source)
    col = next(iter(marked))
    shown = ", ".join(f"'{t}' for {cls}" for cls, t in list(ev["marking_terms"][col].items())[:4])
    return Verdict("leakage", name, "fail",
                   f"text column '{shorten(col, 40)}' holds a word that decides the label ({shown}): at least "
                   f"{LEAK_RECALL:.0%} of the class's rows hold it and {LEAK_PRECISION:.0%} of the rows holding it are "
                   "of the class; the label is written in the text, or the text was made after it", ev,
                   f"drop it (--drop {col}) or remove the label from the text", source)
