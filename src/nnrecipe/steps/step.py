"""The training step, open to the user (T2: a custom training loop without writing the loop).

A `Step` computes one batch's training loss: `loss(model, batch) -> (loss, outputs)`. The Trainer calls
it inside its autocast and does the rest (backward, loss scaling, accumulation, clipping, the optimizer
step), so a step that only changes the loss keeps every safeguard. Override `loss` to add a term (an L2
penalty on the outputs), to read a teacher (distillation) or to perturb the inputs (adversarial
training); override `target` to train toward something other than the batch's target (Reconstruction).
Validation uses the plain loss of `forward` against `target` (`compute_loss`), with no extra term.

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
    weights when it has them. `loss_fn`: any callable (outputs, target) -> loss; None lets the Trainer
    give its own."""

    def __init__(self, loss_fn: LossFn | None = None):
        self.loss_fn = loss_fn
        self._per_row: nn.Module | None = None

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """The model's outputs for the batch's inputs."""
        return call_model(model, batch.inputs)

    def target(self, batch: Batch) -> torch.Tensor | None:
        """What the loss compares the outputs with: the batch's target."""
        return batch.target

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, Any]:
        """The training loss of one batch, and the model's outputs (for the metrics)."""
        outputs = self.forward(model, batch)
        return self.compute_loss(outputs, self.target(batch), batch.weight), outputs

    def compute_loss(self, outputs: Any, target: torch.Tensor | None, weight: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """The loss of `outputs` against `target`, in float32 whatever the autocast (T9). A dict output that
        carries its own "loss" (a Hugging Face model given its labels) is taken when no loss_fn is set."""
        if self.loss_fn is None:
            if isinstance(outputs, dict) and "loss" in outputs:
                return outputs["loss"]
            raise ConfigError("the step has no loss function: pass loss_fn=... to the Trainer or to the step")
        if target is None:
            raise ConfigError("the batch has no target: give (inputs..., target) or a dict with a 'target' key, "
                              "or a step that needs none (nnrecipe.steps.Reconstruction for an autoencoder)")
        out = main_output(outputs).float()
        if weight is None:
            return self.loss_fn(out, target)
        per_row = self._row_losses(out, target)
        weight = weight.to(per_row.dtype).reshape(-1)
        return (per_row * weight).sum() / weight.sum().clamp_min(torch.finfo(per_row.dtype).tiny)

    def _row_losses(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """One loss per row, for sample weights: the loss module with reduction='none', each row's mean."""
        if self._per_row is None:
            if not isinstance(self.loss_fn, nn.Module) or not hasattr(self.loss_fn, "reduction"):
                raise ConfigError("sample weights need a loss that can give one loss per row: a torch loss module "
                                  "(nn.CrossEntropyLoss, nn.MSELoss, ...), or a step that weighs the rows itself")
            self._per_row = copy.copy(self.loss_fn)
            self._per_row.reduction = "none"
        losses = self._per_row(out, target)
        return losses.reshape(len(losses), -1).mean(1) if losses.ndim > 1 else losses

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any) -> torch.Tensor:
        """A whole training step on `batch` (the doctor's train_step signature); returns the loss."""
        optimizer.zero_grad(set_to_none=True)
        loss, _ = self.loss(model, as_batch(batch))
        loss.backward()
        optimizer.step()
        return loss.detach()


class Reconstruction(Step):
    """M13 (an autoencoder on unlabelled data): the outputs are trained toward the inputs, so a batch needs
    no target. The target is the first input (or the only one of a dict); MSE unless a loss is given."""

    def __init__(self, loss_fn: LossFn | None = None):
        super().__init__(loss_fn if loss_fn is not None else nn.MSELoss())

    def target(self, batch: Batch) -> torch.Tensor:
        inputs = batch.inputs
        if isinstance(inputs, dict):
            if len(inputs) != 1:
                raise ConfigError(f"Reconstruction rebuilds one input; the batch has {', '.join(map(repr, inputs))}: "
                                  "subclass it and override target()")
            return next(iter(inputs.values()))
        return inputs[0]
