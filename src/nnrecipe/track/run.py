"""R4: the run folder, the record a run leaves: config, metrics, verdicts, model, summary."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from ..train.checkpoint import atomic_write


def new_run_dir(out: str | Path, name: str) -> Path:
    """`out/<YYYYmmdd-HHMMSS>-<name>`, made unique with a suffix when two runs start in one second."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    path, k = base, 2
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            path, k = base.with_name(f"{base.name}-{k}"), k + 1


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_json_or_none(path: str | Path) -> Any:
    """read_json, or None when the file is missing, unreadable or not JSON."""
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError):
        return None


def _jsonable(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")
