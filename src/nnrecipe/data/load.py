"""Reading a table from CSV or Parquet, with errors that name the file and the fix. Files are only read."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from ..errors import DataError

PARQUET = (".parquet", ".pq")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; give a CSV or Parquet file")
    if not os.access(path, os.R_OK):
        raise DataError(f"file '{path}' cannot be read (permission denied); fix its permissions")
    if path.stat().st_size == 0:
        raise DataError(f"file '{path}' is empty; it needs a header row and data rows")
    if path.suffix.lower() not in PARQUET:
        with open(path, "rb") as f:
            if b"\x00" in f.read(65536):  # text CSV never holds NUL bytes; pandas would read them as a header
                raise DataError(f"file '{path}' is not UTF-8 text (it holds NUL bytes: a binary file, or UTF-16 "
                                "text): save it as UTF-8 CSV, or as Parquet (.parquet)")
    try:
        if path.suffix.lower() in PARQUET:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep=sniff_delimiter(path), encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"file '{path}' has no columns; it needs a header row and data rows") from None
    except UnicodeDecodeError as e:
        raise DataError(f"file '{path}' is not UTF-8 text (byte {e.start}): save it as UTF-8 CSV, "
                        "or as Parquet") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        kind = "Parquet" if path.suffix.lower() in PARQUET else "CSV"
        raise DataError(f"file '{path}' cannot be read as {kind}: {str(e).strip().splitlines()[0].rstrip('.')}; "
                        f"fix the file, or save the table again as {kind}") from None
    if len(df) == 0:
        raise DataError(f"file '{path}' has a header ({len(df.columns)} columns) but no data rows; "
                        "add the rows to train or predict on")
    df.columns = [str(c).strip() for c in df.columns]
    return df


def sniff_delimiter(path: Path) -> str:
    """The delimiter among , ; tab | that splits the first lines into the same number of fields."""
    with open(path, "rb") as f:
        head = f.read(65536).decode("utf-8-sig", errors="replace")
    lines = [ln for ln in head.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not head.endswith("\n"):
        lines = lines[:-1]  # the last line may be cut mid-way
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def row_label(path: str | os.PathLike | None, index: int) -> str:
    """How a user finds row `index` (0-based data row) in their file: the line for CSV."""
    if path is not None and Path(path).suffix.lower() not in PARQUET:
        return f"line {index + 2}"  # line 1 is the header
    return f"row {index}"
