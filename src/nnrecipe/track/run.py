"""R4: the run folder, the record a run leaves: config, metrics, verdicts, model, summary."""

from __future__ import annotations

import os
import re
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
    staged = None
    if config is not None:
        staged = temp_path(base)
        staged.mkdir(parents=True)
        write_json(staged / "config.json", config)
    path, k = base, 2
    while True:
        try:
            if staged is None:
                path.mkdir(parents=True)
            elif os.path.lexists(path):  # rename would replace an empty folder of that name: never claim one
                raise FileExistsError(path)
            else:
                os.rename(staged, path)  # a folder of that name made meanwhile, with files in it: refused
            return path
        except FileExistsError:
            path, k = base.with_name(f"{base.name}-{k}"), k + 1
        except OSError as e:  # ENOTEMPTY: another run took the name between the check and the rename
            if not path.exists():
                raise
            path, k = base.with_name(f"{base.name}-{k}"), k + 1
