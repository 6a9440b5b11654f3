"""The recipe's network for a table: which one, its size and its init (M2, M5, M6, M10).

`--model auto` builds TabM (models/tabm.py): k MLPs sharing their weights, trained as an ensemble, numeric
features through piecewise-linear embeddings. On benchmarks/tabular.py's panel of 14 tables it ranked 1.79
against the recipe's plain MLP's 2.21, most ahead where the target moves in steps with a feature (the case
where gradient-boosted trees lead MLPs: Grinsztajn et al., NeurIPS 2022, "Why do tree-based models still
outperform deep learning on tabular data?"), at 4-8x the MLP's seconds per run (docs/benchmarks.md has the
figures). `--model mlp` builds the plain MLP of the seed's rules (models/mlp.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from .mlp import MLP, default_hidden, init_weights, make_mlp
from .tabm import TabM, fit_bins
from .text import DEEP_DIM

# TabM's members: Gorishniy et al. (2025) use k=32; most of its gain over one MLP comes with the first few
# members, and each member costs a forward and backward pass of the shared blocks on CPU
DEFAULT_MEMBERS = 8
# widths: the M2 rule's, and at least TabM's smallest default block (the paper tunes 64-1024; 512 default)
TABM_MIN_WIDTH = 256
TABM_DROPOUT = 0.1  # TabM's default, for classes and regression: the members' mean removes the variance shift


def make_table_model(cfg: ModelConfig, task: str, train_features: torch.Tensor, out_features: int, n_rows: int,
                     embeddings: list[tuple[int, int]] | tuple[()] = (), activation: str = "none",
                     text_terms: int = 0, raw: list[int] | None = None,
                     text_words: list[int] | None = None) -> nn.Module:
    """The network `cfg` asks for (auto: TabM) for features like `train_features` (the training rows, which
    the embeddings' bins are fitted on); `activation`: the head's output activation (sigmoid, softmax or
    none), which TabM's mean prediction needs; `text_terms`: the ids of the text columns' bags (0: none);
    `raw`: the features TabM reads as they are (a pretrained encoder's), not through its numeric embeddings;
    `text_words`: (word ids, maximum length) of --text-model transformer's inputs."""
    in_features = train_features.shape[1]
    if cfg.model == "cnn":
        raise ConfigError("--model cnn builds a network for images; a table takes --model auto, tabm or mlp")
    if cfg.model == "mlp":
        return make_mlp(in_features, out_features, n_rows, cfg, task, embeddings, text_terms, text_words)
    width = in_features + sum(dim for _, dim in embeddings) + (DEEP_DIM if text_terms else 0)
    hidden = tuple(cfg.hidden) if cfg.hidden else tuple(
        max(TABM_MIN_WIDTH, w) for w in default_hidden(n_rows, width))  # its widths: multiples of 64 (M10)
    dropout = TABM_DROPOUT if cfg.dropout is None else cfg.dropout
    k = cfg.members if cfg.members is not None else DEFAULT_MEMBERS
    return TabM(in_features, hidden, out_features, activation, k=k, dropout=dropout,
                bins=fit_bins(train_features[:, [i for i in range(in_features) if i not in set(raw or [])]]),
                embeddings=embeddings, text_terms=text_terms, raw=raw, text_words=text_words)


def init_table_model(model: nn.Module, output_bias: torch.Tensor | None, distribution: str = "normal") -> None:
    """M5/M6 for either network: the MLP's init (models/mlp.py); TabM keeps its authors' init of the blocks
    and, like the MLP, starts its output layer near zero with every member's bias at the prior (so the
    loss at init is the prior's: Karpathy's recipe, 'init well')."""
    if isinstance(model, MLP):
        init_weights(model, output_bias, distribution=distribution)
        return
    if isinstance(model, TabM):
        with torch.no_grad():
            model.output.weight.mul_(0.01)
            if output_bias is not None:
                model.output.bias.copy_(output_bias.expand_as(model.output.bias))
            else:
                model.output.bias.zero_()
        return
    raise TypeError(f"init_table_model: no init for a {type(model).__name__}")


__all__ = ["DEFAULT_MEMBERS", "init_table_model", "make_table_model"]
