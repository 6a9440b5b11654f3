"""nnrecipe's doctor as a Lightning Callback (issue 23; docs/integrations.md):

    from nnrecipe.integrations.lightning import Doctor
    trainer = Trainer(callbacks=[Doctor()])

Before training (on_train_start, when the optimizers and the train dataloader exist) the doctor runs on
the first batches of the user's own LightningModule, with its optimizer and its own `training_step` as the
step it observes, on copies; during training C7 (gradient flow per layer) watches a few chosen steps of
the real run; after it, C8 judges the epochs' losses (training_step's returned losses averaged per epoch,
and the validation loss Lightning logged). Verdicts go to Lightning's
logging (rank zero) as text lines, their counts to the trainer's loggers as doctor/failed, doctor/warned,
..., and all of them stay on the callback as `.diagnosis`."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..checks.setup import ROWS
from .core import C7_STEPS, NO_LOSS, DoctorCore, Findings, HostModel, Layout, loss_module, require

try:  # the class works with whichever Trainer the user has: `lightning` (2.x) first, else `pytorch_lightning`
    from lightning.pytorch import Callback as _Callback
except ImportError:
    try:
        from pytorch_lightning import Callback as _Callback  # type: ignore[no-redef]
    except ImportError:
        require("lightning", "lightning")  # raises MissingDependencyError naming the extra
        raise

# Lightning's own logger hierarchy: its handler shows INFO and above on the console
log = logging.getLogger("lightning.pytorch.callbacks.nnrecipe_doctor")

TRAIN_LOSS_KEYS = ("train_loss_epoch", "train_loss", "train/loss_epoch", "train/loss", "loss_epoch", "loss")
VAL_LOSS_KEYS = ("val_loss_epoch", "val_loss", "val/loss", "valid_loss", "validation_loss", "val/loss_epoch")


class Doctor(Findings, _Callback):
    """Run nnrecipe's doctor in a Lightning run. `checks`: the checks by name as nnrecipe.doctor takes
    them (data, lint, C1 ... C8; default all): the doctor runs the chosen ones but C8 before training, C7
    is also watched during training, C8 judges the run's curves after it. `stop_on_fail=True` raises
    nnrecipe's TrainingError before training when a check fails (and stops the run, trainer.should_stop,
    when C7 fails during it); by default the doctor warns and training goes on. `loss_fn`: the loss the
    checks judge the model's outputs with (default: the module's attribute that is a torch loss module);
    `forward(module, inputs) -> outputs`: how the checks call the model on a batch's inputs (default:
    module(x) for (x, y) batches, module(**inputs) for dict batches). `c7_steps`: the run's optimizer
    steps C7 observes. The training curve is each epoch's mean of the losses training_step returned;
    `train_loss` names a logged metric to read instead (one logged per epoch), and the one read when the
    step returns no loss (manual optimization; default: the first present of train_loss_epoch,
    train_loss, ...); `val_loss` the validation loss's name (default: the first of val_loss, val/loss, ...)."""

    def __init__(self, checks: Sequence[str] | None = None, *, stop_on_fail: bool = False, loss_fn: Any = None,
                 forward: Callable[[nn.Module, Any], Any] | None = None, seed: int = 0, rows: int = ROWS,
                 c7_steps: Sequence[int] = C7_STEPS, train_loss: str | None = None,
                 val_loss: str | None = None) -> None:
        self.core = DoctorCore(checks=checks, stop_on_fail=stop_on_fail, loss_fn=loss_fn, forward=forward,
                               seed=seed, rows=rows, c7_steps=c7_steps, train_loss=train_loss, val_loss=val_loss)
        self._val: dict[int, float] = {}
        self._losses: list[torch.Tensor] = []  # this epoch's losses as training_step returned them (not synced)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.core.reset()  # one Doctor in a second fit judges that run alone
        self._val, self._losses = {}, []

    # ---------------------------------------------------------------- before training
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        core = self.core
        verdicts = self._before(trainer, pl_module)
        self._report(trainer, verdicts, "before training")
        if core.stop_on_fail and any(v.status in ("fail", "error") for v in verdicts):
            raise core.error(verdicts, "before training")

    def _before(self, trainer: Any, module: Any) -> list[Any]:
        core = self.core
        if not getattr(module, "automatic_optimization", True) or len(trainer.optimizers) != 1:
            # C7 in training watches one optimizer's steps: with several, a parameter of another is not missing
            core.flow_skip = ("the module uses manual optimization or several optimizers; C7 in training watches "
                              "the steps of one automatic optimizer")
        if not getattr(module, "automatic_optimization", True):
            # manual optimization steps inside training_step through self.optimizers(), which a copy without
            # a Trainer cannot reach
            return [core.skip_before("the module uses manual optimization (automatic_optimization=False): its "
                                     "training_step steps through the Trainer, which the doctor's copies lack")]
        if len(trainer.optimizers) != 1:
            return [core.skip_before(f"the module has {len(trainer.optimizers)} optimizers; the doctor observes "
                                     "one")]
        sampled = core.sample(trainer.train_dataloader, module.forward, module.device)
        if not isinstance(sampled, tuple):
            return [sampled]
        layout, data = sampled
        loss_fn, where = (core.loss_fn, "loss_fn= given to Doctor") if core.loss_fn is not None \
            else loss_module(module)
        core.found.update(loss_fn=where, train_step="the module's own training_step(batch, i), i counting the calls "
                          "from 0, then backward and the optimizer's step", optimizer=type(trainer.optimizers[0]).__name__,
                          rows=len(data[-1]), forward="forward= given to Doctor" if core.forward else
                          "module(**inputs)" if layout.keys else "module(*inputs)")
        if loss_fn is None:
            core.found["skipped"] = NO_LOSS
        log.info("nnrecipe doctor: found %s", core.found)
        model = HostModel(module, layout.keys, core.forward)
        return list(core.before(model, trainer.optimizers[0], data, _training_step(layout), loss_fn))

    # ---------------------------------------------------------------- during: C7 on chosen steps
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        every = max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1)
        if (batch_idx + 1) % every == 0:  # the batch whose backward is followed by the optimizer's step
            self.core.step_begins(trainer.global_step + 1, pl_module, trainer.optimizers[0])

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:  # None: a batch the step skipped
            # Lightning hands this hook the loss divided by accumulate_grad_batches (its closure's normalisation):
            # the step's own value is that times k; kept on the device, read once at the epoch's end
            self._losses.append(loss.detach() * max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1))
        if self.core.step_ends(loss):
            self._judge_flow(trainer, pl_module)

    def _judge_flow(self, trainer: Any, module: Any) -> None:
        verdicts = self.core.judge_flow(module, trainer.optimizers[0])
        self._report(trainer, verdicts, "during training")
        if self.core.stop_on_fail and any(v.status in ("fail", "error") for v in verdicts):
            log.warning("nnrecipe doctor: stopping the run (stop_on_fail=True): C7 failed")
            trainer.should_stop = True

    # ---------------------------------------------------------------- the curves
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            _, value = self.core.pick(trainer.callback_metrics, self.core.val_loss, VAL_LOSS_KEYS)
            if value is not None:
                self._val[trainer.current_epoch] = value

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        core = self.core
        losses, self._losses = self._losses, []
        if core.train_loss is None and losses:
            # the epoch's mean of the losses training_step returned: a logged 'train_loss' is the last batch's
            # value when logged per step (Lightning's default in training_step), which C8 would misread
            value = float(torch.stack([v.reshape(()) for v in losses]).float().mean())  # one read from the device
            what = "the mean of the losses training_step returned, per epoch"
        else:
            name, value = core.pick(trainer.callback_metrics, core.train_loss, TRAIN_LOSS_KEYS)
            if value is None:
                core.found["curves"] = (f"no training loss was returned by training_step or logged under "
                                        f"{core.train_loss or TRAIN_LOSS_KEYS}: log it with self.log('train_loss', "
                                        "loss, on_epoch=True), or pass Doctor(train_loss='your_name')")
                return
            what = f"the logged '{name}' per epoch"
        core.found["curves"] = what + (" and the validation loss" if self._val else "")
        row = {"epoch": trainer.current_epoch + 1, "train_loss": value}
        if trainer.current_epoch in self._val:
            row["val_loss"] = self._val[trainer.current_epoch]
        core.history.append(row)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._judge_flow(trainer, pl_module)
        if any(r.get("val_loss") is None for r in self.core.history):  # validation not every epoch: train only
            self.core.history = [{k: v for k, v in r.items() if k != "val_loss"} for r in self.core.history]
        self._report(trainer, self.core.judge_curves(), "after training")

    # ---------------------------------------------------------------- reporting
    def _report(self, trainer: Any, verdicts: list[Any], stage: str) -> None:
        if not verdicts or not trainer.is_global_zero:
            return
        self.core.report(verdicts, log, stage)
        counts = self.core.counts()
        for logger in trainer.loggers:
            logger.log_metrics(counts, step=trainer.global_step)


def _training_step(layout: Layout) -> Callable[[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, ...]], Any]:
    """The doctor's train_step(model, optimizer, batch) made of the module's own training_step: zero_grad,
    loss = training_step(batch, i) (i counting the calls from 0), backward, step (Lightning's automatic
    optimization)."""

    calls = [0]

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> Any:
        module = model.host if isinstance(model, HostModel) else model
        optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*self\.log\(\)", category=UserWarning)
            # batch_idx counts the calls, as an epoch's batches count: a step that skips some batches by their
            # index (returns None) skips as many here, rather than all of them when every call says 0
            out = module.training_step(layout.rebuild(batch), calls[0])
            calls[0] += 1
        loss = out.get("loss") if isinstance(out, Mapping) else out
        if loss is None:  # Lightning skips the batch when training_step returns None
            return None
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


__all__ = ["Doctor"]
