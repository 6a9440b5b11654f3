"""The training step, open to the user (T2: a custom training loop without writing the loop).

A `Step` computes one batch's training loss: `loss(model, batch) -> (loss, outputs)`. The Trainer calls
it inside its autocast and does the rest (backward, loss scaling, accumulation, clipping, the optimizer
step), so a step that only changes the loss keeps every safeguard. Override `loss` to add a term (an L2
penalty on the outputs), to read a teacher (distillation) or to perturb the inputs (adversarial
training); override `target` to train toward something other than the batch's target (Reconstruction).
Validation uses the plain loss of `forward` against `target` (`compute_loss`), with no extra term.
A step's loss is its own `loss_fn`, else the Trainer's (or the doctor's) `loss_fn`, else its default;
the Trainer binds it to a copy of the step (`bind_step`), so the caller's step is never changed.

Called as `step(model, optimizer, batch)` a Step does a whole step (zero_grad, loss, backward, step) and
returns the loss: the signature of the doctor's `train_step`, so one step object serves both. A step with
state across batches (a teacher's temperature schedule, an adversary's statistics) defines
state_dict()/load_state_dict(); the Trainer saves it in its checkpoints, as it does a callback's.

The Keras 3 torch trainer (`train_step(data)`) and skorch (`train_step_single`, `get_loss`) are the
models: one overridable method, and the loop keeps its callbacks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .batch import Batch, as_batch, call_model, main_output

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Step:
    """The supervised step: `loss_fn(main_output(model(inputs)), target)`, weighted by the batch's sample
    weights when it has them. `loss_fn`: any callable (outputs, target) -> loss; None takes the Trainer's."""

    default_loss: Callable[[], LossFn] | None = None  # the loss when neither the step nor the Trainer has one

    def __init__(self, loss_fn: LossFn | None = None):
        self.loss_fn = loss_fn
        self._per_row: nn.Module | None = None

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """The model's outputs for the batch's inputs."""
        return call_model(model, batch.inputs)

    def target(self, batch: Batch) -> torch.Tensor | None:
        """What the loss compares the outputs with: the batch's target."""
        return batch.target

    def transform(self, batch: Batch) -> Batch:
        """The training batch as this step trains on it (augmented, say: data/image/augment.Augmented);
        `loss` calls it once per batch, and a step built on another (distillation, adversarial training)
        calls its base's. Validation and prediction never see it."""
        return batch

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        """The training loss of one batch (after `transform`), and the model's outputs (for the metrics)."""
        return self.supervised(model, self.transform(batch))

    def supervised(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        """The supervised loss of the batch as it is, and the model's outputs (see `trained`)."""
        trained, k, outputs = self.trained(model, batch)
        weight = None if batch.weight is None else batch.weight.reshape(-1)
        return self.compute_loss(trained, per_member(self.target(batch), k), per_member(weight, k)), outputs

    def trained(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int, Any]:
        """What the loss reads, k rows for each row of the batch, and the model's outputs. A model made of
        members trained as separate models (TabM: `member_outputs` -> (N, k, out)) gives each member's
        predictions, each member against the whole batch (Gorishniy et al. 2025: trained on the mean
        prediction instead, the members co-adapt and the ensemble's gain is lost), and as outputs the mean
        prediction, as its forward gives it; any other model its main output, k = 1. `per_member` repeats
        a batch's per-row tensors (targets, weights, a teacher's outputs) to match."""
        members = getattr(model, "member_outputs", None)  # with combine(): (N, k, out) -> (N, out)
        if members is not None and type(self).forward is Step.forward and not isinstance(batch.inputs, dict):
            outs = members(*batch.inputs)
            n, k = outs.shape[:2]
            return outs.reshape(n * k, *outs.shape[2:]), k, model.combine(outs.detach())
        outputs = self.forward(model, batch)
        return main_output(outputs), 1, outputs

    def compute_loss(self, outputs: Any, target: torch.Tensor | None, weight: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """The loss of `outputs` against `target`, in float32 and outside any autocast (T9: the loss and
        its reduction in full precision, whatever precision the forward pass ran in)."""
        if self.loss_fn is None:
            raise ConfigError("the step has no loss function: pass loss_fn=... to the Trainer or to the step")
        if target is None:
            raise ConfigError("the batch has no target: give (inputs..., target) or a dict with a 'target' key, "
                              "or a step that needs none (nnrecipe.steps.Reconstruction for an autoencoder)")
        out = main_output(outputs).float()
        if torch.is_autocast_enabled(out.device.type):
            with torch.autocast(out.device.type, enabled=False):
                return self._loss(out, target, weight)
        return self._loss(out, target, weight)

    def _loss(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if weight is None:
            return self.loss_fn(out, target)  # type: ignore[misc]
        losses, counts = self._row_losses(out, target)
        weight = weight.to(losses.dtype).reshape(-1)
        if weight.numel() != losses.numel():
            raise ConfigError(f"the batch's sample weights hold {weight.numel()} values for {losses.numel()} rows; "
                              "give one weight per row")
        # the weighted mean the loss itself would take: a class-weighted cross-entropy divides by the class
        # weights of the rows, and leaves out the rows of its ignore_index
        return (losses * weight).sum() / (counts * weight).sum().clamp_min(torch.finfo(losses.dtype).tiny)

    def _row_losses(self, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One loss per row (the loss module with reduction='none', each row's mean) and what each row counts
        for in the loss's own mean: its class weight, 0 for an ignored row, else 1."""
        if self._per_row is None:
            if not isinstance(self.loss_fn, nn.Module) or not hasattr(self.loss_fn, "reduction"):
                raise ConfigError("sample weights need a loss that can give one loss per row: a torch loss module "
                                  "(nn.CrossEntropyLoss, nn.MSELoss, ...), or a step that weighs the rows itself")
            self._per_row = copy.copy(self.loss_fn)
            self._per_row.reduction = "none"
        losses = self._per_row(out, target)
        losses = losses.reshape(len(losses), -1).mean(1) if losses.ndim > 1 else losses
        counts = torch.ones_like(losses)
        if isinstance(self.loss_fn, nn.CrossEntropyLoss | nn.NLLLoss) and not torch.is_floating_point(target):
            y = target.reshape(-1)
            kept = y != self.loss_fn.ignore_index
            if self.loss_fn.weight is not None:
                counts = self.loss_fn.weight.to(losses.dtype)[y.clamp_min(0)]
            counts = counts * kept
        return losses, counts

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any) -> torch.Tensor:
        """A whole training step on `batch` (the doctor's train_step signature); returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        loss, _ = self.loss(model, as_batch(batch))
        loss.backward()
        optimizer.step()
        return loss.detach()


def per_member(rows: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """A batch's per-row tensor repeated for each of k members, in the order Step.trained gives them."""
    return rows if rows is None or k == 1 else rows.repeat_interleave(k, dim=0)


def bind_step(step: Step | None, loss_fn: LossFn | None, device: torch.device | None = None) -> Step:
    """The step a Trainer (or the doctor) trains with: `step` (default: a supervised Step) with its loss
    resolved: the step's own, else `loss_fn`, else the step's default. When the loss is filled in, the
    step is a shallow copy: the caller's object is never changed. A step with a loss of its own and a
    different `loss_fn` beside it is refused (one of them would be ignored)."""
    step = step if step is not None else Step()
    own = step.loss_fn
    if own is not None and loss_fn is not None and not _same_loss(own, loss_fn):
        raise ConfigError(f"the step brings its own loss ({type(own).__name__}) and loss_fn={type(loss_fn).__name__} "
                          "was given too: give the loss to one of them")
    chosen = own if own is not None else loss_fn if loss_fn is not None else \
        (step.default_loss() if step.default_loss is not None else None)
    if chosen is not own:
        step = copy.copy(step)
        step.loss_fn, step._per_row = chosen, None
    if device is not None and isinstance(chosen, nn.Module):
        chosen.to(device)  # its buffers (class weights) beside the model's outputs
    return step


def _same_loss(a: LossFn, b: LossFn) -> bool:
    """The same loss: one object, or two modules of one class with the same settings and buffers (two
    nn.CrossEntropyLoss() given to the step and to the Trainer)."""
    if a is b:
        return True
    if type(a) is not type(b) or not isinstance(a, nn.Module):
        return False
    simple = (int, float, str, bool, type(None))
    settings = [{k: v for k, v in vars(m).items() if isinstance(v, simple)} for m in (a, b)]
    buffers = [dict(m.named_buffers()) for m in (a, b)]  # type: ignore[union-attr]
    return settings[0] == settings[1] and buffers[0].keys() == buffers[1].keys() and all(
        torch.equal(buffers[0][k].cpu(), buffers[1][k].cpu()) for k in buffers[0])


class Built(Step):
    """A step built on another (`base`, e.g. the image augmentation): the base transforms each training
    batch and keeps its state (checkpointed with the wrapper's); the wrapper's `loss` says what is trained
    on that batch. Without a base, a plain supervised step."""

    def __init__(self, base: Step | None = None, loss_fn: LossFn | None = None):
        super().__init__(loss_fn)
        self.base = base

    def transform(self, batch: Batch) -> Batch:
        return batch if self.base is None else self.base.transform(batch)

    def state_dict(self) -> dict[str, Any]:
        return self.base.state_dict() if self.base is not None and hasattr(self.base, "state_dict") else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.base is not None and hasattr(self.base, "load_state_dict"):
            self.base.load_state_dict(state)


class Reconstruction(Step):
    """M13 (an autoencoder on unlabelled data): the outputs are trained toward the inputs, so a batch needs
    no target. The target is the first input (or the only one of a dict); MSE unless a loss is given (to
    the step, or to the Trainer)."""

    default_loss = nn.MSELoss

    def target(self, batch: Batch) -> torch.Tensor:
        inputs = batch.inputs
        if isinstance(inputs, dict):
            if len(inputs) != 1:
                raise ConfigError(f"Reconstruction rebuilds one input; the batch has {', '.join(map(repr, inputs))}: "
                                  "subclass it and override target()")
            return next(iter(inputs.values()))
        return inputs[0]
