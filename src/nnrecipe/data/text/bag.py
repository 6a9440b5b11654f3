"""A table's text columns as the default text model reads them: each cell's first `max_length` word tokens as
TF-IDF over word 1-2-grams (vocab.TextVocabulary, fitted on the training rows), packed into two dense tensors
a row: the ids of its terms and their weights, padded with id 0 and weight 0.

Why dense padded bags rather than a sparse matrix: every other input of a table is a dense tensor that the
trainer slices by row, resamples and moves to the device; (ids, weights) slices the same way, and
`nn.EmbeddingBag(mode="sum", padding_idx=0)` with the weights as `per_sample_weights` computes the product of
the TF-IDF row with a weight matrix without forming the row (the wide path: the full-rank linear model over
n-grams; the deep path: the same product into a small learned embedding). Several text columns share one id
space: column c's terms are numbered after column c-1's, each column's row l2-normalised on its own.

The maximum length: `--max-tokens`, else the 95th percentile of the training rows' token lengths rounded up to
a multiple of 8 (lengths.length_report's suggestion, D2 in tokens). Rows longer than it are truncated, and
counted: at training (the audit) and at predict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import logging

import numpy as np
import pandas as pd

from ...errors import DataError
from .lengths import _missing, _suggest, word_tokens
from .vocab import TextVocabulary

log = logging.getLogger("nnrecipe")


def tokens(texts: Iterable[object]) -> list[list[str]]:
    """Each cell's word tokens (an empty list for a missing cell; a number is read as its text)."""
    return [[] if _missing(t) else word_tokens(t if isinstance(t, str) else str(t)) for t in texts]


def suggested_length(lengths: np.ndarray) -> int:
    """The 95th percentile of `lengths` rounded up to a multiple of 8, at least 8 (D2 in tokens)."""
    return _suggest(np.sort(np.asarray(lengths, dtype=np.int64)))


