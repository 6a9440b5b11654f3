"""read_table reads tables as people have them (delimiters, decimal commas, encodings, quoting,
compression), refuses what is not a table or will not fit with one whole message naming the file and the
fix, and caches parsed CSVs as Parquet keyed by content (D13)."""

from __future__ import annotations

import bz2
import gzip
import logging
import lzma
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nnrecipe.cli import main
from nnrecipe.data import cache, load
from nnrecipe.data.load import read_table
from nnrecipe.errors import DataError

TABLE = pd.DataFrame({"height": [1.5, 2.25, -3.0], "count": [1, 2, 3], "name": ["a", "b", "c"]})


def kb(nbytes: float) -> str:
    return f"{nbytes / 1000:.0f} kB"


def message(path: Path, **kwargs) -> str:
    with pytest.raises(DataError) as e:
        read_table(path, **kwargs)
    return str(e.value)


@pytest.fixture
def read_csv_calls(monkeypatch) -> list[object]:
    """pandas.read_csv, counted: the list holds the source of each call."""
    calls: list[object] = []
    real = pd.read_csv

    def counted(source, *args, **kwargs):
        calls.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counted)
    return calls


def cli_bad_input(capsys, argv: list[object], expected: str) -> None:
    """`nnrecipe ARGS` exits with code 2, prints nothing on stdout and `expected` alone on stderr."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert (code, out, err) == (2, "", f"nnrecipe: error: {expected}\n")


# ---------------------------------------------------------------- formats people have


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "pipe"])
def test_delimiters(tmp_path, sep):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, sep=sep, index=False)
    pd.testing.assert_frame_equal(read_table(path), TABLE)


@pytest.mark.parametrize("sep", [";", "\t"], ids=["semicolon", "tab"])
def test_decimal_commas_read_as_numbers(tmp_path, sep):
    path = tmp_path / "excel-de.csv"
    path.write_text(f"Höhe{sep}Anzahl{sep}Name\n1,5{sep}1{sep}a\n2,25{sep}2{sep}b\n-3,0{sep}3{sep}c\n")
    df = read_table(path)
    assert df["Höhe"].tolist() == [1.5, 2.25, -3.0]
    assert df["Anzahl"].tolist() == [1, 2, 3]


def test_decimal_point_wins_when_both_marks_appear(tmp_path):
    # the rule: a decimal comma only when no cell of the sample is a number with a decimal point
    path = tmp_path / "mixed.csv"
    path.write_text("a;b\n1.5;2,5\n3.5;4,5\n")
    df = read_table(path)
    assert df["a"].tolist() == [1.5, 3.5]
    assert df["b"].tolist() == ["2,5", "4,5"]  # left as text: infer_columns names them as not numbers


def test_commas_inside_a_comma_csv_are_not_decimals(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n"1,5",2\n"3,5",4\n')
    assert read_table(path)["a"].tolist() == ["1,5", "3,5"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_unicode_encodings(tmp_path, encoding):
    # utf-16 and utf-32 write a BOM; utf-16-be does not (every other byte is NUL: detected as such)
    path = tmp_path / "t.csv"
    path.write_bytes("name,x\nCafé,1\nÆrø,2\n".encode(encoding))
    pd.testing.assert_frame_equal(read_table(path), pd.DataFrame({"name": ["Café", "Ærø"], "x": [1, 2]}))


def test_cp1252_fallback_with_a_notice(tmp_path, caplog):
    path = tmp_path / "excel.csv"
    path.write_bytes("name;price\nCafé;1,5\n€uro;2\n".encode("cp1252"))
    with caplog.at_level(logging.INFO, logger="nnrecipe"):
        df = read_table(path)
    pd.testing.assert_frame_equal(df, pd.DataFrame({"name": ["Café", "€uro"], "price": [1.5, 2.0]}))
    assert caplog.messages == [
        f"file '{path}' is not UTF-8 text (byte 14): read it as cp1252 (Windows Western European); "
        "if accented letters look wrong, save it as UTF-8 CSV",
        f"file '{path}' has decimal commas: read '1,5' as 1.5"]


def test_latin1_when_cp1252_leaves_a_byte_undefined(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"name,x\ncaf\xe9\x81,1\n")  # 0x81 is undefined in cp1252
    assert read_table(path)["name"].tolist() == ["caf\xe9\x81"]


def test_not_utf8_after_the_sample(tmp_path, caplog):
    # the first 64 KiB are ASCII; a cp1252 byte far below makes pandas fail, and read_table falls back
    path = tmp_path / "long.csv"
    rows = [f"row{i},{i}" for i in range(20_000)] + ["Café,1"]
    path.write_bytes(("name,x\n" + "\n".join(rows) + "\n").encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        df = read_table(path)
    assert (len(df), df["name"].iloc[-1]) == (20_001, "Café")
    assert caplog.messages == [f"file '{path}' is not UTF-8 text: read it as cp1252 (Windows Western "
                               "European); if accented letters look wrong, save it as UTF-8 CSV"]


def test_quoted_fields_with_delimiters_quotes_and_line_breaks(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('id;note;x\n1;"a; b";1,5\n2;"line one\nline two; end";2,5\n3;"say ""hi""";3\n')
    df = read_table(path)
    assert df["note"].tolist() == ["a; b", "line one\nline two; end", 'say "hi"']
    assert df["x"].tolist() == [1.5, 2.5, 3.0]


