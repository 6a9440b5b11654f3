"""D13: parsed tables cached as Parquet, keyed by the content hash of the file they were read from.

A second read of an unchanged CSV loads the Parquet file (columnar, typed: no parsing) instead of parsing
the text again; a changed file hashes to another key and misses. The key is the SHA-256 of the file's
bytes as they are on disk (compressed ones too): SHA-256 rather than BLAKE2b because CPUs with SHA
extensions (x86 since 2017, ARMv8) hash it twice as fast (measured here: 500 MB/s against 260 MB/s).
Hashing still took as long as the Parquet read, so a file whose inode and timestamps are as they were
at its last hash is not hashed again (a memo under <cache>/stat/, as git's index does).
Writes are atomic (a temporary file renamed over: timm's checkpoint pattern), and a cache
file that cannot be read for any reason is a miss that is re-parsed and overwritten, never an error:
the cache only ever saves time. Nothing here touches the input file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..io import temp_path

log = logging.getLogger("nnrecipe")

# The cache's default size limit: ccache's default is 5 GB; a 1M-row x 50-column CSV caches as about
# 0.4 GB parsed plus 0.2 GB prepared, so 10 GB keeps some fifteen such tables (NNRECIPE_CACHE_MAX)
DEFAULT_LIMIT = "10G"
SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?")
# Bump when read_table's parsing changes what a file reads as, so that older cache files miss.
CACHE_VERSION = 5  # 4: a cell 'None' among words is the word; 5: dots grouping thousands ('1.315,4')
CHUNK_BYTES = 1 << 20  # hashing reads 1 MiB at a time: memory stays flat whatever the file's size
META_KEY = b"nnrecipe"
KEY = re.compile(r"[0-9a-f]{64}\.v\d+")
# Timestamps move in clock ticks (a few ms on Linux, 2 s on FAT): a file changed less than this long
# before it was hashed is hashed again on the next read rather than recognised by its timestamps.
RACY_SECONDS = 2.0


def cache_folder(cache_dir: str | os.PathLike | None = None, kind: str = "tables") -> Path:
    """Where parsed tables (kind 'tables') and prepared ones ('prepared', prepare.py) go: `cache_dir`,
    else <cache_root()>/<kind>. Checks NNRECIPE_CACHE_MAX here, before any work (the trim runs in the
    background writer, where an error could not reach the user)."""
    cache_limit()
    return Path(cache_dir) if cache_dir is not None else cache_root() / kind


def cache_root() -> Path:
    """$NNRECIPE_CACHE, else $XDG_CACHE_HOME/nnrecipe (by default ~/.cache/nnrecipe)."""
    if os.environ.get("NNRECIPE_CACHE"):
        return Path(os.environ["NNRECIPE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnrecipe"


def cache_limit() -> int | None:
    """The cache's size limit in bytes from NNRECIPE_CACHE_MAX (DEFAULT_LIMIT when unset); None: 'off'."""
    text = os.environ.get("NNRECIPE_CACHE_MAX", DEFAULT_LIMIT).strip()
    if text.lower() == "off":
        return None
    match = SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(f"NNRECIPE_CACHE_MAX={text!r} is not a size; give bytes with an optional K, M, G or T "
                          f"(such as 10G, the default), or off for no limit")
    return int(float(match[1]) * 1024 ** " KMGT".index((match[2] or " ").upper()))


def trim(keep: Path) -> None:
    """Delete the least recently used cache files until the cache holds at most cache_limit() bytes, never
    `keep` (the file just written). A hit touches its file (`touch`), so the order is last use. Scans the
    cache root when `keep` lies under it (both kinds share the limit), else `keep`'s own folder (a
    cache_dir given to read_table). Files another process deletes meanwhile are skipped; temporary files
    (a leading '.') are left to their writers."""
    limit = cache_limit()
    if limit is None:
        return
    root = cache_root()
    folder = root if keep.resolve().is_relative_to(root.resolve()) else keep.parent
    entries = []
    for file in folder.rglob("*"):
        # the hash memos (stat/) are a few bytes each and are never touched by a hit: as the oldest files
        # they would go first and make every cached table's source be hashed again
        if file.name.startswith(".") or file == keep or file.parent.name == "stat":
            continue
        with contextlib.suppress(OSError):
            st = file.stat()
            if stat.S_ISREG(st.st_mode):
                entries.append((st.st_mtime, st.st_size, file))
    total = sum(size for _, size, _ in entries) + (keep.stat().st_size if keep.exists() else 0)
    for _, size, file in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        try:
            file.unlink()
            log.info("cache: removed %s (least recently used; NNRECIPE_CACHE_MAX=%s)", file,
                     os.environ.get("NNRECIPE_CACHE_MAX", DEFAULT_LIMIT))
        except FileNotFoundError:
            pass  # another writer's trim removed it: freed all the same
        except OSError:
            continue  # still there (no permission): it counts
        total -= size


def touch(file: Path) -> None:
    """Mark a cache file used now (its mtime: entries are never rewritten, and atime is often off)."""
    with contextlib.suppress(OSError):
        os.utime(file)


