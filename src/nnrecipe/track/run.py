"""R4: the run folder, the record a run leaves: config, metrics, verdicts, model, summary."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import temp_path, write_json


def new_run_dir(out: str | Path, name: str, config: Mapping[str, Any] | None = None) -> Path:
    """`out/<YYYYmmdd-HHMMSS>-<name>`, made unique with a suffix when two runs start in one second. With
    `config`, the folder appears with its config.json already in it (made under a temporary name, then
    renamed into place): a run is resumable from the moment its folder exists."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    base = Path(out) / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    staged = _stage(base, config) if config is not None else None
    path, k = base, 2
    try:
        while True:
            try:
                if staged is None:
                    path.mkdir(parents=True)
                elif os.path.lexists(path):  # rename would replace an empty folder of that name: never claim one
                    raise FileExistsError(path)
                else:
                    os.rename(staged, path)  # a folder of that name made meanwhile, with files in it: refused
                    staged = None
                return path
            except FileExistsError:
                path, k = base.with_name(f"{base.name}-{k}"), k + 1
            except OSError:  # ENOTEMPTY: another run took the name between the check and the rename
                if not path.exists():
                    raise
                path, k = base.with_name(f"{base.name}-{k}"), k + 1
    finally:
        if staged is not None:  # an error before the rename: nothing half-made is left
            shutil.rmtree(staged, ignore_errors=True)


def _stage(base: Path, config: Mapping[str, Any]) -> Path:
    """A hidden folder beside the run folder to be, holding its config.json (a suffix when this process
    stages two folders of one name at once)."""
    k = 1
    while True:
        staged = temp_path(base.with_name(base.name + (f"-{k}" if k > 1 else "")))
        try:
            staged.mkdir(parents=True)
            break
        except FileExistsError:
            k += 1
    try:
        write_json(staged / "config.json", config)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged
