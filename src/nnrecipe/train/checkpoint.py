"""T8: checkpoints as safetensors + JSON, written atomically.

A state tree (nested dicts, lists, tuples, numbers, strings and tensors: a model's, an optimizer's, a
scheduler's state_dict, RNG states, history) is split into its tensors, stored as safetensors, and its
skeleton, stored as JSON in the file's metadata. Loading never unpickles, so a checkpoint can be shared.
Writes go to a temporary file that is fsynced and then renamed over the old one (timm's pattern;
Lightning #19970 is the corrupted-checkpoint report this answers): a crash leaves the previous file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import CheckpointError
from ..io import atomic_write

FORMAT = "nnrecipe-checkpoint"
FORMAT_VERSION = 1


def _flatten(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # clone: safetensors refuses tensors that share storage (tied weights, views)
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        # key-value pairs keep int keys ints (an optimizer's state is keyed by parameter index)
        return {"__dict__": [[k, _flatten(v, f"{path}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{path}[{i}]", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{path}[{i}]", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at '{path}' in a checkpoint: only tensors, "
                    "numbers, strings, lists, tuples and dicts are stored (no pickles)")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
    return obj


def dumps_state(state: dict[str, Any]) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(state, "state", tensors)
    meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "tree": json.dumps(tree)}
    return st_save(tensors, metadata=meta)


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(path, dumps_state(state))


def loads_state(data: bytes) -> dict[str, Any]:
    """The state that dumps_state serialized (an in-memory checkpoint)."""
    tensors = st_load(data)
    header_len = int.from_bytes(data[:8], "little")  # the safetensors layout: u64 header size, JSON header
    meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
    return _unflatten(json.loads(meta["tree"]), tensors)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' does not exist") from None
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({e}); it is not an nnrecipe checkpoint "
                              "or it is damaged: resume from another checkpoint or start afresh") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is a safetensors file but not an nnrecipe checkpoint")
    if int(meta.get("version", -1)) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint '{path}' has format version {meta['version']}, newer than this "
                              f"nnrecipe reads ({FORMAT_VERSION}): upgrade nnrecipe")
    return _unflatten(json.loads(meta["tree"]), tensors)
