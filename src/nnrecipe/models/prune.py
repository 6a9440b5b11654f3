"""M14's operations on a network, through torch.nn.utils.prune (recipes/prune.py runs them on a finished
run: iterative prune-and-fine-tune, Han et al., NeurIPS 2015, "Learning both Weights and Connections for
Efficient Neural Networks"; Zhu & Gupta 2017, "To prune, or not to prune", on the gradual schedule).

- `prune_global`: the weights of smallest magnitude over every hidden layer at once (`global_unstructured`
  with `L1Unstructured`); the masks stay on while the network is fine-tuned, so a pruned weight stays zero,
  and `make_permanent` (`prune.remove`) folds them in before saving. The tensors keep their shapes.
- `prune_neurons` + `shrink_mlp`: whole hidden neurons of an MLP, the rows of smallest L2 norm of each
  hidden layer (`ln_structured`, dim 0), then the network rebuilt without them (models/mlp.py's MLP with
  fewer units, the neuron's constant output folded into the next layer's bias, so the function is
  unchanged in eval mode): fewer parameters and a faster predict. TabM and the CNN are refused: their
  blocks cannot lose units one layer at a time (TabM's share one width; a residual block adds its input).

The output layer is never pruned (it is small, and its rows are the classes), nor are embeddings and
normalization layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from ..errors import ConfigError
from .ensemble import Ensemble
from .mlp import MLP
from .registry import build_model

# ---------------------------------------------------------------- what is pruned, and how much is

def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every hidden layer: Linear and convolution layers and TabM's shared
    LinearBatchEnsemble, never an output layer (`output_layer` of the MLP, TabM and CNN, each member's)."""
    heads = {id(getattr(m, "output_layer", None)) for m in model.modules()}
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(m, "weight") for m in model.modules()
            if (isinstance(m, kinds) or type(m).__name__ == "LinearBatchEnsemble") and id(m) not in heads
            and isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2]


def count(model: nn.Module) -> dict[str, Any]:
    """Parameters in all and those not zero; the hidden weights (what pruning works on) and their zeros."""
    params = list(model.parameters())
    weights = [getattr(m, name) for m, name in prunable(model)]  # the masked weight while masks are on
    zeros = sum(int((w == 0).sum()) for w in weights)
    prunable_n = sum(w.numel() for w in weights)
    return {"parameters": sum(p.numel() for p in params), "nonzero": sum(int((p != 0).sum()) for p in params),
            "prunable": prunable_n, "zeros": zeros, "reached": round(zeros / max(prunable_n, 1), 6)}


def prune_global(model: nn.Module, sparsity: float) -> None:
    """Masks on the `sparsity` fraction of smallest-magnitude hidden weights, over all layers at once. Weights
    already zero (an earlier step's) are the smallest, so they stay among those pruned."""
    if sparsity <= 0:
        return
    layers = prunable(model)
    with torch.no_grad():
        for m, name in layers:  # global_unstructured flattens with view(-1): a channels_last weight (M10) cannot
            w = getattr(m, name)
            if not w.is_contiguous():
                w.data = w.data.contiguous()
                m._pruned_channels_last = True  # make_permanent lays it out again
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=sparsity)


def make_permanent(model: nn.Module) -> None:
    """prune.remove on every masked weight: the zeros written into the plain `weight`, the masks and hooks gone."""
    for m in model.modules():
        for name in [h._tensor_name for h in m._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]:
            prune.remove(m, name)
        if getattr(m, "_pruned_channels_last", False):
            with torch.no_grad():
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
            del m._pruned_channels_last


def mlps(model: nn.Module) -> list[MLP]:
    """The MLPs structured pruning shrinks: the model, or each member of an ensemble; else a ConfigError."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    others = sorted({type(m).__name__ for m in members if not isinstance(m, MLP)})
    if others:
        raise ConfigError(f"method='structured' removes hidden neurons of an MLP, and this run's model is "
                          f"{'an ensemble of ' if isinstance(model, Ensemble) else 'a '}{', '.join(others)}, whose "
                          "layers cannot lose units one at a time; prune it with method='global' (CLI: --method "
                          "global), or train the run with --model mlp to shrink it")
    return members  # type: ignore[return-value]


def prune_neurons(model: nn.Module, sparsity: float, widths: list[list[int]]) -> nn.Module:
    """Structured: each hidden layer of each MLP keeps round((1 - sparsity) x its width in the run) neurons,
    those of largest L2 norm (`ln_structured`, rows), the rest removed from the network. `widths`: each MLP's
    hidden widths in the run. Returns the smaller model (an Ensemble rebuilt around its smaller members)."""
    shrunk = []
    for mlp, original in zip(mlps(model), widths):
        linears = [m for m in mlp.layers if isinstance(m, nn.Linear)][:-1]
        for lin, width in zip(linears, original):
            drop = lin.out_features - max(1, round((1 - sparsity) * width))
            if drop > 0:
                prune.ln_structured(lin, "weight", amount=drop, n=2, dim=0)
                prune.remove(lin, "weight")
        shrunk.append(shrink_mlp(mlp))
    if isinstance(model, Ensemble):
        return Ensemble(shrunk, model.activation)
    return shrunk[0]


@torch.no_grad()
def shrink_mlp(model: MLP) -> MLP:
    """The same MLP without the hidden neurons whose weight row is all zero: an MLP of the same class with
    fewer units. Such a neuron outputs a constant (its bias through BatchNorm, activation and dropout, in eval
    mode), which the next layer's bias absorbs, so the smaller network computes the same function."""
    layers, state = list(model.layers), {k: v.clone() for k, v in model.state_dict().items()}
    at = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    training = model.training
    model.eval()
    hidden = []
    for i, j in zip(at, at[1:]):
        w, b = state[f"layers.{i}.weight"], state[f"layers.{i}.bias"]
        alive = w.abs().sum(dim=1) != 0
        if not alive.any():
            alive[0] = True  # a layer keeps one unit (its output is constant either way)
        dead = ~alive
        constant = nn.Sequential(*layers[i + 1:j])(b.unsqueeze(0))[0]  # (h,): each unit's output with no weights
        state[f"layers.{j}.bias"] += state[f"layers.{j}.weight"][:, dead] @ constant[dead]
        for k in (f"layers.{i}.weight", f"layers.{i}.bias",
                  *(f"layers.{i + 1}.{n}" for n in ("weight", "bias", "running_mean", "running_var")
                    if isinstance(layers[i + 1], nn.BatchNorm1d))):
            state[k] = state[k][alive]
        state[f"layers.{j}.weight"] = state[f"layers.{j}.weight"][:, alive]
        hidden.append(int(alive.sum()))
    model.train(training)
    smaller = build_model({**model.spec, "hidden": hidden})
    smaller.load_state_dict(state)
    smaller.train(training)
    return smaller  # type: ignore[return-value]


__all__ = ["count", "make_permanent", "mlps", "prunable", "prune_global", "prune_neurons", "shrink_mlp"]
