"""Issue 16, the corpus of malformed and hostile inputs, part 1: files that are not what they say, broken
CSV, encodings, column names and cells as people (and tools) write them. Each kind is one test id: bad input
ends with exit code 2 and one message naming the file and the fix (no traceback); an input that can be read
sensibly is read, with a notice where nnrecipe decided something on the user's behalf. Every kind's files
are byte-identical afterwards. Part 2 (targets, flags, predict, audit, clean, tune):
test_malformed_inputs_more.py."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from malformed_corpus import (TRAIN, Case, Where, alternating, bad, bad_with, csv_text, done, numbers, registry,
                              run_folder, run_kind, table, write, zipped)

KINDS, kind = registry()


def train(w: Where, data: object, *extra: object, target: str = "y") -> list[object]:
    return ["train", data, "--target", target, "--out", w.tmp.parent / "runs", *extra]


# ---------------------------------------------------------------- files that are not tables


@kind("empty-file")
def _(w: Where) -> Case:
    data = write(w.tmp / "empty.csv", "")
    return Case(train(w, data), bad(f"file '{data}' is empty; it needs a header row and data rows"))


@kind("header-only")
def _(w: Where) -> Case:
    data = write(w.tmp / "header.csv", "a,b,y\n")
    return Case(train(w, data), bad(f"file '{data}' has a header (3 columns) but no data rows; add the rows to "
                                    "train or predict on"))


@kind("only-whitespace")
def _(w: Where) -> Case:
    data = write(w.tmp / "blank.csv", "   \n\t\n  \n")
    return Case(train(w, data), bad(f"file '{data}' has no columns; it needs a header row and data rows"))


@kind("binary-garbage")
def _(w: Where) -> Case:
    data = write(w.tmp / "garbage.csv", bytes(range(1, 256)) * 8)
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is binary data, not text; give a CSV or "
                                    "Parquet file"))


@kind("png-named-csv")
def _(w: Where) -> Case:
    data = write(w.tmp / "chart.csv", b"\x89PNG\r\n\x1a\n" + bytes(200))
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is a PNG image; give a CSV or Parquet "
                                    "file"))


@kind("pdf-named-csv")
def _(w: Where) -> Case:
    data = write(w.tmp / "report.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is a PDF document; give a CSV or "
                                    "Parquet file"))


@kind("html-named-csv")
def _(w: Where) -> Case:
    data = write(w.tmp / "download.csv", "<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n")
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is an HTML or XML document; if it came "
                                    "from a download link, the server sent a web page: download the CSV file "
                                    "itself"))


@kind("json-named-csv")
def _(w: Where) -> Case:
    data = write(w.tmp / "rows.csv", json.dumps([{"a": 1, "y": "no"}, {"a": 2, "y": "yes"}]))
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is a JSON document; turn it into a table "
                                    "and save that as CSV or Parquet (pandas.read_json or pandas.json_normalize, "
                                    "then to_parquet)"))


@kind("xlsx-named-csv")
def _(w: Where) -> Case:
    data = write(w.tmp / "book.csv", zipped({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}))
    return Case(train(w, data), bad(f"file '{data}' is not a table: it is an Excel workbook; save the sheet as "
                                    "CSV UTF-8 (File > Save As) or Parquet"))


@kind("zip-with-two-csvs")
def _(w: Where) -> Case:
    data = write(w.tmp / "tables.zip", zipped({"a.csv": "a,y\n1,no\n", "b.csv": "a,y\n2,yes\n"}))
    return Case(train(w, data), bad(f"file '{data}' is a zip archive holding 2 files (a.csv, b.csv); nnrecipe "
                                    "reads a zip that holds one CSV file: extract the table you want and give "
                                    "it instead"))


@kind("zip-of-one-csv-reads")
def _(w: Where) -> Case:
    data = write(w.tmp / "table.zip", zipped({"table.csv": csv_text(table())}))
    return Case(train(w, data, *TRAIN), done(out_has=("train 28",)))


@kind("gzip-truncated")
def _(w: Where) -> Case:
    whole = gzip.compress(csv_text(table()).encode())
    data = write(w.tmp / "table.csv.gz", whole[: len(whole) // 2])
    return Case(train(w, data), bad(f"file '{data}' cannot be read as gzip: Compressed file ended before the "
                                    "end-of-stream marker was reached; fix the file, or save the table again"))


@kind("bz2-reads")
def _(w: Where) -> Case:
    data = write(w.tmp / "table.csv", bz2.compress(csv_text(table()).encode()))  # compression from the bytes
    return Case(train(w, data, *TRAIN), done(out_has=("train 28",)))


@kind("parquet-bytes-named-csv")
def _(w: Where) -> Case:
    buffer = io.BytesIO()
    table().to_parquet(buffer)
    data = write(w.tmp / "table.csv", buffer.getvalue())
    return Case(train(w, data), bad(f"file '{data}' is a Parquet file, not CSV; rename it to end in .parquet"))


@kind("csv-named-parquet")
def _(w: Where) -> Case:
    data = write(w.tmp / "table.parquet", csv_text(table()))
    return Case(train(w, data), bad_with(f"file '{data}' cannot be read as Parquet: ",
                                         "; fix the file, or save the table again as Parquet"))


@kind("missing-file")
def _(w: Where) -> Case:
    write(w.tmp / "other.csv", "a,y\n")
    data = w.tmp / "nope.csv"
    return Case(train(w, data), bad(f"file '{data}' does not exist; check the path"))


@kind("file-is-a-folder")
def _(w: Where) -> Case:
    write(w.tmp / "inside.csv", "a,y\n")
    return Case(train(w, w.tmp), bad(f"'{w.tmp}' is a folder; give a CSV or Parquet file"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_file_without_read_permission(cli, tmp_path):
    data = write(tmp_path / "locked.csv", csv_text(table()))
    data.chmod(0)
    try:
        bad(f"file '{data}' cannot be read (permission denied); fix its permissions")(
            *cli("train", data, "--target", "y", "--out", tmp_path / "runs"), "")
    finally:
        data.chmod(0o644)


# ---------------------------------------------------------------- broken CSV


@kind("row-longer-than-header")
def _(w: Where) -> Case:
    data = write(w.tmp / "ragged.csv", "a,b,y\n1,2,no\n1,2,3,4,yes\n")
    return Case(train(w, data), bad(f"file '{data}' cannot be read as CSV: Error tokenizing data. C error: "
                                    "Expected 3 fields in line 3, saw 5; fix the file, or save the table again "
                                    "as CSV"))


@kind("header-one-name-short")
def _(w: Where) -> Case:
    data = write(w.tmp / "short.csv", "a,y\n" + "".join(f"{i},{i * 2},{'yes' if i % 2 else 'no'}\n" for i in range(12)))
    return Case(train(w, data), bad(f"file '{data}' has 2 names in its header but 3 fields in its rows, so the "
                                    "first would be read as row labels; name every column in the header, or "
                                    "remove the extra field from the rows"))


@kind("quote-never-closed")
def _(w: Where) -> Case:
    data = write(w.tmp / "quote.csv", 'a,b,y\n1,2,yes\n\n3,"4,no\n5,6,yes\n7,8,no\n')
    return Case(train(w, data), bad(f"file '{data}' has a quote (\") opened on line 4 that is never closed, so "
                                    "the rest of the file would be one cell; close the quote, or remove it"))


@kind("duplicate-column-names")
def _(w: Where) -> Case:
    data = write(w.tmp / "dup.csv", "a,b,a,y\n1,2,3,no\n4,5,6,yes\n")
    return Case(train(w, data), bad(f"file '{data}' has duplicated column names: 'a' (columns 1 and 3); rename "
                                    "the columns so that each name is used once"))


@kind("names-equal-but-spaces")
def _(w: Where) -> Case:
    data = write(w.tmp / "spaces.csv", "a, a,y\n1,2,no\n4,5,yes\n")
    return Case(train(w, data), bad(f"file '{data}' has duplicated column names: 'a' (columns 1 and 2); rename "
                                    "the columns so that each name is used once"))


@kind("header-row-is-data")
def _(w: Where) -> Case:
    x = numbers(40)
    data = write(w.tmp / "noheader.csv", "".join(f"{v:.3f},{v * 2:.3f},{i % 2}\n" for i, v in enumerate(x)))
    first = f"{x[0]:.3f}, {x[0] * 2:.3f}, 0"
    return Case(train(w, data), bad(f"target column 'y' is not in file '{data}': its first line holds numbers "
                                    f"({first}), not column names, so the file has no header row; add a first line "
                                    "naming the columns (the target among them)"))


@kind("target-with-a-trailing-comma")
def _(w: Where) -> Case:
    data = write(w.tmp / "noheader.csv", "1,1,0\n2,3,1\n4,5,0\n")  # a first row with a repeated value
    return Case(train(w, data), bad(f"file '{data}' has no header row: its first line holds numbers (1, 1, 0), not "
                                    "column names; add a first line naming the columns"))


@kind("unnamed-column")
def _(w: Where) -> Case:
    data = write(w.tmp / "unnamed.csv", csv_text(table().rename(columns={"b": ""})))
    return Case(train(w, data, *TRAIN),
                done(f"file '{data}': column 2 has no name in the header: read as 'Unnamed: 1'; name it in the "
                     "header (or pass --drop 'Unnamed: 1')", "column Unnamed: 1: numeric"))


@kind("semicolon-with-commas-in-text")
def _(w: Where) -> Case:
    frame = table()
    frame["color"] = frame["color"] + ", dark"  # commas inside the cells of a ;-separated file
    data = write(w.tmp / "semi.csv", frame.to_csv(index=False, sep=";"))
    return Case(train(w, data, *TRAIN), done("column color: categorical", out_has=("train 28",)))


@kind("pipe-delimited")
def _(w: Where) -> Case:
    data = write(w.tmp / "pipe.csv", table().to_csv(index=False, sep="|"))
    return Case(train(w, data, *TRAIN), done("column a: numeric", "column color: categorical"))


# ---------------------------------------------------------------- encodings and bytes


@kind("utf16-with-bom")
def _(w: Where) -> Case:
    data = write(w.tmp / "excel.csv", csv_text(table()).encode("utf-16"))
    return Case(train(w, data, *TRAIN), done("column a: numeric", out_has=("train 28",)))


@kind("utf8-bom-before-target-name")
def _(w: Where) -> Case:
    frame = table()[["y", "a", "b", "color"]]  # the target first: the BOM must not become part of its name
    data = write(w.tmp / "bom.csv", b"\xef\xbb\xbf" + csv_text(frame).encode())
    return Case(train(w, data, *TRAIN), done(out_has=("target 'y'",)))


@kind("latin1-bytes")
def _(w: Where) -> Case:
    frame = table()
    frame["color"] = frame["color"].map({"red": "rouge", "green": "vert", "blue": "bleu é"})
    data = write(w.tmp / "latin.csv", csv_text(frame).encode("latin-1"))
    return Case(train(w, data, *TRAIN), done(f"file '{data}' is not UTF-8 text (byte ", "read it as cp1252"))


@kind("nul-bytes-inside-cells")
def _(w: Where) -> Case:
    text = csv_text(table()).encode()
    data = write(w.tmp / "nul.csv", text.replace(b"red", b"r\x00d", 2))
    line = text[: text.index(b"red")].count(b"\n") + 1
    return Case(train(w, data), bad(f"file '{data}' holds NUL bytes (\\0) in its text, the first on line {line} "
                                    f"(byte {text.index(b'red') + 1}), which no table cell holds; remove them "
                                    f"(tr -d '\\000' < {data} > fixed.csv), or save the table again as CSV"))


# ---------------------------------------------------------------- column names


@kind("10mb-column-name-with-report")
def _(w: Where) -> Case:
    name = "x" * 10_000_000
    frame = table().rename(columns={"b": name})
    data = write(w.tmp / "wide-name.csv", csv_text(frame))

    def report(out: str, err: str) -> None:  # the D14 heat map put the name on an axis: no report.html
        assert (run_folder(out) / "report.html").is_file()
        assert len(err) < 100_000 and len(out) < 100_000  # the name is cut wherever it is shown

    return Case(train(w, data, "--epochs", "1"), done(extra=report))


@kind("1mb-class-label-with-report")
def _(w: Where) -> Case:
    frame = table(30)
    frame["y"] = ["no", "yes", "no", "yes", "n" * 1_000_000][0:5] * 6  # a third class: six cells of 1 MB
    data = write(w.tmp / "wide-label.csv", csv_text(frame))

    def report(out: str, err: str) -> None:  # the confusion matrix and the D1 plot put the label on an axis
        assert (run_folder(out) / "report.html").is_file()
        assert (run_folder(out) / "label_distribution.png").is_file()
        assert len(err) < 100_000

    return Case(train(w, data, "--epochs", "1"), done(extra=report))


@kind("long-column-names")
def _(w: Where) -> Case:
    frame = table().rename(columns={"a": "a" * 300, "color": "c" * 500})
    data = write(w.tmp / "long.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column " + "a" * 77 + "...: numeric"))


@kind("names-with-newline-comma-quote")
def _(w: Where) -> Case:
    frame = table().rename(columns={"a": "line\nbreak", "b": 'say "hi", then'})
    data = write(w.tmp / "odd-names.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column line\\nbreak: numeric", 'column say "hi", then: numeric'))


@kind("unicode-emoji-names-and-target")
def _(w: Where) -> Case:
    frame = table().rename(columns={"a": "größe", "color": "色", "y": "résultat 🎯"})
    data = write(w.tmp / "unicode.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN, target="résultat 🎯"),
                done("column größe: numeric", "column 色: categorical"))


# ---------------------------------------------------------------- cells


@kind("numeric-column-with-one-word")
def _(w: Where) -> Case:
    frame = table().astype({"a": object})
    frame.loc[5, "a"] = "twelve"
    data = write(w.tmp / "word.csv", csv_text(frame))
    return Case(train(w, data), bad(f"file '{data}': column 'a' has 1 values that are not numbers (first at line "
                                    "7: 'twelve'); fix them, leave them empty to impute, or pass --categorical a"))


@kind("numeric-column-with-10mb-word")
def _(w: Where) -> Case:
    frame = table().astype({"a": object})
    frame.loc[5, "a"] = "z" * 10_000_000
    data = write(w.tmp / "bigword.csv", csv_text(frame))
    return Case(train(w, data), bad(f"file '{data}': column 'a' has 1 values that are not numbers (first at line "
                                    f"7: '{'z' * 37}...'); fix them, leave them empty to impute, or pass "
                                    "--categorical a"))


@kind("inf-spelled-several-ways")
def _(w: Where) -> Case:
    frame = table().astype({"a": object})
    for row, spelling in ((3, "inf"), (8, "-Infinity"), (11, "INF")):
        frame.loc[row, "a"] = spelling
    data = write(w.tmp / "inf.csv", csv_text(frame))
    return Case(train(w, data), bad(f"file '{data}': column 'a' has 3 infinite values (first at line 5); replace "
                                    "them with finite numbers, or leave the cells empty to impute"))


@kind("nan-spelled-several-ways")
def _(w: Where) -> Case:
    frame = table().astype({"a": object})
    for row, spelling in ((3, "nan"), (8, "NaN"), (11, "NULL"), (14, "N/A"), (17, "")):
        frame.loc[row, "a"] = spelling
    data = write(w.tmp / "nan.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column a: numeric", out_has=("train 28",)))


@kind("values-near-1e308")
def _(w: Where) -> Case:
    frame = table()
    frame["big"] = np.where(np.arange(len(frame)) % 2, 1e308, -1e308) * np.linspace(0.5, 1, len(frame))
    data = write(w.tmp / "big.csv", csv_text(frame))
    # the mean and std overflowed to NaN, every feature NaN, and the audit's leakage check a traceback
    return Case(train(w, data, *TRAIN), done("column big: numeric", extra=finite_accuracy))


def finite_accuracy(out: str, err: str) -> None:
    assert float(out.split("test accuracy: ")[-1].split()[0]) >= 0  # a number, not nan


@kind("subnormal-values-1e-320")
def _(w: Where) -> Case:
    frame = table()
    frame["tiny"] = numbers(len(frame), 3) * 1e-320
    data = write(w.tmp / "tiny.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column tiny: numeric"))


@kind("thousands-separators")
def _(w: Where) -> Case:
    frame = table()
    frame["price"] = [f"{int(v):,}" for v in np.linspace(900, 250_000, len(frame))]
    data = write(w.tmp / "prices.csv", csv_text(frame))
    # they were an embedded category (or 'ID-like'), with no word
    return Case(train(w, data, *TRAIN),
                done(f"file '{data}': column 'price' holds numbers written with thousands separators ('7,287'): "
                     "read as numbers",
                     "column price: numeric"))


@kind("decimal-commas-semicolon-file")
def _(w: Where) -> Case:
    data = write(w.tmp / "excel-de.csv", table().to_csv(index=False, sep=";", decimal=","))
    return Case(train(w, data, *TRAIN), done(f"file '{data}' has decimal commas: read '1,5' as 1.5",
                                             "column a: numeric"))


@kind("decimal-commas-comma-file")
def _(w: Where) -> Case:
    frame = table()
    frame["a"] = [f"{v:.2f}".replace(".", ",") for v in frame["a"]]  # quoted by to_csv
    data = write(w.tmp / "mixed.csv", csv_text(frame))
    first = frame.loc[0, "a"]
    return Case(train(w, data), bad(f"file '{data}': column 'a' holds numbers with decimal commas ('{first}') where "
                                    "the file's delimiter is a comma or its other numbers have decimal points; "
                                    "save the file with decimal points (or with ';' between the fields), or pass "
                                    "--categorical a"))


@kind("percentages")
def _(w: Where) -> Case:
    frame = table()
    frame["rate"] = [f"{v:.1f}%" for v in np.linspace(0, 100, len(frame))]
    data = write(w.tmp / "rates.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done(f"file '{data}': column 'rate' holds numbers written with a percent "
                                             "sign ('0.0%'): read as numbers", "column rate: numeric"))


@kind("currency")
def _(w: Where) -> Case:
    frame = table()
    frame["cost"] = [f"${v:,.2f}" for v in np.linspace(0.5, 2500, len(frame))]
    data = write(w.tmp / "costs.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done(f"file '{data}': column 'cost' holds numbers written with a currency "
                                             "sign ('$0.50'): read as numbers", "column cost: numeric"))


@kind("booleans-many-spellings")
def _(w: Where) -> Case:
    frame = table()
    n = len(frame)
    frame["flag"] = [["TRUE", "false", "True", "FALSE", ""][i % 5] for i in range(n)]
    frame["answer"] = [["yes", "no", "Y", "N"][i % 4] for i in range(n)]
    data = write(w.tmp / "bools.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column flag: boolean", "column answer: categorical"))


@kind("mixed-date-formats")
def _(w: Where) -> Case:
    frame = table()
    days = pd.date_range("2020-01-01", periods=len(frame), freq="7D")
    frame["when"] = [d.strftime("%Y-%m-%d") if i % 2 else d.strftime("%b %d %Y") for i, d in enumerate(days)]
    data = write(w.tmp / "dates.csv", csv_text(frame))
    # a column mixing '2020-01-05' and 'Jan 05 2020' was dropped as ID-like
    return Case(train(w, data, *TRAIN), done("column when: datetime"))


@kind("dates-far-past-and-future")
def _(w: Where) -> Case:
    frame = table()
    frame["when"] = alternating(len(frame), "0001-01-01", "9999-12-31")
    frame.loc[3, "when"] = "1492-10-12"
    data = write(w.tmp / "far.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column when: datetime"))


@kind("10mb-cell-in-a-category")
def _(w: Where) -> Case:
    frame = table()
    frame.loc[0, "color"] = "q" * 10_000_000
    data = write(w.tmp / "bigcell.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done("column color: categorical", extra=short_output))


def short_output(out: str, err: str) -> None:
    assert len(err) + len(out) < 100_000  # the cell is cut wherever it is shown


# ---------------------------------------------------------------- Parquet


@kind("parquet-list-and-struct-columns")
def _(w: Where) -> Case:
    frame = table()
    n = len(frame)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.append_column("tags", pa.array([[i, i + 1] for i in range(n)]))
    arrow = arrow.append_column("meta", pa.array([{"k": i, "v": "x"} for i in range(n)]))
    data = w.tmp / "nested.parquet"
    pq.write_table(arrow, data)
    # unhashable type: 'numpy.ndarray' in the schema
    return Case(train(w, data, *TRAIN), done(
        f"file '{data}': column 'tags' holds lists, which the model cannot take as an input: left out; flatten it "
        "into columns of numbers or text to use it",
        f"file '{data}': column 'meta' holds records (a struct), which the model cannot take as an input: left "
        "out; flatten it into columns of numbers or text to use it"))


@kind("parquet-list-column-as-target")
def _(w: Where) -> Case:
    arrow = pa.table({"a": numbers(20), "labels": pa.array([["x"], ["y", "z"]] * 10)})
    data = w.tmp / "nested.parquet"
    pq.write_table(arrow, data)
    return Case(train(w, data, target="labels"), bad(
        f"target column 'labels' in file '{data}' holds lists, not one value per row; choose a column of labels or "
        "numbers with --target (for several labels per row, one 0/1 column per label: --target a,b,c)"))


@kind("parquet-categorical-dtype")
def _(w: Where) -> Case:
    frame = table()
    frame["color"] = frame["color"].astype("category")
    frame["y"] = frame["y"].astype("category")
    data = w.tmp / "cat.parquet"
    frame.to_parquet(data)
    return Case(train(w, data, *TRAIN), done("column color: categorical", out_has=("train 28",)))


@kind("parquet-no-rows")
def _(w: Where) -> Case:
    data = w.tmp / "empty.parquet"
    table().iloc[:0].to_parquet(data)
    return Case(train(w, data), bad(f"file '{data}' has 4 columns but no rows; add the rows to train or predict on"))


@pytest.mark.parametrize("name", list(KINDS))
def test_malformed_input(name, cli, tmp_path, caplog):
    run_kind(KINDS, name, cli, tmp_path, caplog)


def test_the_corpus_holds_many_kinds():
    import test_malformed_inputs_more as more

    assert len(KINDS) + len(more.KINDS) >= 60
