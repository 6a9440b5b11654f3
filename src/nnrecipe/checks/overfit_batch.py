"""C1: overfit one small batch (the article "Tips and tricks for Neural Networks"; Karpathy's recipe:
"overfit one batch"). A model that cannot drive the loss on 10-20 rows near zero has a bug: a learning
rate of 0, frozen parameters, a loss that does not match the task, or too little capacity."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from statistics import fmean

import numpy as np
import torch
from torch import nn

from ..steps import Step, as_batch, main_output
from .reading import SCHEDULE_FIX, rate_collapsed
from .setup import measured_loss
from .verdict import Inputs, Verdict, as_tuple

TrainStep = Callable[[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, ...]], object]

ROWS = 16  # 'Tips and tricks for Neural Networks', Karpathy's recipe: a batch of 10-20 samples
STEPS = 1000  # step budget; healthy MLPs get there in 100-300 (measured on breast cancer, digits, diabetes)
# ... at the rates people pick. At smaller ones (AdamW 1e-4, plain SGD 0.01: the loss on 16 digits at 0.20 of
# its start after 1000 steps, falling 44% in the last 250) a healthy model gets there later, and "cannot fit"
# was a false alarm: while the loss still falls by FALLING over the last WINDOW steps, the budget grows by
# STEPS, up to MAX_BUDGETS of them (AdamW 1e-4 reaches 1% by 4000 steps). What cannot fit stalls: Adam at
# 1e-7 falls 0.0%, weight decay 1.0 0.0%, a softmax before CrossEntropyLoss 0.0%; Adam 3e-5 falls 7%.
WINDOW, FALLING, MAX_BUDGETS = 250, 0.2, 4
SMOOTH = 50  # the losses compared are means of 50 steps: a step with noise of its own (augmentation) is not read as falling
TARGET = 0.01  # "near zero": 1% of the loss at the start
STILL = 100  # no parameter moved by a single bit in this many steps, the loss the same each step: none ever will
# (a rate of 0, gradients of exactly 0), and the other 900 steps only kept `nnrecipe doctor --lr 0` waiting
# 20 s for the same verdict; a tiny rate (Adam 1e-7) moves the weights and runs the whole budget
# ... above the loss's own floor: CrossEntropyLoss(label_smoothing=e) cannot go below the entropy of the
# smoothed targets (0.50 for 10 classes at e = 0.1), and a healthy model stopped there read as one that
# cannot fit. Between TARGET and 10% of the start (a warning), a classifier that puts every row of the batch
# in its class has fitted it, its loss still falling: a 64-16-1 MLP with BCEWithLogitsLoss at Adam 1e-3 took
# the loss on 16 digits from 0.694 to 0.008 in 1000 steps, every row right from the first 100.


def distinct_rows(x: tuple[torch.Tensor, ...], limit: int) -> torch.Tensor:
    """The positions of the first `limit` rows whose inputs differ from every earlier row's (in order)."""
    from .data_checks import groups, row_keys

    group, _ = groups(row_keys(x))
    first = np.sort(np.unique(group, return_index=True)[1])[:limit]  # each input's first row, in row order
    return torch.from_numpy(first.astype(np.int64))


def loss_floor(loss_fn: nn.Module | None, width: int) -> float:
    """The least loss `loss_fn` can reach on class indices with `width` outputs: the entropy of the smoothed
    targets for CrossEntropyLoss(label_smoothing=e) (mean reduction), else 0."""
    e = float(getattr(loss_fn, "label_smoothing", 0.0) or 0.0)
    if not isinstance(loss_fn, nn.CrossEntropyLoss) or e <= 0 or width < 2 or loss_fn.reduction != "mean":
        return 0.0
    hit, other = 1 - e + e / width, e / width
    return float(-(hit * np.log(hit) + (width - 1) * other * np.log(other)))


def every_row_right(model: nn.Module, loss_fn: nn.Module | None, task: str | None, x: tuple[torch.Tensor, ...],
                    y: torch.Tensor) -> bool:
    """Whether the model puts every row in its class (classification with a torch loss it can read)."""
    if task not in ("binary", "multiclass", "multilabel") or not isinstance(loss_fn, nn.Module) \
            or torch.is_floating_point(y) and task == "multiclass":
        return False
    with torch.no_grad():
        out = main_output(model(*x)).float()
    if task == "multiclass":
        return out.ndim == 2 and out.shape[0] == len(y) and bool((out.argmax(1) == y.reshape(-1)).all())
    cut = 0.5 if isinstance(loss_fn, nn.BCELoss) else 0.0  # probabilities, else logits
    if out.numel() != y.numel():
        return False
    return bool(((out.reshape(y.shape) > cut) == (y > 0.5)).all())


