"""nnrecipe's doctor as a Hugging Face TrainerCallback (issue 23; docs/integrations.md):

    from nnrecipe.integrations.transformers import Doctor
    trainer = Trainer(model, args, train_dataset=..., callbacks=[Doctor()])

Before training (on_train_begin: the model, the optimizer and the train dataloader arrive as kwargs) the
doctor runs on copies with the run's own step: the Trainer's compute_loss (found on the call stack: the
Trainer that called on_train_begin), else the model's forward with labels (outputs.loss). During training
C7 watches a few chosen steps of the real run; C8 judges the losses the Trainer logged (state.log_history)
when the run's last log comes. Verdicts go to transformers' logging as text lines and their counts into the
Trainer's logs (doctor/failed, doctor/warned, ...); all stay on the callback as `.diagnosis`."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..checks.setup import ROWS
from .core import C7_STEPS, NO_LOSS, DoctorCore, Findings, HostModel, Layout, require, torch_optimizer

transformers = require("transformers", "text")
from transformers import TrainerCallback  # noqa: E402  (after the check that names the extra)
from transformers.modeling_outputs import SequenceClassifierOutput  # noqa: E402

log = transformers.utils.logging.get_logger("transformers.integrations.nnrecipe_doctor")


class Doctor(Findings, TrainerCallback):
    """Run nnrecipe's doctor in a Hugging Face Trainer run. `checks`: the checks by name as nnrecipe.doctor
    takes them (default all): the chosen ones but C8 run before training, C7 also on chosen steps of the
    run, C8 on the logged curves. `stop_on_fail=True`: nnrecipe's TrainingError before training when a
    check fails, control.should_training_stop when C7 fails during it (default: warn and go on).
    `loss_fn(logits, labels)`: the loss the checks judge the outputs with (default: the Trainer's
    compute_loss_func, else the loss the model computes, read from its config: cross-entropy for
    single-label classification, MSE for one output, BCE-with-logits for multi-label). `forward(model,
    inputs) -> outputs`: how the checks call the model (default model(**inputs)). `c7_steps`: the optimizer
    steps C7 observes."""

    def __init__(self, checks: Sequence[str] | None = None, *, stop_on_fail: bool = False, loss_fn: Any = None,
                 forward: Callable[[nn.Module, Any], Any] | None = None, seed: int = 0, rows: int = ROWS,
                 c7_steps: Sequence[int] = C7_STEPS) -> None:
        self.core = DoctorCore(checks=checks, stop_on_fail=stop_on_fail, loss_fn=loss_fn, forward=forward,
                               seed=seed, rows=rows, c7_steps=c7_steps)
        self._pending = False  # verdicts not yet counted into the Trainer's logs
        self._optimizer: Any = None

    # ---------------------------------------------------------------- before training
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       train_dataloader: Any = None, **kwargs: Any) -> None:
        core = self.core
        core.reset()  # a second train() with the same callback judges its own run
        self._optimizer, self._pending = optimizer, False
        verdicts = self._before(model, optimizer, train_dataloader, _calling_trainer())
        self._report(state, verdicts, "before training")
        if core.stop_on_fail and any(v.status in ("fail", "error") for v in verdicts):
            raise core.error(verdicts, "before training")

    def _before(self, model: Any, optimizer: Any, loader: Any, trainer: Any) -> list[Any]:
        core = self.core
        if model is None or optimizer is None or loader is None:
            return [core.skip_before("the Trainer passed no model, optimizer or train_dataloader to on_train_begin")]
        sampled = core.sample(loader, model.forward, next((p.device for p in model.parameters()), None))
        if not isinstance(sampled, tuple):
            return [sampled]
        layout, data = sampled
        loss_fn, where = self._loss(model, trainer, layout, data)
        core.found.update(loss_fn=where, optimizer=type(torch_optimizer(optimizer)).__name__, rows=len(data[-1]),
                          train_step="the Trainer's compute_loss(model, inputs), then backward and the optimizer's "
                          "step" if trainer is not None else "the model's forward with labels (outputs.loss), then "
                          "backward and the optimizer's step")
        if loss_fn is None:
            core.found["skipped"] = NO_LOSS
        log.info("nnrecipe doctor: found %s", core.found)
        return list(core.before(HostModel(model, layout.keys, core.forward), optimizer, data,
                                _train_step(layout, trainer), loss_fn))

    def _loss(self, model: nn.Module, trainer: Any, layout: Layout, data: tuple[torch.Tensor, ...]) -> tuple[Any, str]:
        if self.core.loss_fn is not None:
            return self.core.loss_fn, "loss_fn= given to Doctor"
        if trainer is not None and getattr(trainer, "compute_loss_func", None) is not None:
            func = trainer.compute_loss_func
            return (lambda logits, labels: func(SequenceClassifierOutput(logits=logits), labels)), \
                "the Trainer's compute_loss_func, on the logits"
        if trainer is not None and type(trainer).compute_loss is not transformers.Trainer.compute_loss:
            return None, ("none: the Trainer's compute_loss is overridden (the checks' steps use it; pass "
                          "Doctor(loss_fn=...) for the checks that compare outputs with targets)")
        smoother = getattr(trainer, "label_smoother", None) if trainer is not None else None
        if smoother is not None:
            # transformers' LabelSmoother is torch's label smoothing: (1 - e) * NLL + e * the mean over the classes
            # of -log p, -100 ignored: C1 then fits it to its floor, not to 0 (a healthy run failed C1 before)
            loss, _ = _model_loss(model, layout, data)
            if not isinstance(loss, nn.CrossEntropyLoss):
                return None, "none: the Trainer smooths the labels (pass Doctor(loss_fn=...))"
            eps = float(getattr(smoother, "epsilon", 0.0))
            return nn.CrossEntropyLoss(label_smoothing=eps), \
                f"the Trainer's label smoothing of the model's cross-entropy (CrossEntropyLoss(label_smoothing={eps:g}))"
        return _model_loss(model, layout, data)

    # ---------------------------------------------------------------- during: C7 on chosen steps
    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                      **kwargs: Any) -> None:
        if model is not None and optimizer is not None:
            self.core.step_begins(state.global_step + 1, model, optimizer)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                    **kwargs: Any) -> None:
        if self.core.step_ends():
            self._judge_flow(state, control, model, optimizer)

    def _judge_flow(self, state: Any, control: Any, model: Any, optimizer: Any) -> None:
        if model is None or optimizer is None:
            return
        verdicts = self.core.judge_flow(model, optimizer)
        self._report(state, verdicts, "during training")
        if self.core.stop_on_fail and any(v.status in ("fail", "error") for v in verdicts):
            log.warning("nnrecipe doctor: stopping the run (stop_on_fail=True): C7 failed")
            control.should_training_stop = True

    # ---------------------------------------------------------------- logs and the curves
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, model: Any = None,
               **kwargs: Any) -> None:
        if logs is None:
            return
        if "train_runtime" in logs:  # the run's last log: every epoch's losses are in state.log_history
            self._judge_flow(state, control, model, self._optimizer)
            self.core.history = history_of(state.log_history)
            if not self.core.history:
                self.core.found["curves"] = ("no training loss was logged per epoch: log it each epoch "
                                             "(logging_strategy='epoch') or more often (logging_steps)")
            self._report(state, self.core.judge_curves(), "after training")
        if self._pending:
            logs.update(self.core.counts())
            self._pending = False

    def _report(self, state: Any, verdicts: list[Any], stage: str) -> None:
        if verdicts:
            self._pending = True
            if state is None or state.is_world_process_zero:
                self.core.report(verdicts, log, stage)


def history_of(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's log entries as epoch rows {epoch, train_loss, val_loss}: the training 'loss' entries
    of each epoch averaged (logged at fractional epochs, 0.5 belongs to epoch 1), 'eval_loss' the same."""
    rows: dict[int, dict[str, list[float]]] = {}
    for entry in log_history:
        if "epoch" not in entry or "train_runtime" in entry:
            continue
        epoch = max(math.ceil(float(entry["epoch"]) - 1e-9), 1)
        for key, name in (("loss", "train_loss"), ("eval_loss", "val_loss")):
            if isinstance(entry.get(key), (int, float)):
                rows.setdefault(epoch, {}).setdefault(name, []).append(float(entry[key]))
    out = []
    for epoch in sorted(rows):
        row: dict[str, Any] = {"epoch": epoch, **{k: sum(v) / len(v) for k, v in rows[epoch].items()}}
        if "train_loss" in row:
            out.append(row)
    if any("val_loss" not in r for r in out):  # evaluation not every epoch: the training curve alone
        out = [{k: v for k, v in r.items() if k != "val_loss"} for r in out]
    return out