def usage(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`."""
    sizes = [f.stat().st_size for f in folder.rglob("*") if f.is_file()] if folder.is_dir() else []
    return len(sizes), sum(sizes)


def content_key(path: Path, folder: Path | None = None) -> str:
    """The SHA-256 of the file's bytes with the cache format version. With `folder`, a file whose identity
    and timestamps (device, inode, size, mtime, ctime) are those recorded at an earlier hash is not
    hashed again (git's index does the same); ctime cannot be set back, so a rewrite always changes it."""
    before = os.stat(path)
    memo = folder / "stat" / _identity(path, before) if folder is not None else None
    if memo is not None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            key = memo.read_text().strip()
            if KEY.fullmatch(key) and key.endswith(f".v{CACHE_VERSION}"):  # a memo from before a bump misses
                return key
    key = f"{_sha256(path)}.v{CACHE_VERSION}"
    after = os.stat(path)
    # git's "racy clean" problem: a write within the same clock tick as our stat leaves the timestamps
    # as they were, so only a file left alone for RACY_SECONDS (and unchanged while hashed) is memoized
    if memo is not None and _identity(path, after) == memo.name \
            and time.time() - max(after.st_mtime, after.st_ctime) > RACY_SECONDS:
        _write_atomic(memo, key.encode())
    return key


_pending: dict[Path, threading.Thread] = {}


def write_behind(file: Path, write: Callable[[], None]) -> None:
    """Run `write` (which writes `file` and never raises) in a thread, so the work that needs the data
    goes on meanwhile; `wait(file)` before reading it. Not a daemon: the interpreter waits for it at exit."""
    wait(file)
    thread = threading.Thread(target=write, name=f"nnrecipe-cache-{file.name[:12]}")
    _pending[file] = thread
    thread.start()


def wait(file: Path | None = None) -> None:
    """Wait for the background write of `file` (of every file when None)."""
    for f in [file] if file is not None else list(_pending):
        thread = _pending.pop(f, None)  # type: ignore[arg-type]
        if thread is not None:
            thread.join()


def _identity(path: Path, st: os.stat_result) -> str:
    fields = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return hashlib.sha256("\0".join(map(str, fields)).encode()).hexdigest()


def _sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, streamed in chunks."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):  # type: ignore[attr-defined]
            digest.update(view[:n])
    return digest.hexdigest()


def _write_atomic(file: Path, data: bytes) -> None:
    """A small file written through a temporary one and a rename; failures are ignored (a memo only)."""
    tmp = temp_path(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, file)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def load(file: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The cached table and what was recorded about its source, or None on a miss or a damaged file."""
    wait(file)
    if not file.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        # page checksums catch a cache file damaged on disk that would still parse (flipped bits)
        table = pq.read_table(file, page_checksum_verification=True, memory_map=True)
        info = json.loads(table.schema.metadata[META_KEY])
        if info.get("pandas") != pd.__version__:
            return None  # another pandas may read the CSV differently: parse again
        # split_blocks + self_destruct free each Arrow column as it is converted: the table is not held twice
        df = table.to_pandas(split_blocks=True, self_destruct=True)
    except Exception as e:  # any damage at all means a miss: the cache must never stop a run
        log.warning("cached table %s cannot be read (%s): reading the source file again", file,
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return None
    touch(file)
    for col in df.columns[df.dtypes == object]:
        # Arrow has one null; read_csv marks a missing cell in an object column (booleans with gaps,
        # strings under pandas 2) with NaN, and None is what comes back: put NaN back so both reads match
        values = df[col].to_numpy()
        missing = pd.isna(values)
        if missing.any():
            values = values.copy()
            values[missing] = np.nan
            df[col] = values
    return df, info


def store(df: pd.DataFrame, file: Path, info: dict[str, Any]) -> None:
    """Write `df` to `file` atomically; a failure (a full disk, a read-only home) is logged and ignored."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = temp_path(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[META_KEY] = json.dumps({**info, "pandas": pd.__version__}).encode()
        # dictionary encoding for text only: on floats it is tried and abandoned page by page, which doubled
        # the write time of the benchmark table (benchmarks/load.py); page checksums let a damaged file
        # fail on read instead of returning wrong numbers
        text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        # uncompressed: the cache trades disk for the second read's time (D13: the goal is <= 0.2x of parsing)
        pq.write_table(table.replace_schema_metadata(meta), tmp, use_dictionary=text, write_statistics=False,
                       write_page_checksum=True, compression="none")
        # no fsync (it cost a third of the write): a file torn by a crash fails its page checksums or its
        # footer on the next read, which is a miss that parses the source again
        os.replace(tmp, file)
        trim(keep=file)
    except Exception as e:  # the cache only saves time; the table read fine
        log.warning("could not cache the parsed table in %s (%s); the next read parses the file again",
                    file.parent, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def data_fingerprint(source: str | os.PathLike | pd.DataFrame | None, rows: int, columns: Sequence[str],
                     key: str | None = None) -> dict[str, Any]:
    """The data's identity: the SHA-256 of the file's bytes, its rows and columns. `key` is the content
    key the data layer computed while reading (data.cache.content_key, '<sha256>.v<N>'); without it the
    key is asked of the data layer again, which answers from its stat memo without hashing unless the
    file changed in its last 2 seconds. A DataFrame is hashed by pandas' row hashes."""
    if isinstance(source, pd.DataFrame):
        digest = hashlib.sha256(pd.util.hash_pandas_object(source, index=False).to_numpy().tobytes())
        digest.update("\0".join(map(str, source.columns)).encode())
        return {"source": None, "sha256": digest.hexdigest(), "hash_of": "DataFrame rows (pandas row hashes)",
                "rows": rows, "columns": list(columns)}
    if source is None:
        return {"source": None, "sha256": None, "rows": rows, "columns": list(columns)}
    if key is None:
        key = content_key(Path(source), cache_folder())
    path = Path(source)
    return {"source": str(path), "sha256": key.split(".")[0], "hash_of": "file bytes",
            "bytes": path.stat().st_size, "rows": rows, "columns": list(columns)}
