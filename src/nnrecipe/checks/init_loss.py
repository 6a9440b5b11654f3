"""C2: the loss at init against the loss the model should start at (Karpathy's recipe: "verify loss @ init")."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..steps import main_output
from ..tasks import Task
from .verdict import Inputs, Verdict, as_tuple

# Within 25% (or 0.05 nats) of the prior's loss is a healthy start; more than 3x the prior's loss is a
# fault (an output bias of +10 on one class of 10 starts at about 4x). Calibrated on the
# healthy setups of tests/checks/cases.py with PyTorch's default init: digits MLP +0.5%, moons +3.7%,
# diabetes +1.9%, CNN +1.0%, imbalanced binary with the prior bias +1%, breast cancer standardized +13%
# (logits spread by the default init); the recipe's own MLPs start within 1% (output layer scaled down).
# A zero output bias on a 1:9 binary task starts 113% above the prior's loss: a warning with the M6 fix.
PASS_REL, PASS_ABS, FAIL_REL = 0.25, 0.05, 2.0
# ... a regression's loss at init is the target's variance plus the outputs' spread, which a default init sets
# by the architecture: a LayerNorm + GELU MLP on diabetes (target standardized) starts -14% to +28% from it, over 25%
# on 2 of 10 seeds, with nothing wrong. Its faults start far higher: a target left in its units (diabetes:
# mean 152, std 77) +390%, an output bias of +10 on a standardized target +10,000%
PASS_REL_VALUES = 0.5


@torch.no_grad()
def check_init_loss(model: nn.Module, loss_fn: nn.Module, x: Inputs, y: torch.Tensor, head: Task,
                    y_prior: torch.Tensor) -> Verdict:
    """`x, y` a sample of training rows (x a tensor, or a tuple of the model's inputs); `y_prior` the
    training targets the prior comes from. Runs in eval mode on the caller's model without changing it."""
    was_training = model.training
    model.eval()
    try:
        loss = float(loss_fn(main_output(model(*as_tuple(x))).float(), y))
    finally:
        model.train(was_training)
    expected = head.prior_loss(y_prior, y)
    if getattr(loss_fn, "reduction", "mean") == "sum":  # a summed loss: the prior's loss of every row, added up
        expected *= y.numel()  # (a healthy reduction='sum' read 42354% above the mean's 1.05; multi-label: per label)
    evidence = {"loss_at_init": round(loss, 4), "expected": round(expected, 4), "rows": len(y)}
    if head.name != "regression":
        evidence["uniform_loss_ln_C"] = round(head.uniform_loss(), 4)
    gap = loss - expected
    source = "Karpathy's recipe ('verify loss @ init'); 'Tips and tricks for Neural Networks' (set the output bias)"
    if not math.isfinite(loss):
        return Verdict("C2", "loss at init", "fail", f"the loss at init is {loss}", evidence,
                       "the model outputs non-finite values before training: check the inputs and the init", source)
    if gap <= max((PASS_REL_VALUES if head.name == "regression" else PASS_REL) * expected, PASS_ABS):
        return Verdict("C2", "loss at init", "pass",
                       f"the loss at init {loss:.4f} is close to the expected {expected:.4f}", evidence, "", source)
    standardized = y.is_floating_point() and len(y) > 1 and abs(float(y.float().mean())) < 0.1 \
        and abs(float(y.float().std()) - 1) < 0.1
    fix = {"regression": "initialise the output bias to the target's mean and scale the output layer's weights "
                         "down (M6)" + ("" if standardized else "; standardize the target"),
           }.get(head.name, "initialise the output bias from the class priors (log p_c; log(pos/neg) for binary, "
                            "M6) and scale the output layer's weights down so the logits start near zero")
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))][-1:]
    if last and last[0].bias is None:  # the M6 fix needs a bias to set
        fix = f"the output layer ({type(last[0]).__name__}) has no bias: build it with bias=True, then {fix}"
        evidence["output_bias"] = False
    status = "warn" if gap <= FAIL_REL * expected else "fail"
    return Verdict("C2", "loss at init", status,
                   f"the loss at init {loss:.4f} is {gap / max(expected, 1e-12):.0%} above the expected {expected:.4f}",
                   evidence, fix, source)