def test_quoted_header_with_the_delimiter(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('"weight, kg","height; cm",y\n1,2,3\n4,5,6\n')
    assert list(read_table(path).columns) == ["weight, kg", "height; cm", "y"]


def german(encoding: str = "cp1252") -> bytes:
    """A ';'-separated cp1252 table with decimal commas: every detection has to see decompressed bytes."""
    return "Größe;n\n1,5;1\n2,5;2\n".encode(encoding)


GERMAN = pd.DataFrame({"Größe": [1.5, 2.5], "n": [1, 2]})


@pytest.mark.parametrize("name,compress", [("t.csv.gz", gzip.compress), ("t.csv.bz2", bz2.compress),
                                           ("t.csv.xz", lzma.compress), ("t.gz", gzip.compress)],
                         ids=["gzip", "bz2", "xz", "gzip-any-name"])
def test_compressed(tmp_path, name, compress):
    path = tmp_path / name
    path.write_bytes(compress(german()))
    pd.testing.assert_frame_equal(read_table(path), GERMAN)


def test_zip_with_one_csv(tmp_path):
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data/table.csv", german())
        z.writestr("__MACOSX/data/._table.csv", b"\x00\x05\x16\x07")  # what macOS's Compress adds
    pd.testing.assert_frame_equal(read_table(path), GERMAN)


def test_zip_with_several_files(tmp_path):
    path = tmp_path / "data.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("train.csv", "a,b\n1,2\n")
        z.writestr("test.csv", "a,b\n1,2\n")
    assert message(path) == (f"file '{path}' is a zip archive holding 2 files (train.csv, test.csv); nnrecipe "
                             "reads a zip that holds one CSV file: extract the table you want and give it instead")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t.csv.gz"
    data = gzip.compress(("a,b\n" + "".join(f"{i},{i * i}\n" for i in range(50_000))).encode())
    path.write_bytes(data[: len(data) // 2])
    assert message(path) == (f"file '{path}' cannot be read as CSV: Compressed file ended before the "
                             "end-of-stream marker was reached; fix the file, or save the table again as CSV")


def test_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    TABLE.to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), TABLE)


# ---------------------------------------------------------------- bad input: one whole message


def test_duplicated_column_names(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,a,c,b,b\n1,2,3,4,5,6\n")
    assert message(path) == (f"file '{path}' has duplicated column names: 'a' (columns 1 and 3), "
                             "'b' (columns 2, 5 and 6); rename the columns so that each name is used once")


def test_column_names_equal_but_for_spaces(tmp_path):
    # read_table strips the names: ' a' and 'a' would become one name twice
    path = tmp_path / "t.csv"
    path.write_text("a, a,b\n1,2,3\n")
    assert message(path) == (f"file '{path}' has duplicated column names: 'a' (columns 1 and 2); "
                             "rename the columns so that each name is used once")


def test_empty_header_cells_are_not_duplicates(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,,\n1,2,3\n")
    assert list(read_table(path).columns) == ["a", "Unnamed: 1", "Unnamed: 2"]


def test_header_shorter_than_the_rows(tmp_path):
    # pandas reads the first field of each row as its label: every value would land one column over
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2,3\n4,5,6\n")
    assert message(path) == (f"file '{path}' has 2 names in its header but 3 fields in its rows, so the first "
                             "would be read as row labels; name every column in the header, or remove the extra "
                             "field from the rows")


def test_column_typed_differently_by_parse_chunks_is_text(tmp_path, read_csv_calls):
    # read_csv's chunks read the first rows as ints and the last as text (pandas' DtypeWarning)
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},1\n" for i in range(300_000)) + "x,1\n")
    df = read_table(path)
    pd.testing.assert_frame_equal(df, pd.read_csv(path, low_memory=False))  # as a one-chunk parse
    assert df["a"].iloc[[0, -1]].tolist() == ["0", "x"]
    pd.testing.assert_frame_equal(read_table(path), df)  # and the cache took it
    assert len(read_csv_calls) == 2  # read_table once, the one-chunk parse once


def test_duplicated_column_names_in_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["x", "x"]), path)
    assert message(path) == (f"file '{path}' has duplicated column names: 'x' (columns 1 and 2); "
                             "rename the columns so that each name is used once")


