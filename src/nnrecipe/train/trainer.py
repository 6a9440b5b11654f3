"""The training engine. `Trainer.fit` reads top to bottom: resume or seed, then per epoch the train
pass, validation, history, callbacks, best weights, checkpoint, stop check. Everything a resumed run
needs is in the checkpoint, so a run killed at any moment resumes bit for bit (T8)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from ..config import TrainConfig, monitor_mode
from ..errors import ConfigError, TrainingError
from ..repro import seed_everything
from . import checkpoint as ckpt
from .batching import make_batches
from .callbacks import Callback, EarlyStopping
from .nonfinite import locate_nonfinite
from .optim import make_optimizer, make_scheduler
from .state import TrainerState

log = logging.getLogger("nnrecipe")

MAX_ROLLBACKS = 3  # on_nonfinite='rollback': after three, the lr is 1/1000 of the start; stop and say why
ROLLBACK_FACTOR = 0.1


class _Rollback(Exception):
    """Raised inside an epoch to unwind to fit(), which reloads the last good state."""

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but this machine has no CUDA device; use device='cpu' or 'auto'")
    return torch.device(name)


def default_batch_size(n_rows: int) -> int:
    """Seed 002 advises starting small (Masters & Luschi 2018: 2-32 generalize best) and growing for
    throughput; sizes stay multiples of 8 (M10)."""
    for limit, size in ((4_000, 32), (16_000, 64), (64_000, 128)):
        if n_rows < limit:
            return size
    return 256


class Trainer(TrainerState):
    """Trains any `nn.Module` whose forward takes the batch's inputs (all but the last tensor, the target).

    At the end of `fit()` the model holds the weights of the best epoch by `config.monitor` when
    `config.restore_best` is on (the default), whatever stopped training; the last epoch's weights stay
    in `run_dir/checkpoints/last.safetensors`."""

    def __init__(self, model: nn.Module, loss_fn: Callable[..., torch.Tensor], train_data: Any,
                 val_data: Any = None, config: TrainConfig | None = None, callbacks: Iterable[Callback] = (),
                 metrics: Mapping[str, Metric] | None = None, run_dir: str | Path | None = None,
                 train_metrics: bool = False):
        self.config = cfg = config or TrainConfig()
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn
        self.metrics = dict(metrics or {})
        self.train_metrics = train_metrics
        self.run_dir = Path(run_dir) if run_dir is not None else None
        n_rows = _n_rows(train_data)
        self.batch_size = cfg.batch_size or default_batch_size(n_rows)
        # BatchNorm in training mode cannot normalize a batch of one row (torch raises): when the rows leave
        # one over, each epoch leaves out its last row (a different one each epoch, the order is shuffled)
        batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.batches = make_batches(train_data, self.batch_size, shuffle=True, device=self.device,
                                    drop_single=batchnorm)
        self.val_data = val_data
        self._val_batches = None if val_data is None else make_batches(
            val_data, max(self.batch_size, 1024), shuffle=False, device=self.device, name="val_data")
        self.steps_per_epoch = len(self.batches)
        self.monitor = cfg.monitor
        if val_data is None and self.monitor.startswith("val_"):
            self.monitor = "train_" + self.monitor.removeprefix("val_")
            log.warning("no validation data: best epoch and early stopping follow %s", self.monitor)
        self.mode = monitor_mode(self.monitor, cfg.mode)
        self.callbacks = list(callbacks)
        if cfg.patience is not None and not any(isinstance(c, EarlyStopping) for c in self.callbacks):
            self.callbacks.append(EarlyStopping(self.monitor, self.mode, cfg.patience, cfg.min_delta,
                                                cfg.stop_criterion, cfg.stop_alpha))
        self.optimizer = make_optimizer(self.model.parameters(), cfg)
        self.scheduler, self.schedule_interval = make_scheduler(
            self.optimizer, cfg, math.ceil(self.steps_per_epoch / cfg.accumulate))
        self.amp_dtype = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision='fp16' needs a CUDA device (loss scaling is a GPU technique); "
                              "use precision='bf16' on the CPU")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        # T11: SWA averages the weights from swa_start on, at a constant rate (Izmailov et al. 2018)
        self.swa_model = AveragedModel(self.model) if cfg.swa_start is not None else None
        self.swa_scheduler = SWALR(self.optimizer, swa_lr=cfg.swa_lr or cfg.lr) if self.swa_model else None
        self.rollbacks = 0
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

    # ---------------------------------------------------------------- fit
    def fit(self) -> list[dict[str, Any]]:
        cfg = self.config
        seed_everything(cfg.seed, cfg.deterministic)  # a resumed run then takes its RNG states from the checkpoint
        resumed = self._resume()
        if not resumed:
            if cfg.on_nonfinite == "rollback":
                self._good_state = ckpt.dumps_state(self.state_dict())  # the start is the first good state
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
            self._append_metrics(logs)
            self.save_checkpoint()
        if self.swa_model is not None:
            self._finish_swa()
        elif cfg.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        self._call("on_fit_end", {"best_epoch": self.best_epoch, "best_value": self.best_value})
        return self.history

    def _train_epoch(self) -> dict[str, float]:
        cfg, model, acc = self.config, self.model, self._acc
        model.train()
        batch_hooks = [c for c in self.callbacks if type(c).on_batch_end is not Callback.on_batch_end]
        last = self.steps_per_epoch
        for batch in self.batches.epoch(cfg.seed, self.epoch, start=self.batch_in_epoch):
            *inputs, target = batch
            with self._autocast():
                out = model(*inputs)
            loss = self.loss_fn(out.float(), target)  # the loss in float32 whatever the autocast (T9)
            if not math.isfinite(loss.item()):  # one read; torch.isfinite would add ops to every step
                self._nonfinite(inputs, target, "loss")
            if cfg.l1:
                loss = loss + cfg.l1 * sum(p.abs().sum() for n, p in model.named_parameters() if n.endswith("weight"))
            if cfg.accumulate > 1:  # each group's mean; the epoch's last group may hold fewer batches
                group_start = self.batch_in_epoch - self.batch_in_epoch % cfg.accumulate
                scaled = loss / min(cfg.accumulate, last - group_start)
            else:
                scaled = loss
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            self.batch_in_epoch += 1
            if self.batch_in_epoch % cfg.accumulate == 0 or self.batch_in_epoch == last:
                self._optimizer_step(inputs, target)
            n = len(target)
            acc["loss_sum"].add_(loss.detach(), alpha=n)
            acc["count"] += n
            if self.train_metrics:
                for name, fn in self.metrics.items():
                    acc["metrics"][name] = acc["metrics"].get(name, 0.0) + fn(out.detach().float(), target) * n
            for c in batch_hooks:
                c.on_batch_end(self, {"loss": loss.detach(), "batch": self.batch_in_epoch})
            if cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0 \
                    and self.batch_in_epoch % cfg.accumulate == 0 and self.batch_in_epoch < last:
                self.save_checkpoint()
        logs = {"train_loss": float(acc["loss_sum"] / acc["count"])}
        logs.update({f"train_{k}": v / acc["count"] for k, v in acc["metrics"].items()})
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if acc["norm_count"]:
            logs["grad_norm"] = float(acc["norm_sum"] / acc["norm_count"])
        self._acc = self._new_accumulators()
        return logs

    def _optimizer_step(self, inputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> None:
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
            self._nonfinite(inputs, target, "gradient")
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        if self.scheduler is not None and self.schedule_interval == "step" and not self._in_swa():
            self.scheduler.step()
        self.global_step += 1
        self._acc["norm_sum"] += norm.detach()
        self._acc["norm_count"] += 1

    def _nonfinite(self, inputs: tuple[torch.Tensor, ...], target: torch.Tensor, what: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        where = locate_nonfinite(self.model, self.loss_fn, inputs, target)
        at = (f"non-finite {what} at epoch {self.epoch + 1}, batch {self.batch_in_epoch + (what == 'loss')} "
              f"(optimizer step {self.global_step}); the step was skipped")
        if self.config.on_nonfinite == "rollback" and self.rollbacks < MAX_ROLLBACKS:
            log.warning("%s: %s; rolling back to the last good state at %g x the learning rate",
                        at, where, ROLLBACK_FACTOR)
            raise _Rollback()
        raise TrainingError(
            f"{at} and training stopped: {where}. Fix: lower the learning rate, clip gradients (clip_norm), "
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
            update_bn(self.batches.epoch(self.config.seed, 0), self.swa_model, self.device)
        self.model.load_state_dict(self.swa_model.module.state_dict())

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, data: Any, model: nn.Module | None = None) -> dict[str, float]:
        """Mean loss and each metric over `data` in eval mode, of the trainer's model or `model` (an
        ensemble of trained models, say)."""
        outputs, targets = self._outputs(data, model=model)
        return self.score(outputs, targets)

    def score(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The loss and each metric of raw `outputs` against `targets`."""
        outputs, targets = outputs.to(self.device), targets.to(self.device)
        res = {"loss": float(self.loss_fn(outputs, targets))}
        res.update({name: float(fn(outputs, targets)) for name, fn in self.metrics.items()})
        return res

    @torch.no_grad()
    def predict(self, data: Any, model: nn.Module | None = None) -> torch.Tensor:
        """The raw outputs of the trainer's model (or `model`) for `data` (inputs only, or inputs and
        targets), on the CPU."""
        return self._outputs(data, with_target=False, model=model)[0].cpu()

    def _outputs(self, data: Any, with_target: bool = True, model: nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        model = self.model if model is None else model.to(self.device)
        batches = data if hasattr(data, "epoch") else make_batches(
            data, max(self.batch_size, 1024), shuffle=False, device=self.device, name="data")
        model.eval()
        outs, targets = [], []
        for batch in batches.epoch(0, 0):
            inputs = batch[:-1] if with_target or len(batch) > 1 else batch
            with self._autocast():
                outs.append(model(*inputs).float())
            if with_target:
                targets.append(batch[-1])
        return torch.cat(outs), (torch.cat(targets) if with_target else None)

    def lr_find(self, **kwargs: Any) -> Any:
        """T4: the learning-rate range test on a copy of the model (see train.lr_find)."""
        from .lr_find import lr_find

        return lr_find(self, **kwargs)

    # ---------------------------------------------------------------- helpers
    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _call(self, hook: str, logs: dict[str, Any]) -> None:
        for c in self.callbacks:
            getattr(c, hook)(self, logs)

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
            if self.run_dir is not None:
                ckpt.save_state(self.run_dir / "checkpoints" / "best.safetensors",
                                {"model": self._best_state, "epoch": self.best_epoch, "value": value,
                                 "monitor": self.monitor})

    def _in_swa(self) -> bool:
        return self.swa_model is not None and self.epoch + 1 >= self.config.swa_start

    @staticmethod
    def _new_accumulators() -> dict[str, Any]:
        return {"loss_sum": torch.zeros(()), "count": 0, "norm_sum": torch.zeros(()), "norm_count": 0,
                "metrics": {}}

def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all gradients as one vector, as clip_grad_norm_ computes it, in one foreach kernel:
    torch.nn.utils.get_total_norm first groups the tensors by device and dtype in Python, which cost this
    loop 5-10% on a small MLP (benchmarks/engine.py)."""
    if not grads:
        return torch.zeros(())
    device = grads[0].device  # per-tensor norms gathered on one device, for a model spread over several
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in torch._foreach_norm(grads)]))


def _n_rows(data: Any) -> int:
    if isinstance(data, (tuple, list)):
        return len(data[0])
    if isinstance(data, torch.utils.data.DataLoader):
        return len(data.dataset)  # type: ignore[arg-type]
    return len(data)
