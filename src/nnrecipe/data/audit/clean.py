"""D16 (Karpathy's recipe, "Filter / Sort / Clean"): a cleaned copy of a table, by the audit's findings, and a log of
every row removed and why. The input is only read; the copy and the log are written atomically."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ...config import DataConfig, refuse_image_settings
from ...errors import ConfigError
from ...io import temp_path
from ..load import PARQUET, read_table, row_labels
from .run import Audit, audit_frame

log = logging.getLogger("nnrecipe")

# The rules in the order they are applied: a row is logged under the first rule that removes it.
RULES = ("corrupted", "duplicates", "conflicts", "suspicious")


@dataclass
class Cleaned:
    out: Path
    log: Path
    kept: int
    removed: pd.DataFrame  # row (0-based data row), where (the line in the file), rule, detail
    audit: Audit


def clean(data: str | os.PathLike | pd.DataFrame, target: str, out: str | os.PathLike, *,
          log_file: str | os.PathLike | None = None, data_config: DataConfig | None = None, seed: int = 0,
          corrupted: bool = True, duplicates: bool = True, conflicts: bool = True, suspicious: bool = False,
          noise_rows: int | None = None) -> Cleaned:
    """Write `data` less the rows the audit finds to `out` (CSV, or Parquet by its extension) and a CSV log
    of the removed rows to `log_file` (default: beside `out`, '<name>.removed.csv'). Rules, each
    switchable: `corrupted` rows (no target, empty, infinite or unparsable numeric cells), exact
    `duplicates` (the first copy stays), `conflicts` (every row of a group with identical inputs under
    different labels) and, off by default, the label-noise `suspicious` rows (on a big table only the
    sampled rows are judged). `data` is never modified; `out` may not be `data`."""
    if data_config is not None:
        refuse_image_settings(data_config, None, "the DataFrame" if isinstance(data, pd.DataFrame) else f"'{data}'")
    out = Path(out)
    log_path = Path(log_file) if log_file is not None else out.with_name(f"{out.stem}.removed.csv")
    src = None if isinstance(data, pd.DataFrame) else Path(data)
    for name, p in (("out", out), ("log", log_path)):
        if src is not None and (p.resolve() == src.resolve() or (p.exists() and os.path.samefile(p, src))):
            raise ConfigError(f"--{name} {p} is the input file; clean never overwrites its input: write the "
                              "cleaned copy to another file")
        if not p.parent.is_dir():
            raise ConfigError(f"--{name} {p}: folder '{p.parent}' does not exist; create it, or write elsewhere")
    if log_path.resolve() == out.resolve():
        raise ConfigError(f"--log {log_path} is the cleaned copy's file too; give the log another name")
    if out.suffix.lower() not in (".csv", *PARQUET):
        raise ConfigError(f"--out {out}: write the cleaned copy as .csv or .parquet (the extension decides)")
    cfg = dataclasses.replace(data_config or DataConfig(), target=target)
    df = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_table(src)  # type: ignore[arg-type]
    kwargs = {"noise_rows": noise_rows} if noise_rows is not None else {}
    found = audit_frame(df, cfg, seed, path=src, **kwargs)
    chosen = {"corrupted": corrupted, "duplicates": duplicates, "conflicts": conflicts, "suspicious": suspicious}
    why: dict[int, tuple[str, str]] = {}
    for rule in RULES:
        if chosen[rule]:
            for row, detail in sorted(found.rows[rule].items()):
                why.setdefault(row, (rule, detail))
    rows = sorted(why)
    removed = pd.DataFrame({"row": rows, "where": row_labels(src, rows),
                            "rule": [why[r][0] for r in rows], "detail": [why[r][1] for r in rows]})
    kept = df.drop(index=rows)
    _write(kept, out)
    _write(removed, log_path)
    counts = removed["rule"].value_counts().to_dict()
    log.info("kept %d of %d rows in %s; removed %s (log: %s)", len(kept), len(df), out,
             ", ".join(f"{counts.get(r, 0)} {r}" for r in RULES if chosen[r]) or "nothing", log_path)
    return Cleaned(out, log_path, len(kept), removed, found)


def _write(df: pd.DataFrame, path: Path) -> None:
    """CSV or Parquet by the extension, through a temporary file and a rename: no half-written table."""
    tmp = temp_path(path)
    try:
        if path.suffix.lower() in PARQUET:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
