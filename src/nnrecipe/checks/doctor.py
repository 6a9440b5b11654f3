"""The doctor: every sanity check of the recipe on a caller's setup, each a verdict with its evidence, the
fix and its source. `doctor(model, data, loss_fn=..., optimizer=...)` or `doctor(model, data,
train_step=step)`; the checks run on copies, so the caller's model and optimizer come back bit for bit."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..model.heads import Head
from .init_loss import check_init_loss
from .overfit_batch import check_overfit_batch
from .setup import ROWS, Evaluate, Setup, TrainStep, make_setup
from .verdict import STATUSES, Verdict

log = logging.getLogger("nnrecipe")

Check = Callable[[Setup], "Verdict | list[Verdict]"]


def c2_init_loss(setup: Setup) -> Verdict:
    if setup.loss_fn is None:
        return skipped("C2", "loss at init", "needs loss_fn=... to compute the loss")
    head = Head(setup.task, max(setup.n_classes, 1))
    return check_init_loss(setup.model, setup.loss_fn, setup.x, setup.y, head, setup.y)  # type: ignore[arg-type]


def c1_overfit_batch(setup: Setup) -> Verdict:
    """C1 with the caller's own training step when they gave one (the loss it returns is judged)."""
    if setup.loss_fn is None and setup.train_step is None:
        return skipped("C1", "overfit one batch", "needs loss_fn=... or train_step=...")
    return check_overfit_batch(setup.model, setup.loss_fn, setup.x, setup.y,  # type: ignore[arg-type]
                               setup.make_optimizer, seed=setup.seed, train_step=setup.train_step)


# The checks in the order they run: cheap, static ones first. "module:function" entries load on first use.
CHECKS: list[Check | str] = [
    "data_checks:check_data",  # D3, D8, D4, leakage: the sampled rows themselves
    "lint:check_lint",  # setup lint: output activations, labels, missing nonlinearity, train_step order
    c2_init_loss,
    c1_overfit_batch,
    "baselines:check_zero_input",  # C3
    "baselines:check_baselines",  # C4
    "gradcheck:check_gradients",  # C5
    "independence:check_independence",  # C6
    "gradient_flow:check_gradient_flow",  # C7
    "curves:check_short_run",  # C8
]


class Diagnosis(list):
    """The verdicts, in the order the checks ran; `seconds`: what each check cost."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seconds: dict[str, float] = {}

    @property
    def failed(self) -> bool:
        return any(v.status == "fail" for v in self)

    def by_id(self, id: str) -> list[Verdict]:
        return [v for v in self if v.id == id]

    def to_dict(self) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self]

    def table(self) -> str:
        return "\n".join(v.line() for v in self)

    def counts_line(self) -> str:
        """How many verdicts have each status, e.g. '5 pass, 1 warn, 0 fail, 0 skipped'."""
        return ", ".join(f"{sum(v.status == s for v in self)} {s}" for s in STATUSES)

    def __str__(self) -> str:
        return self.table()


def doctor(model: nn.Module, data: Any, *, loss_fn: Any = None, optimizer: torch.optim.Optimizer | None = None,
           train_step: TrainStep | None = None, val_data: Any = None, task: str | None = None, seed: int = 0,
           rows: int = ROWS, evaluate: Evaluate | None = None, feature_names: list[str] | None = None,
           checks: list[Check | str] | None = None) -> Diagnosis:
    """Run the recipe's checks on a setup. `data` and `val_data`: (x, y) tensors (or (x1, x2, ..., y)), a
    Dataset of such tuples, or a DataLoader; up to `rows` rows are sampled. `train_step(model, optimizer,
    batch)`, when given, is run on copies and observed (it must do the whole step: zero_grad, forward,
    backward, step). `task`: binary | multiclass | multilabel | regression; by default from the loss and
    the targets. `evaluate(model, x) -> outputs`, when given, is the caller's evaluation, checked for a
    model left in training mode (doctor case 21). A check that cannot run on this setup is 'skipped' with
    the reason. `feature_names`: one per column of the first input, so that verdicts name columns.
    """
    setup = make_setup(model, data, loss_fn=loss_fn, optimizer=optimizer, train_step=train_step,
                       val_data=val_data, task=task, seed=seed, rows=rows, evaluate=evaluate,
                       feature_names=feature_names)
    state = _fingerprint(model, optimizer)
    diagnosis = Diagnosis()
    for check in checks if checks is not None else CHECKS:
        fn = _resolve(check)
        if fn is None:
            continue
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left where it was
            torch.manual_seed(seed)
            try:
                out = fn(setup)
            except Exception as e:  # a check that breaks on an unusual setup says so; the others still run
                name = getattr(fn, "__name__", str(check))
                log.debug("check %s raised", name, exc_info=True)
                out = skipped(name, name, f"could not run on this setup: {type(e).__name__}: {e}")
        diagnosis.extend(out if isinstance(out, list) else [out])
        diagnosis.seconds[getattr(fn, "__name__", str(check))] = time.perf_counter() - started
    if _fingerprint(model, optimizer, clone=False) != state:  # a check that touched the caller's objects is our bug
        raise AssertionError("the doctor changed the caller's model or optimizer: please report this")
    return diagnosis


def skipped(id: str, name: str, why: str) -> Verdict:
    return Verdict(id, name, "skipped", why)


def _resolve(check: Check | str) -> Check | None:
    if not isinstance(check, str):
        return check
    module, _, name = check.partition(":")
    try:
        return getattr(importlib.import_module(f".{module}", __package__), name)
    except (ImportError, AttributeError):  # a check not written yet
        return None


def _fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer | None, clone: bool = True) -> list[Any]:
    """Bytes of every parameter, buffer and optimizer state tensor, the modes and requires_grad flags.
    `clone=False` for the fingerprint compared at once: the live tensors, not a second copy of them."""
    tensors = [*model.state_dict().values()]
    flags = [(p.requires_grad, p.grad is None) for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    opt: list[Any] = []
    if optimizer is not None:
        sd = optimizer.state_dict()
        for st in sd["state"].values():
            opt += [v.clone() if clone and isinstance(v, torch.Tensor) else v for v in st.values()]
        opt.append(repr([{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]))
    return _Bits([*(t.clone() if clone else t for t in tensors), *flags, *modes, *opt])


class _Bits(list):
    """Equal when every tensor matches bit for bit (NaN included) and every other item is ==."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, list) and len(self) == len(other) and all(map(_same, self, other))

    def __ne__(self, other: object) -> bool:
        return not self == other


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(
            a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))
    return bool(a == b)


__all__ = ["CHECKS", "Diagnosis", "doctor", "skipped"]