def _calling_trainer() -> Any:
    """The transformers Trainer whose loop called on_train_begin: its frame is on the call stack (the
    callbacks are not handed the Trainer)."""
    frame = inspect.currentframe()
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, transformers.Trainer):
            return candidate
        frame = frame.f_back
    return None


def _model_loss(model: nn.Module, layout: Layout, data: tuple[torch.Tensor, ...]) -> tuple[Any, str]:
    """The loss a *ForSequenceClassification model computes from its config (transformers' own rule in
    its forward: problem_type, else regression for one label, cross-entropy for integer labels,
    BCE-with-logits otherwise), when its logits are (rows, num_labels)."""
    config = getattr(model, "config", None)
    labels = data[-1]
    num = getattr(config, "num_labels", None)
    kind = getattr(config, "problem_type", None)
    if num is None or labels.ndim > 2 or (labels.ndim == 2 and kind != "multi_label_classification"):
        return None, "none: the model's loss is not a classification or regression head's (pass Doctor(loss_fn=...))"
    if kind is None:
        kind = "regression" if num == 1 else "single_label_classification" if not torch.is_floating_point(labels) \
            else "multi_label_classification"
    loss = {"regression": nn.MSELoss(), "single_label_classification": nn.CrossEntropyLoss(),
            "multi_label_classification": nn.BCEWithLogitsLoss()}[kind]
    return loss, f"the model's own loss for {kind} ({type(loss).__name__}, read from its config)"


def _train_step(layout: Layout, trainer: Any) -> Callable[[nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, ...]], Any]:
    """The doctor's train_step made of the run's own loss: zero_grad, the Trainer's compute_loss (or the
    model's outputs.loss), backward, step."""

    def step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> Any:
        host = model.host if isinstance(model, HostModel) else model
        inputs = layout.rebuild(batch)
        optimizer.zero_grad(set_to_none=True)
        if trainer is not None:
            loss = trainer.compute_loss(host, dict(inputs))
        else:
            loss = host(**inputs)["loss"]
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


__all__ = ["Doctor", "history_of"]
