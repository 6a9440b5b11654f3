"""C8: the learning rate and the fit judged from the curves (the article "Tips and tricks for Neural
Networks": "tune the learning rate", a rate too high does not converge; Lavanya Shukla: the best rate is
about half the one that diverges). `check_short_run` trains a copy for a few epochs on the setup's sample
and hands the history to `diagnose_curves`, which
works on any run's history, e.g. the Trainer's metrics.jsonl rows {epoch, train_loss, val_loss,
val_accuracy, ...}: `nnrecipe train` can judge a finished run with it.

Sorted batches cannot be read from the losses: the lag-1 autocorrelation of the batch
losses is 0.82 for Adam on digits sorted by label but -0.05 for SGD on the same batches, and 0.49-0.67
for SGD at a high rate (1) on shuffled batches. The labels of the batches tell it: `diagnose_curves(batch_labels=...)`
and `check_batch_order(loader)` compare each batch's label entropy with the whole data's."""

from __future__ import annotations

import dataclasses

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..steps import as_batch, main_output
from ..tasks import create_task
from .reading import SCHEDULE_FIX, rate_collapsed
from .setup import Setup
from .verdict import Verdict

EPOCHS = 10  # the short run: 10 epochs of <= 512 rows in batches of 32, at most 160 steps
BATCH = 32  # Lavanya Shukla: mini-batches of 2-32 give the most stable convergence

# Divergence: a loss non-finite, or at any epoch 3x the first one. Healthy short runs peak at <= 1.03x
# their start; Adam at 0.1 on A (too high but recovering) at 1.23x; SGD at 10 on A at 11.7x (epoch 1: 27.0).
DIVERGE = 3.0
# No progress: the last training loss at or above the first while the loss moved (not flat). Healthy runs
# end at 0.04-0.95x their start (0.95: the slow CNN D); SGD at 2, 5 and 10 on A end at 1.004-1.07x.
NO_PROGRESS = 1.0
# AUTOTRAINER (Zhang et al., ICSE 2021): oscillation when the accuracy swings by >= 0.03 in >= 20% of the
# epochs. A swing counts when the accuracy drops while the loss rises: near chance the argmax flips with
# the loss still falling (the healthy CNN D: drops of 0.14 and 0.07 with its validation loss falling). For
# curves without accuracy a swing is a loss rise of >= 10% over the previous epoch that is also >= 5% of
# the start (so noise at a loss near 0 is not one: B's validation loss once rises 47%, from 0.05, 3% of
# its start). Healthy short runs: 0 swings of either kind in 10 epochs; SGD at 1 on A, which trains: 1;
# SGD at 1 with momentum on A, stalled at 30% accuracy: 2 accuracy swings.
SWING_ACC, SWING_LOSS, SWING_FLOOR, SWING_SHARE = 0.03, 0.10, 0.05, 0.20
# ... and on a run's own curves (train's C8 after training: long, most epochs past the best one) a drop is a
# swing only when more than one row flipped: on a validation split of 18 images one row is 0.056, and healthy
# image runs of 106-181 epochs (120 digits, test accuracy 1.0) flipped one row back and forth while the loss crept
# up: swings in 20-32% of their epochs, 'too high' on 5 of 5; with the row rule 11-18%, none (benchmarks/c8_swings.py).
# The doctor's 10-epoch short run keeps 0.03: it had no false alarm on 90 healthy runs with 18-27 validation rows
# (wine, iris, 180 digits; Adam 1e-3 and 3e-3, SGD 0.05), and one-row drops there caught 7 more of 60 runs at a
# rate too high (Adam 0.1, SGD 2.0: 40 of 60 against 33 with the row rule).
SWING_ROWS = 1.5
# Flat: no epoch's training loss differs from the first by 2% or more. Healthy: the slow CNN D moves 5.9%
# in the short run, the others 58-96%; Adam at 1e-7 on A moves 0.01%, Adam at 1e-5 0.7%.
FLAT = 0.02
# Overfitting: the validation loss ends >= 20% above its minimum, reached >= 2 epochs before the end,
# while the training loss kept falling. Healthy short runs end within 0.4% of their minimum (C); Adam at
# 0.03 on A ends 24% above it, at 0.1 32%.
OVERFIT, OVERFIT_EPOCHS = 0.20, 2
# ... and it rose by >= 5% of the prior's loss (else the first epoch's): a nearly perfect model's validation
# loss moves 20% when one row's probability moves. Breast cancer's cross-validation members (T14, folds of
# 48 rows) end 6-93% above minima of 0.001-0.2, a rise of 0.02-15% of the prior's 0.66, their best
# weights kept; the scripted overfitting history of tests/checks rises 6.5% of its first loss
OVERFIT_SHARE = 0.05
# capacity: PER_ROW parameters per training row and a train/validation gap of GAP x the prior's loss
PER_ROW = 50
GAP = 0.05
# Underfitting: the training loss has stopped improving (no new minimum in the last third of the epochs)
# and sits at >= 70% of the prior's loss (the loss of predicting the class priors or the mean; else the
# first epoch's). Healthy short runs end at 0.04-0.43x the prior (C, regression, at 0.43) or are still
# improving (D, at 0.95x); SGD at 1 with momentum on A stalls at 0.76x.
UNDERFIT = 0.70
# Worse than a constant: the last training loss >= 3x the prior's loss. Healthy short runs end at <= 0.95x
# it (D); the 8-layer ReLU MLP with N(0, 10) weights ends at 1.5e14x (its loss falls, from 1e15).
ABOVE_PRIOR = 3.0
# Sorted batches: each batch's label entropy over the whole data's, against the same labels shuffled into
# batches of the same sizes. Shuffled batches of 32 rows hold 0.92 of it on digits (10 classes) and on the
# 10%-minority binary set, 0.97 on moons; digits sorted by label 0.04; iris sorted into 2 batches of 56 rows
# 0.56 against 0.98 shuffled. Fail below SORTED_ENTROPY of the shuffled share.
SORTED_ENTROPY = 0.60