def fit_text_column(s: pd.Series, column: str, max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON the preprocessing stores for a text column: its maximum length and its vocabulary (fitted on
    the rows of `s`, the training split, each cut to the maximum length)."""
    words = tokens(s)
    lengths = np.fromiter((len(w) for w in words), np.int64, len(words))
    limit = int(max_tokens) if max_tokens is not None else suggested_length(lengths)
    texts = [" ".join(w[:limit]) for w in words]
    if not any(texts):
        raise DataError(f"text column '{column}' has no word in any of its {len(texts)} training rows (empty, or only "
                        f"punctuation and symbols); drop it (--drop {column}), or fill it in")
    try:
        vocab = TextVocabulary().fit(texts, column=column)
    except DataError:  # no word in 2 training rows (a column filled in a few rows): every word it has
        log.info("text column '%s': no word in 2 or more training rows; the vocabulary keeps words seen once", column)
        vocab = TextVocabulary().fit(texts, column=column, min_df=1)
    return {"kind": "text", "max_length": limit, "suggested_max_length": suggested_length(lengths),
            "vocabulary": vocab.to_dict()}


class TextEncoder:
    """Encodes a table's text columns (their specs from `fit_text_column`, in column order) into (ids,
    weights); the vocabularies are rebuilt from JSON once."""

    def __init__(self, specs: Mapping[str, Mapping[str, Any]]):
        self.columns = list(specs)
        self.limits = [int(specs[c]["max_length"]) for c in self.columns]
        self.vocabs = [TextVocabulary.from_dict(specs[c]["vocabulary"]) for c in self.columns]
        self.offsets = np.cumsum([0] + [v.n_terms for v in self.vocabs])[:-1].tolist()

    @property
    def n_terms(self) -> int:
        """Ids the bags use: every column's terms, plus id 0 for padding."""
        return sum(v.n_terms for v in self.vocabs) + 1

    def encode(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]]:
        """(N, L) int64 term ids and (N, L) float32 weights, the terms of each row first and the padding
        after (L: the most terms any row of `df` has, at least 1); and per column the counts predict reports:
        rows truncated at the maximum length, word tokens and unknown word tokens (over whole cells)."""
        ids, weights, counts = [], [], {}
        for col, limit, vocab, offset in zip(self.columns, self.limits, self.vocabs, self.offsets):
            words = tokens(df[col])
            x = vocab.tfidf_matrix([" ".join(w[:limit]) for w in words])
            i, w = _padded(x, offset + 1)
            ids.append(i)
            weights.append(w)
            counts[col] = {"truncated_rows": sum(len(w) > limit for w in words),
                           "tokens": sum(len(w) for w in words),
                           "unknown_tokens": sum(vocab.unknown_tokens(w) for w in words)}
        return _packed(np.concatenate(ids, axis=1), np.concatenate(weights, axis=1)) + (counts,)


    def sequences(self, df: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
        """--text-model transformer's input: each row's first max_length word tokens of every text column in
        order, as ids (0 padding, 1 a word the vocabulary lacks, then column by column its words), (N, L) int64,
        the real tokens first; and [ids, the longest row possible]."""
        index: dict[tuple[int, str], int] = {}
        for c, vocab in enumerate(self.vocabs):  # column c's word i (1..n) is id 1 + the ids before + i
            start = 1 + len(index)
            index.update({(c, w): start + i for w, i in vocab.words.items()})
        rows = []
        for values in zip(*(tokens(df[col]) for col in self.columns)):
            row: list[int] = []
            for c, (words, limit) in enumerate(zip(values, self.limits)):
                row += [index.get((c, w), 1) for w in words[:limit]]
            rows.append(row)
        out = np.zeros((len(rows), max([len(r) for r in rows] + [1])), np.int64)
        for i, r in enumerate(rows):
            out[i, :len(r)] = r
        return out, [2 + len(index), sum(self.limits)]

    def terms_read(self, ids: Any, weights: Any, top: int = 12) -> list[str]:
        """Each row's terms as the model reads them, heaviest first (at most `top`, then '...'): D14's
        view of a text input."""
        names = ["<pad>"] + [t for v in self.vocabs for t in v.terms]
        out = []
        for row_ids, row_w in zip(np.asarray(ids), np.asarray(weights)):
            order = [i for i in np.argsort(-row_w, kind="stable") if row_ids[i] != 0]
            shown = ", ".join(f"{names[int(row_ids[i])]} {row_w[i]:.2f}" for i in order[:top])
            out.append(shown + (" ..." if len(order) > top else ""))
        return out


def _padded(x: Any, first_id: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR matrix's rows as (N, L) ids (its columns + first_id) and weights, zero-padded on the right."""
    n = x.shape[0]
    lengths = np.diff(x.indptr)
    width = max(int(lengths.max(initial=0)), 1)
    rows = np.repeat(np.arange(n), lengths)
    place = np.arange(x.nnz) - np.repeat(x.indptr[:-1], lengths)
    ids = np.zeros((n, width), np.int64)
    weights = np.zeros((n, width), np.float32)
    ids[rows, place] = x.indices.astype(np.int64) + first_id
    weights[rows, place] = x.data
    return ids, weights


def _packed(ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Several columns' padded blocks side by side, each row's terms moved to the front (a stable sort on
    'is padding'), the columns that only pad dropped: a batch's bags are then as wide as its longest row."""
    order = np.argsort(ids == 0, axis=1, kind="stable")
    ids, weights = np.take_along_axis(ids, order, 1), np.take_along_axis(weights, order, 1)
    width = max(int((ids != 0).sum(1).max(initial=0)), 1)
    return np.ascontiguousarray(ids[:, :width]), np.ascontiguousarray(weights[:, :width])


def bag_matrix(terms: Any, weights: Any, n_terms: int) -> Any:
    """(N, L) term ids and weights (numpy or torch) back as the (N, n_terms) scipy CSR TF-IDF matrix, for the
    models that read sparse rows (scikit-learn's)."""
    from scipy import sparse

    terms, weights = np.asarray(terms), np.asarray(weights)
    keep = terms != 0
    rows = np.repeat(np.arange(len(terms)), keep.sum(1))
    return sparse.csr_matrix((weights[keep].astype(np.float64), (rows, terms[keep])), shape=(len(terms), n_terms))

