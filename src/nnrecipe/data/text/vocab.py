"""The default text encoder's vocabulary: word 1-2-gram TF-IDF for the wide path and unigram ids for the deep
path (a small `nn.EmbeddingBag`).

The issue's words: "the known strong baseline is a full-rank linear model over word 1-2-grams (TF-IDF +
logistic regression) ... The vocabulary (or a stable hash, never Python's salted `hash`) and the idf are
stored in model.json; predict counts unknown tokens." The TF-IDF itself is scikit-learn's `TfidfVectorizer`
(the field's tool, not a re-implementation); what nnrecipe stores is its vocabulary in index order and its
`idf_`, as JSON, so loading a model never unpickles anything (STYLE.md rule 8).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from ...errors import ConfigError, DataError
from .lengths import _missing, word_tokens

log = logging.getLogger("nnrecipe")

FORMAT = "nnrecipe.text_vocabulary"
FORMAT_VERSION = 1

# Below this many training texts min_df is lowered to 1: with a handful of rows most words occur in one row
# only, so min_df=2 would leave a near-empty vocabulary (or none) and the model nothing to read. min_df=1 is
# scikit-learn's own default; the higher default exists to drop one-off typos and names on real corpora.
_SMALL_CORPUS = 20
# Unknown tokens keep a place in the deep path's bag as id 0 (see `unigram_ids`).
UNKNOWN_ID = 0


def _as_texts(texts: Iterable[object]) -> list[str]:
    """Strings for the vectorizer: None/NaN/NA are empty strings, other non-strings `str(value)` (as
    `token_lengths` counts them)."""
    if isinstance(texts, str):
        raise ConfigError(f"texts is one string ({texts[:40]!r}); pass a list or column of texts, e.g. [text]")
    return ["" if _missing(t) else (t if isinstance(t, str) else str(t)) for t in texts]


def _check_settings(ngram_range: object, min_df: object, max_features: object) -> tuple[tuple[int, int], int | float,
                                                                                          int | None]:
    """The fit settings validated, every problem reported at once (STYLE.md rule 4)."""
    problems = []
    ok_range = (isinstance(ngram_range, (tuple, list)) and len(ngram_range) == 2
                and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in ngram_range)
                and 1 == ngram_range[0] <= ngram_range[1])
    if not ok_range:
        # The lower end must be 1: the deep path's EmbeddingBag reads the unigrams of this same vocabulary.
        problems.append(f"ngram_range is {ngram_range!r}; pass (1, n) with n >= 1, e.g. (1, 2) for words and "
                        "word pairs")
    if isinstance(min_df, bool) or not (
            (isinstance(min_df, (int, np.integer)) and min_df >= 1)
            or (isinstance(min_df, (float, np.floating)) and 0.0 < min_df <= 1.0)):
        problems.append(f"min_df is {min_df!r}; pass a row count of at least 1 (e.g. 2) or a share of rows in "
                        "(0, 1] (e.g. 0.01)")
    if max_features is not None and (isinstance(max_features, bool) or not isinstance(max_features, (int, np.integer))
                                     or max_features < 1):
        problems.append(f"max_features is {max_features!r}; pass a whole number of at least 1 (e.g. 50_000) or "
                        "None for no cap")
    if problems:
        raise ConfigError("; ".join(problems))
    return (int(ngram_range[0]), int(ngram_range[1])), min_df, (None if max_features is None else int(max_features))


def _vectorizer(ngram_range: tuple[int, int], min_df: int | float = 1, max_features: int | None = None,
                vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
    # tokenizer=word_tokens already lower-cases and NFC-normalises, so sklearn's lowercase and token_pattern
    # are off (token_pattern=None also silences its "will not be used" warning). sublinear_tf: 1 + log(tf),
    # the usual choice for the TF-IDF + logistic regression baseline (Manning et al., IR book, section 6.4.1).
    return TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None, ngram_range=ngram_range,
                           min_df=min_df, max_features=max_features, vocabulary=vocabulary,
                           sublinear_tf=True, dtype=np.float32)


class TextVocabulary:
    """Word n-gram TF-IDF (wide path) and unigram ids (deep path) fitted on one text column's training rows.

    `fit` -> `tfidf(texts)`, `unigram_ids(texts, max_length)`, `unknown_share(texts)`; `to_dict()` is plain
    JSON and `TextVocabulary.from_dict(d)` gives identical transforms."""

    def __init__(self) -> None:
        self.vectorizer: TfidfVectorizer | None = None
        self.terms: list[str] = []  # every n-gram in the vectorizer's column order
        self.settings: dict[str, Any] = {}
        self._unigram_index: dict[str, int] = {}  # word -> id in 1..n_unigrams

    # -- fitting and storing -------------------------------------------------------------------------------

    def fit(self, texts: Iterable[object], ngram_range: tuple[int, int] = (1, 2), min_df: int | float = 2,
            max_features: int | None = 50_000, column: str | None = None) -> TextVocabulary:
        """Fit the vocabulary and idf on training texts (never on validation or test rows: the idf would
        leak their word counts). Raises DataError when there are no texts or no term survives min_df."""
        ngram_range, min_df, max_features = _check_settings(ngram_range, min_df, max_features)
        rows = _as_texts(texts)
        where = f"text column '{column}'" if column is not None else "the texts"
        if not rows:
            raise DataError(f"{where} has no rows to fit a vocabulary on; pass the training rows of a text "
                            "column (at least one non-empty text)")
        if len(rows) < _SMALL_CORPUS and min_df != 1:
            log.info("text vocabulary: only %d training texts (< %d); lowering min_df from %r to 1 so words "
                     "seen once are kept", len(rows), _SMALL_CORPUS, min_df)
            min_df = 1
        vectorizer = _vectorizer(ngram_range, min_df, max_features)
        try:
            vectorizer.fit(rows)
        except ValueError as exc:
            # sklearn's "empty vocabulary" / "After pruning, no terms remain" / "max_df corresponds to < documents
            # than min_df": all mean no term is left; say which of our inputs caused it.
            n_words = sum(len(word_tokens(r)) for r in rows)
            if n_words == 0:
                raise DataError(f"{where} has no words in any of its {len(rows)} rows (all empty, missing or only "
                                "punctuation/symbols); pass a column that holds text, or drop it from the "
                                "inputs") from exc
            raise DataError(f"{where} has no term in at least min_df={min_df!r} of its {len(rows)} rows, so the "
                            f"vocabulary is empty; lower min_df (e.g. min_df=1) or fit on more rows") from exc
        self._set(vectorizer, {"ngram_range": list(ngram_range), "min_df": min_df, "max_features": max_features,
                               "n_texts": len(rows)})
        log.debug("text vocabulary: %d terms (%d words) from %d texts", len(self.terms), self.n_unigrams, len(rows))
        return self

    def _set(self, vectorizer: TfidfVectorizer, settings: dict[str, Any]) -> None:
        self.vectorizer = vectorizer
        self.terms = vectorizer.get_feature_names_out().tolist()
        self.settings = settings
        # sklearn joins the words of an n-gram with one space and word_tokens never yields a space, so the
        # unigrams are exactly the terms without one; they keep the vocabulary's order.
        self._unigram_index = {t: i + 1 for i, t in enumerate(t for t in self.terms if " " not in t)}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (lists, numbers, strings) for model.json: the terms in column order, the idf and the
        settings. The idf floats are float32 values written as Python floats, so they load back exactly."""
        vectorizer = self._fitted()
        return {"format": FORMAT, "version": FORMAT_VERSION, "tokenizer": "word_tokens", "sublinear_tf": True,
                "norm": vectorizer.norm, "smooth_idf": vectorizer.smooth_idf, **self.settings,
                "terms": list(self.terms), "idf": vectorizer.idf_.astype(np.float32).tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TextVocabulary:
        """The vocabulary `to_dict` wrote. The vectorizer is rebuilt with `vocabulary=` and its `idf_` set
        (sklearn >= 1.0 allows setting `idf_` on a TfidfVectorizer), so nothing is refitted."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise DataError(f"text vocabulary: expected a dict with format '{FORMAT}', got "
                            f"{type(d).__name__} with format {getattr(d, 'get', lambda k: None)('format')!r}; "
                            "pass what TextVocabulary.to_dict() wrote")
        if d.get("version") != FORMAT_VERSION or d.get("tokenizer") != "word_tokens":
            raise DataError(f"text vocabulary: version {d.get('version')!r} with tokenizer {d.get('tokenizer')!r} "
                            f"cannot be read; this nnrecipe reads version {FORMAT_VERSION} with 'word_tokens': "
                            "refit the model with this version")
        missing = [k for k in ("ngram_range", "min_df", "max_features", "n_texts", "terms", "idf") if k not in d]
        if missing:
            raise DataError(f"text vocabulary is missing {', '.join(missing)}; the model.json is incomplete: "
                            "refit the model")
        terms, idf = list(d["terms"]), np.asarray(d["idf"], dtype=np.float32)
        if len(terms) != idf.shape[0] or len(set(terms)) != len(terms) or not terms:
            raise DataError(f"text vocabulary has {len(terms)} terms ({len(set(terms))} distinct) and {idf.shape[0]} "
                            "idf values; they must match one to one: the model.json is damaged, refit the model")
        ngram_range = (int(d["ngram_range"][0]), int(d["ngram_range"][1]))
        vectorizer = _vectorizer(ngram_range, vocabulary={t: i for i, t in enumerate(terms)})
        vectorizer.idf_ = idf  # the setter builds the inner TfidfTransformer; checked against the vocabulary
        vocab = cls()
        vocab._set(vectorizer, {k: d[k] for k in ("min_df", "max_features", "n_texts")}
                   | {"ngram_range": list(ngram_range)})
        return vocab

    # -- transforms ------------------------------------------------------------------------------------------

    def _fitted(self) -> TfidfVectorizer:
        if self.vectorizer is None:
            raise ConfigError("this TextVocabulary is not fitted; call .fit(training_texts) or load one with "
                              "TextVocabulary.from_dict(d)")
        return self.vectorizer

    @property
    def n_terms(self) -> int:
        """Columns of `tfidf`: the wide path's input width."""
        return len(self.terms)

    @property
    def words(self) -> dict[str, int]:
        """Each word (a unigram term) and its id, 1..n_unigrams in the vocabulary's order (0: unknown)."""
        return self._unigram_index

    @property
    def n_unigrams(self) -> int:
        return len(self._unigram_index)

    @property
    def num_embeddings(self) -> int:
        """Rows an `nn.EmbeddingBag` over `unigram_ids` needs: the words plus id 0 for unknown ones."""
        return self.n_unigrams + 1

    def tfidf_matrix(self, texts: Iterable[object]) -> Any:
        """(N, n_terms) scipy CSR float32 with sorted columns: sklearn's rows, 1 + log(tf) times idf,
        l2-normalised (a row with no known term is all zeros). Unknown terms are dropped, as in sklearn."""
        x = self._fitted().transform(_as_texts(texts))
        x.sort_indices()  # torch's CSR and the padded bags want sorted columns per row; sklearn's are already
        return x

    def tfidf(self, texts: Iterable[object]) -> torch.Tensor:
        """`tfidf_matrix` as a torch sparse CSR float32 tensor."""
        x = self.tfidf_matrix(texts)
        with warnings.catch_warnings():
            # torch's one-time "Sparse CSR tensor support is in beta state" notice is about torch, not the data.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
            # check_invariants=False said explicitly: the arrays are scipy's valid, sorted CSR.
            return torch.sparse_csr_tensor(torch.from_numpy(x.indptr.astype(np.int64)),
                                           torch.from_numpy(x.indices.astype(np.int64)),
                                           torch.from_numpy(x.data.astype(np.float32)), size=x.shape,
                                           check_invariants=False)

    def unigram_ids(self, texts: Iterable[object], max_length: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Inputs for `nn.EmbeddingBag(num_embeddings, dim)(ids, offsets)`: every row's first `max_length` word
        tokens as ids (word index + 1), all rows concatenated, `offsets[i]` where row i starts; and each row's
        count of unknown tokens over the whole row (before truncation, so predict reports vocabulary coverage
        whatever the max_length).

        Unknown tokens stay in the bag as id 0 rather than being dropped: a truncated row then keeps the same
        first `max_length` positions that `token_lengths`/`length_report` count (so D2's truncation numbers
        hold), and the model sees how much of a row it cannot read. Build the bag with `padding_idx=0` to make
        them count for nothing in a "mean" bag, or without it to learn one "unknown word" vector (the single
        out-of-vocabulary index of Keras' StringLookup)."""
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ConfigError(f"max_length is {max_length!r}; it must be a whole number of at least 1: pass the "
                              "deep path's maximum length in tokens, e.g. length_report(...).suggested_max_length")
        self._fitted()
        index, ids, offsets, unknown = self._unigram_index, [], [], []
        for text in _as_texts(texts):
            row = [index.get(t, UNKNOWN_ID) for t in word_tokens(text)]
            offsets.append(len(ids))
            unknown.append(row.count(UNKNOWN_ID))
            ids.extend(row[:max_length])
        return (torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long),
                np.asarray(unknown, dtype=np.int64))

    def unknown_tokens(self, tokens: Iterable[str]) -> int:
        """How many of `tokens` (word tokens) the vocabulary does not hold as words."""
        self._fitted()
        return sum(t not in self._unigram_index for t in tokens)

    def unknown_share(self, texts: Iterable[object]) -> float:
        """Unknown word tokens over all word tokens in `texts` (0.0 when there are none): predict's report of
        how much of the new text the vocabulary does not cover."""
        self._fitted()
        total = unknown = 0
        for text in _as_texts(texts):
            tokens = word_tokens(text)
            total += len(tokens)
            unknown += sum(t not in self._unigram_index for t in tokens)
        return unknown / total if total else 0.0
