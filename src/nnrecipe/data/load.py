"""Reading a table from CSV or Parquet as people have them, with errors that name the file and the fix.

CSV files may be gzip/bz2/xz-compressed or a zip holding one CSV; in UTF-8 (with or without a BOM),
UTF-16/32 with a BOM, or, failing UTF-8, the Windows code page cp1252 (Latin-1 for its 5 undefined
bytes), with a notice; delimited by , ; tab or |, with decimal commas after ; or tab (sniff.py). Text
columns of numbers written as people write them (thousands separators '1,234', percentages '12%', amounts
'$3.50') are read as numbers, with a notice (decimal commas only where the delimiter is not a comma: in a
comma-separated file '1,5' stays text and the schema names it). Parquet columns of lists or
records are left out, with a notice. Parsed CSV tables are cached as Parquet keyed by the file's content
hash (D13, cache.py). Files are only read."""

from __future__ import annotations

import csv
import io
import logging
import lzma
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, shorten
from . import cache as table_cache
from .sniff import ENCODING_NAMES, CsvFormat, sniff_csv

log = logging.getLogger("nnrecipe")

PARQUET = (".parquet", ".pq")
# Peak memory of read_table per byte of uncompressed CSV (the parse, then the cache write) and per byte of
# a Parquet file's uncompressed column data: the worst of a numeric and a text-heavy table measured by
# `benchmarks/load.py --memory` (pandas 3.1, pyarrow 26; 200k and 1M rows), with a margin of ~20%:
#   CSV      1.57x, 0.96x (200k rows); 1.68x, 1.21x (1M rows)
#   Parquet  2.20x, 3.39x (200k rows); 1.23x, 2.06x (1M rows)
# pandas 2 keeps text as Python objects (~50 bytes a cell), several times more for text columns.
CSV_EXPANSION = 2.0
PARQUET_EXPANSION = 4.0


