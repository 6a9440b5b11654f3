"""The doctor: every sanity check of the recipe on a caller's setup, each a verdict with its evidence, the
fix and its source. `doctor(model, data, loss_fn=..., optimizer=...)` or `doctor(model, data,
train_step=step)`; the checks run on copies, so the caller's model and optimizer come back bit for bit."""

from __future__ import annotations

import copy
import logging
import random
import time
import traceback
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, did_you_mean
from ..steps import main_output
from ..tasks import create_task
from .baselines import ONE_CLASS, check_baselines, check_zero_input
from .curves import check_short_run
from .data_checks import check_data
from .differential import differentiate
from .gradcheck import check_gradients
from .gradient_flow import check_gradient_flow
from .independence import check_independence
from .init_loss import check_init_loss
from .lint import check_lint
from .overfit_batch import check_overfit_batch
from .setup import ROWS, Evaluate, Setup, TrainStep, make_setup
from .verdict import Diagnosis, Verdict

log = logging.getLogger("nnrecipe")

Check = Callable[[Setup], "Verdict | list[Verdict]"]


def c2_init_loss(setup: Setup) -> Verdict:
    if setup.loss_fn is None:
        return skipped("C2", "loss at init", "needs loss_fn=... to compute the loss")
    if setup.one_class:  # the prior's loss is 0, which no init reaches
        return skipped("C2", "loss at init", ONE_CLASS)
    head = create_task(setup.task, n_classes=max(setup.n_classes, 1))
    if setup.train_step is not None:
        # the caller's step may adapt outputs or targets before its loss (a squeeze, a reshape): where loss_fn
        # raises on them as given, the loss at init is the step's to compute (a forward that raises is no such
        # case: it runs outside the try, and the crash names the caller's code)
        with torch.no_grad():
            out = main_output(copy.deepcopy(setup.model).eval()(*(t[:64] for t in setup.x)))
        try:
            setup.loss_fn(out.float(), setup.y[:64])
        except (ValueError, RuntimeError, IndexError) as e:
            return skipped("C2", "loss at init", f"loss_fn raises on the model's outputs and the targets as given "
                           f"({type(e).__name__}: {str(e)[:160]}), which your train_step adapts before its loss; "
                           "pass a loss_fn that takes them as they are to have the loss at init judged")
    return check_init_loss(setup.model, setup.loss_fn, setup.x, setup.y, head, setup.y)  # type: ignore[arg-type]


