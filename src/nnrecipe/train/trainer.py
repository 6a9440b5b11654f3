"""The training engine. `Trainer.fit` reads top to bottom: resume or seed, then per epoch the train
pass, validation, history, callbacks, best weights, checkpoint, stop check. Everything a resumed run
needs is in the checkpoint, so a run killed at any moment resumes bit for bit (T8). The step is open
(steps/step.py): `step=` a Step whose `loss` the loop backpropagates, or a subclass that overrides
`train_step`; the default step is `loss_fn(model(*inputs), target)`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from ..config import DEFAULT_LR, RECIPE_ONLY, TrainConfig, as_config, known_direction
from ..errors import ConfigError, TrainingError, did_you_mean
from ..repro import seed_everything
from ..steps import Batch, Step, as_batch, bind_step, call_model, check_loss_fn, main_output
from ..tasks import Task, create_task, infer_task
from ..tasks.metrics import ALIASES
from ..track.recorder import RunRecorder, model_record
from . import checkpoint as ckpt
from . import distributed as dist
from .batching import make_batches, n_rows
from .callbacks import Callback, EarlyStopping
from .nonfinite import locate_nonfinite
from .optim import check_optimizer, make_optimizer, make_scheduler, model_parameters
from .state import TrainerState

log = logging.getLogger("nnrecipe")

MAX_ROLLBACKS = 3  # on_nonfinite='rollback': after three, the lr is 1/1000 of the start; stop and say why
ROLLBACK_FACTOR = 0.1


class _Rollback(Exception):
    """Raised inside an epoch to unwind to fit(), which reloads the last good state."""

Metric = Callable[[torch.Tensor, torch.Tensor], float]
FullStep = Callable[[nn.Module, torch.optim.Optimizer, Any], Any]  # the doctor's train_step: a whole step


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but this machine has no CUDA device; use device='cpu' or 'auto'")
    return torch.device(name)


def default_batch_size(n_rows: int) -> int:
    """Lavanya Shukla ("How To Design Deep Learning Architecture") advises starting small (Masters &
    Luschi 2018: 2-32 generalize best) and growing for throughput; sizes stay multiples of 8 (M10)."""
    for limit, size in ((4_000, 32), (16_000, 64), (64_000, 128)):
        if n_rows < limit:
            return size
    return 256



def swa_rates(optimizer: torch.optim.Optimizer, rate: float) -> float | list[float]:
    """SWA's constant rate for each parameter group: `rate` for the first, the others kept in proportion to
    their own rates (a text model's wide path trains at 15x; discriminative rates of a transfer model)."""
    groups = optimizer.param_groups
    rates = [g.get("initial_lr", g["lr"]) for g in groups]
    if len(groups) == 1 or len(set(rates)) == 1 or not rates[0]:
        return rate
    return [rate * r / rates[0] for r in rates]



def for_trainer(config: TrainConfig) -> TrainConfig:
    """A recipe's settings as the Trainers it makes take them: the recipe's own (the ensemble, the refit, the
    teacher, the attack: it builds them around its Trainers) left at their defaults, which a Trainer refuses
    to be given."""
    return dataclasses.replace(config, **RECIPE_ONLY)


class Trainer(TrainerState):
    """Trains any `nn.Module` on batches of inputs, an optional target and optional sample weights
    (steps/batch.py: tuples with the target last, dicts, bare inputs).

    `loss_fn(outputs, target)`: the loss (None when the step brings its own). `step`: a Step (its `loss`
    is backpropagated by the loop, with AMP, accumulation and clipping), or a callable doing a whole
    step, `step(model, optimizer, batch) -> loss` (the doctor's train_step). `optimizer`: a name, parameter
    groups (dicts, each with its own lr), or a torch optimizer built on this model's parameters; default
    config.optimizer over the model's `param_groups(lr)` where it defines them (a transfer model's
    discriminative rates), else over its parameters. `metrics`: names (["accuracy", "f1"], for the task given or inferred from the loss)
    or {name: fn(outputs, target) -> float}. `run_dir`: checkpoints and metrics.jsonl there; with `record`
    (the default) also config.json, results.json and report.html, so `nnrecipe report`, `runs` and
    `compare` read it. `resume`: a run_dir that holds a run is refused unless True (go on from its
    checkpoint) or "auto" (go on when there is one). `scheduler`: a torch scheduler of your own, built on
    `optimizer`, stepped each epoch, or each step as (scheduler, "step").

    At the end of `fit()` the model holds the weights of the best epoch by `config.monitor` when
    `config.restore_best` is on (the default), whatever stopped training; the last epoch's weights stay
    in `run_dir/checkpoints/last.safetensors`."""

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor] | None, train_data: Any,
                 val_data: Any = None, config: TrainConfig | None = None, callbacks: Iterable[Callback] = (),
                 metrics: Mapping[str, Metric | str] | Sequence[str] | None = None,
                 run_dir: str | Path | None = None, train_metrics: bool = False, *,
                 step: Step | FullStep | None = None, optimizer: Any = None, task: str | Task | None = None,
                 resume: bool | str = False, record: bool = True, report: bool = True, note: str = "",
                 bucket_by: int | None = None, distributed: bool = False, scheduler: Any = None):
        if resume not in (True, False, "auto"):
            raise ConfigError(f"resume={resume!r}; choose False (refuse a used run_dir), True or 'auto'")
        check_loss_fn(loss_fn)
        config = as_config(TrainConfig, config, "config")
        if isinstance(optimizer, str):
            if config is not None and config.optimizer not in (optimizer, TrainConfig().optimizer):
                raise ConfigError(f"optimizer={optimizer!r} and config's optimizer={config.optimizer!r} are two "
                                  "optimizers; give one of them")
            config = dataclasses.replace(config or TrainConfig(), optimizer=optimizer)
        elif isinstance(optimizer, torch.optim.Optimizer) and config is not None:
            _check_config_beside(optimizer, config)
        cfg = config or TrainConfig()
        recipe_only = [f"{name}={getattr(cfg, name)!r}" for name, plain in RECIPE_ONLY.items()
                       if getattr(cfg, name) != plain and not (name == "refit" and cfg.refit == "off")]
        if recipe_only:  # accepted, a Trainer would train a plain model without a word
            raise ConfigError(f"{', '.join(recipe_only)}: read by `nnrecipe train` (train_table), which builds the "
                              "ensemble, the refit, the teacher's or the attack's step; a Trainer trains the model and "
                              "step it is given: leave them out (a step of your own can distil or attack)")
        if cfg.lr is None:  # the rule: a recipe fills in its model's own rate first; else Adam's safe 3e-4
            cfg = dataclasses.replace(cfg, lr=DEFAULT_LR)
        self.config = cfg
        # T10 (distributed=True under torchrun): DDP over the processes, each on its rows of every batch
        self.distributed = distributed and dist.setup()
        self.device = dist.local_device(resolve_device(cfg.device)) if self.distributed else resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        # the step the loop backpropagates (its loss resolved: bind_step), and the one validation measures
        # the loss with; a callable doing the whole step is the caller's, kept apart
        self._full_step: FullStep | None = None
        if step is None or isinstance(step, Step):
            self.step = bind_step(step, loss_fn, self.device)
        elif callable(step):
            _check_full_step_signature(step)
            self._full_step, self.step = step, bind_step(None, loss_fn, self.device)
            _check_full_step(cfg)
            if self.distributed:
                raise ConfigError("distributed=True trains through DDP's forward and backward; a step that does the "
                                  "optimizer step itself bypasses them: subclass nnrecipe.Step instead")
        else:
            raise ConfigError(f"step is a {type(step).__name__}; give an nnrecipe Step, or a callable "
                              "step(model, optimizer, batch) -> loss that does the whole step")
        self.task = create_task(task) if task is not None else None
        # metrics by name ({name: name}) or as functions ({name: fn}); config.metric is always among them
        self.metrics = _metric_spec(metrics)
        if cfg.metric is not None and cfg.metric not in self.metrics:
            self.metrics[cfg.metric] = cfg.metric
        self._metric_fns: dict[str, Metric] | None = None
        self._batch_metric_fns: dict[str, Metric] | None = None
        self.train_metrics = train_metrics
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.record, self.report, self.note = resume, record, report, note
        self.recorder = RunRecorder(self.run_dir) if self.run_dir is not None else None
        self._writes = not self.distributed or dist.is_main()  # T10: rank 0 alone writes the run folder
        if not self._writes:
            self.record = self.report = False
            self.recorder = dist.ReadOnlyRecorder(self.run_dir) if self.run_dir is not None else None
        self.batch_size = cfg.batch_size or default_batch_size(n_rows(train_data))
        # BatchNorm in training mode cannot normalize a batch of one row (torch raises): when the rows leave
        # one over, each epoch leaves out its last row (a different one each epoch, the order is shuffled)
        batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.train_data = train_data
        # bucket_by: the position of an input of token ids (0 padding): training batches of similar lengths
        # numpy float64 arrays take the model's float type (float32 unless the model is double)
        self._float = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
        self.batches = make_batches(train_data, self.batch_size, shuffle=True, device=self.device,
                                    drop_single=batchnorm, bucket_by=bucket_by, float_dtype=self._float)
        self.val_data = val_data
        self._val_batches = None if val_data is None else make_batches(
            val_data, max(self.batch_size, 1024), shuffle=False, device=self.device, name="val_data",
            float_dtype=self._float)
        self.steps_per_epoch = len(self.batches)
        self.monitor = f"val_{cfg.metric}" if cfg.metric is not None else cfg.monitor
        if val_data is None and self.monitor.startswith("val_"):
            self.monitor = "train_" + self.monitor.removeprefix("val_")
            if self.monitor != "train_loss" and not train_metrics:
                raise ConfigError(f"no val_data, so the best epoch and early stopping would follow {self.monitor}, "
                                  "which is logged with train_metrics=True only; pass val_data=..., or "
                                  "train_metrics=True")
            log.warning("no validation data: best epoch and early stopping follow %s", self.monitor)
        # the direction of a metric by name, an alias (cross_entropy) or a key naming one ({"top1": "accuracy"})
        base = self.monitor.removeprefix("val_").removeprefix("train_")
        named = self.metrics.get(base)
        known = known_direction(self.monitor) or (known_direction(ALIASES.get(named, named))
                                                  if isinstance(named, str) else None)
        # (a name that is no metric of `metrics` is refused when the first epoch does not log it, naming those it does)
        if cfg.mode == "auto" and known is None and base in self.metrics:
            # a metric of the caller's own: taken as an error to minimise, a rising hit rate kept its worst epoch
            raise ConfigError(f"the best epoch and early stopping follow '{self.monitor}', a metric whose direction "
                              "nnrecipe does not know: say it, mode='max' (higher is better) or mode='min' (CLI: --mode)")
        self.mode = cfg.mode if cfg.mode != "auto" else known or "min"
        # one callback given bare is taken as a list of one
        self.callbacks = [callbacks] if any(hasattr(callbacks, h) for h in HOOKS) else list(callbacks)
        for c in self.callbacks:
            _check_hooks(c)
            if not any(hasattr(c, h) for h in HOOKS):
                raise ConfigError(f"callbacks: a {type(c).__name__} has none of the hooks ({', '.join(HOOKS[:4])}, ...): "
                                  "it would never be called; subclass nnrecipe.Callback and define the hooks you need")
        if cfg.patience is not None and not any(isinstance(c, EarlyStopping) for c in self.callbacks):
            self.callbacks.append(EarlyStopping(self.monitor, self.mode, cfg.patience, cfg.min_delta,
                                                cfg.stop_criterion, cfg.stop_alpha))
        self._optimizer_given = isinstance(optimizer, torch.optim.Optimizer)
        if isinstance(optimizer, torch.optim.Optimizer):
            check_optimizer(optimizer, self.model, loss_fn, step)
            self.optimizer = optimizer
        elif optimizer is None or isinstance(optimizer, str):
            self.optimizer = make_optimizer(model_parameters(self.model, cfg.lr), cfg)
        elif isinstance(optimizer, (list, tuple)):
            self.optimizer = make_optimizer(optimizer, cfg)
            check_optimizer(self.optimizer, self.model, loss_fn, step)  # another model's groups: it never trains
        else:
            raise ConfigError(f"optimizer is a {type(optimizer).__name__}; give a name ({cfg.optimizer!r}), "
                              "parameter groups (a list of dicts with 'params') or a torch.optim.Optimizer")
        # the groups' settings before a schedule moves them (OneCycleLR sets the rate and the momentum): what
        # the LR range test starts its copies from, and what the run records
        self.group_settings = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                               for g in self.optimizer.param_groups]
        self._scheduler_given = scheduler is not None
        self.scheduler, self.schedule_interval = make_scheduler(
            self.optimizer, cfg, math.ceil(self.steps_per_epoch / cfg.accumulate), self.mode) if scheduler is None else \
            _own_scheduler(scheduler, self.optimizer, cfg)
        self.amp_dtype = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision='fp16' needs a CUDA device (loss scaling is a GPU technique); "
                              "use precision='bf16' on the CPU")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        # T11: SWA averages the weights from swa_start on, at a constant rate (Izmailov et al. 2018)
        self.swa_model = AveragedModel(self.model) if cfg.swa_start is not None else None
        self.swa_scheduler = SWALR(self.optimizer, swa_lr=swa_rates(self.optimizer, cfg.swa_lr or cfg.lr)) \
            if self.swa_model else None
        self.rollbacks = 0
        self._still: list[torch.Tensor] | None = None  # the never-stepped check's values (_train_epoch)
        self._moved = False
        self._good_state: bytes | None = None  # the last good state, kept in memory for rollback without run_dir
        # the loop's position and record
        self.epoch = 0  # 0-based index of the epoch in progress
        self.batch_in_epoch = 0
        self.global_step = 0  # optimizer steps taken
        self.history: list[dict[str, Any]] = []
        self.stop_training = False
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self._acc = self._new_accumulators()
        self._ddp: nn.Module | None = None  # the DDP wrapper during fit() (T10)
        self._share = 1.0  # the weight of this process's rows in the batch's gradient (distributed.shard)

    # ---------------------------------------------------------------- fit
    def fit(self) -> list[dict[str, Any]]:
        cfg = self.config
        seed_everything(cfg.seed, cfg.deterministic)  # a resumed run then takes its RNG states from the checkpoint
        resumed = self._resume()
        if not resumed:
            if cfg.on_nonfinite == "rollback":
                self._good_state = ckpt.dumps_state(self.state_dict())  # the start is the first good state
        if self.record and self.recorder is not None and (not resumed or self.recorder.recorded_config() is None):
            self.recorder.start(self.run_config())
        if self.distributed:  # after the resume: DDP gives every process rank 0's weights
            self._ddp = dist.wrap(self.model, self.device, {**self._config_record(), "batches": self.steps_per_epoch})
        started = time.perf_counter()
        self._call("on_fit_start", {"resumed": resumed})
        while self.epoch < cfg.epochs and not self.stop_training:
            self._call("on_epoch_start", {"epoch": self.epoch + 1})
            try:
                logs = {"epoch": self.epoch + 1, **self._train_epoch()}
            except _Rollback:
                self._rollback()
                continue
            if self._val_batches is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(self._val_batches).items()})
            self._call("on_epoch_end", logs)
            self._step_epoch_scheduler(logs)
            self.history.append(logs)
            self._track_best(logs)
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            if self.recorder is not None:
                self.recorder.history(self.history)
            self.save_checkpoint()
        if self._ddp is not None:
            dist.check_same(self.model)
            self._ddp = None
        if self.swa_model is not None:
            self._finish_swa()
        elif cfg.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self._call("on_fit_end", {"best_epoch": self.best_epoch, "best_value": self.best_value})
        if self.record and self.recorder is not None:
            self._record_end(time.perf_counter() - started)
        return self.history

    def _train_epoch(self) -> dict[str, float]:
        cfg, acc = self.config, self._acc
        self.model.train()
        batch_hooks = [c for c in self.callbacks
                       if getattr(type(c), "on_batch_end", Callback.on_batch_end) is not Callback.on_batch_end]
        stepped = self.global_step
        # a step of the caller's that never calls optimizer.step(): a few values of each trainable weight, kept
        # from the fit's first epoch until they move (values, not versions: a fused optimizer moves them in
        # place without one); judged after two epochs (a GradScaler may skip the first steps while it backs off)
        if self._full_step is not None and self._still is None and not self._moved:
            self._still = [p.detach().reshape(-1)[:8].clone() for p in self.model.parameters() if p.requires_grad]
        for raw in self.batches.epoch(cfg.seed, self.epoch, start=self.batch_in_epoch):
            batch = as_batch(raw)
            rows = None
            if self._ddp is not None:  # T10: this process's rows of the global batch
                batch, rows, self._share = dist.shard(batch)
            loss, outputs = self._call_full_step(raw, batch) if self._full_step is not None else self.train_step(batch)
            self.batch_in_epoch += 1
            n = batch.rows if rows is None else rows
            acc["loss_sum"].add_(loss.detach(), alpha=n)
            acc["count"] += n
            if self.train_metrics and outputs is not None:
                target = self.step.target(batch)
                fns = self._metrics_for(target, batchable=True)
                if fns:
                    out = main_output(outputs).detach().float()
                    for name, fn in fns.items():
                        acc["metrics"][name] = acc["metrics"].get(name, 0.0) + float(fn(out, target)) * n
            for c in batch_hooks:
                c.on_batch_end(self, {"loss": loss.detach(), "batch": self.batch_in_epoch})
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                    and self.batch_in_epoch % cfg.accumulate == 0 and self.batch_in_epoch < self.steps_per_epoch:
                self.save_checkpoint()
        if self.global_step == stepped and acc["count"] and type(self).train_step is not Trainer.train_step:
            raise ConfigError(f"{type(self).__name__}.train_step took no optimizer step in epoch {self.epoch + 1}: the "
                              "weights never moved; after the backward pass call self.optimizer_step(batch) (it "
                              "clips, steps, zeroes the gradients and steps the schedule)")
        if self._still:  # (none when nothing trains: a frozen model is the step's own business)
            now = [p.detach().reshape(-1)[:8] for p in self.model.parameters() if p.requires_grad]
            if any(not torch.equal(a, b) for a, b in zip(self._still, now)):
                self._still, self._moved = None, True
        if self._still and self.epoch >= 1 and acc["count"]:
            raise ConfigError(f"the step took no optimizer step in epochs 1-{self.epoch + 1}: the weights never moved; "
                              "call optimizer.step() after loss.backward() in the step (and optimizer.zero_grad() "
                              "before the backward)")
        if self._ddp is not None:  # the loss and metrics over every process's rows; rank 0's BatchNorm statistics
            acc = dist.end_epoch(acc, self.model)
        logs = {"train_loss": float(acc["loss_sum"] / acc["count"])}
        logs.update({f"train_{k}": v / acc["count"] for k, v in acc["metrics"].items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if acc["norm_count"]:
            logs["grad_norm"] = float(acc["norm_sum"] / acc["norm_count"])
        self._acc = self._new_accumulators()
        return logs

    def train_step(self, batch: Batch) -> tuple[torch.Tensor, Any]:
        """One training step on `batch`: the step's loss, backward, and the optimizer step at the end of
        each accumulation group. Returns the loss (with the L1 term, before accumulation scaling) and the outputs.
        A subclass may override it (Keras's train_step): do the backward pass and call
        `self.optimizer_step(batch)` at the group's end to keep AMP, accumulation and clipping."""
        cfg = self.config
        with self._autocast():
            result = self.step.loss(self._ddp if self._ddp is not None else self.model, batch)
        if not (type(result) is tuple and len(result) == 2):
            raise ConfigError(f"{type(self.step).__name__}.loss returned a {type(result).__name__}; return "
                              "(loss, outputs): the batch's loss as one number, and the model's outputs")
        loss, outputs = result
        if loss.ndim:
            raise ConfigError(f"{type(self.step).__name__}.loss returned a loss of shape {tuple(loss.shape)}; "
                              "reduce it to one number (its mean over the batch)")
        # one read; torch.isfinite would add ops to every step. Under DDP a process must not leave before the
        # backward pass the others wait in: a non-finite loss reaches every process's gradient norm instead
        if self._ddp is None and not math.isfinite(loss.item()):
            self._nonfinite(batch, "loss")
        if cfg.l1:  # M9: on the weights, logged with the loss
            loss = loss + cfg.l1 * sum(p.abs().sum() for n, p in self.model.named_parameters() if n.endswith("weight"))
        position, last = self.batch_in_epoch + 1, self.steps_per_epoch  # this batch's 1-based place in the epoch
        if not loss.requires_grad:
            raise ConfigError("the loss does not depend on any parameter that trains: every parameter of the model is "
                              "frozen (requires_grad=False), or the forward pass runs under torch.no_grad() or "
                              "detaches its output; unfreeze what should train (p.requires_grad_(True))")
        scaled = loss if self._ddp is None else loss * self._share
        if cfg.accumulate > 1:  # each group's mean; the epoch's last group may hold fewer batches
            group_start = self.batch_in_epoch - self.batch_in_epoch % cfg.accumulate
            scaled = scaled / min(cfg.accumulate, last - group_start)
        (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        if position % cfg.accumulate == 0 or position == last:
            self.optimizer_step(batch)
        return loss, outputs

    def optimizer_step(self, batch: Batch | None = None) -> None:
        """Clip, step (through the grad scaler under fp16), zero the gradients, step a per-step schedule."""
        cfg, opt = self.config, self.optimizer
        if self.scaler:
            self.scaler.unscale_(opt)
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
        # one foreach norm per step: it is the logged gradient norm (T6), the clip, and the NaN guard
        norm = _global_norm([p.grad for p in params])
        if cfg.clip_norm is not None:  # inline, as clip_grad_norm_ does (clip_grads_with_norm_ needs torch 2.6)
            torch._foreach_mul_([p.grad for p in params], torch.clamp(cfg.clip_norm / (norm + 1e-6), max=1.0))
        if self.scaler:
            self.scaler.step(opt)  # skips the step itself when fp16 gradients overflowed
            self.scaler.update()
        elif not math.isfinite(norm.item()):
            self._nonfinite(batch, "gradient")
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        self._after_optimizer_step()
        self._acc["norm_sum"] += norm.detach()
        self._acc["norm_count"] += 1

    def _after_optimizer_step(self) -> None:
        if self.scheduler is not None and self.schedule_interval == "step" and not self._in_swa():
            self.scheduler.step()
        self.global_step += 1

    def _call_full_step(self, raw: Any, batch: Batch) -> tuple[torch.Tensor, Any]:
        """The caller's whole step (the doctor's train_step signature), given the batch as the data holds
        it: it does backward and the optimizer step itself; the loop keeps the schedule, the counts and the
        record."""
        with self._autocast():
            out = self._full_step(self.model, self.optimizer, raw)  # type: ignore[misc]
        loss, outputs = (out if isinstance(out, tuple) and len(out) == 2 else (out, None))
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            loss = loss.detach().float().reshape(())
        elif isinstance(loss, (int, float)) and not isinstance(loss, bool):
            loss = torch.tensor(float(loss), device=self.device)
        else:
            raise ConfigError(f"the step returned {type(out).__name__ if loss is None else repr(loss)[:80]}; return "
                              "the batch's loss (a tensor of one number, or a float), or (loss, outputs) for the "
                              "metrics")
        if not math.isfinite(loss.item()):
            self._nonfinite(batch, "loss")
        self._after_optimizer_step()
        return loss, outputs

    def _nonfinite(self, batch: Batch | None, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        full = self._full_step is not None  # the caller's step has updated the weights already
        where = "the batch is gone" if batch is None else \
            locate_nonfinite(self.model, self.step if self.step.loss_fn is not None else None, batch)
        at = (f"non-finite {what} at epoch {self.epoch + 1}, batch {self.batch_in_epoch + 1} "
              f"(optimizer step {self.global_step}); "
              + ("your step had already updated the weights" if full else "the step was skipped"))
        if self.config.on_nonfinite == "rollback" and self.rollbacks < MAX_ROLLBACKS:
            log.warning("%s: %s; rolling back to the last good state at %g x the learning rate",
                        at, where, ROLLBACK_FACTOR)
            raise _Rollback()
        clip = "clip the gradients inside your step" if full else "clip gradients (clip_norm)"
        raise TrainingError(
            f"{at} and training stopped: {where}. Fix: lower the learning rate, {clip}, "
            "or guard the operation named; the last checkpoint holds the last good weights"
            + (f" (after {self.rollbacks} rollbacks)" if self.rollbacks else ""))

    def _rollback(self) -> None:
        """Reload the last good state (the last checkpoint, or the start) and scale every rate down."""
        path = self.run_dir / "checkpoints" / "last.safetensors" if self.run_dir else None
        if path is not None and path.exists():
            state = ckpt.load_state(path)
        elif self._good_state is not None:
            state = ckpt.loads_state(self._good_state)
        else:
            raise TrainingError("non-finite values before the first checkpoint and no start state to roll back to")
        rollbacks = self.rollbacks + 1
        self.load_state_dict(state)
        self.rollbacks = rollbacks
        factor = ROLLBACK_FACTOR ** rollbacks / ROLLBACK_FACTOR ** state["position"].get("rollbacks", 0)
        for group in self.optimizer.param_groups:
            for key in ("lr", "initial_lr", "max_lr", "min_lr", "swa_lr"):
                if key in group:
                    group[key] *= factor
        for sched in (self.scheduler, self.swa_scheduler):
            if sched is not None and hasattr(sched, "base_lrs"):
                sched.base_lrs = [lr * factor for lr in sched.base_lrs]

    def _finish_swa(self) -> None:
        """Recompute BatchNorm statistics for the averaged weights (torch.optim.swa_utils.update_bn) and
        end with them: with SWA on, the model ends with the average, not the best epoch."""
        assert self.swa_model is not None
        if self.swa_model.n_averaged.item() == 0:
            return
        with torch.random.fork_rng(devices=[]):
            # update_bn calls model(x) with the batch's first item: hand it the inputs whole, any structure
            batches = ([as_batch(b).inputs] for b in self.batches.epoch(self.config.seed, 0))
            update_bn(batches, _CallWith(self.swa_model), device=None)
        self.model.load_state_dict(self.swa_model.module.state_dict())

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, data: Any, model: nn.Module | None = None) -> dict[str, float]:
        """Mean loss and each metric over `data` in eval mode, of the trainer's model or `model` (an
        ensemble of trained models, say). The loss is the step's plain loss (compute_loss)."""
        outputs, targets, weights = self._outputs(data, model=model)
        return self.score(outputs, targets, weights)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor | None,
              weights: torch.Tensor | None = None) -> dict[str, float]:
        """The loss and each metric of raw `outputs` against `targets`."""
        outputs = outputs.to(self.device)
        targets = targets.to(self.device) if targets is not None else None
        weights = weights.to(self.device) if weights is not None else None
        res = {"loss": float(self.step.compute_loss(outputs, targets, weights))}
        if targets is not None:
            res.update({name: float(fn(outputs, targets)) for name, fn in self._metrics_for(targets).items()})
        return res

    @torch.no_grad()
    def predict(self, data: Any, model: nn.Module | None = None) -> torch.Tensor:
        """The raw outputs (the main output, steps/batch.py) of the trainer's model (or `model`) for `data`
        (inputs only, or inputs and targets), on the CPU."""
        return self._outputs(data, with_target=False, model=model)[0].cpu()

    def _outputs(self, data: Any, with_target: bool = True, model: nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        model = self.model if model is None else model.to(self.device)
        batches = data if hasattr(data, "epoch") else make_batches(
            data, max(self.batch_size, 1024), shuffle=False, device=self.device, name="data", float_dtype=self._float)
        model.eval()
        outs, targets, weights = [], [], []
        for raw in batches.epoch(0, 0):
            batch = as_batch(raw)
            with self._autocast():
                outs.append(main_output(call_model(model, batch.inputs)).float())
            if with_target:
                targets.append(self.step.target(batch))
                weights.append(batch.weight)
        if not outs:  # a stream that gave no batch (a map-style set of no rows is refused when the Trainer is made)
            name = "val_data" if data is self._val_batches or data is self.val_data else "the data"
            raise ConfigError(f"{name} gave no rows (an empty stream: an IterableDataset that yields nothing); "
                              "give it rows, or leave val_data out")
        target = torch.cat(targets) if with_target and all(t is not None for t in targets) and targets else None
        weight = torch.cat(weights) if with_target and all(w is not None for w in weights) and weights else None
        return torch.cat(outs), target, weight

    def lr_find(self, **kwargs: Any) -> Any:
        """T4: the learning-rate range test on a copy of the model (see train.lr_find)."""
        from .lr_find import lr_find

        return lr_find(self, **kwargs)

    # ---------------------------------------------------------------- the record
    def run_config(self) -> dict[str, Any]:
        """config.json of a bare Trainer's run: the settings, the model, the loss, optimizer and step."""
        return {"kind": "trainer", "task": self.task.name if self.task is not None else None,
                "source": None, "data_name": _data_name(self.train_data), "note": self.note,
                "train": self._config_record(), "model": model_record(self.model),
                "loss": type(self.step.loss_fn).__name__ if self.step.loss_fn is not None else None,
                "step": type(self._full_step or self.step).__name__,
                "metrics": list(self.metrics)}

    def _record_end(self, seconds: float) -> None:
        """results.json and report.html of a bare Trainer's run."""
        assert self.recorder is not None
        self.recorder.finish({"best_epoch": self.best_epoch, "monitor": self.monitor, "best_value": self.best_value,
                              "epochs_run": len(self.history), "train_seconds": round(seconds, 2),
                              "last": self.history[-1] if self.history else None})
        if self.report:
            from ..report import write_report

            write_report(self.run_dir)

    # ---------------------------------------------------------------- helpers
    def _metrics_for(self, target: torch.Tensor, batchable: bool = False) -> dict[str, Metric]:
        """The metrics as functions, names resolved for the task (given, or inferred from the loss and the
        target the first time they are needed); `batchable`: only those that are a mean over rows."""
        if self._metric_fns is None:
            named = {k: v for k, v in self.metrics.items() if isinstance(v, str)}
            task, inferred = self.task, self.task is None and bool(named)
            if inferred:
                task = create_task(infer_task(self.step.loss_fn, target),
                                   n_classes=0 if target.ndim < 2 else target.shape[1])
            try:
                bound = {k: task.metrics([v])[v] for k, v in named.items()}  # type: ignore[union-attr]
            except ConfigError as e:
                if not inferred:
                    raise
                raise ConfigError(f"{e} (the task was inferred as {task.name} from the loss and the targets; "  # type: ignore[union-attr]
                                  "pass task=... to the Trainer)") from None
            self._metric_fns = {k: bound[k] if isinstance(v, str) else v for k, v in self.metrics.items()}
            self._batch_metric_fns = {k: f for k, f in self._metric_fns.items() if getattr(f, "batchable", True)}
        return self._batch_metric_fns if batchable else self._metric_fns  # type: ignore[return-value]

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _call(self, hook: str, logs: dict[str, Any]) -> None:
        for c in self.callbacks:  # plain objects need only the hooks they use
            fn = getattr(c, hook, None)
            if fn is not None:
                fn(self, logs)

    def _step_epoch_scheduler(self, logs: dict[str, Any]) -> None:
        if self.swa_model is not None and self.epoch + 1 >= self.config.swa_start:
            self.swa_model.update_parameters(self.model)
            self.swa_scheduler.step()  # SWA's constant rate replaces the schedule from here on
            return
        if self.scheduler is None:
            return
        if self.schedule_interval == "plateau":
            if self.monitor not in logs:
                raise ConfigError(f"schedule='plateau' follows '{self.monitor}', which is not logged")
            self.scheduler.step(logs[self.monitor])
        elif self.schedule_interval == "epoch":
            self.scheduler.step()

    def _track_best(self, logs: dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best_value is None or (value < self.best_value if self.mode == "min" else value > self.best_value):
            self.best_epoch, self.best_value = logs["epoch"], value
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if self.run_dir is not None and self._writes:
                ckpt.save_state(self.run_dir / "checkpoints" / "best.safetensors",
                                {"model": self._best_state, "epoch": self.best_epoch, "value": value,
                                 "monitor": self.monitor})

    def _in_swa(self) -> bool:
        return self.swa_model is not None and self.epoch + 1 >= self.config.swa_start

    def _new_accumulators(self) -> dict[str, Any]:
        """The epoch's sums, on the training device: the batch losses and gradient norms are added in place
        without a sync, and torch refuses to add a CUDA tensor into a CPU one."""
        return {"loss_sum": torch.zeros((), device=self.device), "count": 0,
                "norm_sum": torch.zeros((), device=self.device), "norm_count": 0, "metrics": {}}


class _CallWith(nn.Module):
    """A module whose forward takes a batch's inputs whole (a tuple or a dict) and calls `module` on them."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, inputs: Any) -> Any:
        return call_model(self.module, inputs)


def _data_name(data: Any) -> str:
    """How `runs` names a bare Trainer's data: tensors held in memory, or the Dataset's or loader's class."""
    if isinstance(data, (torch.Tensor, tuple, list, Mapping)):
        return "tensors"
    return type(data).__name__


def _metric_spec(metrics: Any) -> dict[str, Metric | str]:
    """{name: metric name or function} from names, a dict, or None; names checked now, not an epoch later."""
    from ..tasks.metrics import ALIASES, METRICS

    if metrics is None:
        return {}
    if isinstance(metrics, str) or not isinstance(metrics, (Mapping, list, tuple)):
        raise ConfigError(f"metrics={metrics!r}; give metric names (['accuracy', 'f1']) or a dict "
                          "{name: fn(outputs, target) -> float}")
    spec = dict(metrics) if isinstance(metrics, Mapping) else {name: name for name in metrics}
    for key, value in spec.items():
        if isinstance(value, str):
            if value not in METRICS and value not in ALIASES:
                raise ConfigError(f"metrics: {value!r} is not a metric{did_you_mean(value, [*METRICS, *ALIASES])}; "
                                  f"choose from: {', '.join(METRICS)}")
        elif not callable(value):
            raise ConfigError(f"metrics[{key!r}] is a {type(value).__name__}; give a metric's name or a function "
                              "fn(outputs, target) -> float")
    return spec


HOOKS = tuple(name for name in vars(Callback) if name.startswith("on_"))


def _check_hooks(callback: Any) -> None:
    """A callback's method named like a hook but none of them (on_epoch_ends) would never be called."""
    for name in dir(callback):
        if name.startswith("on_") and name not in HOOKS and callable(getattr(callback, name, None)):
            raise ConfigError(f"callback {type(callback).__name__} has a method {name}, which is no hook of the Trainer "
                              f"and would never be called{did_you_mean(name, HOOKS)}; the hooks: {', '.join(HOOKS)}")


def _check_config_beside(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """A caller's optimizer brings its own class, rate and decay: a TrainConfig that sets others would be
    ignored for them, so the two must agree (a rate left to the rule, None, takes the optimizer's)."""
    group, default = optimizer.param_groups[0], TrainConfig()
    rate, decay = group.get("initial_lr", group["lr"]), group.get("weight_decay", 0.0)
    # the rate as the optimizer holds it anywhere: its default, a group's (groups may have their own), before
    # or after a schedule moved it
    rates = [optimizer.defaults.get("lr")] + [g.get(k) for g in optimizer.param_groups for k in ("lr", "initial_lr")]
    clash = []
    if cfg.lr is not None and not any(isinstance(r, (int, float)) and math.isclose(cfg.lr, float(r), rel_tol=1e-6)
                                      for r in rates):
        clash.append(f"lr={cfg.lr:g} (the optimizer's {float(rate):g})")
    if cfg.optimizer != default.optimizer and cfg.optimizer != type(optimizer).__name__.lower():
        clash.append(f"optimizer={cfg.optimizer!r} (the optimizer is a {type(optimizer).__name__})")
    decays = [optimizer.defaults.get("weight_decay")] + [g.get("weight_decay") for g in optimizer.param_groups]
    if cfg.weight_decay != default.weight_decay and not any(
            isinstance(d, (int, float)) and math.isclose(cfg.weight_decay, float(d), rel_tol=1e-6) for d in decays):
        clash.append(f"weight_decay={cfg.weight_decay:g} (the optimizer's {float(decay):g})")
    if clash:
        raise ConfigError(f"optimizer= is a {type(optimizer).__name__} you built, and the TrainConfig sets "
                          f"{', '.join(clash)}, which the optimizer would override: set them where you build the "
                          "optimizer, or leave optimizer= out and the TrainConfig builds it")


def _own_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> tuple[Any, str]:
    """A caller's learning-rate schedule and when it steps: a torch scheduler built on the Trainer's
    optimizer steps after each epoch (torch's convention; ReduceLROnPlateau with the monitored value), or
    after each optimizer step given as (scheduler, "step"), as Lightning's interval says it."""
    sched, interval = scheduler if isinstance(scheduler, tuple) and len(scheduler) == 2 else (scheduler, "epoch")
    plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if not (isinstance(sched, torch.optim.lr_scheduler.LRScheduler) or plateau):
        raise ConfigError(f"scheduler is a {type(sched).__name__}; give a torch.optim.lr_scheduler scheduler built on "
                          "the optimizer you pass as optimizer=, or (scheduler, 'step') to step it every batch")
    if interval not in ("epoch", "step") or plateau and interval == "step":
        raise ConfigError(f"scheduler interval {interval!r}; choose 'epoch' or 'step' (ReduceLROnPlateau: 'epoch')")
    if sched.optimizer is not optimizer:
        raise ConfigError("the scheduler is built on another optimizer than the Trainer's: build the optimizer, "
                          "pass it as optimizer= and build the scheduler on it")
    if cfg.schedule != TrainConfig().schedule:
        raise ConfigError(f"scheduler= and TrainConfig(schedule={cfg.schedule!r}) both schedule the rate; give one")
    return sched, "plateau" if plateau else interval


def _check_full_step_signature(step: Callable[..., Any]) -> None:
    import inspect

    try:
        signature = inspect.signature(step)
    except (TypeError, ValueError):  # no signature to read
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise ConfigError(f"step={getattr(step, '__name__', type(step).__name__)}{signature} cannot be called as "
                          "step(model, optimizer, batch), the signature of a step that does the whole step; to "
                          "change only the loss, subclass nnrecipe.Step and override loss(model, batch)") from None


def _check_full_step(cfg: TrainConfig) -> None:
    """A callable that does the whole step leaves the loop nothing to clip, scale or accumulate."""
    given = [f"{k}={getattr(cfg, k)!r}" for k, off in (("clip_norm", None), ("clip_value", None), ("accumulate", 1),
                                                      ("l1", 0.0)) if getattr(cfg, k) != off]
    if cfg.precision == "fp16":
        given.append("precision='fp16'")
    if given:
        raise ConfigError(f"{', '.join(given)} cannot apply to a step that does the optimizer step itself; "
                          "subclass nnrecipe.Step and override loss(model, batch) -> (loss, outputs), so that the "
                          "loop does backward and the step, or do it inside your step")


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients as one vector, as clip_grad_norm_ computes it, in one foreach kernel:
    torch.nn.utils.get_total_norm first groups the tensors by device and dtype in Python, which cost this
    loop 5-10% on a small MLP (benchmarks/engine.py)."""
    if not grads:
        return torch.zeros(())
    device = grads[0].device  # per-tensor norms gathered on one device, for a model spread over several
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in torch._foreach_norm(grads)]))