SOURCE = ("'Tips and tricks for Neural Networks' (tune the learning rate); Lavanya Shukla (LR range test); "
          "AUTOTRAINER (Zhang et al., ICSE 2021)")
FIX_HIGH = ("lower the learning rate: run the LR range test (T4, Trainer.lr_find) and take about half the rate "
            "where the loss starts to diverge (Lavanya Shukla); clip the gradient norm")
FIX_LOW = ("raise the learning rate (x10), or pick it with the LR range test (T4, Trainer.lr_find); if C7 reports "
           "missing gradients or dead units, fix those first")
FIX_OVERFIT = ("regularize (weight decay, dropout, augmentation), stop early at the best validation epoch "
               "(EarlyStopping), or get more data")
FIX_UNDERFIT = ("add capacity (wider or deeper layers) and train longer; lower the regularization; check the "
                "features and the learning rate")
FIX_ABOVE_PRIOR = ("the model does worse than predicting the prior: fix the init and the output scale first (C2: "
                   "loss at init; C7: exploding gradients), then tune the learning rate")
FIX_SORTED = "shuffle the training data every epoch (DataLoader(..., shuffle=True))"


def check_short_run(setup: Setup, epochs: int = EPOCHS, batch: int = BATCH) -> list[Verdict]:
    """C8 on a copy: `epochs` epochs over the setup's sample in shuffled batches, evaluated on the
    validation sample after each; the history goes to `diagnose_curves`."""
    model, opt = setup.copies()
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    if not any(p.requires_grad and id(p) in held for p in model.parameters()):
        return [_skip("the optimizer holds none of the model's trainable parameters (see C7)")]
    start = [p.detach().clone() for p in model.parameters()]
    lr0 = opt.param_groups[0]["lr"]
    n = len(setup.y)
    starts = list(range(0, n, batch))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()  # a last batch of 1 row: BatchNorm cannot train on it
    history = [_row(setup, model, 0, _batch_statistics_loss(setup, model, starts, batch))] \
        if setup.loss_fn is not None else []
    batch_losses: list[float] = []
    gen = torch.Generator().manual_seed(setup.seed)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        losses = []
        for i in starts:
            rows = order[i:i + batch]
            losses.append(setup.step(model, opt, (*(t[rows] for t in setup.x), setup.y[rows])))
            if math.isinf(losses[-1]) or math.isnan(losses[-1]) and setup.train_step is None:
                break
        batch_losses += losses
        mean = sum(losses) / len(losses)
        if setup.train_step is not None and setup.loss_fn is not None and all(math.isnan(x) for x in losses):
            mean = None  # the caller's step returns no loss: measure it on the training rows instead
        history.append(_row(setup, model, epoch, mean))
        if not math.isfinite(history[-1]["train_loss"]):
            break
    if setup.loss_fn is None and all(math.isnan(r["train_loss"]) for r in history):
        return [_skip("the training step returns no loss and no loss_fn was given")]
    if all(torch.equal(p.detach(), s) for p, s in zip(model.parameters(), start)):
        return [_skip(f"no parameter changed in {len(batch_losses)} steps (see C7)")]
    verdicts = diagnose_curves(history, baseline_loss=_baseline(setup))
    if not any(v.name == "overfitting" for v in verdicts):
        verdicts += _capacity(setup, model, history, _baseline(setup))
    verdicts = _collapsed_rate(verdicts, lr0, opt.param_groups[0]["lr"])
    if setup.loader is not None and setup.task in ("binary", "multiclass"):
        # batches sorted by label: the caller's own batches, in the order their DataLoader makes them
        order = check_batch_order(setup.loader)
        if order.status != "skipped":
            verdicts.append(order)
    return verdicts


