"""`audit(data, target)`: look at the data before training (Karpathy's recipe, "become one with the data"). Every
finding is a Verdict like the doctor's (status, summary, evidence, fix, source), in an `Audit`, the
doctor's Diagnosis with what the audit found row by row (for `nnrecipe clean`) and the plot's data."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ...checks.data_checks import repeats
from ...checks.verdict import Diagnosis
from ...config import DataConfig, ModelConfig, refuse_image_settings
from ...io import write_json
from ..load import read_table
from ..prepare import PreparedTable, _prepare, _written_target
from ..schema import check_target
from ..text.folder import text_folder
from . import features, splits, table, text

AUDIT_VERSION = 1
PLOT = "label_distribution.png"


class Audit(Diagnosis):
    """The audit's findings in the order they ran (a Diagnosis: .table(), .to_dict(), .failed, .seconds);
    `rows`: for each rule of `nnrecipe clean`, the data rows it would remove and why."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.rows: dict[str, dict[int, str]] = {}
        self.info: dict[str, Any] = {}
        self.plot: dict[str, Any] | None = None

    def summary(self) -> str:
        """One screen: a line per finding (with its fix when it did not pass), then the counts."""
        head = (f"audit of {self.info.get('source') or 'the table'}: {self.info.get('rows')} rows, "
                f"{self.info.get('columns')} columns, target '{self.info.get('target')}' ({self.info.get('task')})")
        return "\n".join([head, self.table(), self.counts_line()])

    def _repr_html_(self) -> str:  # Jupyter: what was audited and the findings (report/notebook.py)
        from ...report.notebook import audit_html

        return audit_html(self)

    def to_json(self) -> dict[str, Any]:
        return {"version": AUDIT_VERSION, **self.info, "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "findings": self.to_dict()}

    def save(self, folder: str | os.PathLike) -> Path:
        """audit.json and the D1 plot (label_distribution.png) in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.plot is not None:
            table.save_plot(self.plot, folder / PLOT, str(self.info.get("target")))
            self.info["plot"] = PLOT
        write_json(folder / "audit.json", self.to_json())
        return folder / "audit.json"


def audit(data: str | os.PathLike | pd.DataFrame, target: str, *, data_config: DataConfig | None = None,
          model_config: ModelConfig | None = None, seed: int = 0, test: str | os.PathLike | pd.DataFrame | None = None,
          out: str | os.PathLike | None = None, noise_rows: int = features.NOISE_ROWS) -> Audit:
    """Audit a CSV/Parquet file (read as `train` reads it) or a DataFrame before training: D1 label
    distribution, D2 text lengths, D3 duplicates, corrupted rows, constant and ID-like columns, D8 feature
    scales, D4 conflicting labels and label noise (on a stratified sample of `noise_rows` rows past it),
    leakage (rows shared between the split train makes, or with `test`, a second table; a date column that
    orders the rows, or an ID column whose values are in training and test, under a random split; one
    column that predicts the target), D5 data size against the model's, D15 clusters. `data_config`: the settings
    train would use (the split's fractions, --drop, --categorical ...), `seed` its seed. `out`: a folder
    for audit.json and the D1 plot. Raises DataError/ConfigError naming the input and the fix."""
    data, cfg = text_folder(data, dataclasses.replace(data_config or DataConfig(), target=target))
    refuse_image_settings(cfg, model_config, "the DataFrame" if isinstance(data, pd.DataFrame) else f"'{data}'")
    path = None if isinstance(data, pd.DataFrame) else Path(data)
    df = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_table(path)  # type: ignore[arg-type]
    test_df = None
    if test is not None:
        test_df = (test.reset_index(drop=True) if isinstance(test, pd.DataFrame) else read_table(test),
                   "the test table" if isinstance(test, pd.DataFrame) else f"file '{test}'")
    result = audit_frame(df, cfg, seed, path=path, model_config=model_config, test=test_df, noise_rows=noise_rows)
    if out is not None:
        result.save(out)
    return result


def audit_frame(df: pd.DataFrame, cfg: DataConfig, seed: int, *, path: Path | None = None,
                prepared: PreparedTable | None = None, model_config: ModelConfig | None = None,
                params: tuple[int, list[int]] | None = None, test: tuple[pd.DataFrame, str] | None = None,
                noise_rows: int = features.NOISE_ROWS, batch_size: int | None = None) -> Audit:
    """The audit of a table already read (`df`, its rows under a RangeIndex). `prepared`: train's own
    preparation of it, when the caller has one (train_table), else it is prepared here with the cells
    train would refuse emptied; `params`: (parameter count, hidden widths) of the model train builds;
    `batch_size`: the run's (text padding shares), else the default model's rule."""
    result = Audit()

    def clock(name: str) -> Any:
        return _timed(result, name)

    y_raw = check_target(df, cfg.target, path)
    y_missing = (y_raw.isna().to_numpy() if y_raw.ndim == 1 else y_raw.isna().any(axis=1).to_numpy())
    with clock("read_cells"):
        cells = table.read_cells(df, cfg)
    with clock("prepare"):
        prep = prepared if prepared is not None else _prepare(cells.blanked, cfg, seed, path)
    result.info = {"source": str(path) if path else None, "target": cfg.target, "task": prep.task,
                   "rows": len(df), "columns": len(df.columns), "seed": seed,
                   "splits": dict(prep.counts), "schema": prep.schema.to_dict()}
    labelled = _written_target(y_raw[~y_missing], say=False)  # '12%', '$1,200' as the numbers train reads
    with clock("D1"):
        d1, result.plot = table.label_distribution(labelled, prep.task)
    result.append(d1)
    with clock("D2"):
        result.append(table.text_lengths(df, cells))
    with clock("text"):
        result.extend(text.text_findings(df, prep, cfg.target, seed, text_batch_size(prep, batch_size)))
    with clock("repeats"):  # do the inputs repeat on their own (coarse inputs)? D3, D4 and the split overlap ask
        found = repeats(features.full_view(prep, seed))
    with clock("D3 duplicates"):
        dup, dup_rows = table.duplicate_rows(df, path, cfg.target, found)
    result.append(dup)
    with clock("D3 corrupted"):
        bad, bad_rows = table.corrupted_rows(df, y_missing, cells, path, cfg.target)
    result.append(bad)
    result.append(table.left_out_columns(prep.schema))
    with clock("D8"):
        result.append(table.feature_scales(cells, cfg.scaling))
    with clock("D4"):
        d4, flagged = features.label_checks(prep, seed, noise_rows, found)
    result.extend(d4)
    with clock("leakage splits"):
        result.append(features.split_overlap(prep, cfg.target, seed, found))
    with clock("leakage split kind"):  # time order and groups under a random split: only when they warn
        result.extend(splits.split_findings(df, cfg, prep, cells.kinds, seed))
    if test is not None:
        with clock("leakage test table"):
            result.append(features.test_overlap(prep, test[0], cfg.target, test[1]))
    with clock("leakage one column"):
        result.append(features.one_column_leak(prep, seed))
    with clock("D5"):
        count, hidden = params if params is not None else features.count_parameters(prep, model_config or ModelConfig())
        result.append(features.size_advice(prep, count, hidden))
    with clock("D15"):
        result.append(features.clusters(prep, seed))
    result.rows = {
        "corrupted": bad_rows,
        "duplicates": {int(r): "repeats an earlier row" for r in dup_rows},
        "conflicts": {int(r): "identical inputs under another label in another row" for r in flagged["conflicting"]},
        "suspicious": {int(r): f"label noise: rank {i + 1} by self-confidence" for i, r in enumerate(flagged["suspicious"])},
    }
    return result


def text_batch_size(prep: PreparedTable, batch_size: int | None) -> int:
    """The batch size the text padding shares are measured at: the run's, else the default model's rule."""
    from ...models.tabm import TabM

    return int(batch_size or TabM.batch_size_rule(prep.counts["train"]))


@contextlib.contextmanager
def _timed(result: Audit, name: str) -> Iterator[None]:
    """Adds the block's seconds to result.seconds[name]."""
    started = time.perf_counter()
    try:
        yield
    finally:
        result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - started
