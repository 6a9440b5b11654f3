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
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, shorten
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
        # a loss of the caller's own may reshape what it is given, and raises its own errors with its own lines
        if out.shape != target.shape and _torch_loss(self.loss_fn):  # shapes first: no device sync, no lookup
            check_broadcast(self.loss_fn, out, target)
        try:
            return self._weighed(out, target, weight)
        except ConfigError:
            raise
        except (RuntimeError, ValueError, IndexError) as e:
            if not _torch_loss(self.loss_fn) or not _misfit(e):
                raise  # a device, memory or CUDA error is not a matter of shapes and dtypes
            raise ConfigError(loss_misfit(self.loss_fn, out, target, e)) from e

    def _weighed(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
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


CLASS_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss, F.cross_entropy, F.nll_loss)
BINARY_LOSSES = (nn.BCEWithLogitsLoss, nn.BCELoss, F.binary_cross_entropy_with_logits, F.binary_cross_entropy)


def _is(loss_fn: Any, kinds: tuple[Any, ...]) -> bool:
    return any(loss_fn is k or isinstance(k, type) and isinstance(loss_fn, k) for k in kinds)


def _loss_name(loss_fn: Any) -> str:
    return type(loss_fn).__name__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", "the loss")


def _torch_loss(loss_fn: Any) -> bool:
    """A loss of torch's own (a module of torch.nn, or a function of torch.nn.functional): its errors on
    the outputs and targets are about their shapes and dtypes, which the caller can be told how to fix."""
    module = type(loss_fn).__module__ if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__module__", "")
    return str(module).startswith("torch.")


# what torch's losses say when the outputs and targets do not fit them (shapes, dtypes, class indices)
MISFIT_WORDS = ("size", "shape", "dtype", "out of bounds", "expected scalar type", "target tensor", "result type",
                "can't be cast", "same as input", "Expected floating point", "1D target", "0D or 1D")


def _misfit(error: Exception) -> bool:
    said = str(error)
    return not isinstance(error, torch.OutOfMemoryError) and "device" not in said.lower() and \
        any(w.lower() in said.lower() for w in MISFIT_WORDS)


def check_broadcast(loss_fn: Any, out: torch.Tensor, target: torch.Tensor) -> None:
    """Outputs (N, 1) against targets (N,) (or the other way): an elementwise loss broadcasts them to
    (N, N) and trains every output toward the batch's mean, with only torch's UserWarning to say so (the
    doctor's lint names the same fault). Class indices (N,) against (N, C) logits are not a broadcast."""
    if not torch.is_floating_point(target) and target.ndim == out.ndim - 1:
        return
    try:
        shape = torch.broadcast_shapes(out.shape, target.shape)
    except RuntimeError:
        return  # no broadcast at all: the loss itself says what is wrong (loss_misfit)
    if math.prod(shape) > max(out.numel(), target.numel()):
        name = _loss_name(loss_fn)
        fix = (f"y.reshape(-1, 1) (or y[:, None])" if target.ndim == 1 and out.ndim == 2 and out.shape[1] == 1
               else f"out.squeeze(1) in the model" if out.ndim == 1 and target.ndim == 2 else f"y.reshape{tuple(out.shape)}")
        raise ConfigError(f"the model's outputs have shape {list(out.shape)} and the targets {list(target.shape)}: {name} "
                          f"would broadcast them to {list(shape)} and train toward the wrong values; give them one "
                          f"shape: {fix}")


def check_loss_fn(loss_fn: Any) -> None:
    """Refuse a loss_fn that is no loss: a name ('cross_entropy') would fail at the first batch, and a class
    (nn.CrossEntropyLoss) would be built with the outputs as its weight."""
    if loss_fn is None or (callable(loss_fn) and not isinstance(loss_fn, type)):
        return
    what = f"the class {loss_fn.__name__}" if isinstance(loss_fn, type) else f"a {type(loss_fn).__name__}"
    raise ConfigError(f"loss_fn={shorten(repr(loss_fn), 60)} is {what}, not a loss; pass a torch loss "
                      + (f"instance (nn.{loss_fn.__name__}()" if isinstance(loss_fn, type) else
                         "(nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss(), nn.MSELoss()")
                      + ", or a function of (outputs, target)), or None when the step brings its own")


def loss_misfit(loss_fn: Any, out: torch.Tensor, target: torch.Tensor, error: Exception) -> str:
    """What a torch loss's error on these outputs and targets means, and the fix."""
    name = _loss_name(loss_fn)
    said = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
    indices = "class indices (int64, shape (N,), in [0, C-1] for C outputs)"
    if _is(loss_fn, CLASS_LOSSES) and ("out of bounds" in said or "Assertion" in said) and out.ndim >= 2:
        fix = (f"encode the classes as 0..{out.shape[1] - 1}, or give the model one output per class "
               f"(labels span [{int(target.min())}, {int(target.max())}])")
    elif _is(loss_fn, CLASS_LOSSES):
        fix = f"{name} takes {indices} or class probabilities of the outputs' shape: " + (
            "y.squeeze(1).long()" if target.ndim == out.ndim and target.shape[-1] == 1 else "y.long()")
    elif _is(loss_fn, BINARY_LOSSES) and out.ndim == 2 and out.shape[1] > 1 and target.ndim <= 1 \
            and len(target) == len(out):  # one label a row against several outputs: no reshape can pair them
        fix = (f"the model gives {out.shape[1]} outputs a row and the targets one: for one yes/no label give the "
               f"model one output (a last layer with out_features=1); for {out.shape[1]} classes, use "
               "CrossEntropyLoss with class indices y.long()")
    elif _is(loss_fn, BINARY_LOSSES):
        fix = (f"{name} takes float targets of the outputs' shape {list(out.shape)}: "
               + (f"y.float().reshape({tuple(out.shape)})" if target.shape != out.shape else "y.float()"))
    else:
        fix = f"give outputs and targets the shapes and dtypes {name} takes (see its PyTorch docs)"
    return (f"{name} cannot take the model's outputs {list(out.shape)} ({str(out.dtype).removeprefix('torch.')}) "
            f"with the targets {list(target.shape)} ({str(target.dtype).removeprefix('torch.')}): {said}; {fix}")


def describe_loss(loss_fn: Any) -> str | None:
    """The loss as a checkpoint records it, to refuse a resume with another: a module's class with its
    settings and buffers (CrossEntropyLoss(label_smoothing=0.1, weight=[...])), a function's name."""
    if loss_fn is None:
        return None
    if not isinstance(loss_fn, nn.Module):
        return f"{getattr(loss_fn, '__module__', '')}.{getattr(loss_fn, '__qualname__', type(loss_fn).__name__)}"
    settings = {k: v for k, v in sorted(vars(loss_fn).items())
                if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool, type(None)))}
    settings.update({k: [round(float(x), 6) for x in b.reshape(-1)[:64].tolist()]
                     for k, b in loss_fn.named_buffers() if b is not None})
    return f"{type(loss_fn).__name__}({', '.join(f'{k}={v!r}' for k, v in settings.items())})"


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
