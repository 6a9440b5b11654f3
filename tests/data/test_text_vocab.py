"""The default text encoder's vocabulary (data/text/vocab.py): a JSON round trip gives identical TF-IDF and
ids, unknown tokens are counted, rows are truncated, min_df keeps or drops terms, the TF-IDF is sklearn's,
and the empty-vocabulary errors are matched whole."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from nnrecipe.data.text import TextVocabulary, word_tokens
from nnrecipe.errors import ConfigError, DataError

# 24 rows (>= 20, so min_df=2 is kept as given): "cat"/"dog"/"sat" recur, each row also has a one-off word.
TRAIN = [f"The cat sat on mat{i}. Don't stop!" if i % 2 else f"A dog sat, the dog ran{i}" for i in range(24)]
NEW = ["The cat sat on the zebra", "unseen words only", None, float("nan"), "", "dog dog dog dog dog dog"]


def fitted(**kwargs) -> TextVocabulary:
    return TextVocabulary().fit(TRAIN, **kwargs)


def test_json_round_trip_gives_identical_tfidf_and_ids():
    vocab = fitted()
    loaded = TextVocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert loaded.terms == vocab.terms and loaded.num_embeddings == vocab.num_embeddings
    a, b = vocab.tfidf(NEW + TRAIN), loaded.tfidf(NEW + TRAIN)
    assert a.layout == torch.sparse_csr and a.dtype == torch.float32 and a.shape == (len(NEW) + 24, vocab.n_terms)
    for x, y in [(a.crow_indices(), b.crow_indices()), (a.col_indices(), b.col_indices()), (a.values(), b.values())]:
        assert torch.equal(x, y)
    for x, y in zip(vocab.unigram_ids(NEW, 4), loaded.unigram_ids(NEW, 4)):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_tfidf_is_sklearns_with_l2_rows():
    vocab = fitted()
    reference = TfidfVectorizer(tokenizer=word_tokens, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                                min_df=2, max_features=50_000, sublinear_tf=True, dtype=np.float32)
    expected = reference.fit(TRAIN).transform([t if isinstance(t, str) else "" for t in NEW]).toarray()
    got = vocab.tfidf(NEW).to_dense().numpy()
    assert np.array_equal(got, expected)
    norms = np.linalg.norm(got, axis=1)
    assert np.allclose(norms[[0, 5]], 1.0, atol=1e-6) and np.all(norms[1:5] == 0)  # missing/unknown rows: zeros
    assert "cat sat" in vocab.terms and "mat1" not in vocab.terms  # bigrams kept; one-off words below min_df


def test_unknown_tokens_are_counted_and_kept_as_id_zero():
    vocab = fitted()
    ids, offsets, unknown = vocab.unigram_ids(NEW, max_length=100)
    assert unknown.tolist() == [1, 3, 0, 0, 0, 0]  # "zebra"; "unseen words only"; missing/empty rows count 0
    assert offsets.tolist() == [0, 6, 9, 9, 9, 9]
    assert ids[:6].tolist()[-1] == 0 and ids[6:9].tolist() == [0, 0, 0]
    assert min(ids[:5].tolist()) >= 1 and max(ids.tolist()) < vocab.num_embeddings
    assert vocab.unknown_share(NEW) == pytest.approx(4 / 15)
    bag = torch.nn.EmbeddingBag(vocab.num_embeddings, 3, mode="mean")  # the inputs fit an EmbeddingBag as is
    assert bag(ids, offsets).shape == (len(NEW), 3)


def test_rows_truncated_at_max_length_but_unknowns_counted_over_whole_row():
    vocab = fitted()
    ids, offsets, unknown = vocab.unigram_ids(["zebra " * 5 + "cat", "dog " * 9], max_length=3)
    assert offsets.tolist() == [0, 3] and ids.tolist()[:3] == [0, 0, 0] and len(ids) == 6
    assert unknown.tolist() == [5, 0]


def test_min_df_drops_rare_terms_and_is_lowered_on_small_corpora():
    assert "mat1" not in fitted(min_df=2).terms and "mat1" in fitted(min_df=1).terms
    small = TextVocabulary().fit(["one rare word", "another text"], min_df=5)  # < 20 texts: min_df -> 1
    assert small.settings["min_df"] == 1 and "rare" in small.terms


def test_to_dict_is_plain_json_not_a_pickle():
    d = fitted().to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on numpy types or NaN
    assert json.loads(text) == d and d["format"] == "nnrecipe.text_vocabulary"
    assert len(d["terms"]) == len(d["idf"]) and all(math.isfinite(v) for v in d["idf"])
    plain = (dict, list, str, int, float, bool, type(None))

    def walk(v):  # only JSON's own types all the way down: no numpy scalars, no objects to unpickle
        assert type(v) in plain, type(v)
        for child in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()):
            walk(child)
    walk(d)


def test_empty_vocabulary_errors_name_the_column_and_the_fix():
    with pytest.raises(DataError) as err:
        TextVocabulary().fit([None, "", "!!! ..."], column="review")
    assert str(err.value) == ("text column 'review' has no words in any of its 3 rows (all empty, missing or only "
                              "punctuation/symbols); pass a column that holds text, or drop it from the inputs")
    with pytest.raises(DataError) as err:
        TextVocabulary().fit([f"word{i}" for i in range(30)], column="review")
    assert str(err.value) == ("text column 'review' has no term in at least min_df=2 of its 30 rows, so the "
                              "vocabulary is empty; lower min_df (e.g. min_df=1) or fit on more rows")
    with pytest.raises(DataError) as err:
        TextVocabulary().fit([])
    assert str(err.value) == ("the texts has no rows to fit a vocabulary on; pass the training rows of a text "
                              "column (at least one non-empty text)")


def test_bad_arguments_and_unfitted_use_raise_config_errors():
    with pytest.raises(ConfigError, match=r"^ngram_range is \(2, 2\); pass \(1, n\)"):
        TextVocabulary().fit(TRAIN, ngram_range=(2, 2))
    with pytest.raises(ConfigError, match="^this TextVocabulary is not fitted"):
        TextVocabulary().tfidf(["x"])
    with pytest.raises(ConfigError, match="^max_length is 0;"):
        fitted().unigram_ids(["x"], 0)