def _collapsed_rate(verdicts: list[Verdict], lr0: Any, lr_end: Any) -> list[Verdict]:
    """A stalled curve under a rate that the caller's step drove to under 1% of its start within the short
    run (StepLR(step_size=1) stepped every batch halves it each step): the schedule, not the rate chosen."""
    if not rate_collapsed(lr0, lr_end):
        return verdicts
    said = f"; the learning rate fell from {lr0:.3g} to {lr_end:.3g} over these epochs: a schedule stepped every batch"
    return [dataclasses.replace(v, fault="scheduler-misuse", summary=v.summary + said,
                                evidence={**v.evidence, "lr_start": float(lr0), "lr_end": float(lr_end)},
                                fix=SCHEDULE_FIX)
            if v.status in ("warn", "fail") and v.name in ("learning rate too low", "underfitting") else v
            for v in verdicts]


def _capacity(setup: Setup, model: nn.Module, history: list[dict[str, Any]],
              baseline: float | None) -> list[Verdict]:
    """Too many parameters for the rows, shown by the short run: PER_ROW parameters or more per training row
    and a validation loss GAP (of the prior's loss) above the training loss at the end. Healthy base setups
    have 3-15 parameters per row; a 1024-wide MLP on 100 rows has 120-760."""
    last = history[-1] if history else {}
    if last.get("val_loss") is None or last.get("train_loss") is None or not baseline or baseline <= 0:
        return []
    rows = int(setup.index.max()) + 1 if setup.index is not None and len(setup.index) else len(setup.y)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    gap = (float(last["val_loss"]) - float(last["train_loss"])) / baseline
    middle = history[len(history) // 2]
    earlier = (float(middle.get("val_loss", math.nan)) - float(middle.get("train_loss", math.nan))) / baseline
    # and widening: a pretrained model's gap on a short run that stays put is no sign of memorizing
    if params < PER_ROW * rows or gap < GAP or not math.isfinite(gap) or not gap > earlier:
        return []
    ev = {"parameters": params, "training_rows": rows, "parameters_per_row": round(params / rows, 1),
          "train_loss_last": _round(float(last["train_loss"])), "val_loss_last": _round(float(last["val_loss"])),
          "gap_of_prior_loss": _round(gap)}
    return [Verdict("C8", "overfitting", "warn",
                    f"{params} parameters for {rows} training rows ({params / rows:.0f} per row), and after "
                    f"{len(history) - 1} epochs the validation loss is already {gap:.0%} of the prior's loss above "
                    "the training loss: a long run will fit the rows, not the task", ev, FIX_OVERFIT, SOURCE,
                    fault="overfitting")]


def kept_best(verdicts: list[Verdict]) -> list[Verdict]:
    """C8's verdicts on a run that stopped early and kept its best epoch's weights (train's default): the
    validation loss rising after that epoch is what early stopping is for, and the model saved is the one
    from before the rise, so overfitting is reported as a pass that says so (issue 19: it warned on 6 of
    the 70 healthy runs of benchmarks/tabular.py's panel, pneumon's 1:47 table on 4 of its 5 seeds)."""
    return [dataclasses.replace(v, status="pass", fix="", fault="",
                                summary=f"{v.summary}; early stopping kept the weights of epoch "
                                        f"{v.evidence.get('best_epoch')}, from before the rise")
            if v.name == "overfitting" and v.status == "warn" else v for v in verdicts]


def after_range_test(verdicts: list[Verdict], lr: float) -> list[Verdict]:
    """C8's verdicts on a run whose learning rate the LR range test chose (issue 19): its fixes no longer send
    the user to the range test; a rate it chose that then diverges points at the schedule and the batch."""
    fixes = {FIX_HIGH: (f"the LR range test chose lr {lr:.3g}, a rate for the first steps: lower it as training "
                        "goes (--schedule cosine, or plateau), or use larger batches (--batch-size), or take the "
                        "test's careful candidate (--lr-find confirm); clip the gradient norm"),
             FIX_LOW: (f"the LR range test chose lr {lr:.3g} and the curve stayed flat: check C7 (missing gradients, "
                       "dead units) and the data first, then try --lr-find confirm or a rate x10")}
    return [dataclasses.replace(v, fix=fixes[v.fix]) if v.fix in fixes else v for v in verdicts]


def diagnose_curves(history: Sequence[dict[str, Any]], *, baseline_loss: float | None = None,
                    batch_labels: Iterable[Any] | None = None, val_rows: int | None = None) -> list[Verdict]:
    """Judge a run from its per-epoch rows (train_loss required; val_loss, val_accuracy or
    train_accuracy used when present): a learning rate too high (divergence, no progress, oscillation),
    too low (flat), overfitting, underfitting. `baseline_loss`: the loss of predicting the prior (C2's
    expected loss), else the first epoch's loss stands for it. `batch_labels`: the labels of the training
    batches in the order they were used, to tell batches sorted by label. `val_rows`: the rows val_accuracy
    is measured on, so that one row flipping is not read as an oscillation. Returns the problems found, or
    one pass verdict."""
    rows = [r for r in history if r.get("train_loss") is not None]
    if not rows:
        return [_skip("no epoch with a train_loss")]
    train = [float(r["train_loss"]) for r in rows]
    val = [float(r["val_loss"]) for r in rows] if all(r.get("val_loss") is not None for r in rows) else None
    acc_key = next((k for k in ("val_accuracy", "train_accuracy") if all(r.get(k) is not None for r in rows)), None)
    acc = [float(r[acc_key]) for r in rows] if acc_key else None
    start = train[0]
    evidence: dict[str, Any] = {"epochs": len(rows), "train_loss_first": _round(start),
                                "train_loss_last": _round(train[-1]), "train_loss_min": _round(min(train))}
    if val is not None:
        evidence.update({"val_loss_last": _round(val[-1]), "val_loss_min": _round(min(val))})
    if acc is not None:
        evidence[f"{acc_key}_last"] = _round(acc[-1])
    verdicts = []
    if batch_labels is not None:
        order = _batch_order(batch_labels)
        if order is not None and order.status != "pass":
            verdicts.append(order)
        elif order is not None:
            evidence["batch_entropy_share"] = order.evidence["batch_entropy_share"]
    broken = _nonfinite(train, val, [r.get("epoch", i) for i, r in enumerate(rows)], evidence)
    if broken is not None:
        return verdicts + [broken]
    if len(rows) < 3:
        return verdicts + [_skip(f"{len(rows)} epochs with a train_loss: the curves need >= 3")]
    high = _too_high(train, val, acc, evidence, val_rows if acc_key == "val_accuracy" else None)
    if high is not None:
        return verdicts + [high]
    if baseline_loss is not None and baseline_loss > 0 and train[-1] >= ABOVE_PRIOR * baseline_loss:
        return verdicts + [Verdict("C8", "loss far above the prior", "fail",
                                   f"the training loss ends at {train[-1]:.4g}, {train[-1] / baseline_loss:.3g}x the "
                                   f"loss of predicting the prior ({baseline_loss:.4f})",
                                   {**evidence, "baseline_loss": _round(baseline_loss)}, FIX_ABOVE_PRIOR, SOURCE)]
    moved = max(abs(t - start) for t in train) / abs(start) if start else math.inf
    evidence["largest_move"] = _round(moved)
    if moved < FLAT:
        return verdicts + [Verdict("C8", "learning rate too low", "warn",
                                   f"the training loss stayed within {moved:.2%} of {start:.4f} for {len(rows)} "
                                   "epochs: the curve is flat", evidence, FIX_LOW, SOURCE)]
    # the loss the overfitting rise and the underfitting level are measured against: the prior's, else the
    # first epoch's
    reference = baseline_loss if baseline_loss is not None and baseline_loss > 0 else start
    if val is not None:
        best = min(range(len(val)), key=val.__getitem__)
        rise = val[-1] / val[best] - 1 if val[best] > 0 else 0.0
        if (rise >= OVERFIT and val[-1] - val[best] >= OVERFIT_SHARE * reference and len(val) - 1 - best >= OVERFIT_EPOCHS
                and train[-1] < train[best]):
            ev = {**evidence, "best_epoch": rows[best].get("epoch", best), "val_rise": _round(rise),
                  "gap_at_best": _round(val[best] - train[best]), "gap_last": _round(val[-1] - train[-1])}
            verdicts.append(Verdict("C8", "overfitting", "warn",
                                    f"the validation loss rose {rise:.0%} above its minimum (epoch "
                                    f"{ev['best_epoch']}) while the training loss kept falling", ev, FIX_OVERFIT,
                                    SOURCE))
    tail = max(len(train) // 3, 2)
    stalled = min(train[-tail:]) >= min(train[:-tail])
    level = train[-1] / reference if reference else 0.0
    evidence["train_loss_vs_baseline"] = _round(level)
    if stalled and level >= UNDERFIT:
        of = "the prior's loss" if reference != start else "the first epoch's loss"
        ev = {**evidence, "baseline_loss": _round(reference)}
        verdicts.append(Verdict("C8", "underfitting", "warn",
                                f"the training loss stopped improving at {train[-1]:.4f}, {level:.0%} of {of} "
                                f"({reference:.4f})", ev, FIX_UNDERFIT, SOURCE))
    if verdicts:
        return verdicts
    return [Verdict("C8", "learning curves", "pass",
                    f"the training loss fell from {start:.4f} to {train[-1]:.4f} in {len(rows)} epochs, steadily"
                    + (f"; validation loss {val[-1]:.4f}" if val is not None else ""), evidence, "", SOURCE)]


def _nonfinite(train: list[float], val: list[float] | None, epochs: list[Any],
               evidence: dict[str, Any]) -> Verdict | None:
    bad = [i for i in range(len(train)) if not math.isfinite(train[i]) or val is not None and not math.isfinite(val[i])]
    if bad and bad[0] == 0 and epochs[0] == 0:
        return Verdict("C8", "loss non-finite at init", "fail", "the loss is non-finite before the first step",
                       {**evidence, "nonfinite_at_epoch": 0}, FIX_ABOVE_PRIOR, SOURCE)
    if bad:
        at = epochs[bad[0]]
        return Verdict("C8", "learning rate too high", "fail", f"the loss became non-finite at epoch {at}",
                       {**evidence, "nonfinite_at_epoch": at}, FIX_HIGH, SOURCE)
    return None


def _too_high(train: list[float], val: list[float] | None, acc: list[float] | None,
              evidence: dict[str, Any], acc_rows: int | None = None) -> Verdict | None:
    """Divergence, no progress, or oscillation: the three faces of a learning rate too high."""
    start = train[0]
    curves = train + (val or [])
    peak = max(curves) / start if start > 0 else 0.0
    evidence["peak_vs_first"] = _round(peak)
    if peak >= DIVERGE:
        return Verdict("C8", "learning rate too high", "fail",
                       f"the loss diverged: it reached {max(curves):.4g}, {peak:.3g}x its first value {start:.4f}",
                       evidence, FIX_HIGH, SOURCE)
    moved = max(abs(t - start) for t in train) / abs(start) if start else math.inf
    if moved >= FLAT and train[-1] >= NO_PROGRESS * start:
        return Verdict("C8", "learning rate too high", "fail",
                       f"the training loss bounced (up to {max(train):.4f}) and ended at {train[-1]:.4f}, not below "
                       f"its first value {start:.4f}", evidence, FIX_HIGH, SOURCE)
    loss = val if val is not None else train
    transitions = len(loss) - 1
    rises = [loss[i] > loss[i - 1] for i in range(1, len(loss))]
    if acc is not None:
        drop = max(SWING_ACC, SWING_ROWS / acc_rows) if acc_rows else SWING_ACC
        swings = sum(1 for i in range(1, len(acc)) if acc[i - 1] - acc[i] >= drop and rises[i - 1])
        what = f"accuracy dropped by >= {drop:.3g} with the loss rising"
        evidence["swing_drop"] = _round(drop)
    else:
        swings = sum(1 for i in range(1, len(loss)) if loss[i] - loss[i - 1] >= SWING_LOSS * loss[i - 1]
                     and loss[i] - loss[i - 1] >= SWING_FLOOR * abs(start))
        what = f"loss rose by >= {SWING_LOSS:.0%}"
    evidence["swings"] = swings
    if transitions >= 5 and swings >= SWING_SHARE * transitions:
        return Verdict("C8", "learning rate too high", "warn",
                       f"the curves oscillate: the {what} in {swings} of {transitions} epochs", evidence, FIX_HIGH,
                       SOURCE)
    return None


def check_batch_order(batches: Iterable[Any], max_batches: int = 50) -> Verdict:
    """Batches sorted by label, from the labels of the first `max_batches` batches of a
    DataLoader (or any iterable of (..., y) batches): their mean label entropy against the whole's."""
    labels = []
    for i, b in enumerate(batches):
        if i >= max_batches:
            break
        if isinstance(b, Mapping):  # a dict batch: its target key (steps/batch.py), when it has one
            target = as_batch(b).target
            if target is not None:
                labels.append(target)
        else:
            labels.append(b[-1] if isinstance(b, tuple | list) else b)
    verdict = _batch_order(labels)
    return verdict if verdict is not None else _skip("the batches hold no class labels")


def _batch_order(batch_labels: Iterable[Any]) -> Verdict | None:
    batches = [torch.as_tensor(y) for y in batch_labels]
    batches = [y.reshape(len(y), -1) if y.ndim else y.reshape(1, 1) for y in batches if y.numel()]
    if len(batches) < 2 or any(torch.is_floating_point(y) and not bool(((y == 0) | (y == 1)).all()) for y in batches):
        return None  # regression targets (or one batch): no classes to sort by
    if any(y.shape[1] != 1 for y in batches):
        return None  # multi-label rows: no single label to sort by
    whole = _entropy(torch.cat(batches).reshape(-1))
    if whole <= 0:
        return None
    share = sum(_entropy(y.reshape(-1)) for y in batches) / len(batches) / whole
    # against the same labels shuffled into batches of the same sizes: few large batches hold much of the
    # entropy even when sorted (iris, 3 classes in 2 batches: 56%, shuffled 98%)
    labels, sizes, gen = torch.cat(batches).reshape(-1), [len(y) for y in batches], torch.Generator().manual_seed(0)
    expected = sum(sum(_entropy(part) for part in torch.split(labels[torch.randperm(len(labels), generator=gen)],
                                                              sizes)) / len(batches) / whole for _ in range(5)) / 5
    evidence = {"batches": len(batches), "batch_entropy_share": _round(share), "data_entropy": _round(whole),
                "shuffled_share": _round(expected)}
    if share < SORTED_ENTROPY * expected:
        return Verdict("C8", "batches sorted by label", "fail",
                       f"the batches hold {share:.0%} of the data's label entropy ({expected:.0%} when shuffled): each "
                       "batch sees few classes, and "
                       "the model swings from class to class", evidence, FIX_SORTED, SOURCE)
    return Verdict("C8", "batch order", "pass", f"the batches hold {share:.0%} of the data's label entropy",
                   evidence, "", SOURCE)


def _entropy(y: torch.Tensor) -> float:
    p = torch.unique(y, return_counts=True)[1].double() / len(y)
    return float(-(p * p.log()).sum())


def _batch_statistics_loss(setup: Setup, model: nn.Module, starts: list[int], batch: int) -> float | None:
    """The loss at init as the training steps measure theirs, for a model with BatchNorm: in training mode,
    batch by batch (each batch normalized by its own statistics), the running statistics put back after. In
    eval mode the fresh running statistics (mean 0, variance 1) normalize other values than the batches do, and
    a curve starting from that point moved by 3% with the weights still (Adam at 1e-7 on digits: read as a
    loss that bounced, 'too high', beside C7's 'too low'). None for a model without BatchNorm: eval mode is
    the training loss at init there (dropout's noise aside, which the curves were calibrated with)."""
    if setup.loss_fn is None or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return None
    kept = [(b, b.clone()) for b in model.buffers()]
    losses = []
    try:
        model.train()
        with torch.no_grad():
            for i in starts:
                rows = slice(i, i + batch)
                out = main_output(model(*(t[rows] for t in setup.x))).float()
                losses.append(float(setup.loss_fn(out, setup.y[rows])))
    finally:
        with torch.no_grad():
            for b, value in kept:
                b.copy_(value)
    return sum(losses) / len(losses) if losses else None


def _row(setup: Setup, model: nn.Module, epoch: int, train_loss: float | None) -> dict[str, Any]:
    """An epoch's row as the Trainer logs it; with train_loss None (epoch 0: at init), the loss measured on
    the training rows in eval mode."""
    model.eval()
    try:
        row: dict[str, Any] = {"epoch": epoch}
        with torch.no_grad():
            row["train_loss"] = setup.loss(model, setup.x, setup.y) if train_loss is None else train_loss
            if setup.val_x is not None and setup.val_y is not None:
                out = main_output(model(*setup.val_x)).float()
                if setup.loss_fn is not None:
                    row["val_loss"] = float(setup.loss_fn(out, setup.val_y))
                accuracy = _accuracy(setup, out, setup.val_y)
                if accuracy is not None:
                    row["val_accuracy"] = accuracy
    finally:
        model.train()
    return row


def _accuracy(setup: Setup, out: torch.Tensor, y: torch.Tensor) -> float | None:
    if setup.task == "multiclass" and out.ndim == 2:
        return float((out.argmax(-1) == y).float().mean())
    if setup.task in ("binary", "multilabel") and out.shape == y.shape:
        cut = 0.5 if isinstance(setup.loss_fn, nn.BCELoss) else 0.0  # BCELoss takes probabilities, not logits
        return float(((out > cut).float() == y).float().mean())
    return None


def _baseline(setup: Setup) -> float | None:
    """The prior's loss (C2's expected loss) under the caller's own loss: the loss of the constant output
    that predicts the training prior (log-priors, the prior's logit, the mean), so that a weighted loss
    (class weights, D6) is compared with its own prior, not with the unweighted entropy."""
    try:
        head = create_task(setup.task, n_classes=max(setup.n_classes, 1))
        if setup.loss_fn is None or not isinstance(setup.loss_fn, type(head.loss())):
            return None
        bias = head.output_bias(setup.y)
        with torch.no_grad():
            return float(setup.loss_fn(bias.expand(len(setup.y), -1).clone(), setup.y))
    except Exception:  # unusual targets: the first epoch's loss stands in
        return None


def _skip(why: str) -> Verdict:
    return Verdict("C8", "learning curves", "skipped", why, {}, "", SOURCE)


def _round(x: float) -> float:
    return float(f"{x:.4g}") if math.isfinite(x) else x


# T16 ('Tips and tricks for Neural Networks': "If you can afford to run your training longer, scale the
# number of epochs from, e.g., 100 to, say, 500. If you observe a benefit from longer training times, you
# can begin choosing more sensible values"): a run that used every epoch it was given and still improved in
# its last tenth was cut short.
STILL_IMPROVING = 0.9
LONGER = 5  # the article's scale: 100 -> 500


def check_longer(history: Sequence[dict[str, Any]], epochs: int, monitor: str, mode: str) -> Verdict:
    """T16 on a run's epochs: did the epoch budget, rather than the monitor, end it?"""
    source = "'Tips and tricks for Neural Networks' (scale the epochs x5 when longer training helps)"
    values = [(int(r["epoch"]), float(r[monitor])) for r in history if r.get(monitor) is not None]
    if not values:
        return Verdict("T16", "longer training", "skipped", f"no epoch logged {monitor}", {}, "", source)
    best_epoch, best = (max if mode == "max" else min)(values, key=lambda v: v[1])
    last = values[-1][0]
    ev = {"epochs": epochs, "epochs_run": last, "monitor": monitor, "best_epoch": best_epoch, "best": _round(best)}
    if last < epochs:
        return Verdict("T16", "longer training", "pass", f"training stopped at epoch {last} of {epochs}, "
                       f"{last - best_epoch} epochs after its best {monitor}: more epochs would not help", ev, "", source)
    if best_epoch >= STILL_IMPROVING * epochs:
        return Verdict("T16", "longer training", "warn",
                       f"the run used all {epochs} epochs and {monitor} still improved at epoch {best_epoch}: it was "
                       "cut short", ev, f"train longer: --epochs {LONGER * epochs} (early stopping ends it when it "
                       "stops improving)", source)
    return Verdict("T16", "longer training", "pass", f"the run used all {epochs} epochs; {monitor} was best at "
                   f"epoch {best_epoch} and did not improve over the last {epochs - best_epoch}", ev, "", source)
