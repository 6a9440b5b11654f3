"""D2 in tokens (data/text/lengths.py): the suggested maximum length, the truncated and lost shares and the
padding shares equal a brute-force count written with plain loops; bucketing is chosen on a long tail and
not on equal lengths; the default tokenizer's rule on a few sentences; errors matched whole."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from nnrecipe.data.text import (LengthReport, batch_indices, length_report, padding_share, token_lengths,
                                truncated_rows, word_tokens)
from nnrecipe.errors import ConfigError

HAND_MADE = [
    [5],
    [0, 0, 0],
    [16] * 20,  # p95 exactly 16: must suggest 16, not 24
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 100],
    [3, 17, 17, 40, 9, 0, 250, 12, 33, 8, 8, 64, 1],
    list(range(0, 200, 7)),
]


def random_lengths(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    return [int(v) for v in rng.lognormal(3.0, 1.0, n).astype(int)]


CASES = HAND_MADE + [random_lengths(seed) for seed in range(8)]


def brute_suggestion(lengths: list[int]) -> int:
    """numpy's linear 95th percentile in exact fractions, then the smallest multiple of 8 (at least 8) >= it."""
    xs = sorted(lengths)
    h = Fraction((len(xs) - 1) * 95, 100)
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    p95 = xs[lo] + (h - lo) * (xs[hi] - xs[lo])
    m = 8
    while m < p95:
        m += 8
    return m


def brute_shares(lengths: list[int], limit: int) -> tuple[float, float]:
    rows_cut = 0
    lost = 0
    total = 0
    for n_tokens in lengths:
        total += n_tokens
        if n_tokens > limit:
            rows_cut += 1
            lost += n_tokens - limit
    return rows_cut / len(lengths), (lost / total if total else 0.0)


def brute_padding(batches: list[list[int]], limit: int, fixed: bool) -> float:
    padded = 0
    positions = 0
    for batch in batches:
        kept = [min(n_tokens, limit) for n_tokens in batch]
        width = limit if fixed else max(kept)
        for n_tokens in kept:
            positions += width
            padded += width - n_tokens
    return padded / positions if positions else 0.0


def chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


@pytest.mark.parametrize("lengths", CASES)
def test_suggested_max_length_equals_brute_force(lengths):
    report = length_report(np.array(lengths), batch_size=4)
    assert report.suggested_max_length == brute_suggestion(lengths)
    assert report.suggested_max_length % 8 == 0 and report.suggested_max_length >= 8
    assert report.max_length == report.suggested_max_length
    assert report.p95 == pytest.approx(float(np.percentile(lengths, 95)))


@pytest.mark.parametrize("max_length", [None, 1, 8, 30])
@pytest.mark.parametrize("lengths", CASES)
def test_truncated_and_lost_shares_equal_brute_force(lengths, max_length):
    report = length_report(np.array(lengths), batch_size=4, max_length=max_length)
    limit = brute_suggestion(lengths) if max_length is None else max_length
    truncated, lost = brute_shares(lengths, limit)
    assert report.truncated_share == pytest.approx(truncated)
    assert report.tokens_lost_share == pytest.approx(lost)
    assert report.truncated_rows == truncated_rows(lengths, limit) == sum(1 for n in lengths if n > limit)


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("lengths", CASES)
def test_padding_shares_equal_brute_force_for_the_same_seed(lengths, batch_size):
    seed = 7
    report = length_report(np.array(lengths), batch_size=batch_size, seed=seed)
    limit = report.max_length
    order = np.random.default_rng(seed).permutation(len(lengths))  # the documented per-batch order
    shuffled = chunks([lengths[i] for i in order], batch_size)
    by_length = chunks(sorted(lengths), batch_size)
    assert report.padding_fixed == pytest.approx(brute_padding(shuffled, limit, fixed=True))
    assert report.padding_per_batch == pytest.approx(brute_padding(shuffled, limit, fixed=False))
    assert report.padding_bucketed == pytest.approx(brute_padding(by_length, limit, fixed=False))
    assert report.padding_share == {"fixed": report.padding_fixed, "per_batch": report.padding_per_batch,
                                    "bucketed": report.padding_bucketed}


@pytest.mark.parametrize("batching", ["fixed", "per_batch", "bucketed"])
def test_batch_indices_cover_every_row_once(batching):
    lengths = np.array(random_lengths(3))
    batches = batch_indices(lengths, 10, batching, seed=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(lengths.size))
    assert sorted(len(b) for b in batches)[1:] == [10] * (len(batches) - 1)  # only one batch may be short
    if batching == "bucketed":  # the batches are length-sorted runs, shuffled
        runs = sorted((int(lengths[b].min()), int(lengths[b].max())) for b in batches)
        assert all(prev[1] <= nxt[0] for prev, nxt in zip(runs, runs[1:]))
    assert padding_share(lengths, batches, 64) >= 0.0


