"""Leaf: how nnrecipe writes and reads its files. Every file is written atomically (a temporary file,
fsynced, then renamed over the old one: timm's pattern; Lightning #19970 is the corrupted-checkpoint
report this answers), so a crash at any moment leaves the old file or the new one, never half of one.
Models and tensors are safetensors, everything else JSON: loading never unpickles, never runs code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` to `path` so that a crash at any moment leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # an exception (not a kill) leaves no temp file behind
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def read_json_or_none(path: str | os.PathLike) -> Any:
    """read_json, or None when the file is missing, unreadable or not JSON."""
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def tensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes of `tensors`, each copied to the CPU and made contiguous (safetensors refuses
    tensors that share storage: tied weights, views)."""
    from safetensors.torch import save

    return save({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}, metadata=metadata)


def save_weights(path: str | os.PathLike, module: torch.nn.Module) -> None:
    """A module's state_dict alone, as safetensors, written atomically."""
    atomic_write(path, tensors_bytes(dict(module.state_dict())))


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU. Raises what safetensors raises on a damaged file
    (callers turn it into an error naming the file)."""
    from safetensors.torch import load_file

    return load_file(str(path))