def test_parquet_without_rows(tmp_path):
    path = tmp_path / "t.parquet"
    TABLE.iloc[:0].to_parquet(path)
    assert message(path) == f"file '{path}' has 3 columns but no rows; add the rows to train or predict on"


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


@pytest.mark.parametrize("content,what", [
    (PNG, "a PNG image; give a CSV or Parquet file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document; give a CSV or Parquet file"),
    (bytes(range(1, 256)) * 4, "binary data, not text; give a CSV or Parquet file"),
    (random.Random(0).randbytes(4096), "binary data (it holds NUL bytes), not text; give a CSV or Parquet file"),
    (b"\x00" * 300, "binary data (it holds NUL bytes), not text; give a CSV or Parquet file"),
    (b'[{"a": 1, "y": "no"}, {"a": 2, "y": "yes"}]', "a JSON document; turn it into a table and save that as "
     "CSV or Parquet (pandas.read_json or pandas.json_normalize, then to_parquet)"),
    (b'\n  {"rows": [[1, 2]]}\n', "a JSON document; turn it into a table and save that as CSV or Parquet "
     "(pandas.read_json or pandas.json_normalize, then to_parquet)"),
    (b"<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", "an HTML or XML document; if it came from a "
     "download link, the server sent a web page: download the CSV file itself"),
    (b"<html lang='en'><head><title>Sign in</title></head></html>\n", "an HTML or XML document; if it came from "
     "a download link, the server sent a web page: download the CSV file itself"),
    (b"<h1>404 Not Found</h1>\n<p>nginx</p>\n", "an HTML or XML document; if it came from a download link, the "
     "server sent a web page: download the CSV file itself"),
], ids=["png", "pdf", "control-bytes", "random-bytes", "nul-bytes", "json-list", "json-object", "html",
        "html-without-doctype", "error-page"])
def test_not_a_table(tmp_path, read_csv_calls, content, what):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    assert message(path) == f"file '{path}' is not a table: it is {what}"
    assert read_csv_calls == []


def test_excel_workbook(tmp_path):
    path = tmp_path / "book.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    assert message(path) == (f"file '{path}' is not a table: it is an Excel workbook; save the sheet as "
                             "CSV UTF-8 (File > Save As) or Parquet")


def test_parquet_named_csv(tmp_path):
    path = tmp_path / "t.csv"
    TABLE.to_parquet(path)
    assert message(path) == f"file '{path}' is a Parquet file, not CSV; rename it to end in .parquet"


def test_a_gzipped_png_is_still_a_png(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(PNG))
    assert message(path) == f"file '{path}' is not a table: it is a PNG image; give a CSV or Parquet file"


def test_too_large_for_memory(tmp_path, monkeypatch, read_csv_calls):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "123456,7\n" * 3000)  # 27,004 bytes
    monkeypatch.setattr(load, "available_memory", lambda: 50_000)
    need = int(27_004 * load.CSV_EXPANSION)
    assert need > 50_000
    assert message(path) == (f"file '{path}' is too large to load: its 27 kB of CSV need about {kb(need)} of "
                             "memory, and 50 kB is available; train on a sample of its rows, or save only the "
                             "columns you need as Parquet (pandas.read_csv(..., usecols=[...]).to_parquet(...))")
    assert read_csv_calls == []  # refused before reading


def test_too_large_counts_the_uncompressed_size(tmp_path, monkeypatch):
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(("a,b\n" + "1,2\n" * 250_000).encode()))  # 1 MB of text, ~2 kB on disk
    monkeypatch.setattr(load, "available_memory", lambda: 1_000_000)
    need = int(1_000_004 * load.CSV_EXPANSION)
    assert message(path) == (f"file '{path}' is too large to load: its 1 MB of CSV need about {need / 1e6:.0f} "
                             "MB of memory, and 1 MB is available; train on a sample of its rows, or save only "
                             "the columns you need as Parquet (pandas.read_csv(..., usecols=[...]).to_parquet(...))")