def c1_overfit_batch(setup: Setup) -> Verdict:
    """C1 with the caller's own training step when they gave one (the loss it returns is judged)."""
    if setup.loss_fn is None and setup.train_step is None:
        return skipped("C1", "overfit one batch", "needs loss_fn=... or train_step=...")
    def at_base_rate(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        # a schedule given as scheduler= is not stepped here: the batch is fitted at its base rate (the peak of
        # 1cycle and cyclic schedules: OneCycleLR keeps it in the group as max_lr, CyclicLR in its max_lrs), not
        # where the schedule starts (a warm-up's first rate, 1/20 of the base, read as "cannot fit"); a
        # train_step that steps a schedule runs it as written
        opt = setup.make_optimizer(params)
        if setup.schedulers and setup.train_step is None:
            peaks = [float(p) for s in setup.schedulers for p in getattr(s, "max_lrs", [])[:1]]
            for group in opt.param_groups:
                rates = [group[k] for k in ("initial_lr", "max_lr") if isinstance(group.get(k), float | int)]
                group["lr"] = max([*rates, *peaks], default=group["lr"])
        return opt

    return check_overfit_batch(setup.model, setup.loss_fn, setup.x, setup.y,  # type: ignore[arg-type]
                               at_base_rate, seed=setup.seed, train_step=setup.train_step, task=setup.task)


# The name a check's verdict goes by when the check cannot run (skipped, or crashed)
TITLES = {"data": "data", "lint": "setup lint", "C1": "overfit one batch", "C2": "loss at init",
          "C3": "input-independent baseline", "C4": "simple baselines", "C5": "gradient check",
          "C6": "sample independence", "C7": "gradient flow", "C8": "learning curves"}

# lint's failures that make a loss or a forward raise (labels past the outputs, shapes, the forward itself): a
# check that then crashes ran into them
BREAKS_THE_LOSS = ("labels", "target shape", "forward")

# the checks that train a copy of the model: a model with every parameter frozen has nothing for them to train
TRAINS = ("C3", "C4", "C8")

# The checks by name, in the order they run: cheap, static ones first
CHECKS: dict[str, Check] = {
    "data": check_data,  # D3, D8, D4, leakage: the sampled rows themselves
    "lint": check_lint,  # setup lint: output activations, labels, missing nonlinearity, train_step order
    "C2": c2_init_loss,
    "C1": c1_overfit_batch,
    "C3": check_zero_input,
    "C4": check_baselines,
    "C5": check_gradients,
    "C6": check_independence,
    "C7": check_gradient_flow,
    "C8": check_short_run,
}


def resolve_checks(checks: list[Check | str] | None) -> list[tuple[str, Check]]:
    """(name, function) of each check: a name of CHECKS, or a function (named by its __name__)."""
    if checks is None:
        return list(CHECKS.items())
    out = []
    for check in checks:
        if isinstance(check, str):
            if check not in CHECKS:
                raise ConfigError(f"checks: {check!r} is not a check{did_you_mean(check, CHECKS)}; choose from: "
                                  f"{', '.join(CHECKS)}")
            out.append((check, CHECKS[check]))
        elif callable(check):
            out.append((getattr(check, "__name__", repr(check)), check))
        else:
            raise ConfigError(f"checks: {check!r} is neither a check's name nor a function of a setup")
    return out


def doctor(model: nn.Module, data: Any, *, loss_fn: Any = None, optimizer: torch.optim.Optimizer | None = None,
           train_step: TrainStep | None = None, val_data: Any = None, task: str | None = None, seed: int = 0,
           rows: int = ROWS, evaluate: Evaluate | None = None, feature_names: list[str] | None = None,
           checks: list[Check | str] | None = None, scheduler: Any = None) -> Diagnosis:
    """Run the recipe's checks on a setup. `data` and `val_data`: (x, y) tensors (or (x1, x2, ..., y)), a
    Dataset of such tuples, or a DataLoader; up to `rows` rows are sampled. `train_step(model, optimizer,
    batch)`, when given, is run on copies and observed (it must do the whole step: zero_grad, forward,
    backward, step; it may step the caller's LR scheduler too: the copies follow it). `scheduler`: the LR
    scheduler on `optimizer` (one that holds it is found anyway), copied with it and judged. `task`: binary | multiclass | multilabel | regression; by default from the loss and
    the targets. `evaluate(model, x) -> outputs`, when given, is the caller's evaluation, checked for a
    model left in training mode (x: one tensor when the model takes one input, else a tuple). A check that
    cannot run on this setup is 'skipped' with the reason; one that crashes is an 'error' (a bug, reported
    with its traceback in the evidence). The caller's model, optimizer, scheduler and random number
    generators (torch, numpy, Python) come back as they were. `feature_names`: one per column of the first input, so that verdicts name columns.
    """
    setup = make_setup(model, data, loss_fn=loss_fn, optimizer=optimizer, train_step=train_step,
                       val_data=val_data, task=task, seed=seed, rows=rows, evaluate=evaluate,
                       feature_names=feature_names, scheduler=scheduler)
    state = _fingerprint(model, optimizer, setup.schedulers)
    diagnosis = Diagnosis()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        for name, fn in resolve_checks(checks):
            started = time.perf_counter()
            with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left where it was
                torch.manual_seed(seed)
                # the setup failing lint in a way that makes the loss raise: a check that raises runs into that
                broken = next((v for v in diagnosis if v.id == "lint" and v.status == "fail"
                               and v.name in BREAKS_THE_LOSS), None)
                try:
                    if name in TRAINS and not any(p.requires_grad for p in setup.model.parameters()):
                        raise ConfigError("no parameter requires a gradient, so nothing trains (C1 and C7 say so)")
                    out = fn(setup)
                except ConfigError as e:  # the setup is one the check cannot read (the message says how to fix)
                    out = skipped(name, TITLES.get(name, name), f"cannot run on this setup: {e}") if broken is None \
                        else _after_lint(name, e, broken)
                except Exception as e:  # a crash is a bug, said as one; the other checks still run
                    out = crashed(name, e)
                    if broken is not None and not out.evidence.get("where"):  # not the caller's code raising
                        out = _after_lint(name, e, broken)
                    else:
                        log.warning("the doctor's check %s crashed: %s: %s", name, type(e).__name__, e)
            diagnosis.extend(out if isinstance(out, list) else [out])
            diagnosis.seconds[name] = time.perf_counter() - started
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    diagnosis = differentiate(diagnosis)  # each warning and failure names the fault it believes
    if _fingerprint(model, optimizer, setup.schedulers, clone=False) != state:  # touching the caller's objects is our bug
        raise AssertionError("the doctor changed the caller's model, optimizer or scheduler: please report this")
    return diagnosis


def _after_lint(name: str, e: Exception, broken: Verdict) -> Verdict:
    return skipped(name, TITLES.get(name, name),
                   f"could not run ({type(e).__name__}: {str(e)[:200]}): the setup fails lint first ({broken.name}: "
                   f"{broken.summary}); fix that, then run the doctor again")


def skipped(id: str, name: str, why: str) -> Verdict:
    return Verdict(id, name, "skipped", why)


def crashed(name: str, e: Exception) -> Verdict:
    """The verdict of a check that raised: an 'error' with where it raised. The caller's own code (their
    train_step, evaluate, model) raising inside a check is named as theirs by the frames it went through."""
    frames = traceback.extract_tb(e.__traceback__)
    # the caller's frames: not nnrecipe's, not an installed library's (torch, scikit-learn, ...), not Python's
    ours = (str(Path(__file__).resolve().parent.parent), str(Path(torch.__file__).resolve().parent.parent),
            str(Path(traceback.__file__).resolve().parent))
    theirs = [f for f in frames if not str(Path(f.filename).resolve()).startswith(ours)
              and "site-packages" not in f.filename and "dist-packages" not in f.filename]
    where = f"{theirs[-1].filename}:{theirs[-1].lineno} ({theirs[-1].name})" if theirs else ""
    who = (f"your code raised inside the check, at {where}" if where else
           "a bug in nnrecipe: please report it with this summary and the evidence's traceback")
    return Verdict(name, TITLES.get(name, name), "error", f"the check crashed: {type(e).__name__}: {e} ({who})",
                   {"exception": type(e).__name__, "message": str(e)[:500], "where": where,
                    "traceback": "".join(traceback.format_exception(e))[-4000:]},
                   "fix the code named above, then run the doctor again" if where else
                   "report it (nnrecipe's issue tracker) with the traceback; the other checks' verdicts stand")


def _fingerprint(model: nn.Module, optimizer: torch.optim.Optimizer | None, schedulers: list[Any],
                 clone: bool = True) -> list[Any]:
    """Bytes of every parameter, buffer and optimizer state tensor, the modes and requires_grad flags, the
    schedulers' states.
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
    sched = [repr(sorted(s.state_dict().items())) for s in schedulers]
    return _Bits([*(t.clone() if clone else t for t in tensors), *flags, *modes, *opt, *sched])


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


__all__ = ["CHECKS", "Diagnosis", "crashed", "doctor", "resolve_checks", "skipped"]
