"""C6: samples stay independent (Karpathy's recipe, "use backprop to chart dependencies"): the output of row i must
not depend on the input of any other row j. A view or reshape that mixes the batch dimension with a feature
dimension trains, but on a blend of samples; the gradient of output i with respect to the inputs shows it as
non-zero rows j != i. Runs on a copy in eval mode: BatchNorm with running statistics and dropout are then
per-row, as they are at prediction time."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..steps import main_output
from .setup import Setup
from .verdict import Verdict

SOURCE = "Karpathy's recipe ('use backprop to chart dependencies')"
FIX = "permute/reshape along the right dimensions; never mix the batch dimension"

ROWS = 8  # one backward per row
# In exact arithmetic the gradient of output i with respect to input j != i is zero for a per-row model, and
# autograd computes it as exactly 0.0 (a product with zeros); TOL only leaves room for a layer that adds
# rounding. Measured (largest cross-row gradient / largest own-row gradient, case seeds 0-4): exactly 0 on
# the 7 healthy setups; 1.5-4.7 on a planted batch-mixing reshape.
TOL = 1e-6
# Without a float input (token ids, say) there is no input gradient: each row is run alone instead and its
# output compared with the batched one, allowing float32 rounding that a different batch size may bring.
ALONE_TOL = 1e-4


def check_independence(setup: Setup) -> Verdict:
    name = "sample independence"
    n = min(ROWS, len(setup.y))
    if n < 2:
        return Verdict("C6", name, "skipped", f"only {n} row: nothing to mix", source=SOURCE)
    model = copy.deepcopy(setup.model).eval()
    xs = tuple(t[:n].detach().clone() for t in setup.x)
    by_design = [type(m).__name__ for m in model.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None]
    if any(torch.is_floating_point(t) for t in xs):
        dep = _gradient_chart(model, xs, setup.seed)
        method = "input gradients"
    else:
        dep = _alone_vs_batched(model, xs)
        method = "each row alone vs in the batch"
    if dep is None:
        return Verdict("C6", name, "skipped", "the model's output is not one tensor with a row per input row",
                       source=SOURCE)
    own = dep.diagonal()
    cross = dep - torch.diag(own)
    scale = float(own.max()) if method == "input gradients" else 1.0
    ratio = float(cross.max()) / scale if scale > 0 else (0.0 if float(cross.max()) == 0 else float("inf"))
    pairs = {f"output {i}": [j for j in range(n) if j != i and cross[i, j] > TOL * scale] for i in range(n)}
    pairs = {k: v for k, v in pairs.items() if v}
    evidence: dict[str, Any] = {"rows": n, "method": method, "max_cross_dependence": float(f"{ratio:.3g}"),
                                "tolerance": TOL if method == "input gradients" else ALONE_TOL,
                                "dependencies": dict(list(pairs.items())[:4])}
    if method == "input gradients" and scale == 0 and not pairs:
        return Verdict("C6", name, "skipped", "the outputs do not change with the inputs on these rows (zero input "
                       "gradients): nothing to chart", evidence, source=SOURCE)
    if not pairs:
        return Verdict("C6", name, "pass", f"each of {n} outputs depends only on its own input row ({method})",
                       evidence, "", SOURCE)
    first, deps = next(iter(pairs.items()))
    summary = (f"{first} depends on input rows {deps} besides its own ({len(pairs)} of {n} outputs mix rows, "
               f"{method}, in eval mode)")
    if by_design:  # batch statistics at evaluation mix rows by design, not by a reshape
        return Verdict("C6", name, "warn", summary + f"; {', '.join(by_design)} without running statistics uses "
                       "batch statistics at evaluation", evidence, "set track_running_stats=True so that a "
                       "prediction does not depend on the rest of its batch, or " + FIX, SOURCE)
    return Verdict("C6", name, "fail", summary, evidence, FIX, SOURCE)


def _gradient_chart(model: nn.Module, xs: tuple[torch.Tensor, ...], seed: int) -> torch.Tensor | None:
    """dep[i, j] = |d (r . output_i) / d input_j|_1 summed over the float inputs, r a fixed random vector (a
    plain sum would vanish for outputs that sum to a constant, a softmax's)."""
    xs = tuple(t.requires_grad_() if torch.is_floating_point(t) else t for t in xs)
    leaves = [t for t in xs if t.requires_grad]
    with torch.enable_grad():
        out = main_output(model(*xs))
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != len(xs[0]):
            return None
        r = torch.randn(out.shape[1:], generator=torch.Generator().manual_seed(seed)).to(out.dtype)
        n = len(out)
        dep = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            grads = torch.autograd.grad((out[i] * r).sum(), leaves, retain_graph=i < n - 1, allow_unused=True)
            for g in grads:
                if g is not None:
                    dep[i] += g.detach().abs().reshape(n, -1).sum(1).double()
    return dep


@torch.no_grad()
def _alone_vs_batched(model: nn.Module, xs: tuple[torch.Tensor, ...]) -> torch.Tensor | None:
    """dep[i, j] = 1 for j != i (every other row) when output i run alone differs from output i in the batch
    by more than ALONE_TOL of its size; the rows it depends on cannot be told apart this way."""
    out = main_output(model(*xs))
    n = len(xs[0])
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != n:
        return None
    dep = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        alone = main_output(model(*(t[i:i + 1] for t in xs)))
        if not torch.allclose(alone.float().reshape(-1), out[i].float().reshape(-1), rtol=ALONE_TOL,
                              atol=ALONE_TOL * float(out.float().abs().max())):
            dep[i] = 1.0
    dep.fill_diagonal_(0.0)
    return dep + torch.eye(n, dtype=torch.float64)