def test_large_parquet(tmp_path, monkeypatch):
    path = tmp_path / "big.parquet"
    pd.DataFrame({"x": np.arange(10_000, dtype=np.float64)}).to_parquet(path)
    size = pq.read_metadata(path).row_group(0).total_byte_size
    monkeypatch.setattr(load, "available_memory", lambda: size)
    need = int(size * load.PARQUET_EXPANSION)
    assert message(path) == (f"file '{path}' is too large to load: its {kb(size)} of Parquet need about "
                             f"{kb(need)} of memory, and {kb(size)} is available; train on a sample "
                             "of its rows, or save only the columns you need (pandas.read_parquet(..., columns=[...]))")


def test_fits_when_memory_is_unknown(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    monkeypatch.setattr(load, "available_memory", lambda: None)
    pd.testing.assert_frame_equal(read_table(path), TABLE)


def test_available_memory_is_a_positive_number():
    available = load.available_memory()
    assert available is None or available > 0


def test_cgroup_memory_left(tmp_path):
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("600000\n")
    (tmp_path / "memory.stat").write_text("anon 400000\nfile 200000\n")
    assert load.cgroup_memory_left(tmp_path) == 600_000  # page cache counts as free: the kernel drops it
    (tmp_path / "memory.max").write_text("max\n")
    assert load.cgroup_memory_left(tmp_path) is None


# ---------------------------------------------------------------- the same errors through the CLI


@pytest.mark.parametrize("name,content,expected", [
    ("dup.csv", b"a,a,y\n1,2,no\n", "has duplicated column names: 'a' (columns 1 and 2); rename the columns "
                                    "so that each name is used once"),
    ("pic.csv", PNG, "is not a table: it is a PNG image; give a CSV or Parquet file"),
    ("garbage.csv", bytes(range(1, 256)) * 4, "is not a table: it is binary data, not text; give a CSV or "
                                              "Parquet file"),
    ("zeros.csv", b"\x00" * 300, "is not a table: it is binary data (it holds NUL bytes), not text; give a CSV "
                                 "or Parquet file"),
], ids=["duplicates", "png", "binary", "nul-bytes"])
def test_cli_bad_tables(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    cli_bad_input(capsys, ["train", path, "--target", "y", "--out", tmp_path / "runs"], f"file '{path}' {expected}")
    assert not (tmp_path / "runs").exists()


def test_cli_parquet_without_rows(tmp_path, capsys):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"a": pd.Series([], dtype=float), "y": pd.Series([], dtype=str)}).to_parquet(path)
    cli_bad_input(capsys, ["train", path, "--target", "y"],
                  f"file '{path}' has 2 columns but no rows; add the rows to train or predict on")


def test_cli_too_large(tmp_path, capsys, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("a,y\n" + "123456,7\n" * 3000)
    monkeypatch.setattr(load, "available_memory", lambda: 50_000)
    need = int(27_004 * load.CSV_EXPANSION)
    cli_bad_input(capsys, ["train", path, "--target", "y"],
                  f"file '{path}' is too large to load: its 27 kB of CSV need about {kb(need)} of memory, "
                  "and 50 kB is available; train on a sample of its rows, or save only the columns you need as "
                  "Parquet (pandas.read_csv(..., usecols=[...]).to_parquet(...))")


# ---------------------------------------------------------------- D13: the Parquet cache


def cached_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.parquet"))


def test_second_read_loads_the_cache(tmp_path, read_csv_calls):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, sep=";", index=False)
    first = read_table(path, cache_dir=tmp_path / "cache")
    assert len(read_csv_calls) == 1 and len(cached_files(tmp_path / "cache")) == 1
    second = read_table(path, cache_dir=tmp_path / "cache")
    assert len(read_csv_calls) == 1  # not parsed again
    pd.testing.assert_frame_equal(second, first)
    pd.testing.assert_frame_equal(second, TABLE)


def test_changed_content_misses(tmp_path, read_csv_calls):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path, cache_dir=tmp_path / "cache")
    changed = TABLE.assign(count=[7, 8, 9])
    changed.to_csv(path, index=False)  # same size, same name
    pd.testing.assert_frame_equal(read_table(path, cache_dir=tmp_path / "cache"), changed)
    assert len(read_csv_calls) == 2
    assert len(cached_files(tmp_path / "cache")) == 2


