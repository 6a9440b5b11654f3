"""The batch contract: what a training step receives, whatever the data looked like.

A batch has inputs, an optional target and optional per-row sample weights:
- a tensor, or a tuple/list of one tensor: inputs only (no target: an autoencoder's batch);
- a tuple/list of two tensors or more: the inputs, then the target last, `(x, y)` or `(x1, x2, y)`;
- a dict of tensors: the target under one of TARGET_KEYS ("target", "labels", "y", ...), the sample weights
  under one of WEIGHT_KEYS ("sample_weight", "weight"), every other key an input passed to the model by
  name (`model(**inputs)`, the way Hugging Face models take their batches);
- a Batch, as it is.
Model outputs may be a tensor, a tuple (the first is the prediction) or a dict (its "logits", "output" or
"prediction", or its only tensor): `main_output` picks what the loss and the metrics read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from ..errors import ConfigError

TARGET_KEYS = ("target", "targets", "labels", "label", "y")
WEIGHT_KEYS = ("sample_weight", "sample_weights", "weight", "weights")
OUTPUT_KEYS = ("logits", "output", "outputs", "prediction", "predictions")

Inputs = Any  # tuple[torch.Tensor, ...] | dict[str, torch.Tensor]


class Batch(NamedTuple):
    inputs: Inputs  # a tuple of tensors (positional) or a dict of tensors (by name)
    target: torch.Tensor | None = None
    weight: torch.Tensor | None = None  # (N,) per-row sample weights

    @property
    def rows(self) -> int:
        if self.target is not None:
            return len(self.target)
        first = next(iter(self.inputs.values())) if isinstance(self.inputs, Mapping) else self.inputs[0]
        return len(first)


def as_batch(raw: Any) -> Batch:
    """A Batch from what a batcher or a DataLoader yields (see the module's docstring)."""
    if type(raw) is tuple and len(raw) > 1:  # the batchers' own batches: checked first, on every step
        return Batch(raw[:-1], raw[-1])
    if isinstance(raw, Batch):
        return raw
    if isinstance(raw, torch.Tensor):
        return Batch((raw,))
    if isinstance(raw, Mapping):
        return _from_dict(raw)
    if isinstance(raw, (tuple, list)):
        if len(raw) == 0:
            raise ConfigError("a batch is an empty tuple; give (inputs..., target), a tensor or a dict of tensors")
        if len(raw) == 1:
            return Batch(tuple(raw))
        return Batch(tuple(raw[:-1]), raw[-1])
    raise ConfigError(f"a batch is a {type(raw).__name__}; give a tensor, a tuple (inputs..., target) or a dict "
                      f"of tensors (the target under one of: {', '.join(TARGET_KEYS)})")


def _from_dict(raw: Mapping[str, Any]) -> Batch:
    targets = [k for k in TARGET_KEYS if k in raw]
    weights = [k for k in WEIGHT_KEYS if k in raw]
    if len(targets) > 1 or len(weights) > 1:
        both = targets if len(targets) > 1 else weights
        raise ConfigError(f"a dict batch holds {', '.join(map(repr, both))}: keep one target key and one "
                          f"weight key (the others are taken as the target or the weights)")
    inputs = {k: v for k, v in raw.items() if k not in targets and k not in weights}
    if not inputs:
        raise ConfigError(f"a dict batch holds no input: its keys {', '.join(map(repr, raw))} are all target or "
                          "weight keys")
    return Batch(inputs, raw[targets[0]] if targets else None, raw[weights[0]] if weights else None)


def call_model(model: torch.nn.Module, inputs: Inputs) -> Any:
    """The model on a batch's inputs: positionally, or by name for a dict."""
    if not isinstance(inputs, Mapping):  # a tuple, the common case: an abstract-class check costs a microsecond
        try:
            return model(*inputs)
        except TypeError as e:
            _fits_forward(model, inputs, e)
            raise
        except RuntimeError as e:  # the model's own error (a width that does not fit): say what it was given
            shapes = ", ".join(str(list(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__ for x in inputs)
            e.add_note(f"nnrecipe: the model was called on the batch's inputs of shapes {shapes} (the first dimension "
                       "the rows); check that the data's columns match the model's input size")
            raise
    try:
        return model(**inputs)
    except TypeError as e:  # the dict's keys are not forward's parameters: say which, and the convention
        if "argument" not in str(e):
            raise
        import inspect

        params = ", ".join(inspect.signature(model.forward).parameters)
        raise ConfigError(f"the batch's inputs {', '.join(map(repr, inputs))} do not fit the model's forward({params}) "
                          f"({e}); name the dict's keys after forward's parameters, the target under 'target' and "
                          "the sample weights under 'sample_weight'") from None


def _fits_forward(model: torch.nn.Module, inputs: Any, error: TypeError) -> None:
    """A TypeError from calling the model: when the batch's inputs do not fit forward's signature, say so
    with the batch contract (a triple (x, y, w) is two inputs and a target); the model's own errors pass."""
    import inspect

    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # no signature to read (a builtin's)
        return
    try:
        signature.bind(*inputs)
    except TypeError:
        raise ConfigError(
            f"the batch gives the model {len(inputs)} inputs, which do not fit its forward{signature} ({error}): a "
            "batch tuple is the inputs then the target, (x, y) or (x1, x2, y); sample weights go in a dict, "
            "{'x': X, 'target': y, 'sample_weight': w}") from None


def main_output(outputs: Any) -> torch.Tensor:
    """The tensor the loss and the metrics read from a model's outputs (see the module's docstring)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        for key in OUTPUT_KEYS:
            if key in outputs:
                return outputs[key]
        tensors = [v for v in outputs.values() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return tensors[0]
        raise ConfigError(f"the model returns a dict with keys {', '.join(map(repr, outputs))}: name its prediction "
                          f"one of {', '.join(OUTPUT_KEYS)}, or give a step that reads it (subclass nnrecipe.Step)")
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise ConfigError(f"the model returns a {type(outputs).__name__}; return a tensor, a tuple whose first item is "
                      "the prediction, or a dict of tensors")


def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors moved to `device` inside a tensor, tuple, list or dict (a batch as a DataLoader yields it)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj) if not isinstance(obj, Batch) \
            else Batch(*(to_device(v, device, non_blocking) for v in obj))
    return obj
