"""M2/M4/M5/M7/M8/M10: the multilayer perceptron for tables, its size, and its initialization."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from .registry import register_model
from .text import DEEP_DIM, TextBags, text_param_groups

ACTIVATION_LAYERS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU,
    "prelu": nn.PReLU, "rrelu": nn.RReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}


def round_width(w: float) -> int:
    """M10 (the article "Tips and tricks for Neural Networks"): widths in multiples of 8, and of 64 from 64 up, fit the hardware's tiles."""
    step = 64 if w >= 64 else 8
    return max(8, int(math.ceil(w / step)) * step)


def default_hidden(n_rows: int, n_features: int) -> tuple[int, ...]:
    """M2 (Lavanya Shukla, "How To Design Deep Learning Architecture"): "1-5 hidden layers will serve you
    well", of equal width; "start with a huge number of hidden layers + hidden neurons, then use dropout
    and early stopping to let the network size itself down". Depth: 2 below 10,000 training rows, then one layer more per tenfold, up to 5 from 1,000,000.
    Width: twice the input width, clipped to [128, 512] (the article starts from up to 100 units and grows;
    scikit-learn's default MLP has one layer of 100), rounded up to a multiple of 64 (M10). Two layers
    rather than one on small tables: on breast cancer (20 splits) and wine (10) one layer of 128 lost
    0.6 and 1.1 points of test accuracy to two (benchmarks/tabular.py's tables; the issue-4 notes)."""
    depth = min(5, max(2, int(math.log10(max(n_rows, 1))) - 1))
    return (round_width(min(512, max(128, 2 * n_features))),) * depth


@register_model("mlp")
class MLP(nn.Module):
    """Linear -> [BatchNorm] -> activation -> [Dropout], repeated, then a linear output layer. The
    output activation lives in the head (the losses take raw outputs)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int,
                 activation: str = "relu", dropout: float = 0.0, batchnorm: bool = False,
                 embeddings: list[tuple[int, int]] | tuple[()] = (), text_terms: int = 0,
                 text_words: list[int] | None = None):
        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        embeddings = [tuple(int(v) for v in e) for e in embeddings]
        self.spec = {"name": "mlp", "in_features": in_features, "hidden": list(hidden),
                     "out_features": out_features, "activation": activation, "dropout": dropout,
                     "batchnorm": batchnorm, "embeddings": [list(e) for e in embeddings]}
        if text_terms:
            self.spec["text_terms"] = int(text_terms)
        if text_words:
            self.spec["text_words"] = [int(v) for v in text_words]
        # D10: one learned table per high-cardinality column, its rows concatenated to the features
        self.embeddings = nn.ModuleList(nn.Embedding(n, dim) for n, dim in embeddings)
        # text columns: a wide path to the outputs and a deep path into the layers (models/text.py)
        self.text = TextBags(text_terms, out_features, words=tuple(text_words) if text_words else None) \
            if text_terms else None
        layers: list[nn.Module] = []
        width = in_features + sum(dim for _, dim in embeddings) + (DEEP_DIM if text_terms else 0)
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(ACTIVATION_LAYERS[activation]())
            if dropout > 0:
                # M8 (Lavanya Shukla): SELU keeps its self-normalization only with AlphaDropout
                layers.append(nn.AlphaDropout(dropout) if activation == "selu" else nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, codes: torch.Tensor | None = None, terms: torch.Tensor | None = None,
                weights: torch.Tensor | None = None, words: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in) features, (N, E) category codes, the text columns' (N, L) term ids and weights and (with
        --text-model transformer) their word ids -> (N, out)."""
        if len(self.embeddings):
            x = torch.cat([x, *(emb(codes[:, i]) for i, emb in enumerate(self.embeddings))], dim=1)
        if self.text is None:
            return self.layers(x)
        deep, wide = self.text(terms, weights, words)
        return self.layers(torch.cat([x, deep], dim=1)) + wide

    def param_groups(self, lr: float) -> list:
        return text_param_groups(self, self.text, lr)

    @property
    def output_layer(self) -> nn.Linear:
        return self.layers[-1]  # type: ignore[return-value]


def default_dropout(task: str) -> float:
    """M8 (Rishit Dagli, "How to Build Better Machine Learning Models"; Lavanya Shukla: 0.1-0.5, never on
    the output): 0.2 for classification. None for regression:
    dropout changes the units' variance between training and inference (the 'variance shift' of Li et
    al., CVPR 2019), which a regression output reads directly; on our regression tables 0.2 tripled the
    test RMSE (tests/model/test_mlp.py measures it)."""
    return 0.0 if task == "regression" else 0.2


def make_mlp(in_features: int, out_features: int, n_rows: int, cfg: ModelConfig, task: str = "binary",
             embeddings: list[tuple[int, int]] | tuple[()] = (), text_terms: int = 0,
             text_words: list[int] | None = None) -> MLP:
    width = in_features + sum(dim for _, dim in embeddings) + (DEEP_DIM if text_terms else 0)
    hidden = tuple(cfg.hidden) if cfg.hidden else default_hidden(n_rows, width)
    dropout = default_dropout(task) if cfg.dropout is None else cfg.dropout
    return MLP(in_features, hidden, out_features, cfg.activation, dropout, cfg.batchnorm, embeddings, text_terms,
               text_words)


def init_weights(model: MLP, output_bias: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 distribution: str = "normal") -> None:
    """M5 (Lavanya Shukla; Karpathy's recipe; "Tips and Tricks for Deep Learning"): He init for the ReLU
    family, LeCun for SELU/ELU, Glorot for tanh and sigmoid; biases zero. The output layer gets Glorot scaled by 0.01, so the logits start near zero and
    the loss at init is the prior's (Karpathy, "A Recipe for Training Neural Networks": init well; the
    makemore lectures scale the last layer down for this), and its bias starts at the prior (M6)."""
    act = model.spec["activation"]
    kaiming = nn.init.kaiming_normal_ if distribution == "normal" else nn.init.kaiming_uniform_
    xavier = nn.init.xavier_normal_ if distribution == "normal" else nn.init.xavier_uniform_
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for lin in linears[:-1]:
        if act in ("relu", "prelu", "rrelu", "gelu"):
            kaiming(lin.weight, nonlinearity="relu", generator=generator)
        elif act == "leaky_relu":
            kaiming(lin.weight, a=0.01, nonlinearity="leaky_relu", generator=generator)
        elif act in ("selu", "elu"):
            kaiming(lin.weight, nonlinearity="linear", generator=generator)  # LeCun
        else:
            xavier(lin.weight, gain=nn.init.calculate_gain(act), generator=generator)
        nn.init.zeros_(lin.bias)
    out = linears[-1]
    nn.init.xavier_uniform_(out.weight, generator=generator)
    with torch.no_grad():
        out.weight.mul_(0.01)
        out.bias.copy_(output_bias if output_bias is not None else torch.zeros_like(out.bias))
