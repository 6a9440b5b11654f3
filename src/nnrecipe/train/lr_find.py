"""T4: the learning-rate range test (Smith, "Cyclical Learning Rates", 2017; Lavanya Shukla, "How To Design
Deep Learning Architecture").

The rate grows exponentially from `start_lr` to `end_lr` over at most `steps` optimizer steps on a copy of
the model. The sweep stops when the smoothed loss exceeds `diverge` x its minimum or turns non-finite;
the smoothing is a debiased exponential moving average (as fastai and Lightning do), taken of the log of
the loss so that a loss spanning orders of magnitude is smoothed by ratios, not dominated by its start.
A causal average lags (about 1/(1-beta) steps), so the curve is read after the sweep with a centered
moving average of the log loss, which does not.

The rule (Lavanya Shukla, "How To Design Deep Learning Architecture": "the best learning rate is usually half of the learning rate that causes the model
to diverge"): the loss starts to diverge where the centered curve stops falling, at its minimum; the
candidate is half that rate. The answer to Lightning #1767/#21141 (suggestions that jump around) is to
record the rule, the curve and the candidate, warn when the curve cannot support a choice (flat or
noisy), and optionally confirm the candidate with short runs around it."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..steps import as_batch
from .optim import clone_optimizer

log = logging.getLogger("nnrecipe")

RULE = ("half the rate at the smoothed loss's minimum, where the loss starts to diverge (Lavanya Shukla, "
        "'How To Design Deep Learning Architecture')")
FLAT = 0.05  # the smoothed loss fell by less than 5% over the whole sweep: nothing to read from it
NOISY = 0.25  # the raw loss strays from the smoothed one by more than 25% (median): too noisy to read


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed (centered moving average of the log loss)
    raw_losses: list[float]
    suggestion: float | None
    diverge_lr: float | None
    rule: str = RULE
    warnings: list[str] = field(default_factory=list)
    confirmation: list[dict[str, float]] = field(default_factory=list)  # [{lr, val_loss}] when confirmed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def lr_find(trainer: Any, start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, beta: float = 0.98,
            diverge: float = 4.0, confirm: bool = False, confirm_epochs: int = 1) -> LRFindResult:
    """Run the range test for `trainer`'s model, loss, data and optimizer on copies: the trainer's model
    and optimizer, and the global RNG, are left as they were."""
    model, opt, step = _copies(trainer)
    model.train()
    shares = _shares(trainer)
    factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    lrs: list[float] = []
    raw: list[float] = []
    avg, best = 0.0, math.inf
    with torch.random.fork_rng(devices=[]):
        batches = _cycle(trainer)
        for i in range(steps):
            lr = start_lr * factor ** i
            for group, share in zip(opt.param_groups, shares):
                group["lr"] = lr * share
            with trainer._autocast():
                loss, _ = step.loss(model, as_batch(next(batches)))
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            avg = beta * avg + (1 - beta) * math.log(max(value, 1e-30))
            smoothed = math.exp(avg / (1 - beta ** (i + 1)))
            lrs.append(lr)
            raw.append(value)
            best = min(best, smoothed)
            if smoothed > diverge * best:
                break
    result = _suggest(lrs, raw, _centered(raw, max(5, steps // 10)))
    if confirm and result.suggestion is not None:
        _confirm(trainer, result, confirm_epochs)
    return result


def _copies(trainer: Any) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    """A copy of the trainer's model, its optimizer on the copy (its class and its groups' settings as
    they were before a schedule moved them, from a fresh state) and a copy of its step (a stateful step
    must not count the sweep's batches): the trainer's own are left as they were."""
    model = copy.deepcopy(trainer.model)
    opt = clone_optimizer(trainer.optimizer, trainer.model, model, state=False, settings=trainer.group_settings)
    return model, opt, copy.deepcopy(trainer._full_step or trainer.step)


def _shares(trainer: Any) -> list[float]:
    """Each group's rate as a share of the first group's (1.0 each when the first is 0): discriminative
    rates keep their ratios while the rate sweeps."""
    first = trainer.group_settings[0]["lr"]
    return [g["lr"] / first if first else 1.0 for g in trainer.group_settings]


def _cycle(trainer: Any) -> Any:
    epoch = 0
    while True:
        yield from trainer.batches.epoch(trainer.config.seed, 10_000 + epoch)  # an order fit() never uses
        epoch += 1


def _centered(raw: list[float], window: int) -> list[float]:
    """A centered moving average of the log loss (window steps wide), back in loss units."""
    logs = [math.log(max(v, 1e-30)) for v in raw]
    half = window // 2
    out = []
    for i in range(len(logs)):
        part = logs[max(0, i - half): i + half + 1]
        out.append(math.exp(sum(part) / len(part)))
    return out


def _suggest(lrs: list[float], raw: list[float], smooth: list[float]) -> LRFindResult:
    if len(smooth) < 3:
        return LRFindResult(lrs, smooth, raw, None, None,
                            warnings=["the loss was non-finite from the first steps: lower start_lr, check the data"])
    i_min = min(range(len(smooth)), key=smooth.__getitem__)
    diverge_lr = lrs[i_min]
    result = LRFindResult(lrs, smooth, raw, diverge_lr / 2, diverge_lr)
    if smooth[i_min] > (1 - FLAT) * max(smooth[: i_min + 1]):
        result.warnings.append(f"the curve is flat (the smoothed loss fell by less than {FLAT:.0%}): the model may "
                               "not learn, or the range is too narrow; check C1 (overfit one batch) first")
    noise = sorted(abs(r - s) / max(abs(s), 1e-12) for r, s in zip(raw, smooth))[len(raw) // 2]
    if noise > NOISY:
        result.warnings.append(f"the curve is noisy (median deviation {noise:.0%} from the smoothed loss): use a "
                               "larger batch or more steps, and confirm the candidate with short runs")
    if i_min == len(smooth) - 1:
        result.warnings.append("the loss was still falling at the end of the sweep: raise end_lr")
    return result


def _confirm(trainer: Any, result: LRFindResult, epochs: int) -> None:
    """Short runs at candidate/3, candidate and 3 x candidate; the best by the monitored loss wins."""
    from .trainer import Trainer

    data = trainer.batches.data if hasattr(trainer.batches, "data") else trainer.batches.loader
    for lr in (result.suggestion / 3, result.suggestion, result.suggestion * 3):  # type: ignore[operator]
        cfg = dataclasses.replace(trainer.config, lr=lr, epochs=epochs, patience=None, restore_best=False,
                                  schedule="constant")
        with torch.random.fork_rng(devices=[]):
            model, opt, step = _copies(trainer)
            for group, share in zip(opt.param_groups, _shares(trainer)):
                group["lr"] = lr * share
            probe = Trainer(model, None, data, trainer.val_data, cfg, metrics=trainer.metrics, step=step,
                            optimizer=opt, task=trainer.task, train_metrics=trainer.train_metrics)
            history = probe.fit()
        score = history[-1].get(probe.monitor, math.inf)
        result.confirmation.append({"lr": lr, probe.monitor: score})
    sign = 1.0 if trainer.mode == "min" else -1.0
    best = min(result.confirmation,
               key=lambda r: sign * r[trainer.monitor] if math.isfinite(r[trainer.monitor]) else math.inf)
    result.suggestion = best["lr"]
