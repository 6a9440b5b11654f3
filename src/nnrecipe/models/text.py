"""The default text model's two paths over a table's text columns (data/text/bag.py's term ids and weights):

- wide: the TF-IDF row times a full-rank (terms x outputs) matrix, added to the network's raw outputs: the
  linear model over word 1-2-grams that is the known strong baseline on small text data (TF-IDF + logistic
  regression; Wang & Manning 2012, "Baselines and Bigrams"). It starts at zero, so the loss at init stays
  the prior's (M6), and it trains at WIDE_LR_FACTOR times the network's rate (`param_groups`).
- deep: the same row times a small (terms x DEEP_DIM) embedding, concatenated to the network's other inputs,
  so that text interacts with the numeric and categorical columns (a low-rank bag of embeddings, as fastText:
  Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification").

Both are `nn.EmbeddingBag(mode="sum", padding_idx=0)` with the weights as per_sample_weights: the product
without forming the TF-IDF row. Design measured in benchmarks/text.py (docs/text.md has the figures).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The deep path's width: the bag is low-rank by design (the wide path is the full-rank one); 32 as fastText's
# small models, and the network's width rule sees it as 32 more inputs
DEEP_DIM = 32
# Its init: small, so the bag starts near zero and the network's first layers see the other columns first;
# N(0, 1) (nn.Embedding's default) on 20,000 terms overfitted the 2,800 training rows of benchmarks/text.py in
# the first epoch (test accuracy 0.62 against 0.73 at 0.01). 0.001 rather than 0.01: its L2 penalty at init
# (DEEP_DECAY / 2 x |w|^2: 0.014 against 1.4 for 9,000 terms) stays far below the loss, as the doctor's lint asks
DEEP_INIT_STD = 0.001
# The wide path's rate over the network's: a linear model over 20,000 sparse terms needs steps of the order of
# 1e-2 with Adam (0.73 at 3e-2 against 0.62 at 2e-3 on benchmarks/text.py), the network's own rate is 2e-3
WIDE_LR_FACTOR = 15.0
# The deep path's L2 penalty (the optimizer's weight_decay on its embedding): without one it memorised the
# training rows within two epochs (validation loss 0.52 -> 2.6 by epoch 25 on benchmarks/text.py, against
# 0.57 for the wide path alone), which early stopping survives but the doctor's short runs (C3, C8) read as
# a fault; 0.1 keeps the validation loss where the wide path's is (0.57) at the same test accuracy (0.734)
DEEP_DECAY = 0.1


# --text-model transformer: the deep path's small encoder trained from scratch (heads of 8 dimensions)
TRANSFORMER_LAYERS, TRANSFORMER_HEADS, TRANSFORMER_DROPOUT = 2, 4, 0.1


class TextTransformer(nn.Module):
    """(N, L) word ids (0: padding, the real tokens first) -> (N, dim): learned token and position embeddings,
    TRANSFORMER_LAYERS pre-norm encoder layers (Vaswani et al. 2017; pre-norm as Xiong et al. 2020, which trains
    without a warm-up), mean-pooled over the real tokens. A small encoder trained from scratch, for text whose
    word order matters; on short texts and a few thousand rows the bag (the default) is better and faster
    (benchmarks/text.py: 0.727 against 0.737, 126 s against 29 s a run)."""

    def __init__(self, n_ids: int, max_length: int, dim: int = DEEP_DIM):
        super().__init__()
        self.tokens = nn.Embedding(n_ids, dim, padding_idx=0)
        self.positions = nn.Embedding(max(int(max_length), 1), dim)
        layer = nn.TransformerEncoderLayer(dim, TRANSFORMER_HEADS, 4 * dim, TRANSFORMER_DROPOUT, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, TRANSFORMER_LAYERS, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        width = min(max(int((ids != 0).sum(1).max()), 1) if ids.numel() else 1, self.positions.num_embeddings)
        ids = ids[:, :width]
        pad = ids == 0
        attend = pad.clone()
        attend[:, 0] = False  # an empty text attends to its first (padding) position rather than to nothing (NaN)
        h = self.encoder(self.tokens(ids) + self.positions.weight[:width], src_key_padding_mask=attend)
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return (self.norm(h) * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class TextBags(nn.Module):
    """(N, L) term ids and weights -> the deep path's (N, dim) features and the wide path's (N, out) outputs.
    `words` (n_ids, max_length): the deep path is a TextTransformer over the word ids instead of the bag."""

    def __init__(self, n_terms: int, out_features: int, dim: int = DEEP_DIM, words: tuple[int, int] | None = None):
        super().__init__()
        self.wide = nn.EmbeddingBag(n_terms, out_features, mode="sum", padding_idx=0)
        self.deep = nn.EmbeddingBag(n_terms, dim, mode="sum", padding_idx=0) if words is None else None
        self.sequence = TextTransformer(words[0], words[1], dim) if words is not None else None
        with torch.no_grad():
            self.wide.weight.zero_()
            if self.deep is not None:
                self.deep.weight.normal_(0.0, DEEP_INIT_STD)
                self.deep.weight[0].zero_()

    def forward(self, terms: torch.Tensor, weights: torch.Tensor,
                words: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # a batch's bags only as wide as its longest row: the rows' terms come first (bag._packed)
        width = max(int((weights != 0).sum(1).max()), 1) if weights.numel() else 1
        terms, weights = terms[:, :width], weights[:, :width].to(self.wide.weight.dtype)
        wide = self.wide(terms, per_sample_weights=weights)
        if self.sequence is not None:
            return self.sequence(words), wide
        return self.deep(terms, per_sample_weights=weights), wide


def text_param_groups(model: nn.Module, text: TextBags | None, lr: float) -> list[Any]:
    """What the optimizer trains: the model's parameters at `lr`, the wide path's at WIDE_LR_FACTOR times it,
    the deep path's embedding with the L2 penalty DEEP_DECAY; without text, the parameters themselves (one
    group, as for any model)."""
    if text is None:
        return list(model.parameters())
    wide, deep = text.wide.weight, (text.deep.weight if text.deep is not None else None)
    rest = [p for p in model.parameters() if p is not wide and p is not deep]
    return [{"params": rest, "lr": lr}, {"params": [wide], "lr": lr * WIDE_LR_FACTOR}] + (
        [{"params": [deep], "lr": lr, "weight_decay": DEEP_DECAY}] if deep is not None else [])
