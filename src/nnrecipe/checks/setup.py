"""What the doctor examines: the caller's model, a sample of their data, their loss and optimizer or their
own training step. Every check works on copies made here; the caller's model and optimizer are never
changed (tests/checks/test_doctor.py holds them bit for bit)."""

from __future__ import annotations

import contextlib
import copy
import gc
import inspect
import itertools
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from ..errors import ConfigError
from ..steps import Step, as_batch, bind_step, check_loss_fn, main_output
from ..steps.batch import TARGET_KEYS
from ..tasks import TASK_NAMES, infer_task
from ..train.optim import clone_optimizer, constructor_settings

log = logging.getLogger(__name__)

ROWS = 512  # rows of the caller's data the checks see: enough for C3/C7/C8's short runs, cheap on a CPU

TrainStep = Callable[[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, ...]], Any]
Evaluate = Callable[[nn.Module, Any], Any]  # evaluate(model, x): x one tensor, or a tuple for several inputs


@dataclass
class Setup:
    model: nn.Module  # the caller's: read, never changed
    x: tuple[torch.Tensor, ...]  # a sample of training inputs in a seeded random order
    y: torch.Tensor
    task: str
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    optimizer: torch.optim.Optimizer | None  # the caller's: read, never changed
    train_step: TrainStep | None  # the caller's step: train_step(model, optimizer, batch) with batch = (*x, y)
    val_x: tuple[torch.Tensor, ...] | None = None
    val_y: torch.Tensor | None = None
    seed: int = 0
    evaluate: Evaluate | None = None  # the caller's evaluation: evaluate(model, x) -> outputs
    index: torch.Tensor | None = None  # each sampled training row's position in the caller's data
    val_index: torch.Tensor | None = None
    loader: DataLoader | None = None  # the caller's DataLoader, when data was one: its batches as it makes them
    feature_names: list[str] | None = None  # the names of x[0]'s columns, for the evidence and the summaries
    # the caller's LR schedulers on their optimizer (passed, or found holding it): read, never changed
    schedulers: list[LRScheduler] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        if self.task == "multiclass":
            return int(self.y.max()) + 1 if len(self.y) else 0
        return self.y.shape[1] if self.task == "multilabel" else 1

    @property
    def one_class(self) -> bool:
        """A classification sample whose rows all hold one label: nothing to learn, and the checks that train
        or score a model on it (C2-C4) would judge a trivial fit (the imbalance check says so instead)."""
        return self.task in ("binary", "multiclass") and len(self.y) > 0 and len(torch.unique(self.y)) < 2

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """An optimizer like the caller's (its class and its first group's settings) over `params`;
        Adam at 1e-3 when the caller gave none."""
        if self.optimizer is None:
            return torch.optim.Adam(params, lr=1e-3)
        # the constructor's settings only: a scheduler adds keys to the groups (initial_lr) that it refuses
        settings = {k: copy.deepcopy(v) for k, v in self.optimizer.param_groups[0].items()
                    if k in self.optimizer.defaults}  # copies: a tensor lr would be stepped in place
        opt = type(self.optimizer)(params, **constructor_settings(self.optimizer, settings))
        if self.schedulers:  # the groups a schedule reads (initial_lr, ...) ride along; the schedule starts where the caller's is
            for k, v in self.optimizer.param_groups[0].items():
                if k != "params":
                    opt.param_groups[0].setdefault(k, copy.deepcopy(v))
        return opt

    def copies(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A deep copy of the model in training mode, and an optimizer over the copy's parameters: the
        caller's (its state included) mapped parameter by parameter, so that a parameter the caller's
        optimizer does not hold is not held here either; else one from make_optimizer."""
        model = copy.deepcopy(self.model).train()
        if self.optimizer is None:
            return model, self.make_optimizer(p for p in model.parameters() if p.requires_grad)
        return model, clone_optimizer(self.optimizer, self.model, model)

    def step(self, model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> float:
        """One training step on `batch` = (*x, y): the caller's train_step, else zero_grad, forward, loss,
        backward, step. Returns the loss (NaN when the caller's step returns none)."""
        if self.train_step is not None:
            out = self.train_step(model, opt, batch)  # a Scheduled step when the caller has a schedule
            return float(out.detach() if isinstance(out, torch.Tensor) else out) if out is not None else float("nan")
        opt.zero_grad(set_to_none=True)
        loss, _ = Step(self.loss_fn).loss(model, as_batch(batch))  # an ensemble trains on its members' losses
        loss.backward()
        opt.step()
        return float(loss.detach())

    def loss(self, model: nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor) -> float:
        if self.loss_fn is None:
            raise ConfigError("this check needs loss_fn=...: pass the loss your training step uses")
        return measured_loss(model, self.loss_fn, x, y)


def make_setup(model: nn.Module, data: Any, *, loss_fn: Any = None, optimizer: torch.optim.Optimizer | None = None,
               train_step: TrainStep | None = None, val_data: Any = None, task: str | None = None,
               seed: int = 0, rows: int = ROWS, evaluate: Evaluate | None = None,
               feature_names: Sequence[str] | None = None, scheduler: Any = None) -> Setup:
    """Check the arguments (errors name the argument and the fix) and sample the data."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model is a {type(model).__name__}; pass a torch.nn.Module")
    if isinstance(train_step, Step):  # the Trainer's step object: its loss resolved the Trainer's way
        train_step = bind_step(train_step, loss_fn)
        loss_fn = train_step.loss_fn
    schedulers = _schedulers(optimizer, scheduler, train_step)
    check_loss_fn(loss_fn)
    if loss_fn is None and train_step is None:
        raise ConfigError("pass loss_fn=... (with optimizer=..., or Adam at 1e-3 is used), or train_step=callable"
                          "(model, optimizer, batch) -> loss")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"optimizer is a {type(optimizer).__name__}; pass a torch.optim.Optimizer")
    x, y, index, keys = _sample(data, "data", rows, seed, model)
    val = _sample(val_data, "val_data", rows, seed, model)[:3] if val_data is not None else (None, None, None)
    if train_step is not None and keys is not None:  # the step reads batches as the caller's data makes them
        train_step = DictBatches(train_step, *keys)
    if train_step is not None and schedulers:
        train_step = Scheduled(train_step, schedulers)
    if task is None:
        task = infer_task(loss_fn, y)
    elif task not in TASK_NAMES:
        raise ConfigError(f"task={task!r}; use one of {', '.join(TASK_NAMES)}")
    if feature_names is not None and (x[0].ndim != 2 or len(feature_names) != x[0].shape[1]):
        raise ConfigError(f"feature_names has {len(feature_names)} names for inputs of shape {tuple(x[0].shape)}; "
                          "give one name per column of the first input")
    return Setup(model, x, y, task, loss_fn, optimizer, train_step, val[0], val[1], seed, evaluate, index, val[2],
                 data if isinstance(data, DataLoader) else None,
                 list(feature_names) if feature_names is not None else None, schedulers)


def _schedulers(optimizer: torch.optim.Optimizer | None, given: Any, train_step: Any) -> list[LRScheduler]:
    """The caller's schedulers: `given` (checked against the optimizer); with a train_step (which may step
    one it closes over), any LRScheduler that holds the caller's optimizer (found through the garbage
    collector's referrers: the scheduler, or its __dict__, refers to the optimizer; a scan of every object,
    10-30 ms, spared where no code of the caller's runs) and any the step's closure holds; and the
    schedulers each of those steps itself (SequentialLR, ChainedScheduler)."""
    if given is not None:
        if not isinstance(given, LRScheduler):
            raise ConfigError(f"scheduler is a {type(given).__name__}; pass a torch.optim.lr_scheduler scheduler "
                              "(LRScheduler or ReduceLROnPlateau) built on the optimizer you pass")
        if optimizer is None or given.optimizer is not optimizer:
            raise ConfigError("scheduler= is built on another optimizer than optimizer=...: pass the optimizer "
                              "the scheduler steps")
    found: list[LRScheduler] = [given] if given is not None else []
    if train_step is not None and optimizer is not None:
        for ref in gc.get_referrers(optimizer):
            owners = [ref] if isinstance(ref, LRScheduler) else \
                [o for o in gc.get_referrers(ref) if isinstance(o, LRScheduler)] if isinstance(ref, dict) else []
            found += [o for o in owners if o.optimizer is optimizer]
    if train_step is not None and inspect.isfunction(train_step):
        held = inspect.getclosurevars(train_step)
        found += [v for v in (*held.nonlocals.values(), *held.globals.values()) if isinstance(v, LRScheduler)]
    out: list[LRScheduler] = []
    while found:
        s = found.pop(0)
        if all(s is not o for o in out):
            out.append(s)
            found += list(getattr(s, "_schedulers", []))
    return out


class Scheduled:
    """The caller's train_step with their schedulers following the optimizer it is given. The doctor
    trains copies; a train_step that steps the caller's scheduler (closed over) would move the caller's
    optimizer and leave the copy's rate alone. Around each call, every scheduler is pointed at the copy's
    optimizer with the copy's own schedule state (at first the caller's), then put back as it was."""

    def __init__(self, step: TrainStep, schedulers: list[LRScheduler]) -> None:
        self.step, self.schedulers = step, schedulers
        self.start = [copy.deepcopy(s.state_dict()) for s in schedulers]

    def __call__(self, model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> Any:
        with follow(self.schedulers, opt, self.start):
            return self.step(model, opt, batch)


class DictBatches:
    """The caller's train_step fed dict batches under the caller's keys, as their DataLoader makes them: the
    checks hold a batch as (*inputs, target), and a step written for batch["pixels"] would fail on a tuple."""

    def __init__(self, step: TrainStep, inputs: list[str], target: str) -> None:
        self.step, self.inputs, self.target = step, inputs, target

    def __call__(self, model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> Any:
        return self.step(model, opt, {**dict(zip(self.inputs, batch[:-1])), self.target: batch[-1]})


@contextlib.contextmanager
def follow(schedulers: list[LRScheduler], opt: torch.optim.Optimizer, start: list[dict[str, Any]]) -> Iterator[None]:
    """Point `schedulers` at `opt` with its schedule state (kept on the copy `opt`; `start` at first), and
    restore their optimizer and state afterwards. Torch's warnings about the order of optimizer.step() and
    scheduler.step() are silenced: they concern the copy, which the caller's wrapper never saw."""
    caller = [dict(s.__dict__) for s in schedulers]  # the very objects, put back as they were
    mine = opt.__dict__.get("_nnrecipe_schedule") or copy.deepcopy(start)
    try:
        for s, state in zip(schedulers, mine):
            s.optimizer = opt
            s.load_state_dict(copy.deepcopy(state))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(Seems like `optimizer\.step\(\)`|Detected call of `lr_sch)",
                                    category=UserWarning)
            yield
    finally:
        opt.__dict__["_nnrecipe_schedule"] = [copy.deepcopy(s.state_dict()) for s in schedulers]
        for s, attributes in zip(schedulers, caller):
            s.__dict__.clear()
            s.__dict__.update(attributes)


def _sample(data: Any, name: str, rows: int, seed: int, model: nn.Module | None = None
            ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor, tuple[list[str], str] | None]:
    """Up to `rows` rows of `data` in a seeded random order: (x tensors, y, their positions in `data`, and
    for dict items or batches the keys of the inputs in x's order and the target's key, else None).
    `data` is a tuple/list of tensors whose last is the target, a Dataset of such tuples (or of dicts), or a
    DataLoader: its collate_fn, when it has its own, makes the sample into one batch as it makes the
    caller's batches (a collate that stacks dicts, casts or scales is part of the input pipeline)."""
    collate, loaded, batched = None, isinstance(data, DataLoader), False
    if isinstance(data, DataLoader):
        if data.batch_size is not None and data.collate_fn is not default_collate:
            collate = data.collate_fn
        batched = data.batch_size is None  # the dataset's items are batches already
        data = data.dataset  # any sequence of items a DataLoader takes: a Dataset, or a list of them
    if not loaded and isinstance(data, Sequence) and not isinstance(data, Dataset) and len(data) >= 2 \
            and all(isinstance(t, torch.Tensor) for t in data):
        tensors = tuple(data)
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ConfigError(f"{name}: the tensors have {', '.join(str(len(t)) for t in tensors)} rows; "
                              "give inputs and targets with the same number of rows")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows]
        picked = tuple(t[order] for t in tensors)
        return picked[:-1], picked[-1], order, None
    if isinstance(data, Dataset) or loaded and isinstance(data, Sequence):
        if isinstance(data, IterableDataset):  # a stream has no len() and no index: its first rows
            items = _streamed(data, name, rows, batched)
            order = torch.arange(len(items))
        else:
            n = len(data)  # type: ignore[arg-type]
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:rows]
            items = [data[i] for i in order.tolist()]
        made = _collated(collate, items, name, model) if collate is not None else None
        if made is not None:
            return made[0], made[1], order, made[2]
        keys = None
        if items and isinstance(items[0], Mapping):
            keys = _dict_keys(items[0], name, model)
            items = [(*(item[k] for k in keys[0]), item[keys[1]]) for item in items]
        if not items or not isinstance(items[0], tuple | list) or len(items[0]) < 2:
            raise ConfigError(f"{name}: each item of the Dataset must be a tuple (inputs..., target)")
        columns = list(zip(*items))
        try:
            tensors = tuple(torch.stack([torch.as_tensor(v) for v in col]) for col in columns)
        except (TypeError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{name}: the Dataset's items hold values the doctor cannot stack into tensors "
                              f"({type(e).__name__}: {e}); give it items (inputs..., target) of tensors or numbers "
                              "(a file name or other text beside them: leave it out of the items the doctor reads)"
                              ) from e
        return tensors[:-1], tensors[-1], order, keys
    raise ConfigError(f"{name} is a {type(data).__name__}; pass (x, y) tensors, a Dataset of (x, y) items or a "
                      "DataLoader")


def _streamed(data: IterableDataset, name: str, rows: int, batched: bool) -> list[Any]:
    """The first `rows` items of an IterableDataset (a stream cannot be indexed at random, and may never
    end); when it yields batches (a DataLoader with batch_size=None over it), its first batches cut into
    items, so that the checks see rows as from any other dataset."""
    try:
        if not batched:
            return list(itertools.islice(iter(data), rows))
        items: list[Any] = []
        for batch in iter(data):
            if isinstance(batch, Mapping):
                size = len(next(iter(batch.values())))
                items += [{k: v[i] for k, v in batch.items()} for i in range(size)]
            else:
                items += list(zip(*batch))
            if len(items) >= rows:
                break
        return items[:rows]
    except (TypeError, IndexError, StopIteration) as e:
        raise ConfigError(f"{name}: the IterableDataset's items could not be read as rows ({type(e).__name__}: "
                          f"{e}); have it yield (inputs..., target) tuples of tensors, or batches of them with the "
                          "DataLoader's batch_size=None") from e
    finally:
        log.info("%s: an IterableDataset has no random access; the checks read its first %d rows", name, rows)


def zeroed(x: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The inputs with the features zeroed (Karpathy's input-independent baseline) and the inputs that are
    not features left as they are: after the first input, integer vectors of one value per row (lengths,
    offsets) and masks (bool, or integers of 0 and 1 shaped like the first input). A model taking (tokens,
    lengths) cannot run on zero lengths, and a zeroed mask would hide the inputs rather than zero them."""
    def aux(i: int, t: torch.Tensor) -> bool:
        if i == 0 or torch.is_floating_point(t):
            return False
        if t.dtype == torch.bool:
            return True
        if t.ndim == 1:  # lengths: one per row, within the first input's length (ids of a second table are features)
            return x[0].ndim >= 2 and bool(((t >= 0) & (t <= x[0].shape[1])).all())
        return t.shape == x[0].shape[:t.ndim] and bool(((t == 0) | (t == 1)).all())
    return tuple(t if aux(i, t) else torch.zeros_like(t) for i, t in enumerate(x))


def _dict_keys(first: Mapping[str, Any], name: str, model: nn.Module | None, batched: bool = False
               ) -> tuple[list[str], str]:
    """The input keys of a dict item or batch ({"input_ids": ..., "lengths": ..., "target": ...}, the
    Trainer's dict batches) in the order of the model's forward parameters, and the target's key, so that
    every check calls the model positionally as forward(**inputs) would be called. One input under a name of
    its own ({"pixels": x, "label": y}) is the forward's first input."""
    batch = as_batch(dict(first))
    if batch.target is None:
        raise ConfigError(f"{name}: the dict items hold no target; put it under one of {', '.join(TARGET_KEYS)}")
    target = next(k for k in TARGET_KEYS if k in first)
    keys = list(batch.inputs)
    params = list(inspect.signature(model.forward).parameters) if model is not None else keys
    if set(keys) - set(params):
        try:
            one = torch.as_tensor(batch.inputs[keys[0]])
        except (TypeError, RuntimeError, ValueError):
            one = None
        rows = None if one is None else one[:2] if batched else torch.stack([one, one])
        if len(keys) == 1 and params and rows is not None and _takes(model, rows):
            return keys, target
        raise ConfigError(f"{name}: the dict items' inputs {', '.join(map(repr, keys))} do not match the model's "
                          f"forward({', '.join(params)}); name the keys after forward's parameters")
    keys.sort(key=params.index)
    return keys, target


def _takes(model: nn.Module | None, x: Any) -> bool:
    """Whether the model runs on two rows of `x` as its first input (a copy, in eval mode, no gradient): a
    forward(batch) that reads batch["pixels"] itself does not, and is told to name its keys."""
    if model is None or not isinstance(x, torch.Tensor) or not x.ndim:
        return model is None
    try:
        with torch.no_grad():
            copy.deepcopy(model).eval()(x[:2])
    except Exception:
        return False
    return True


def _collated(collate: Callable[[list[Any]], Any], items: list[Any], name: str, model: nn.Module | None
              ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, tuple[list[str], str] | None] | None:
    """The sampled items made into one batch by the caller's collate_fn, as the loader would make them: (x
    tensors, y, dict keys or None). None (the dataset's items are read as they are) where the collate's
    targets are random (mixup, cutmix: soft targets are not the labels the data checks judge; random inputs
    alone, an augmentation, are kept), or where it raises on these items or makes something other than
    tensors (inputs..., target) or a dict of them."""
    keys: tuple[list[str], str] | None = None

    def made() -> tuple[torch.Tensor, ...]:
        nonlocal keys
        batch = collate(items)
        if isinstance(batch, Mapping):
            keys = keys or _dict_keys(batch, name, model, batched=True)
            batch = (*(batch[k] for k in keys[0]), batch[keys[1]])
        if not isinstance(batch, tuple | list) or len(batch) < 2 or \
                not all(isinstance(t, torch.Tensor) and t.ndim and len(t) == len(items) for t in batch):
            raise ValueError("not a batch of tensors (inputs..., target) with one row per item")
        return tuple(batch)

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            first = made()
            torch.manual_seed(1)
            again = made()
    except ConfigError:
        raise
    except Exception as e:
        log.info("%s: the DataLoader's collate_fn did not make a batch of tensors from %d of the dataset's items "
                 "(%s: %s): the checks read the items", name, len(items), type(e).__name__, e)
        return None
    a, b = first[-1], again[-1]
    if a.shape != b.shape or not torch.equal(a.nan_to_num(), b.nan_to_num()) or \
            (torch.is_floating_point(a) and not torch.equal(a.isnan(), b.isnan())):
        log.info("%s: the DataLoader's collate_fn makes random targets (two calls on the same items differ): "
                 "the checks read the dataset's items", name)
        return None
    return first[:-1], first[-1], keys


def finite_rows(*tensors: torch.Tensor) -> torch.Tensor:
    """The mask of rows with no NaN/inf in any floating-point tensor given (D3 reports the others), so that
    one bad cell does not blind a check."""
    keep = torch.ones(len(tensors[0]), dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        if torch.is_floating_point(t):
            keep &= torch.isfinite(t.reshape(len(t), -1)).all(1)
    return keep


def measured_loss(model: nn.Module, loss_fn: nn.Module, x: tuple[torch.Tensor, ...], y: torch.Tensor) -> float:
    """The loss on a batch, without a gradient, in the mode the model is in."""
    with torch.no_grad():
        return float(loss_fn(main_output(model(*x)).float(), y))
