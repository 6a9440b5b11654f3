"""R4: the run folder, the record a run leaves: config, metrics, verdicts, model, summary."""

from __future__ import annotations

import re
import time
from pathlib import Path


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
