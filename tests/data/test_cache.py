"""D13's cache stays within NNRECIPE_CACHE_MAX: least recently used files go first (a hit counts as a
use), never the file just written; both kinds (parsed, prepared) share the limit; `nnrecipe cache` shows
and clears it."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from nnrecipe.data import read_table
from nnrecipe.data.cache import trim
from nnrecipe.errors import ConfigError


def _csv(folder: Path, name: str, rows: int = 200) -> Path:
    path = folder / f"{name}.csv"
    pd.DataFrame({"x": range(rows), "y": [f"{name}{i}" for i in range(rows)]}).to_csv(path, index=False)
    return path


def _parquet(root: Path) -> dict[str, Path]:
    """The cached parsed tables, by the name of the CSV each came from (column y's first letter)."""
    return {pd.read_parquet(p)["y"][0][:1]: p for p in (root / "tables").glob("*.parquet")}


def test_the_least_recently_used_table_goes_first_and_a_hit_counts_as_a_use(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NNRECIPE_CACHE", str(root))
    a, b, c = (_csv(tmp_path, n) for n in "abc")
    read_table(a)
    read_table(b)
    files = _parquet(root)
    os.utime(files["a"], (1000, 1000))  # both long unused, a the longer
    os.utime(files["b"], (2000, 2000))
    read_table(a)  # a hit: a is now the most recently used
    size = max(p.stat().st_size for p in files.values())
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", str(int(2.5 * size)))  # room for two tables
    read_table(c)
    assert sorted(_parquet(root)) == ["a", "c"]


def test_the_file_just_written_stays_whatever_the_limit(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("NNRECIPE_CACHE", str(root))
    read_table(_csv(tmp_path, "a"))
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "1")
    read_table(_csv(tmp_path, "b"))
    assert sorted(_parquet(root)) == ["b"]
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "off")
    read_table(_csv(tmp_path, "c"))
    assert sorted(_parquet(root)) == ["b", "c"]


def _trimmed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mtimes: dict[str, int], keep: str) -> dict[str, bool]:
    """Cache files of 100 bytes last used at `mtimes` (paths under the cache root), trimmed to 150 bytes
    after `keep` was written: which of them are left."""
    root = tmp_path / "cache"
    monkeypatch.setenv("NNRECIPE_CACHE", str(root))
    for name, mtime in mtimes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * 100)
        os.utime(root / name, (mtime, mtime))
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "150")
    trim(keep=root / keep)
    return {name: (root / name).exists() for name in mtimes}


def test_parsed_and_prepared_tables_share_the_limit(tmp_path, monkeypatch):
    left = _trimmed(tmp_path, monkeypatch, {"tables/old.parquet": 1000, "tables/.tmp-writing": 1000,
                                            "prepared/new.safetensors": 3000}, keep="prepared/new.safetensors")
    assert left == {"tables/old.parquet": False, "tables/.tmp-writing": True,  # a writer's temp file stays
                    "prepared/new.safetensors": True}


def test_a_bad_limit_is_an_error_naming_the_variable_and_the_fix(tmp_path, monkeypatch):
    path = _csv(tmp_path, "a")
    before = path.read_bytes()
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "lots")
    with pytest.raises(ConfigError) as e:
        read_table(path)
    assert str(e.value) == ("NNRECIPE_CACHE_MAX='lots' is not a size; give bytes with an optional K, M, G or T "
                            "(such as 10G, the default), or off for no limit")
    assert path.read_bytes() == before


def test_the_cache_command_shows_and_clears_the_cache(tmp_path, monkeypatch, cli):
    root = tmp_path / "cache"
    monkeypatch.setenv("NNRECIPE_CACHE", str(root))
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "2M")
    read_table(_csv(tmp_path, "a"))
    size = next((root / "tables").glob("*.parquet")).stat().st_size
    code, out, err = cli("cache")
    assert code == 0
    assert out.splitlines() == [f"cache {root} (limit 2.0 MiB, NNRECIPE_CACHE_MAX)",
                                f"  tables: 1 files, {size / 1024:.1f} KiB", "  prepared: 0 files, 0 bytes",
                                "  images: 0 files, 0 bytes"]
    code, out, err = cli("cache", "--clear")
    assert (code, out) == (0, f"removed 1 files ({size / 1024:.1f} KiB) from {root}\n")
    assert not list(root.rglob("*.parquet"))
    monkeypatch.setenv("NNRECIPE_CACHE_MAX", "2 lots")
    code, out, err = cli("cache")
    assert code == 2 and err.startswith("nnrecipe: error: NNRECIPE_CACHE_MAX='2 lots' is not a size")


def test_the_hash_memos_stay_when_tables_go(tmp_path, monkeypatch):
    """A memo (tables/stat/) spares hashing a source file again; it is never touched by a hit, so were it
    counted it would be the oldest file and go first, leaving its table cached but its source rehashed."""
    left = _trimmed(tmp_path, monkeypatch, {"tables/stat/0123abcd": 1000, "tables/a.parquet": 2000,
                                            "tables/b.parquet": 3000}, keep="tables/b.parquet")
    assert left == {"tables/stat/0123abcd": True, "tables/a.parquet": False, "tables/b.parquet": True}
