"""Text (issue item D2 in tokens): the default word tokenizer, token lengths and the length report."""

from .lengths import (BATCHINGS, LengthReport, batch_indices, length_report, padding_share, token_lengths,
                      truncated_rows, word_tokens)
from .vocab import UNKNOWN_ID, TextVocabulary

__all__ = ["BATCHINGS", "LengthReport", "batch_indices", "length_report", "padding_share", "token_lengths",
           "truncated_rows", "word_tokens", "TextVocabulary", "UNKNOWN_ID"]