def check_overfit_batch(model: nn.Module, loss_fn: nn.Module | None, x: Inputs, y: torch.Tensor,
                        make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
                        steps: int = STEPS, seed: int = 0, train_step: TrainStep | None = None,
                        task: str | None = None) -> Verdict:
    """Train a copy of `model` on `x, y` (the first ROWS rows are used) with regularization off, `steps` steps
    and up to MAX_BUDGETS x `steps` while the loss still falls fast (see FALLING): with
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
                       evidence, "unfreeze the parameters (requires_grad=True) or pass the right model", source,
                       fault="frozen-layer")
    opt = make_optimizer(trainable)
    evidence["lr"] = opt.param_groups[0]["lr"]
    floor = 0.0
    if isinstance(loss_fn, nn.CrossEntropyLoss) and loss_fn.label_smoothing:
        with torch.no_grad():
            out = main_output(probe(*x))
        floor = loss_floor(loss_fn, out.shape[1] if out.ndim >= 2 else 1)
        evidence["loss_floor"] = round(floor, 5)

    def reached(first: float, last: float) -> bool:
        return last - floor <= TARGET * (first - floor)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        first = last = None
        budget, step = steps, 0
        history: list[float] = []
        start = [p.detach().clone() for p in trainable]
        while step < budget:
            step += 1
            if train_step is not None:
                before = None
                if step == 1 and loss_fn is not None:
                    try:
                        before = measured_loss(probe, loss_fn, x, y)
                    except (ValueError, RuntimeError):  # the step adapts the shapes before its loss
                        before = None
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
                if not reached(first, last):  # not there yet: update (no update once the target is met)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            if reached(first, last):
                break
            history.append(last)
            if step == STILL and len(set(history)) == 1 and all(torch.equal(p, p0) for p, p0 in zip(trainable, start)):
                evidence["still_after"] = STILL
                break
            if step == budget and budget < MAX_BUDGETS * steps and len(history) > WINDOW + SMOOTH \
                    and fmean(history[-SMOOTH:]) - floor <= (1 - FALLING) * (
                        fmean(history[-WINDOW - SMOOTH:-WINDOW]) - floor):
                budget += steps  # still falling fast: a slow rate, not a model that cannot fit
    assert first is not None and last is not None
    evidence.update({"loss_start": round(first, 5), "loss_end": round(last, 6), "steps": step,
                     "target": round(floor + TARGET * (first - floor), 6)})
    above = f" (its floor with label smoothing {floor:.4f})" if floor else ""
    if reached(first, last):
        return Verdict("C1", "overfit one batch", "pass",
                       f"the loss on {len(y)} rows fell from {first:.4f} to {last:.2e}{above} in {step} steps",
                       evidence, "", source)
    near = last - floor <= 0.1 * (first - floor)
    if near and every_row_right(probe, loss_fn, task, x, y):
        evidence["every_row_right"] = True
        return Verdict("C1", "overfit one batch", "pass",
                       f"the loss on {len(y)} rows fell from {first:.4f} to {last:.2e}{above} in {step} steps, every "
                       "row predicted right: fitted, the loss still falling", evidence, "", source)
    status = "warn" if near else "fail"
    reasons = []
    lr0, lr_end = evidence["lr"], opt.param_groups[0]["lr"]
    collapsed = rate_collapsed(lr0, lr_end)
    if collapsed:  # the caller's step stepped a schedule: the rate fell away under these steps
        evidence["lr_end"] = float(lr_end)
        reasons.append(f"the learning rate fell from {lr0:.3g} to {lr_end:.3g} during these steps: a "
                       "schedule stepped every batch")
    if evidence["lr"] == 0:
        reasons.append("the learning rate is 0")
    elif "still_after" in evidence and not frozen and not collapsed:
        reasons.append(f"no parameter moved in {STILL} steps: the optimizer's updates are all 0")
    if frozen and not by_design:
        reasons.append(f"{len(frozen)} parameters are frozen ({', '.join(frozen[:3])})")
    elif frozen and not reasons:
        # a transfer mode's frozen backbone is the run's choice, not a fault: features that cannot separate a
        # batch are a finding to weigh (train more of the backbone), not a broken pipeline
        reasons.append(f"the transfer mode keeps {len(frozen)} parameters of the backbone frozen: its features do not "
                       "separate these rows")
        status = "warn"
    why = "; ".join(reasons) or "the model, the loss or the optimizer cannot fit these rows"
    fault = "scheduler-misuse" if collapsed else "lr-too-low" if evidence["lr"] == 0 else \
        "frozen-layer" if frozen and not by_design else "unknown"
    fix = (SCHEDULE_FIX if collapsed else
           "set a learning rate > 0 (pick it with the LR range test, T4: Trainer.lr_find)" if fault == "lr-too-low"
           else "train more of the backbone (--transfer last or full), or start from a backbone trained on images "
           "more like these" if frozen and by_design and status == "warn" else
           "check that the learning rate is > 0 and every layer is trainable and in the optimizer, that the loss "
           "matches the task and the targets; if all hold, add capacity")
    return Verdict("C1", "overfit one batch", status,
                   f"the loss on {len(y)} rows only went from {first:.4f} to {last:.4f}{above} in {step} steps ({why})",
                   evidence, fix, source, fault=fault)
