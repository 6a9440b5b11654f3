"""Find where a non-finite loss came from: the batch, the first layer whose output went non-finite in
the forward pass, or the first whose gradient did in the backward pass (observed with module hooks)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..steps import Batch, Step


def _bad(t: Any) -> bool:
    if isinstance(t, torch.Tensor):
        return t.is_floating_point() and not bool(torch.isfinite(t).all())
    if isinstance(t, Mapping):
        return any(_bad(x) for x in t.values())
    if isinstance(t, (tuple, list)):
        return any(_bad(x) for x in t)
    return False


def _count(t: Any) -> int:
    if isinstance(t, torch.Tensor):
        return int((~torch.isfinite(t)).sum()) if t.is_floating_point() else 0
    values = t.values() if isinstance(t, Mapping) else t if isinstance(t, (tuple, list)) else ()
    return sum(_count(x) for x in values)


def locate_nonfinite(model: nn.Module, step: Step, batch: Batch) -> str:
    """Re-run one batch's loss (the step's) with hooks and say where the first non-finite value appears."""
    if _bad(batch.inputs):
        return (f"the input batch itself holds {_count(batch.inputs)} NaN/inf values: clean or impute the data "
                "before training")
    bad_params = [name for name, p in model.named_parameters() if _bad(p)]
    if bad_params:
        return (f"parameters are already non-finite ({', '.join(bad_params[:3])}): an earlier update blew up; "
                "lower the learning rate or clip gradients")
    first: dict[str, str] = {}
    handles = []
    for name, module in model.named_modules():
        if name == "" and len(list(model.children())):
            continue  # the whole model says nothing more than its layers

        def fwd(m: nn.Module, args: Any, out: Any, name: str = name) -> None:
            if "forward" not in first and _bad(out):
                first["forward"] = f"{name or 'the model'} ({type(m).__name__})"

        def bwd(m: nn.Module, grad_in: Any, grad_out: Any, name: str = name) -> None:
            if "backward" not in first and _bad(grad_in):
                first["backward"] = f"{name or 'the model'} ({type(m).__name__})"

        handles += [module.register_forward_hook(fwd), module.register_full_backward_hook(bwd)]
    try:
        with warnings.catch_warnings():  # torch warns that full backward hooks see no input gradients here
            warnings.simplefilter("ignore", UserWarning)
            loss, _ = step.loss(model, batch)
            if "forward" not in first and loss.requires_grad and bool(torch.isfinite(loss)):
                loss.backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    if "forward" in first:
        return f"the first non-finite output comes from layer {first['forward']} in the forward pass"
    if not bool(torch.isfinite(loss)):
        return "the layers' outputs are finite but the loss is not: check the loss function and the targets"
    if "backward" in first:
        return f"the first non-finite gradient appears at layer {first['backward']} in the backward pass"
    return "the batch does not reproduce the non-finite value when run again (a random layer?)"
