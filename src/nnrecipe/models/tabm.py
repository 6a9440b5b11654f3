"""TabM for tables (Gorishniy et al., ICLR 2025, "TabM: Advancing Tabular Deep Learning with
Parameter-Efficient Ensembling"): k MLPs that share their weights but for small per-member adapters,
trained together as k models (each member's own loss: steps/step.py) and predicting with the mean of
their predictions. Numeric features enter through piecewise-linear embeddings (Gorishniy et al., NeurIPS
2022, "On Embeddings for Numerical Features in Tabular Deep Learning"), the bins fitted on the training
rows. The authors' packages build the parts (`tabm`, `rtdl_num_embeddings`); high-cardinality categories
keep the recipe's learned embeddings (D10), as the MLP does."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigError
from .ensemble import mean_prediction
from .registry import register_model
from .text import DEEP_DIM, TextBags, text_param_groups

MAX_BINS = 48  # the papers' default number of bins per feature (quantile bins; fewer for few distinct values)
# ... and at least 32 training rows a bin, at least 4 bins: a quantile edge from fewer rows is noise that the
# embedding fits. On breast cancer (397 training rows: 12 bins), seeds 0-9, test accuracy 0.9663 -> 0.9767
# (scikit-learn's MLP: 0.9791); diabetes R^2 0.438, housing 0.611 with it (benchmarks/tabular.py)
ROWS_PER_BIN, MIN_BINS = 32, 4
BIN_ROWS = 100_000  # rows the quantiles are taken over (torch.quantile takes at most 2^24 values at once)
# The rate for values (regression): half the authors' 2e-3, which they tuned over classes and values alike. On
# the four regressions of benchmarks/tabular.py (R^2, 5 seeds each) 1e-3 scored higher on seeds 5-9, chosen
# before those were run (diabetes +0.016, housing +0.004, economics +0.003, slid +0.001), and on seeds 0-4 by
# +0.007 on average (slid +0.009, housing +0.023, economics 0.000, diabetes -0.006); 5e-4 gave +0.006 on 0-4.
# Off the panel the noisy targets gain (MedExp +0.049, Caschool +0.019) and the clean ones lose a little (Cigar
# -0.005, Boston -0.035 from one seed of five): docs/benchmarks.md.
# Why a value wants the slower rate: its squared error keeps the full gradient of every noisy row, where a
# class's cross-entropy fades as the row is learnt, so the step's noise stays larger (docs/recipe.md).
VALUES_LR = 1e-3
CLASSES_LR = 2e-3  # the authors' rate (Gorishniy et al. 2025)


def fit_bins(features: torch.Tensor, n_bins: int | None = None) -> list[list[float]]:
    """Bin edges of each feature column over the training rows: its distinct values when it has at most
    n_bins + 1 of them (a 0/1 column: one bin from 0 to 1), else quantile edges
    (rtdl_num_embeddings.compute_bins); a column with a single value on those rows (a category absent
    from training, say) gets [v, v + 1], so it still has one bin and stays at its start. n_bins: MAX_BINS,
    fewer on a small table (ROWS_PER_BIN)."""
    from rtdl_num_embeddings import compute_bins

    if n_bins is None:
        n_bins = max(MIN_BINS, min(MAX_BINS, len(features) // ROWS_PER_BIN))
    x = features.float()
    if len(x) > BIN_ROWS:  # quantiles of 100,000 rows place 48 edges as well as all rows do, at a fraction of the cost
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:BIN_ROWS]]
    edges: list[list[float]] = []
    many: list[int] = []
    for j in range(x.shape[1]):
        values = torch.unique(x[:, j])
        if len(values) == 1:
            edges.append([float(values[0]), float(values[0]) + 1.0])
        elif len(values) <= n_bins + 1:
            edges.append([float(v) for v in values.tolist()])
        else:
            edges.append([])
            many.append(j)
    if many:
        for j, e in zip(many, compute_bins(x[:, many], n_bins=n_bins)):
            edges[j] = [float(v) for v in e.tolist()]
    return edges


@register_model("tabm")
class TabM(nn.Module):
    """k members sharing an MLP backbone (`tabm`'s BatchEnsemble layers, TabM's init), numeric features
    through piecewise-linear embeddings (version B, as TabM uses them). `forward` returns the members'
    mean prediction in the raw form the head's loss takes (log of the mean probability, like the T14
    Ensemble); `member_outputs` returns each member's, (N, k, out), which training uses."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int, activation: str = "none",
                 k: int = 8, dropout: float = 0.1, bins: list[list[float]] | None = None, d_embedding: int = 16,
                 embeddings: list[tuple[int, int]] | tuple[()] = (), text_terms: int = 0, raw: list[int] | None = None,
                 text_words: list[int] | None = None):
        import tabm
        from rtdl_num_embeddings import PiecewiseLinearEmbeddings

        super().__init__()
        hidden = tuple(int(h) for h in hidden)
        if len(set(hidden)) != 1:
            raise ConfigError(f"hidden={list(hidden)}: TabM's members share blocks of one width; give equal widths "
                              "(such as 256,256) or --model mlp")
        embeddings = [tuple(int(v) for v in e) for e in embeddings]
        self.spec = {"name": "tabm", "in_features": in_features, "hidden": list(hidden), "out_features": out_features,
                     "activation": activation, "k": k, "dropout": dropout, "bins": bins, "d_embedding": d_embedding,
                     "embeddings": [list(e) for e in embeddings]}
        if text_terms:
            self.spec["text_terms"] = int(text_terms)
        if text_words:
            self.spec["text_words"] = [int(v) for v in text_words]
        # features read as they are, not through the piecewise-linear embeddings: a pretrained text encoder's
        # dimensions (hundreds of them, already a learned representation: 16 bins each would multiply the first
        # layer's width by 16, for a run 6x slower)
        raw = sorted(int(i) for i in raw or [])
        if raw:
            self.spec["raw"] = raw
        embedded = [i for i in range(in_features) if i not in set(raw)]
        self.register_buffer("embedded_index", torch.tensor(embedded, dtype=torch.long), persistent=False)
        self.register_buffer("raw_index", torch.tensor(raw, dtype=torch.long), persistent=False)
        self.k, self.activation = k, activation
        self.num_embeddings = None
        chunks = [1] * in_features
        if bins is not None and embedded:  # a table of text alone has no numeric feature to embed
            with warnings.catch_warnings():  # "only one bin" for 0/1 columns: expected of one-hot columns
                warnings.simplefilter("ignore", UserWarning)
                self.num_embeddings = PiecewiseLinearEmbeddings([torch.tensor(b) for b in bins], d_embedding,
                                                                activation=False, version="B")
            chunks = [d_embedding] * len(embedded) + [1] * len(raw)
        self.embeddings = nn.ModuleList(nn.Embedding(n, dim) for n, dim in embeddings)
        chunks += [dim for _, dim in embeddings]
        # text columns: a wide path to every member's outputs and a deep path into the blocks (models/text.py)
        self.text = TextBags(text_terms, out_features, words=tuple(text_words) if text_words else None) \
            if text_terms else None
        chunks += [DEEP_DIM] if text_terms else []
        self.ensemble_view = tabm.EnsembleView(k=k)
        self.backbone = tabm.make_tabm_backbone(
            d_in=sum(chunks), n_blocks=len(hidden), d_block=hidden[0], dropout=dropout, k=k, arch_type="tabm",
            start_scaling_init="normal" if bins is not None else "random-signs", start_scaling_init_chunks=chunks)
        self.output = tabm.LinearEnsemble(hidden[0], out_features, k=k)

    def member_outputs(self, x: torch.Tensor, codes: torch.Tensor | None = None, terms: torch.Tensor | None = None,
                       weights: torch.Tensor | None = None, words: torch.Tensor | None = None) -> torch.Tensor:
        """(N, in) features, (N, E) category codes and the text columns' (N, L) term ids and weights -> (N, k,
        out): each member's raw output."""
        if self.num_embeddings is None:
            parts = [x]
        elif len(self.raw_index):
            parts = [self.num_embeddings(x[:, self.embedded_index]).flatten(1), x[:, self.raw_index]]
        else:
            parts = [self.num_embeddings(x).flatten(1)]
        parts += [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]  # type: ignore[index]
        if self.text is None:
            return self.output(self.backbone(self.ensemble_view(torch.cat(parts, dim=1))))
        deep, wide = self.text(terms, weights, words)  # type: ignore[arg-type]
        h = self.backbone(self.ensemble_view(torch.cat([*parts, deep], dim=1)))
        return self.output(h) + wide[:, None, :]

    def combine(self, outs: torch.Tensor) -> torch.Tensor:
        """(N, k, out) members' outputs -> (N, out): their mean prediction, in the raw form of one output."""
        return mean_prediction(outs, self.activation, dim=1)

    def forward(self, x: torch.Tensor, codes: torch.Tensor | None = None, terms: torch.Tensor | None = None,
                weights: torch.Tensor | None = None, words: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(self.member_outputs(x, codes, terms, weights, words))

    def param_groups(self, lr: float) -> list:
        return text_param_groups(self, self.text, lr)

    @staticmethod
    def batch_size_rule(n_rows: int) -> int:
        """The authors' batches of 256 rows; 64 below 4,000 training rows, so that a small table still takes a
        dozen steps an epoch."""
        return 256 if n_rows >= 4_000 else 64

    def train_defaults(self, n_rows: int) -> dict[str, float | int]:
        """The authors' training settings (Gorishniy et al. 2025; their example notebook): their CLASSES_LR for
        classes, VALUES_LR for values (regression), and batch_size_rule's batches."""
        return {"lr": CLASSES_LR if self.activation != "none" else VALUES_LR,
                "batch_size": self.batch_size_rule(n_rows)}

    @property
    def output_layer(self) -> nn.Module:
        return self.output
