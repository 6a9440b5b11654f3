"""C1: overfit one small batch (the article "Tips and tricks for Neural Networks"; Karpathy's recipe:
"overfit one batch"). A model that cannot drive the loss on 10-20 rows near zero has a bug: a learning
rate of 0, frozen parameters, a loss that does not match the task, or too little capacity."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..steps import Step, as_batch, main_output
from .setup import measured_loss
from .verdict import Inputs, Verdict, as_tuple

TrainStep = Callable[[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, ...]], object]

ROWS = 16  # 'Tips and tricks for Neural Networks', Karpathy's recipe: a batch of 10-20 samples
STEPS = 1000  # step budget; healthy MLPs get there in 100-300 (measured on breast cancer, digits, diabetes)
TARGET = 0.01  # "near zero": 1% of the loss at the start


def distinct_rows(x: tuple[torch.Tensor, ...], limit: int) -> torch.Tensor:
    """The positions of the first `limit` rows whose inputs differ from every earlier row's (in order)."""
    from .data_checks import groups, row_keys

    group, _ = groups(row_keys(x))
    first = np.sort(np.unique(group, return_index=True)[1])[:limit]  # each input's first row, in row order
    return torch.from_numpy(first.astype(np.int64))


def check_overfit_batch(model: nn.Module, loss_fn: nn.Module | None, x: Inputs, y: torch.Tensor,
                        make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                        steps: int = STEPS, seed: int = 0, train_step: TrainStep | None = None) -> Verdict:
    """Train a copy of `model` on `x, y` (the first ROWS rows are used) with regularization off: with
    `loss_fn` and our step, or with the caller's `train_step(model, optimizer, batch) -> loss` (the loss
    it returns, measured before its update, is the one judged; when it returns none, `loss_fn` measures
    the loss after each step, if given)."""
    # the caller passes the rows in a seeded random order; the batch takes the first ROWS with distinct inputs:
    # two rows with one input and two labels cannot both be fit (a table of coarse inputs, titanic's class,
    # age and sex, repeats every input: its first 16 rows held conflicting pairs, and C1 failed a healthy model)
    x = as_tuple(x)
    keep = distinct_rows(x, ROWS)
    x, y = tuple(t[keep] for t in x), y[keep]
    probe = copy.deepcopy(model)
    for m in probe.modules():
        if isinstance(m, nn.Dropout | nn.AlphaDropout):
            m.p = 0.0  # regularization off: the point is to see that the model can fit at all
    thaw = getattr(probe, "thaw", None)
    if callable(thaw):  # a transfer model (models/transfer.py) frozen by design: the blocks its mode ever trains
        thaw(10**6)
    probe.train()
    frozen = [n for n, p in probe.named_parameters() if not p.requires_grad]
    by_design = callable(thaw)
    trainable = [p for p in probe.parameters() if p.requires_grad]
    source = "Karpathy's recipe ('overfit one batch'); 'Tips and tricks for Neural Networks'"
    evidence: dict[str, object] = {"rows": len(y), "frozen_parameters": frozen[:10], "n_frozen": len(frozen)}
    if not trainable:
        return Verdict("C1", "overfit one batch", "fail", "no parameter requires a gradient: nothing can learn",
                       evidence, "unfreeze the parameters (requires_grad=True) or pass the right model", source)
    opt = make_optimizer(trainable)
    evidence["lr"] = opt.param_groups[0]["lr"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = last = None
        for step in range(1, steps + 1):
            if train_step is not None:
                before = measured_loss(probe, loss_fn, x, y) if step == 1 and loss_fn is not None else None
                out = train_step(probe, opt, (*x, y))
                if out is None and loss_fn is None:
                    return Verdict("C1", "overfit one batch", "skipped",
                                   "the training step returns no loss, and no loss_fn was given to measure it",
                                   evidence, "", source)
                if out is None:  # measured with loss_fn: before the first step, then after each
                    first = before if first is None else first
                    last = measured_loss(probe, loss_fn, x, y)
                    evidence["measured_with"] = "loss_fn (the training step returns no loss)"
                else:
                    last = float(out.detach() if isinstance(out, torch.Tensor) else out)
                    first = last if first is None else first
            else:
                # the loss this step computes anyway is the one judged: the loss after step - 1 updates,
                # as with a caller's train_step (an extra forward per check cost C1 a third more)
                # the training step's loss (an ensemble's: its members' losses, steps/step.py)
                loss, _ = Step(loss_fn).loss(probe, as_batch((*x, y)))
                last = float(loss.detach())
                first = last if first is None else first
                if last > TARGET * first:  # not there yet: update (no update once the target is met)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            if last <= TARGET * first:
                break
    assert first is not None and last is not None
    evidence.update({"loss_start": round(first, 5), "loss_end": round(last, 6), "steps": step,
                     "target": round(TARGET * first, 6)})
    if last <= TARGET * first:
        return Verdict("C1", "overfit one batch", "pass",
                       f"the loss on {len(y)} rows fell from {first:.4f} to {last:.2e} in {step} steps",
                       evidence, "", source)
    status = "warn" if last <= 0.1 * first else "fail"
    reasons = []
    if evidence["lr"] == 0:
        reasons.append("the learning rate is 0")
    if frozen and not by_design:
        reasons.append(f"{len(frozen)} parameters are frozen ({', '.join(frozen[:3])})")
    elif frozen:
        reasons.append(f"the transfer mode keeps {len(frozen)} parameters of the backbone frozen: its features do not "
                       "separate these rows")
    why = "; ".join(reasons) or "the model, the loss or the optimizer cannot fit these rows"
    fault = "lr-too-low" if evidence["lr"] == 0 else "frozen-layer" if frozen and not by_design else "unknown"
    fix = ("set a learning rate > 0 (pick it with the LR range test, T4: Trainer.lr_find)" if fault == "lr-too-low"
           else "check that the learning rate is > 0 and every layer is trainable and in the optimizer, that the loss "
           "matches the task and the targets; if all hold, add capacity")
    return Verdict("C1", "overfit one batch", status,
                   f"the loss on {len(y)} rows only went from {first:.4f} to {last:.4f} in {steps} steps ({why})",
                   evidence, fix, source, fault=fault)
