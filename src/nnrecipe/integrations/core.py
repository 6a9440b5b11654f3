"""What the Lightning and Hugging Face callbacks share (docs/integrations.md): the doctor on the first
batches of a host's own model, optimizer, data and training step before training; C7 (gradient flow per
layer) on a few chosen steps of the host's real run; C8 on the curves the host logged; the verdicts
logged as text lines and counted as metrics. The callbacks only translate their host's hooks into these
calls. Nothing here imports Lightning or transformers."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, RandomSampler

from ..checks.curves import diagnose_curves
from ..checks.differential import differentiate
from ..checks.doctor import CHECKS, doctor, resolve_checks
from ..checks.gradient_flow import FlowHooks, FlowRecord, judge_flow, sample_entries
from ..checks.setup import ROWS
from ..checks.verdict import STATUSES, Diagnosis, Verdict
from ..errors import ConfigError, TrainingError, require as required
from ..repro import rng_kept
from ..steps.batch import TARGET_KEYS, to_device
from ..train.batching import n_rows

log = logging.getLogger("nnrecipe")

MAX_BATCHES = 16  # host batches read before training: up to ROWS (512) rows, the doctor's own sample size
# The host's global steps (1-based) that C7 observes: the first five (the init's gradients and the first
# updates, as the doctor's own 10 steps on a copy see them), then a few spread over a longer run. Hooks sit
# only on these steps: the run's other steps cost nothing.
C7_STEPS = (1, 2, 3, 4, 5, 10, 20, 50, 100, 200)
# C8 needs the epochs of the run; the doctor's own C8 (a short run on a copy) is not run before training
# when the run's curves will be judged after it
PRE_SKIPS = ("C8",)
LIVE_SAMPLE = 4096  # entries of each weight matrix C7 follows on the host's live model (FlowHooks' sample)


def require(module: str, extra: str) -> Any:
    """Import an optional host package, or say which extra brings it."""
    return required(module, f"nnrecipe's {module} integration", extra)


class HostModel(nn.Module):
    """The host's model seen as the doctor calls models, model(*x) with x the batch's inputs as tensors:
    positionally for tuple batches, by name for dict batches (`keys`), or through the caller's
    `forward(module, inputs)` (inputs: the batch without its target, as the host's batches hold it)."""

    def __init__(self, host: nn.Module, keys: Sequence[str] | None = None,
                 forward: Callable[[nn.Module, Any], Any] | None = None) -> None:
        super().__init__()
        self.host = host
        self.keys = list(keys) if keys is not None else None
        self.forward_fn = forward

    def forward(self, *x: torch.Tensor) -> Any:
        inputs: Any = dict(zip(self.keys, x)) if self.keys is not None else x[0] if len(x) == 1 else x
        if self.forward_fn is not None:
            return self.forward_fn(self.host, inputs)
        return self.host(**inputs) if self.keys is not None else self.host(*x)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a host's batch maps to the doctor's tuple (*inputs, target) and back: a tuple/list whose last
    item is the target, or a dict with the target under one of TARGET_KEYS ('labels', 'target', ...)."""

    keys: tuple[str, ...] | None  # a dict batch's input keys, in the order of the model's forward; None: a tuple
    target: str | None = None  # a dict batch's target key

    @staticmethod
    def of(batch: Any, forward: Callable[..., Any]) -> Layout:
        if isinstance(batch, Mapping):
            targets = [k for k in TARGET_KEYS if k in batch]
            if len(targets) != 1 or not all(isinstance(v, torch.Tensor) for v in batch.values()):
                raise ConfigError(f"a batch is a dict with keys {', '.join(map(repr, batch))}: the doctor needs "
                                  f"tensors only and one target under one of {', '.join(TARGET_KEYS)}")
            try:
                order = list(inspect.signature(forward).parameters)
            except (TypeError, ValueError):
                order = []
            keys = sorted((k for k in batch if k != targets[0]),
                          key=lambda k: order.index(k) if k in order else len(order))
            return Layout(tuple(keys), targets[0])
        if isinstance(batch, (tuple, list)) and len(batch) >= 2 and all(isinstance(t, torch.Tensor) for t in batch):
            return Layout(None)
        raise ConfigError(f"a batch is a {type(batch).__name__}; the doctor reads tuples (inputs..., target) of "
                          "tensors or dicts of tensors with the target under 'labels' (or 'target', 'y')")

    def flatten(self, batch: Any) -> tuple[torch.Tensor, ...]:
        if self.keys is None:
            return tuple(batch)
        return (*(batch[k] for k in self.keys), batch[self.target])

    def rebuild(self, tensors: Sequence[torch.Tensor]) -> Any:
        if self.keys is None:
            return tuple(tensors)
        return {**dict(zip(self.keys, tensors)), self.target: tensors[-1]}

    def inputs(self, batch: Any) -> Any:
        """The batch without its target, as forward= receives it."""
        if self.keys is None:
            return batch[0] if len(batch) == 2 else tuple(batch[:-1])
        return {k: batch[k] for k in self.keys}


def keyword_misfit(forward: Callable[..., Any], keys: Sequence[str]) -> str | None:
    """Why module(**inputs), the doctor's call on a dict batch, cannot reach a forward that does not name
    the batch's keys (a forward(self, batch) that takes the dict whole); None when it can (or cannot tell)."""
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [k for k in keys if k not in named]
    if not missing:
        return None
    whole = len(named) == 1 and not any(k in named for k in keys)  # forward(self, batch): the dict whole
    fix = ("pass Doctor(forward=lambda module, inputs: module(inputs))" if whole else
           f"pass Doctor(forward=...) with the call your training step makes, e.g. lambda module, inputs: "
           f"module(**{{k: v for k, v in inputs.items() if k not in {missing!r}}})")
    return (f"the model's forward({', '.join(params)}) takes no argument named {', '.join(map(repr, missing))}, and "
            f"the doctor calls the model with a dict batch's inputs as keyword arguments: {fix} (inputs: the batch "
            "without its target)")


# found["skipped"] when no loss function was found or given
NO_LOSS = ("without a loss function the checks that compare outputs with targets (the lint's output checks and C2, "
           "the loss at init) skip: pass Doctor(loss_fn=...)")


def first_rows(loader: Any, rows: int = ROWS, seed: int = 0, device: Any = None) -> tuple[Any, list[Any]]:
    """Up to `rows` rows of the host's training data as its own batches (collated as it collates them):
    a seeded random sample through a fresh loader over the same dataset and collate_fn, so the host's
    loader, its sampler and every random number generator are left as they were; an iterable dataset is
    read from the host's loader itself, its first batches. Batches whose shapes differ from the first (text
    padded per batch to another length) are left out: the doctor stacks the rows."""
    dataset = getattr(loader, "dataset", None)
    if isinstance(loader, DataLoader) and dataset is not None and not isinstance(dataset, IterableDataset):
        batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None) or 32
        source: Iterable[Any] = DataLoader(dataset, batch_size=batch_size, collate_fn=loader.collate_fn,
                                           sampler=RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)))
    else:
        source = loader
    batches: list[Any] = []
    n = 0
    with rng_kept():
        for batch in source:
            batches.append(to_device(batch, device) if device is not None else batch)
            n += n_rows(batch)
            if n >= rows or len(batches) >= MAX_BATCHES:
                break
    if not batches:
        raise ConfigError("the training dataloader yielded no batch")
    return batches[0], batches