def test_bucketing_chosen_on_a_long_tail_and_not_on_equal_lengths():
    long_tail = np.random.default_rng(0).pareto(1.2, 2000).astype(int) * 4 + 3  # most short, a few very long
    report = length_report(long_tail, batch_size=32, max_length=512)
    assert report.padding_per_batch > 0.5 and report.padding_bucketed < report.padding_per_batch
    assert report.batching == "bucketed"

    equal = length_report(np.full(500, 20), batch_size=32)
    assert equal.padding_per_batch == 0.0 and equal.batching == "per_batch"
    # Wasteful per-batch padding that bucketing cannot reduce (one batch holds every row): stays per_batch.
    one_batch = length_report(np.array([1, 1, 1, 1, 100]), batch_size=8, max_length=128)
    assert one_batch.padding_per_batch > 0.5 and one_batch.padding_bucketed == one_batch.padding_per_batch
    assert one_batch.batching == "per_batch"


def test_empty_and_all_zero_lengths():
    empty = length_report(np.array([], dtype=int), batch_size=4)
    assert (empty.n_rows, empty.suggested_max_length, empty.max, empty.truncated_share) == (0, 8, 0, 0.0)
    assert empty.padding_share == {"fixed": 0.0, "per_batch": 0.0, "bucketed": 0.0}
    assert empty.batching == "per_batch"
    zeros = length_report(np.zeros(10, dtype=int), batch_size=4)
    assert (zeros.suggested_max_length, zeros.tokens_lost_share, zeros.truncated_share) == (8, 0.0, 0.0)
    assert zeros.padding_fixed == 1.0 and zeros.padding_per_batch == 0.0 and zeros.batching == "per_batch"
    assert truncated_rows([], 8) == 0


def test_report_to_dict_is_json():
    report = length_report(np.array(random_lengths(1)), batch_size=8)
    assert isinstance(report, LengthReport)
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_word_tokens_rule():
    assert word_tokens("Don't stop, it's FINE!") == ["don't", "stop", "it's", "fine"]
    assert word_tokens("Café crème: l’été à Zürich") == ["café", "crème", "l’été", "à", "zürich"]
    assert word_tokens("cafe\u0301") == ["café"]  # decomposed accent, NFC-normalized to one word
    assert word_tokens("C3-PO has 42.5 credits_left in 2024") == ["c3", "po", "has", "42", "5", "credits",
                                                                  "left", "in", "2024"]
    assert word_tokens("'quoted' -- ... !!!") == ["quoted"]
    assert word_tokens("Москва и 東京") == ["москва", "и", "東京"]
    assert word_tokens("") == []


class FakeEncoding:
    """The shape of a tokenizers.Encoding: the ids are what counts."""

    def __init__(self, text: str):
        self.ids = [0] + [1] * len(text.split()) + [2]


def test_token_lengths_missing_values_and_custom_tokenizers():
    texts = ["Hello, world!", None, float("nan"), np.float64("nan"), "", "one two three", 12]
    assert token_lengths(texts).tolist() == [2, 0, 0, 0, 0, 3, 1]
    assert token_lengths(texts).dtype == np.int64
    assert token_lengths(["a b c", None], tokenize=str.split).tolist() == [3, 0]
    assert token_lengths(["a b c"], tokenize=FakeEncoding).tolist() == [5]
    assert token_lengths(["a b"], tokenize=lambda t: {"input_ids": [101, 7, 8, 102]}).tolist() == [4]
    assert token_lengths([]).tolist() == []


def test_errors_name_the_argument_and_the_fix():
    with pytest.raises(ConfigError, match="^" + re.escape(
            "batch_size is 0; it must be a whole number of at least 1: pass the run's batch size, "
            "e.g. batch_size=32") + "$"):
        length_report(np.array([1, 2]), batch_size=0)
    with pytest.raises(ConfigError, match=re.escape("batch_size is True;")):
        length_report(np.array([1, 2]), batch_size=True)
    with pytest.raises(ConfigError, match="^" + re.escape(
            "lengths has 2 negative values (first lengths[1] = -3); a token count is 0 or more: count tokens "
            "with token_lengths(texts)") + "$"):
        length_report(np.array([4, -3, 2, -1]), batch_size=2)
    with pytest.raises(ConfigError, match="^" + re.escape(
            "max_length is 0; it must be a whole number of at least 1: pass the model's maximum length in "
            "tokens, e.g. 128") + "$"):
        truncated_rows([1, 2], 0)
    with pytest.raises(ConfigError, match="^" + re.escape(
            "lengths has shape (2, 2); pass one token count per row (a 1-D array), e.g. from "
            "token_lengths(texts)") + "$"):
        truncated_rows(np.ones((2, 2)), 8)
    with pytest.raises(ConfigError, match="^" + re.escape(
            "lengths[1] is 2.5, not a whole number; pass integer token counts, e.g. from token_lengths(texts)")
            + "$"):
        length_report([1.0, 2.5], batch_size=2)
    with pytest.raises(ConfigError, match="^" + re.escape(
            "batching is 'bucket' (did you mean 'bucketed'?); use one of fixed, per_batch, bucketed") + "$"):
        batch_indices([1, 2], 2, "bucket")