def read_table(path: str | os.PathLike, *, cache: bool = True,
               cache_dir: str | os.PathLike | None = None, write_behind: bool = False,
               key: str | None = None) -> pd.DataFrame:
    """The table in a CSV or Parquet file, its rows under a RangeIndex (the 0-based data row).

    A parsed CSV is cached as Parquet in `cache_dir` (default: $NNRECIPE_CACHE/tables, else
    ~/.cache/nnrecipe/tables), keyed by the file's content: reading the same bytes again loads it
    without parsing. `cache=False` neither reads nor writes the cache; `write_behind` writes it in a
    thread while the caller goes on (the frame must not be changed in place); `key`: the file's
    cache.content_key when the caller has it already (a file changed in the last seconds is not memoized,
    so it would be hashed a second time). Raises DataError naming the file,
    what is wrong with it and the fix."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in PARQUET:
        return _read_parquet(path)
    fmt = sniff_csv(path)
    _check_names(path, fmt.header)
    if fmt.wider_rows is not None:
        raise _header_short(path, len(fmt.header), fmt.wider_rows)
    _check_memory(path, fmt.size if fmt.size is not None else path.stat().st_size, CSV_EXPANSION, "CSV")
    file = None
    if cache:
        folder = table_cache.cache_folder(cache_dir)
        file = folder / f"{key or table_cache.content_key(path, folder)}.parquet"
        hit = table_cache.load(file)
        if hit is not None:
            df, info = hit
            log.info("file '%s' read from the cache (%s)", path, file)
            _tell(path, info)
            return df
    df, info = _read_csv(path, fmt)
    _tell(path, info)
    if file is not None and write_behind:
        table_cache.write_behind(file, lambda: table_cache.store(df, file, info))
    elif file is not None:
        table_cache.store(df, file, info)
    return df


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"'{path}' is a folder; give a CSV or Parquet file")
    if not os.access(path, os.R_OK):
        raise DataError(f"file '{path}' cannot be read (permission denied); fix its permissions")
    if path.stat().st_size == 0:
        raise DataError(f"file '{path}' is empty; it needs a header row and data rows")


def _read_csv(path: Path, fmt: CsvFormat) -> tuple[pd.DataFrame, dict]:
    encoding, not_utf8_at = fmt.encoding, fmt.not_utf8_at
    # the C parser (the default engine): several times faster than the python one on big files;
    # compression was found from the content, not the name (compression=None: pandas would guess by name)
    options = dict(sep=fmt.delimiter, decimal=fmt.decimal, thousands=fmt.thousands, compression=None)
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed chunks: _as_text mends them
                df = _parse(path, fmt, encoding=encoding, **options)
            break
        except UnicodeDecodeError as e:
            if encoding == "utf-8":  # the sample was UTF-8 but a later line is not: fall back as for the sample
                encoding, not_utf8_at = "cp1252", -1
            elif encoding == "cp1252":
                encoding = "latin-1"  # decodes every byte
            else:
                name = encoding.upper().replace("-SIG", "")  # utf-8-sig: UTF-8 with a BOM
                raise DataError(f"file '{path}' is not valid {name} text ({e.reason}); save it "
                                "again as UTF-8 CSV, or as Parquet") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"file '{path}' has no columns; it needs a header row and data rows") from None
        except (pd.errors.ParserError, ValueError, OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError,
                zlib.error) as e:
            if "EOF inside string" in str(e) and (line := _unclosed_quote(path, fmt, encoding)) is not None:
                raise DataError(f"file '{path}' has a quote (\") opened on line {line} that is never closed, so "
                                "the rest of the file would be one cell; close the quote, or remove it") from None
            raise DataError(f"file '{path}' cannot be read as CSV: {_first_line(e)}; "
                            "fix the file, or save the table again as CSV") from None
    if len(df) == 0:
        raise DataError(f"file '{path}' has a header ({len(df.columns)} columns) but no data rows; "
                        "add the rows to train or predict on")
    if df.index.nlevels > 1 or not df.index.equals(pd.RangeIndex(len(df))):
        raise _header_short(path, len(df.columns), len(df.columns) + df.index.nlevels)
    df.columns = [str(c).strip() for c in df.columns]
    _check_names(path, list(df.columns))  # names that differ only by spaces around them
    _as_text(df)
    words = _keep_word_none(df, lambda at: _parse(path, fmt, encoding=encoding, usecols=at, dtype=str,
                                                  keep_default_na=False, **options))
    unnamed = [(i, c) for i, c in enumerate(df.columns, start=1) if UNNAMED.fullmatch(c)]
    return df, {"encoding": encoding, "not_utf8_at": not_utf8_at, "delimiter": fmt.delimiter,
                "decimal": fmt.decimal, "thousands": fmt.thousands, "compression": fmt.compression,
                "unnamed": unnamed, "none_words": words}


def _parse(path: Path, fmt: CsvFormat, **options: Any) -> pd.DataFrame:
    if fmt.compression is None:
        return pd.read_csv(path, **options)
    with fmt.open(path) as f:
        return pd.read_csv(f, **options)


def _keep_word_none(df: pd.DataFrame, reread: Any) -> list[tuple[str, int]]:
    """pandas reads a cell 'None' as missing, but in a column of words it is an answer (MASS's survey:
    exercise None / Some / Freq; the Ames houses' masonry veneer 'None'): read as missing, a target's
    class 'None' would be left out as unlabelled rows. In columns of text with missing cells, the cells
    written 'None' are given back as the word (read again as raw text, those columns only); in a column
    of numbers or booleans 'None' stays a missing value, as pandas has it. Returns (column, cells)."""
    text = [i for i, c in enumerate(df.columns)
            if df[c].isna().any() and (pd.api.types.is_string_dtype(df[c].dtype) and df[c].dtype != object
                                       or df[c].dtype == object and all(isinstance(v, str) for v in df[c].dropna()))]
    if not text:
        return []
    raw = reread(text)
    words = []
    for i, position in enumerate(text):
        col = df.columns[position]
        said = df[col].isna().to_numpy() & (raw.iloc[:, i] == "None").to_numpy()
        if said.any():
            df.loc[said, col] = "None"
            words.append((col, int(said.sum())))
    return words


UNNAMED = re.compile(r"Unnamed: \d+")  # pandas' name for an empty header cell


def _header_short(path: Path, names: int, fields: int) -> DataError:
    return DataError(f"file '{path}' has {names} names in its header but {fields} fields in its rows, so the "
                     f"first{'' if fields == names + 1 else ' ' + str(fields - names)} would be read as row labels; "
                     "name every column in the header, or remove the extra field from the rows")


def _unclosed_quote(path: Path, fmt: CsvFormat, encoding: str) -> int | None:
    """The line (1-based) on which the quoted field that never closes opens, or None."""
    opened, inside = None, False
    try:
        with fmt.open(path) as raw, io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="") as text:
            for number, line in enumerate(text, start=1):
                for _ in range(line.count('"')):  # each quote flips inside/outside ('""' flips twice)
                    inside = not inside
                    if inside:
                        opened = number
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error):
        return None
    return opened if inside else None


def _as_text(df: pd.DataFrame) -> None:
    """read_csv parses a big file in chunks, and a column of numbers with some words can come back as
    ints from one chunk and text from another (pandas' DtypeWarning): 5 and '5' would be two categories,
    and the Parquet cache refuses the column. Read it as text throughout, as a one-chunk parse does."""
    for col in df.columns[df.dtypes == object]:
        kinds = {type(v) for v in df[col].dropna()}
        if str in kinds and len(kinds) > 1:
            df[col] = df[col].map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v))


def _tell(path: Path, info: dict) -> None:
    """The notices a user should see about how their file was read (on a cache hit too)."""
    if info.get("not_utf8_at") is not None:
        where = f" (byte {info['not_utf8_at']})" if info["not_utf8_at"] >= 0 else ""
        log.warning("file '%s' is not UTF-8 text%s: read it as %s; if accented letters look wrong, save "
                    "it as UTF-8 CSV", path, where, ENCODING_NAMES.get(info["encoding"], info["encoding"]))
    if info.get("thousands") == ".":
        log.warning("file '%s' writes numbers with dots between groups of thousands and a decimal comma: read "
                    "'1.315,4' as 1315.4 and '40.577' as 40577", path)
    elif info.get("decimal") == ",":
        log.info("file '%s' has decimal commas: read '1,5' as 1.5", path)
    for position, col in info.get("unnamed") or ():
        log.warning("file '%s': column %d has no name in the header: read as '%s'; name it in the header "
                    "(or pass --drop '%s')", path, position, col, col)
    for col, cells in info.get("none_words") or ():
        log.info("file '%s': column '%s' has %d cells 'None' among words: read as the word 'None' (a category), "
                 "not as missing; leave the cells empty where no value is meant", path, shorten(col), cells)
    for col, kind in info.get("nested") or ():
        log.warning("file '%s': column '%s' holds %s, which the model cannot take as an input: left out; "
                    "flatten it into columns of numbers or text to use it", path, shorten(col), kind)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        names = meta.schema.to_arrow_schema().names
    except (ValueError, OSError, TypeError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"file '{path}' cannot be read as Parquet: {_first_line(e)}; "
                        "fix the file, or save the table again as Parquet") from None
    if not names:
        raise DataError(f"file '{path}' has no columns; it needs columns and rows")
    if meta.num_rows == 0:
        raise DataError(f"file '{path}' has {len(names)} columns but no rows; add the rows to train or predict on")
    _check_names(path, names)
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    _check_memory(path, size, PARQUET_EXPANSION, "Parquet")
    nested = _nested_columns(meta.schema.to_arrow_schema())
    keep = [n for n in names if n not in dict(nested)]
    if not keep:
        raise DataError(f"file '{path}' holds only columns of lists or records "
                        f"({', '.join(repr(shorten(c, 40)) for c, _ in nested[:10])}); the model takes numbers, "
                        "text, booleans or dates: flatten them into one column per value and save the table again")
    try:
        df = pd.read_parquet(path, columns=keep if nested else None)
    except (ValueError, OSError, TypeError) as e:
        raise DataError(f"file '{path}' cannot be read as Parquet: {_first_line(e)}; "
                        "fix the file, or save the table again as Parquet") from None
    df.columns = [str(c).strip() for c in df.columns]
    _check_names(path, list(df.columns))
    for col in df.columns:
        if isinstance(df[col].dtype, pd.CategoricalDtype):  # a category dtype: its values, as a CSV holds them
            df[col] = df[col].astype(df[col].cat.categories.dtype)
    _as_text(df)
    info = {"nested": nested}
    _tell(path, info)
    df.attrs["left_out"] = dict(nested)
    return df


def _nested_columns(schema: Any) -> list[tuple[str, str]]:
    """(name, what it holds) of the Arrow columns that hold lists, records or maps."""
    import pyarrow as pa

    found = []
    for f in schema:
        t = f.type.value_type if pa.types.is_dictionary(f.type) else f.type  # a category dtype: its values
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            found.append((f.name, "lists"))
        elif pa.types.is_struct(t):
            found.append((f.name, "records (a struct)"))
        elif pa.types.is_map(t):
            found.append((f.name, "maps"))
    return found


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else type(e).__name__


def _check_names(path: Path, names: list[str]) -> None:
    """Raise when two columns share a name. pandas reads a repeated 'a' as 'a' and 'a.1' without a word,
    and the second column would be trained on, or refused, under a name the user never wrote."""
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        name = str(name).strip()
        if name:  # pandas names empty header cells 'Unnamed: 3', each its own
            positions.setdefault(name, []).append(i)
    repeated = {name: where for name, where in positions.items() if len(where) > 1}
    if repeated and header_is_data(names):
        raise DataError(f"file '{path}' has no header row: its first line holds numbers "
                        f"({header_shown(names)}), not column names; add a first line naming the columns")
    if repeated:
        listed = ", ".join(f"'{name}' (columns {_and(where)})" for name, where in repeated.items())
        raise DataError(f"file '{path}' has duplicated column names: {listed}; rename the columns so that "
                        "each name is used once")


def header_is_data(names: Sequence[object]) -> bool:
    """Whether a header holds only numbers (a file saved without its header row: its first data row was
    read as the names). Column names such as '2021' occur, but not in every column."""
    def number(name: object) -> bool:
        try:
            float(str(name).strip())
        except ValueError:
            return False
        return bool(str(name).strip())

    return bool(len(names)) and all(number(n) for n in names)


def header_shown(names: Sequence[object], n: int = 5) -> str:
    return ", ".join(shorten(c, 20) for c in list(names)[:n]) + (" ..." if len(names) > n else "")


def _and(items: list[int]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _check_memory(path: Path, nbytes: int, expansion: float, kind: str) -> None:
    """Refuse, before reading, a file whose table would not fit in memory: the alternative is the OS
    killing the process (or swapping for hours) with no word about why."""
    available = available_memory()
    need = int(nbytes * expansion)
    if available is None or need <= available:
        return
    if kind == "CSV":
        fix = ("train on a sample of its rows, or save only the columns you need as Parquet "
               "(pandas.read_csv(..., usecols=[...]).to_parquet(...))")
    else:
        fix = ("train on a sample of its rows, or save only the columns you need "
               "(pandas.read_parquet(..., columns=[...]))")
    raise DataError(f"file '{path}' is too large to load: its {_size(nbytes)} of {kind} need about {_size(need)} "
                    f"of memory, and {_size(available)} is available; {fix}")


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} GB" if unit == "GB" else f"{nbytes / scale:.0f} {unit}"
    return f"{nbytes} bytes"


def available_memory() -> int | None:
    """Bytes that can still be allocated, or None when unknown: MemAvailable (free memory plus the page
    cache the kernel can drop; psutil's figure, read without psutil) or else free pages, capped by the
    cgroup v2 limit a container runs under (where the OOM killer acts, whatever the host has free)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024  # the kernel writes kB
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    left = cgroup_memory_left()
    if left is not None:
        available = left if available is None else min(available, left)
    return available


def cgroup_memory_left(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The cgroup v2 limit less the memory in use that cannot be reclaimed (page cache can), or None."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text())
        stat = dict(line.split() for line in (root / "memory.stat").read_text().splitlines() if line.strip())
        return int(limit) - used + int(stat.get("file", 0))
    except (OSError, ValueError):
        return None


def sniff_delimiter(path: str | os.PathLike) -> str:
    """The delimiter among , ; tab | (kept for callers of the earlier API; read_table sniffs by itself)."""
    return sniff_csv(Path(path)).delimiter


def row_labels(path: str | os.PathLike | None, indices: Sequence[int]) -> list[str]:
    """How a user finds each row (0-based data rows) in their file: for a CSV, the line it starts on,
    counted as an editor counts them (a quoted field can span lines, and read_csv skips blank lines, so
    data row i is line i + 2 only in a plain file); for Parquet or a DataFrame, 'row i'."""
    if path is None or Path(path).suffix.lower() in PARQUET:
        return [f"row {i}" for i in indices]
    lines = _data_row_lines(Path(path), {int(i) for i in indices})
    return [f"line {lines.get(int(i), int(i) + 2)}" for i in indices]  # unreadable: the plain file's line


def _data_row_lines(path: Path, wanted: set[int]) -> dict[int, int]:
    """The line (1-based) on which each wanted data row starts, the file read in the format read_table
    sniffs; stops at the last one wanted. {} when the file cannot be read so."""
    if not wanted:
        return {}
    found: dict[int, int] = {}
    try:
        fmt = sniff_csv(path)
        with fmt.open(path) as raw, io.TextIOWrapper(raw, encoding=fmt.encoding, errors="replace", newline="") as text:
            reader = csv.reader(text, delimiter=fmt.delimiter)
            row, start = -2, 1  # -2: the header is still to come
            for record in reader:
                if record:  # a blank line is no row (read_csv's skip_blank_lines)
                    row += 1
                    if row in wanted:
                        found[row] = start
                        if row >= max(wanted):
                            break
                start = reader.line_num + 1
    except (OSError, csv.Error, DataError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error):
        return {}
    return found
