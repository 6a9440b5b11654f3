"""C2: the loss at init against the loss the model should start at (seed 003: "verify loss @ init")."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..model.heads import Head
from .verdict import Inputs, Verdict, as_tuple

# Within 10% (or 0.05 nats) of the prior's loss is the healthy start; a loss 50% above it is a fault.
# Calibrated on our MLPs over breast cancer, digits, wine and diabetes, whose healthy starts sit within 3%.
PASS_REL, PASS_ABS, FAIL_REL = 0.10, 0.05, 0.50


@torch.no_grad()
def check_init_loss(model: nn.Module, loss_fn: nn.Module, x: Inputs, y: torch.Tensor, head: Head,
                    y_prior: torch.Tensor) -> Verdict:
    """`x, y` a sample of training rows (x a tensor, or a tuple of the model's inputs); `y_prior` the
    training targets the prior comes from. Runs in eval mode on the caller's model without changing it."""
    was_training = model.training
    model.eval()
    try:
        loss = float(loss_fn(model(*as_tuple(x)).float(), y))
    finally:
        model.train(was_training)
    expected = head.prior_loss(y_prior, y)
    evidence = {"loss_at_init": round(loss, 4), "expected": round(expected, 4), "rows": len(y)}
    if head.task != "regression":
        evidence["uniform_loss_ln_C"] = round(head.uniform_loss(), 4)
    gap = loss - expected
    source = "seed 003 (Karpathy, 'verify loss @ init'); seed 000 (set the output bias)"
    if not math.isfinite(loss):
        return Verdict("C2", "loss at init", "fail", f"the loss at init is {loss}", evidence,
                       "the model outputs non-finite values before training: check the inputs and the init", source)
    if gap <= max(PASS_REL * expected, PASS_ABS):
        return Verdict("C2", "loss at init", "pass",
                       f"the loss at init {loss:.4f} is close to the expected {expected:.4f}", evidence, "", source)
    fix = {"regression": "initialise the output bias to the target's mean and scale the output layer's weights "
                         "down (M6); standardize the target",
           }.get(head.task, "initialise the output bias from the class priors (log p_c; log(pos/neg) for binary, "
                            "M6) and scale the output layer's weights down so the logits start near zero")
    status = "warn" if gap <= FAIL_REL * expected else "fail"
    return Verdict("C2", "loss at init", status,
                   f"the loss at init {loss:.4f} is {gap / max(expected, 1e-12):.0%} above the expected {expected:.4f}",
                   evidence, fix, source)