def stack(layout: Layout, batches: list[Any], rows: int = ROWS) -> tuple[torch.Tensor, ...]:
    """The batches as the doctor's tuple (*inputs, target) of up to `rows` rows."""
    flat = [layout.flatten(b) for b in batches]
    shapes = [tuple(t.shape[1:]) for t in flat[0]]
    kept = [f for f in flat if [tuple(t.shape[1:]) for t in f] == shapes]
    return tuple(torch.cat(cols)[:rows] for cols in zip(*kept))


def loss_module(module: nn.Module) -> tuple[nn.Module | None, str]:
    """A torch loss module among the module's attributes (self.loss_fn = nn.CrossEntropyLoss()), and what
    was found, for the record."""
    found = [(n, m) for n, m in module.named_children() if isinstance(m, nn.modules.loss._Loss)]
    if not found:
        return None, "no torch loss module among the model's attributes"
    name, loss = found[0]
    also = f" (of {len(found)}: {', '.join(n for n, _ in found)}; pass loss_fn= for another)" if len(found) > 1 else ""
    return loss, f"the model's attribute '{name}' ({type(loss).__name__}){also}"


def torch_optimizer(opt: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a host's wrapper (Lightning's LightningOptimizer, accelerate's
    AcceleratedOptimizer): hooks and copies work on the optimizer that steps."""
    while not type(opt).__module__.startswith("torch.") and isinstance(getattr(opt, "optimizer", None),
                                                                     torch.optim.Optimizer):
        opt = opt.optimizer
    return opt


class Findings:
    """What both callbacks show of their DoctorCore (`self.core`)."""

    core: DoctorCore

    @property
    def diagnosis(self) -> Diagnosis:
        """Every verdict so far (before, during and after training), an nnrecipe Diagnosis."""
        return self.core.diagnosis

    @property
    def found(self) -> dict[str, Any]:
        """What the doctor found in the host's setup and used (the loss, the step, the rows), and what it skipped."""
        return self.core.found