@pytest.fixture
def hash_calls(monkeypatch) -> list[Path]:
    """cache._sha256, counted: the files whose bytes were hashed."""
    calls: list[Path] = []
    real = cache._sha256
    monkeypatch.setattr(cache, "_sha256", lambda path: calls.append(path) or real(path))
    return calls


def test_a_file_left_alone_is_not_hashed_again(tmp_path, monkeypatch, read_csv_calls, hash_calls):
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)  # as if the file had been written long ago
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path)
    pd.testing.assert_frame_equal(read_table(path), TABLE)
    assert (len(hash_calls), len(read_csv_calls)) == (1, 1)
    changed = TABLE.assign(count=[7, 8, 9])
    changed.to_csv(path, index=False)  # same size, same inode; a new ctime, and here a new mtime for sure:
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)  # one clock tick may hold both writes
    pd.testing.assert_frame_equal(read_table(path), changed)
    assert (len(hash_calls), len(read_csv_calls)) == (2, 2)


def test_a_file_changed_moments_ago_is_hashed_on_every_read(tmp_path, read_csv_calls, hash_calls):
    # a write in the same clock tick as the memo's stat would leave the timestamps unchanged (git's
    # "racy clean" files): such a file is recognised by its hash, not its timestamps
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path)
    read_table(path)
    assert (len(hash_calls), len(read_csv_calls)) == (2, 1)


def test_a_memo_from_before_a_cache_version_bump_misses(tmp_path, monkeypatch, read_csv_calls):
    # the memo stores the key with its version: after a bump it must not lead back to the old parse
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path)
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)
    read_table(path)
    assert len(read_csv_calls) == 2


