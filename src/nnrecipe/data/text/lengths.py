"""D2 in tokens: how long the rows are for the encoder in use, what a maximum length costs in truncation, and
how much of the compute padding wastes under each batching.

The issue's item: "the token-length percentiles for the encoder in use, a suggested maximum length (the 95th
percentile rounded up to a multiple of 8), the share of rows truncated and of tokens lost at it, the padding
share for fixed, per-batch and length-bucketed batching at the run's batch size, and bucketing chosen when
padding would waste most of the compute; predict reports how many new rows were truncated."

Compute is measured in positions (rows x padded length) of the batch tensors: a transformer's cost grows at
least linearly with the padded length (the feed-forward and projection layers are linear in it, attention
quadratic), so the share of positions that are padding is a lower bound on the share of compute they waste.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError, did_you_mean

log = logging.getLogger("nnrecipe")

BATCHINGS = ("fixed", "per_batch", "bucketed")

# Multiples of 8: tensor cores on NVIDIA GPUs run fp16/bf16 matrix products fastest when the dimensions are
# multiples of 8 (NVIDIA's "Deep Learning Performance" guide; Hugging Face's `pad_to_multiple_of=8` follows it).
_LENGTH_MULTIPLE = 8
_SUGGEST_PERCENTILE = 95
# Bucketing is chosen when per-batch padding would waste "most of the compute" (the words): > half.
_WASTE_LIMIT = 0.5

# A word: a run of Unicode letters or digits ([^\W_] is \w without the underscore), optionally joined to more
# such runs by one apostrophe (ASCII ' or the typographic U+2019), so "don't" and "l'été" stay one token.
# Everything else (punctuation, symbols, underscores, spaces, a leading or trailing apostrophe) separates words
# and is dropped.
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def word_tokens(text: str) -> list[str]:
    """The default encoder's tokenizer: the text NFC-normalized (so a decomposed "cafe" + U+0301 is the one
    word "café", not "cafe" with the accent dropped), lower-cased, then every match of `_WORD`: maximal runs of
    Unicode letters and digits, with an apostrophe kept only between two such runs ("Don't" -> "don't",
    "'quoted'" -> "quoted"). Punctuation, symbols and underscores are dropped: "C3-PO, café!" ->
    ["c3", "po", "café"]."""
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


def _missing(value: object) -> bool:
    """None, a float NaN (numpy's too) or pandas' NA/NaT: a row with no text, length 0."""
    if value is None:
        return True
    if isinstance(value, str):
        return False
    try:
        return bool(value != value)  # NaN and NaT are the values unequal to themselves
    except TypeError:  # pandas.NA: `NA != NA` is NA, whose truth value raises
        return True


def _count(encoded: object) -> int:
    """The number of tokens in what a tokenizer returned: a list of tokens or ids, a `tokenizers.Encoding`
    (its `.ids`) or a Hugging Face `BatchEncoding`/dict (its "input_ids")."""
    if isinstance(encoded, Mapping) and "input_ids" in encoded:
        encoded = encoded["input_ids"]
    ids = getattr(encoded, "ids", None)
    if ids is not None:
        encoded = ids
    return len(encoded)  # type: ignore[arg-type]


def token_lengths(texts: Iterable[object], tokenize: Callable[[str], Any] = word_tokens) -> np.ndarray:
    """The token count of each text as an int64 array; None, NaN and empty texts count 0. A value that is
    not a string (a number in a text column) is tokenized as `str(value)`.

    `tokenize` is any callable from a string to a sequence: the default `word_tokens`, a pretrained
    `tokenizers.Tokenizer(...).encode` (an Encoding: its `.ids` are counted) or a Hugging Face tokenizer's
    `encode` (a list of ids, special tokens included as that tokenizer adds them)."""
    counts = []
    for text in texts:
        if _missing(text):
            counts.append(0)
            continue
        text = text if isinstance(text, str) else str(text)
        counts.append(_count(tokenize(text)) if text else 0)
    return np.asarray(counts, dtype=np.int64)


def _check_lengths(lengths: object) -> np.ndarray:
    """`lengths` as a 1-D int64 array, or a ConfigError naming what is wrong and the fix."""
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ConfigError(f"lengths has shape {arr.shape}; pass one token count per row (a 1-D array), "
                          "e.g. from token_lengths(texts)")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise ConfigError(f"lengths has dtype {arr.dtype}; pass integer token counts, e.g. from "
                          "token_lengths(texts)")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        bad = int(np.flatnonzero(~(np.isfinite(arr) & (arr == np.round(arr))))[0])
        raise ConfigError(f"lengths[{bad}] is {arr[bad].item()!r}, not a whole number; pass integer token counts, "
                          "e.g. from token_lengths(texts)")
    negative = np.flatnonzero(arr < 0)
    if negative.size:
        raise ConfigError(f"lengths has {negative.size} negative values (first lengths[{int(negative[0])}] = "
                          f"{arr[negative[0]].item()}); a token count is 0 or more: count tokens with "
                          "token_lengths(texts)")
    return arr.astype(np.int64)


def _check_positive(name: str, value: object, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} is {value!r}; it must be a whole number of at least 1: {fix}")
    return int(value)


def batch_indices(lengths: object, batch_size: int, batching: str, seed: int = 0) -> list[np.ndarray]:
    """The row indices of each batch of one epoch, in the order they are trained on.

    - "fixed" and "per_batch": rows in the order `np.random.default_rng(seed).permutation(n)`, cut into
      consecutive batches of `batch_size` (the last one may be smaller); the two differ only in padding width.
    - "bucketed": rows sorted by length (ties in a seeded random order, so equal-length rows mix across
      seeds), cut into batches, and the batches shuffled with the same generator, so the model does not see
      short rows first and long rows last. This is the length grouping of fastai's `SortishSampler` and
      Hugging Face's `group_by_length` (`LengthGroupedSampler`), which sort within chunks of 50 batches to keep
      more randomness; sorting all rows gives the least padding those samplers can reach.
    """
    arr = _check_lengths(lengths)
    size = _check_positive("batch_size", batch_size, "pass the run's batch size, e.g. batch_size=32")
    if batching not in BATCHINGS:
        raise ConfigError(f"batching is {batching!r}{did_you_mean(batching, BATCHINGS)}; use one of "
                          f"{', '.join(BATCHINGS)}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(arr.size)
    if batching == "bucketed":
        order = order[np.argsort(arr[order], kind="stable")]
    chunks = [order[i:i + size] for i in range(0, arr.size, size)]
    if batching == "bucketed":
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return chunks


def padding_share(lengths: object, batches: Sequence[np.ndarray], max_length: int | None = None,
                  fixed: bool = False) -> float:
    """Padded positions over all positions in the batch tensors. Each row keeps min(length, max_length)
    tokens; a batch is as wide as its longest kept row, or `max_length` (else the longest row of all) for
    every batch when `fixed`. 0.0
    when the batches hold no positions at all (no rows, or every row empty under per-batch padding)."""
    arr = _check_lengths(lengths)
    kept = arr if max_length is None else np.minimum(arr, max_length)
    # Fixed padding without a max_length pads to the longest row of all.
    fixed_width = (max_length if max_length is not None else int(kept.max(initial=0))) if fixed else None
    positions = real = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        width = fixed_width if fixed_width is not None else int(kept[batch].max())
        positions += len(batch) * width
        real += int(kept[batch].sum())
    return (positions - real) / positions if positions else 0.0


def _suggest(sorted_lengths: np.ndarray) -> int:
    """The 95th percentile by numpy's default ("linear") interpolation, rounded up to a multiple of 8, at
    least 8. Computed in exact integer arithmetic: numpy's float result can be 16.000000000000004 where the
    exact value is 16, and rounding that up would suggest 24."""
    n = sorted_lengths.size
    if n == 0:
        return _LENGTH_MULTIPLE
    # numpy's linear method reads the value at the virtual index h = (n - 1) * q, here q = 95/100.
    lo, rem = divmod((n - 1) * _SUGGEST_PERCENTILE, 100)
    hi = min(lo + 1, n - 1)
    low, high = int(sorted_lengths[lo]), int(sorted_lengths[hi])
    times_100 = low * 100 + rem * (high - low)  # the percentile times 100, exactly
    multiple = -(-times_100 // (100 * _LENGTH_MULTIPLE))  # ceiling division
    return max(_LENGTH_MULTIPLE, multiple * _LENGTH_MULTIPLE)


def truncated_rows(lengths: object, max_length: int) -> int:
    """How many rows are longer than `max_length` and lose tokens to it (predict's report on new rows)."""
    arr = _check_lengths(lengths)
    limit = _check_positive("max_length", max_length, "pass the model's maximum length in tokens, e.g. 128")
    return int(np.count_nonzero(arr > limit))


@dataclasses.dataclass(frozen=True)
class LengthReport:
    """D2 in tokens for one text column. Shares are fractions in [0, 1]; lengths are in tokens."""

    n_rows: int
    batch_size: int
    p50: float
    p90: float
    p95: float
    p99: float
    max: int
    mean: float
    suggested_max_length: int  # p95 rounded up to a multiple of 8, at least 8
    max_length: int  # the one the shares below are measured at: the caller's, else the suggestion
    truncated_rows: int
    truncated_share: float  # rows longer than max_length / rows
    tokens_lost_share: float  # tokens beyond max_length / all tokens
    padding_fixed: float  # padded positions / positions, every batch padded to max_length
    padding_per_batch: float  # shuffled batches, each padded to its longest row
    padding_bucketed: float  # length-sorted batches, each padded to its longest row
    batching: str  # "bucketed" or "per_batch": the rule is in length_report's docstring

    @property
    def padding_share(self) -> dict[str, float]:
        return {"fixed": self.padding_fixed, "per_batch": self.padding_per_batch,
                "bucketed": self.padding_bucketed}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python numbers and strings, ready for json.dumps."""
        return dataclasses.asdict(self)


def length_report(lengths: object, batch_size: int, max_length: int | None = None, seed: int = 0) -> LengthReport:
    """The token-length report for `lengths` (one count per row, e.g. `token_lengths(texts, tokenize)`).

    - Percentiles use numpy's default linear interpolation (`np.percentile(..., method="linear")`).
    - `suggested_max_length`: the 95th percentile rounded up to a multiple of 8 (tensor cores' preferred
      size), at least 8. The shares are measured at `max_length` if given, else at the suggestion.
    - Padding share, at `batch_size` (see `batch_indices` for the batch order, seeded by `seed`): "fixed"
      pads every row to max_length; "per_batch" pads each shuffled batch to its longest row and "bucketed"
      each length-sorted batch to its longest, both capped at max_length.
    - `batching`: "bucketed" when per-batch padding would waste most of the compute (padding share > 0.5,
      the issue's "most") and bucketing lowers it; otherwise "per_batch", which keeps the batches' random
      composition. Sorting by length is the standard remedy for padding waste (fastai's SortishSampler,
      Hugging Face's `group_by_length`); its cost is batches of similar rows, so it is chosen only where
      padding is the larger loss. "fixed" is never chosen: per-batch padding never pads more than it.

    Empty `lengths` give zero percentiles and shares, the suggestion 8 and "per_batch".
    """
    arr = _check_lengths(lengths)
    size = _check_positive("batch_size", batch_size, "pass the run's batch size, e.g. batch_size=32")
    ordered = np.sort(arr)
    suggested = _suggest(ordered)
    limit = suggested if max_length is None else _check_positive(
        "max_length", max_length, "pass the model's maximum length in tokens, e.g. 128, or None for the suggestion")
    n = arr.size
    if n:
        p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, [50, 90, 95, 99]))
        longest, mean = int(ordered[-1]), float(arr.mean())
    else:
        p50 = p90 = p95 = p99 = mean = 0.0
        longest = 0
    total = int(arr.sum())
    cut = int(np.count_nonzero(arr > limit))
    lost = int(np.maximum(arr - limit, 0).sum())
    shuffled = batch_indices(arr, size, "per_batch", seed)
    fixed = padding_share(arr, shuffled, limit, fixed=True)
    per_batch = padding_share(arr, shuffled, limit)
    bucketed = padding_share(arr, batch_indices(arr, size, "bucketed", seed), limit)
    batching = "bucketed" if per_batch > _WASTE_LIMIT and bucketed < per_batch else "per_batch"
    if batching == "bucketed":
        log.debug("text lengths: per-batch padding would waste %.0f%% of positions, bucketing %.0f%%; "
                  "choosing bucketed batching", 100 * per_batch, 100 * bucketed)
    return LengthReport(
        n_rows=n, batch_size=size, p50=p50, p90=p90, p95=p95, p99=p99, max=longest, mean=mean,
        suggested_max_length=suggested, max_length=limit, truncated_rows=cut,
        truncated_share=cut / n if n else 0.0, tokens_lost_share=lost / total if total else 0.0,
        padding_fixed=fixed, padding_per_batch=per_batch, padding_bucketed=bucketed, batching=batching)