class DoctorCore:
    """The doctor's state across a host's run: the options, the verdicts so far (`diagnosis`), what was
    found and used (`found`), C7's record of the sampled steps, the epochs' curves."""

    def __init__(self, *, checks: Sequence[str] | None = None, stop_on_fail: bool = False,
                 loss_fn: Any = None, forward: Callable[[nn.Module, Any], Any] | None = None, seed: int = 0,
                 rows: int = ROWS, c7_steps: Sequence[int] = C7_STEPS, train_loss: str | None = None,
                 val_loss: str | None = None) -> None:
        if checks is not None and (isinstance(checks, str) or not all(isinstance(c, str) for c in checks)):
            raise ConfigError(f"checks={checks!r}: give a list of check names, e.g. ['lint', 'C1', 'C7']; "
                              f"names: {', '.join(CHECKS)}")
        self.checks = [name for name, _ in resolve_checks(list(checks) if checks is not None else None)]
        if any(int(s) < 1 for s in c7_steps):
            raise ConfigError(f"c7_steps={list(c7_steps)!r}: steps count from 1 (the run's first optimizer step)")
        self.stop_on_fail, self.loss_fn, self.forward, self.seed, self.rows = stop_on_fail, loss_fn, forward, seed, rows
        self.c7_steps = sorted({int(s) for s in c7_steps})
        self.train_loss, self.val_loss = train_loss, val_loss
        self.reset()

    def reset(self) -> None:
        """A new run's state: the callback met again by another fit (one Doctor in two Trainers, or fit
        called twice) judges that run alone; its curves and C7 record would otherwise follow the first's."""
        if getattr(self, "hooks", None) is not None:  # a run stopped on an observed step
            self.hooks.remove()
        self.diagnosis = Diagnosis()
        self.found: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.flow: FlowRecord | None = None
        self.flow_start: dict[str, torch.Tensor] = {}
        self.flow_steps: list[int] = []
        self.hooks: FlowHooks | None = None
        self.flow_judged = False
        # why C7 cannot watch this run's steps (several optimizers, manual optimization): said when judged
        self.flow_skip: str | None = None
        self.flow_warming: list[bool] = []  # per observed step: a warm-up still held the rate below its target

    # ---------------------------------------------------------------- before training
    def before(self, model: HostModel, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...],
               train_step: Callable[..., Any], loss_fn: Any) -> Diagnosis:
        """The doctor on the host's first batches with the host's step (on copies: the host's model,
        optimizer and random number generators come back as they were)."""
        checks = [c for c in self.checks if c not in PRE_SKIPS]
        if not checks:
            return Diagnosis()
        optimizer = torch_optimizer(optimizer)
        rates = [g["lr"] for g in optimizer.param_groups]
        warm = _warmup_rate(optimizer)
        if warm:
            self.found["warmup"] = (f"the run starts in a warm-up: the checks ran at the rate it warms up to, "
                                    f"{warm[0]:g}")
        try:
            with warnings.catch_warnings():
                # a LightningModule copied by the doctor has no Trainer: its self.log() calls warn, and return
                warnings.filterwarnings("ignore", message=r".*self\.log\(\)", category=UserWarning)
                found = doctor(model, data, loss_fn=loss_fn, optimizer=optimizer, train_step=train_step,
                               seed=self.seed, rows=self.rows, checks=checks)
        finally:
            for group, lr in zip(optimizer.param_groups, rates):
                group["lr"] = lr  # the warm-up's rate, as it was
        self.diagnosis.extend(found)
        self.diagnosis.seconds.update(found.seconds)
        return found

    def sample(self, loader: Any, forward: Callable[..., Any], device: Any = None
               ) -> tuple[Layout, tuple[torch.Tensor, ...]] | Verdict:
        """The host's first rows as the doctor's (*inputs, target) and their layout; or, when they cannot
        be read or the model's forward cannot be called on them as the doctor calls it, the skip that says why."""
        try:
            first, batches = first_rows(loader, self.rows, self.seed, device)
            layout = Layout.of(first, forward)
            data = stack(layout, batches, self.rows)
        except ConfigError as e:
            return self.skip_before(f"the training batches cannot be read: {e}")
        misfit = keyword_misfit(forward, layout.keys) if layout.keys and self.forward is None else None
        return self.skip_before(misfit) if misfit else (layout, data)

    def skip_before(self, why: str) -> Verdict:
        verdict = Verdict("doctor", "doctor before training", "skipped", why)
        self.diagnosis.append(verdict)
        return verdict

    # ---------------------------------------------------------------- during: C7 on chosen steps
    def step_begins(self, step: int, model: nn.Module, optimizer: Any) -> None:
        """Before the host's optimizer step number `step` (1-based): hooks on, when it is a chosen one."""
        if ("C7" not in self.checks or self.flow_judged or self.flow_skip or step not in self.c7_steps
                or self.hooks is not None):
            return
        groups = torch_optimizer(optimizer).param_groups
        self.flow_warming.append(any(g.get("initial_lr") and g["lr"] < g["initial_lr"] for g in groups))
        if self.flow is None:
            self.flow = FlowRecord()
            self.flow_start = {n: sample_entries(p) for n, p in model.named_parameters()}
        # the step's move measured on 4,096 entries of each matrix: no copy of the host's weights
        self.hooks = FlowHooks(model, torch_optimizer(optimizer), self.flow, sample=LIVE_SAMPLE)
        self.hooks.new_step()
        self.flow_steps.append(step)

    def step_ends(self, loss: Any = None) -> bool:
        """After that step: hooks off. True when the last chosen step was observed (judge now)."""
        if self.hooks is None:
            return False
        self.hooks.remove()
        self.hooks = None
        assert self.flow is not None
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss) if loss is not None else math.nan
        self.flow.losses.append(value)
        if not math.isfinite(value) and not self.flow.nonfinite and not math.isnan(value):
            self.flow.nonfinite = f"the loss ({value}) became non-finite at step {self.flow_steps[-1]}"
        return self.flow_steps[-1] == self.c7_steps[-1]

    def judge_flow(self, model: nn.Module, optimizer: Any) -> list[Verdict]:
        """C7 on the steps observed so far (once)."""
        if self.hooks is not None:
            self.step_ends()
        if "C7" not in self.checks or self.flow_judged:
            return []
        self.flow_judged = True
        if self.flow is None or not self.flow.losses:
            verdicts = [Verdict("C7", "gradient flow in training", "skipped",
                                self.flow_skip or f"no step of the run was observed (chosen steps: {self.c7_steps})")]
        else:
            verdicts = [dataclasses.replace(v, name=f"{v.name} (in training)",
                                            evidence={**v.evidence, "observed_steps": self.flow_steps})
                        for v in judge_flow(model, torch_optimizer(optimizer), self.flow, self.flow_start)]
            if any(self.flow_warming):  # a warm-up's small steps are its purpose, not a rate too low
                verdicts = [Verdict("C7", f"{v.name}", "skipped",
                                    "the observed steps fell in the learning-rate warm-up (the rate still below the "
                                    "one it warms up to): the update/weight ratio is not judged on them", v.evidence)
                            if v.fault == "lr-too-low" and v.name.startswith("update/weight ratio") else v
                            for v in verdicts]
        self.flow, self.flow_start = None, {}  # the record's tensors are not kept past the judgement
        self.diagnosis.extend(verdicts)
        return verdicts

    # ---------------------------------------------------------------- after: C8 on the host's curves
    def judge_curves(self, history: Sequence[dict[str, Any]] | None = None) -> list[Verdict]:
        if "C8" not in self.checks:
            return []
        rows = list(history if history is not None else self.history)
        verdicts = [dataclasses.replace(v, evidence={**v.evidence, "curves": "the run's, as the host logged them"})
                    for v in diagnose_curves(rows)] if rows else [
            Verdict("C8", "learning curves", "skipped", self.found.get("curves", "no epoch logged a training loss"))]
        # each warning names its fault, explained by what the checks before training and during it found
        verdicts = list(differentiate(Diagnosis([*self.diagnosis, *verdicts])))[len(self.diagnosis):]
        self.diagnosis.extend(verdicts)
        return verdicts

    def pick(self, metrics: Mapping[str, Any], given: str | None, names: Sequence[str]) -> tuple[str | None, float | None]:
        """The metric named `given`, else the first of `names` that is present, as a float."""
        for name in [given] if given else names:
            if name in metrics:
                value = metrics[name]
                try:
                    return name, float(value.detach() if isinstance(value, torch.Tensor) else value)
                except (TypeError, ValueError):
                    return name, None
        return None, None

    # ---------------------------------------------------------------- reporting
    def report(self, verdicts: Sequence[Verdict], logger: logging.Logger, stage: str) -> None:
        """Each warning, failure and crash as a text line; a count line at INFO."""
        for v in verdicts:
            if v.status in ("warn", "fail", "error"):
                logger.warning("nnrecipe doctor (%s): %s", stage, v.line())
        if verdicts:
            logger.info("nnrecipe doctor (%s): %s", stage, Diagnosis(verdicts).counts_line())

    def counts(self) -> dict[str, float]:
        """The verdicts so far by status, as metrics: doctor/failed (fail and error), doctor/warned, ..."""
        by = {s: sum(v.status == s for v in self.diagnosis) for s in STATUSES}
        return {"doctor/failed": float(by["fail"] + by["error"]), "doctor/warned": float(by["warn"]),
                "doctor/passed": float(by["pass"]), "doctor/skipped": float(by["skipped"])}

    def error(self, verdicts: Sequence[Verdict], stage: str) -> TrainingError:
        """The TrainingError of stop_on_fail: every failed check, its summary and its fix."""
        failed = [v for v in verdicts if v.status in ("fail", "error")]
        lines = "; ".join(v.stop_line() for v in failed)
        return TrainingError(f"nnrecipe's doctor stopped the run {stage}: {len(failed)} check(s) failed: {lines}. "
                             "Fix them, or pass Doctor(stop_on_fail=False) to warn and go on")


def _warmup_rate(optimizer: torch.optim.Optimizer) -> list[float]:
    """A warm-up (transformers' schedules with warmup_steps, a LambdaLR ramp): a group's rate below the rate
    it warms up to (initial_lr, set by the scheduler), from 0 or from a fraction of it. The groups are set
    to those rates for the doctor's copies (`before` puts the warm-up's rates back once the doctor is done),
    since the checks judge the training the run is heading for; [] when not warming up."""
    groups = optimizer.param_groups
    if not groups or not any(g.get("initial_lr") and g.get("lr", 0) < g["initial_lr"] for g in groups):
        return []
    rates = [float(g.get("initial_lr") or g["lr"]) for g in groups]
    for g, lr in zip(groups, rates):
        g["lr"] = lr
    return rates


__all__ = ["C7_STEPS", "NO_LOSS", "DoctorCore", "HostModel", "Layout", "first_rows", "keyword_misfit", "loss_module",
           "require", "stack", "torch_optimizer"]
