"""Leaf: how nnrecipe writes and reads its files. Every file is written atomically (a temporary file,
fsynced, then renamed over the old one: timm's pattern; Lightning #19970 is the corrupted-checkpoint
report this answers), so a crash at any moment leaves the old file or the new one, never half of one.
Models and tensors are safetensors, everything else JSON: loading never unpickles, never runs code."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch


# what temp_path names: .NAME.tmp-HOST-PID (older files: .NAME.tmp-PID)
TEMP = re.compile(r"^\..+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
HOST = socket.gethostname()


def temp_path(path: str | os.PathLike) -> Path:
    """Where `path` is written before it is renamed into place: beside it, hidden, named by this machine and
    this process (a folder shared between machines is swept by each of its own files only)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{HOST}-{os.getpid()}")


def sweep_temp(folder: str | os.PathLike) -> list[tuple[Path, int]]:
    """Delete the temp files (and staged folders) a killed writer left under `folder`: those this machine's
    processes wrote and whose process is gone (another machine's live writer keeps its files). A kill
    cannot clean up after itself, so a resume and `nnrecipe runs --clean` do. Returns each removed path
    with its size in bytes."""
    import shutil

    removed = []
    for found in sorted(Path(folder).rglob(".*.tmp-*")):
        m = TEMP.match(found.name)
        if m is None or m["host"] not in (None, HOST) or alive(int(m["pid"])) or not found.exists():
            continue
        size = found.stat().st_size if found.is_file() else sum(f.stat().st_size for f in found.rglob("*") if f.is_file())
        if found.is_dir():
            shutil.rmtree(found, ignore_errors=True)
        else:
            found.unlink(missing_ok=True)
        removed.append((found, size))
    return removed


def alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not yet reaped by its parent, does
    not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


# folders whose files are thrown away when the work ends (a scikit-learn fit without out= trains in a temporary
# folder): nothing there has to survive a power cut, and the two disk syncs of each write were 14% of a small fit
_SCRATCH: ContextVar[tuple[Path, ...]] = ContextVar("nnrecipe_scratch", default=())


@contextmanager
def scratch(folder: str | os.PathLike) -> Iterator[None]:
    """Within this block, files written under `folder` skip the disk syncs (still atomic for a killed process):
    for a folder deleted when the block's work ends."""
    token = _SCRATCH.set((*_SCRATCH.get(), Path(folder).resolve()))
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = True) -> None:
    """Write `data` to `path` so that a crash at any moment leaves either the old file or the new one.
    `durable`: on disk before it returns (fsync); without, the rename is still atomic for a killed process,
    and a file rewritten every epoch (metrics.jsonl) skips two disk syncs a time; a file in a scratch folder
    (above) is never synced."""
    path = Path(path)
    if durable and _SCRATCH.get():
        resolved = path.parent.resolve()
        durable = not any(resolved == root or root in resolved.parents for root in _SCRATCH.get())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # an exception (not a kill) leaves no temp file behind
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def write_output(path: str | os.PathLike, data: bytes | str) -> None:
    """A file the user named (predict --out): atomically when it is a regular file or a new one (through a
    symlink, its target); a device, a pipe or another special file (/dev/stdout, a process substitution) is
    written into as it is: a rename would replace it with a regular file."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    if target.exists() and not target.is_file():
        with open(target, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return
    atomic_write(target, data)


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