def test_same_content_elsewhere_hits(tmp_path, read_csv_calls):
    TABLE.to_csv(tmp_path / "a.csv", index=False)
    TABLE.to_csv(tmp_path / "b.csv", index=False)
    read_table(tmp_path / "a.csv", cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(read_table(tmp_path / "b.csv", cache_dir=tmp_path / "cache"), TABLE)
    assert len(read_csv_calls) == 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped-byte", "empty"])
def test_damaged_cache_is_read_again_and_replaced(tmp_path, read_csv_calls, caplog, damage):
    path = tmp_path / "t.csv"
    frame = pd.DataFrame({"x": np.arange(2000) / 7, "s": [f"s{i % 13}" for i in range(2000)]})
    frame.to_csv(path, index=False)
    read_table(path, cache_dir=tmp_path / "cache")
    [file] = cached_files(tmp_path / "cache")
    data = bytearray(file.read_bytes())
    if damage == "garbage":
        data = bytearray(b"not parquet at all")
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped-byte":
        data[len(data) // 4] ^= 0xFF  # inside the float column's data page: the page checksum fails
    else:
        data = bytearray()
    file.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        again = read_table(path, cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(again, read_table(path, cache=False))
    assert len(read_csv_calls) == 3  # first read, the damaged cache, cache=False
    assert caplog.messages[0].startswith(f"cached table {file} cannot be read (")
    assert caplog.messages[0].endswith("): reading the source file again")
    read_table(path, cache_dir=tmp_path / "cache")  # the cache file was overwritten with a good one
    assert len(read_csv_calls) == 3


def test_dtypes_round_trip(tmp_path):
    path = tmp_path / "types.csv"
    path.write_text("s,s_gap,f,f_gap,i,i_gap,b,b_gap,empty,words\n"
                    "x,x,1.5,1.5,1,1,True,True,,4O\n"
                    "y,,2.5,,2,,False,,,40\n"
                    "z,z,-1e300,3,3,3,True,False,,\n")
    first = read_table(path)
    second = read_table(path)
    pd.testing.assert_frame_equal(second, first, check_exact=True)
    assert {c: str(t) for c, t in second.dtypes.items()} == {c: str(t) for c, t in first.dtypes.items()}
    assert second["b_gap"].tolist()[:1] + second["b_gap"].tolist()[2:] == [True, False]
    assert second["b_gap"].isna().tolist() == [False, True, False]
    assert isinstance(second.index, pd.RangeIndex)


def test_cache_off(tmp_path, read_csv_calls):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path, cache=False, cache_dir=tmp_path / "cache")
    read_table(path, cache=False, cache_dir=tmp_path / "cache")
    assert len(read_csv_calls) == 2
    assert not (tmp_path / "cache").exists()


def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NNRECIPE_CACHE", str(tmp_path / "env"))
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    read_table(path)
    assert len(cached_files(tmp_path / "env" / "tables")) == 1


def test_the_input_file_is_never_modified(tmp_path):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_table(path)
    read_table(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_an_unwritable_cache_is_a_notice(tmp_path, caplog):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        df = read_table(path, cache_dir=blocked / "cache")
    pd.testing.assert_frame_equal(df, TABLE)
    assert caplog.messages[0].startswith(f"could not cache the parsed table in {blocked / 'cache'} (")


def test_a_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)

    def half_written(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", half_written)
    pd.testing.assert_frame_equal(read_table(path, cache_dir=tmp_path / "cache"), TABLE)
    assert list((tmp_path / "cache").iterdir()) == []


def test_notices_repeat_on_a_cache_hit(tmp_path, caplog):
    path = tmp_path / "excel.csv"
    path.write_bytes(german())
    read_table(path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nnrecipe"):
        read_table(path)
    assert caplog.messages[0].startswith(f"file '{path}' read from the cache (")
    assert caplog.messages[1:] == [
        f"file '{path}' is not UTF-8 text (byte 2): read it as cp1252 (Windows Western European); "
        "if accented letters look wrong, save it as UTF-8 CSV",
        f"file '{path}' has decimal commas: read '1,5' as 1.5"]


def test_read_table_positional_call_unchanged(tmp_path):
    path = tmp_path / "t.csv"
    TABLE.to_csv(path, index=False)
    assert read_table(str(path)).equals(read_table(os.fspath(path)))


# ---------------------------------------------------------------- where a row is in the file


def test_row_labels_count_the_lines_a_quoted_field_spans_and_blank_lines(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('a,note,y\n1,"two\nlines",x\n\n2,plain,y\n3,"three\nline\nnote",x\n4,ok,y\n')
    assert len(read_table(path, cache=False)) == 4
    assert load.row_labels(path, [0, 1, 2, 3]) == ["line 2", "line 5", "line 6", "line 9"]
    gz = tmp_path / "notes.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load.row_labels(gz, [3, 1]) == ["line 9", "line 5"]  # read as read_table reads it; any order
    parquet = tmp_path / "notes.parquet"
    read_table(path, cache=False).to_parquet(parquet)
    assert load.row_labels(parquet, [2]) == ["row 2"]


def test_a_stray_value_after_a_multi_line_field_is_named_at_its_line(tmp_path, cli):
    path = tmp_path / "ages.csv"
    rows = [f'{20 + i},"note {i}\nsecond line",{"yes" if i % 2 else "no"}' for i in range(30)]
    rows[12] = rows[12].replace("32,", "3x2,", 1)
    path.write_text("age,note,y\n" + "\n".join(rows) + "\n")
    before = path.read_bytes()
    code, out, err = cli("train", path, "--target", "y", "--out", tmp_path / "runs")
    assert code == 2
    # data row 12 starts on line 2 + 2 * 12 = 26 (each row spans two lines), not on line 14
    assert "column 'age' has 1 values that are not numbers (first at line 26: '3x2')" in err
    assert path.read_bytes() == before


def test_a_cell_none_among_words_is_the_word_and_missing_elsewhere(tmp_path, caplog):
    # MASS's survey answers exercise with None / Some / Freq: pandas would read None as missing, and a
    # target's class None would be left out as unlabelled rows; among numbers or booleans it is missing
    path = tmp_path / "t.csv"
    path.write_text("exer,pulse,smokes,note\nNone,1.5,True,a\nSome,None,False,\nFreq,2,None,b\n,3,True,None\n")
    with caplog.at_level(logging.INFO, logger="nnrecipe"):
        df = read_table(path, cache=False)
    assert df["exer"].tolist()[:3] == ["None", "Some", "Freq"] and pd.isna(df["exer"][3])
    assert df["pulse"].dtype == np.float64 and pd.isna(df["pulse"][1])
    assert pd.isna(df["smokes"][2]) and df["smokes"][0] is True
    assert pd.isna(df["note"][1]) and df["note"][3] == "None"
    assert "column 'exer' has 1 cells 'None' among words" in caplog.text


def test_a_header_cell_of_markup_is_a_column_name_not_a_web_page(tmp_path):
    """A first column named '<b>x</b>&y' (markup copied into a header) was refused as an HTML document."""
    path = tmp_path / "data.csv"
    path.write_text("<b>x</b>&y,b,y\n" + "".join(f"{i},{i % 3},{'ab'[i % 2]}\n" for i in range(30)))
    frame = read_table(path)
    assert list(frame.columns) == ["<b>x</b>&y", "b", "y"] and len(frame) == 30
