"""What a file holds before pandas reads it: compression, text encoding, delimiter, decimal mark, header.

Everything here looks at the first SAMPLE_BYTES of the decompressed content, so it costs milliseconds
whatever the file's size. Files that are not tables (images, JSON, HTML, binary data) are named here,
with the fix, instead of reaching pandas, which reads most of them as a one-column table or a garbled
header."""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import itertools
import os
import re
import shlex
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import DataError

SAMPLE_BYTES = 1 << 16  # 64 KiB: tens of lines of a wide table, read in well under a millisecond
DELIMITERS = (",", ";", "\t", "|")
# A decimal comma is only possible when the delimiter is not a comma (German/French Excel export: ';').
COMMA_NUMBER = re.compile(r"[-+]?\d+,\d+")
DOT_NUMBER = re.compile(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?")
GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:\.\d{3})+(?:,\d+)?")  # '1.315' and '1.315,4': dots grouping thousands
SMALL_WHOLE, BIG_WHOLE = re.compile(r"[-+]?\d{1,3}"), re.compile(r"[-+]?\d{4,}")
# Text files hold tabs and line breaks but few other control characters; a sample with more than this
# share of them is binary data that happened to decode.
MAX_CONTROL_SHARE = 0.01
# C0 controls but tab, line breaks and \x1a (the end-of-file mark old DOS tools append). Not 0x80-0x9F:
# letters in cp1252 text, and rare C1 controls in Latin-1 text.
CONTROLS = re.compile("[\x00-\x08\x0e-\x19\x1b-\x1f\x7f]")

# Leading bytes of formats people save or download under a .csv name by mistake.
SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "give a CSV or Parquet file"),
    (b"\xff\xd8\xff", "a JPEG image", "give a CSV or Parquet file"),
    (b"GIF87a", "a GIF image", "give a CSV or Parquet file"),
    (b"GIF89a", "a GIF image", "give a CSV or Parquet file"),
    (b"%PDF-", "a PDF document", "give a CSV or Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table to CSV or Parquet"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (or another old Office file)",
     "save the sheet as CSV UTF-8 (File > Save As) or Parquet"),
    (b"ARROW1", "an Arrow/Feather file", "save it as Parquet (pandas.read_feather(...).to_parquet(...))"),
    (b"\x7fELF", "a program (ELF executable)", "give a CSV or Parquet file"),
)
BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
ENCODING_NAMES = {"cp1252": "cp1252 (Windows Western European)", "latin-1": "Latin-1 (ISO-8859-1)"}


@dataclass(frozen=True)
class CsvFormat:
    """How to read a CSV file: what read_csv needs, and what the user should be told about it."""

    compression: str | None  # None, "gzip", "bz2", "xz" or "zip"
    member: str | None  # the CSV's name inside a zip archive
    encoding: str  # a Python codec name, as read_csv takes it
    delimiter: str
    decimal: str  # "." or ","
    size: int | None  # bytes of the decompressed text, when known without reading it all
    header: list[str] = field(default_factory=list)
    not_utf8_at: int | None = None  # the first byte that is not UTF-8, when we fell back to cp1252/Latin-1
    # the fields of the sample's data rows when every one has more than the header (None otherwise): pandas
    # would read the first field as row labels, and when those count 0, 1, 2 ... nothing would show it
    wider_rows: int | None = None
    thousands: str | None = None  # "." where dots group thousands ('1.315,4'; see _marks)

    def open(self, path: Path) -> IO[bytes]:
        """The decompressed bytes, as a binary file (the caller closes it)."""
        if self.compression == "zip":
            with zipfile.ZipFile(path) as archive:
                return archive.open(self.member or "")  # the member keeps the file open until it is closed
        opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(self.compression or "", None)
        return opener(path, "rb") if opener else open(path, "rb")  # type: ignore[return-value]


def not_a_table(path: Path, what: str, fix: str) -> DataError:
    return DataError(f"file '{path}' is not a table: it is {what}; {fix}")


def sniff_csv(path: Path) -> CsvFormat:
    """The format of the CSV at `path`, or a DataError when the file is not a CSV table."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    compression, member, size = _compression(path, head)
    if compression is not None:
        try:
            with CsvFormat(compression, member, "utf-8", ",", ".", None).open(path) as f:
                head = f.read(SAMPLE_BYTES + 1)
        except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, ValueError) as e:
            why = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
            raise DataError(f"file '{path}' cannot be read as {compression}: {why}; fix the file, or save the "
                            "table again") from None
        _check_signature(path, head)  # a zipped PNG is still a PNG
        whole = len(head) <= SAMPLE_BYTES
        head = head[:SAMPLE_BYTES]
    else:
        whole = len(head) == os.path.getsize(path)
    encoding, not_utf8_at, text = _decode(path, head, whole)
    _check_text(path, text)
    if not whole and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # the last line may be cut mid-way
    delimiter, rows = _delimiter(text)
    widths = {len(r) for r in rows[1:]}
    wider = None
    if len(widths) == 1 and next(iter(widths)) > len(rows[0]):
        wider = next(iter(widths))
    decimal, thousands = _marks(delimiter, rows[1:])
    return CsvFormat(compression, member, encoding, delimiter, decimal, size, rows[0] if rows else [], not_utf8_at,
                     wider, thousands)


def _compression(path: Path, head: bytes) -> tuple[str | None, str | None, int | None]:
    """(compression, zip member, decompressed size when known), by the leading bytes, not the file name."""
    size = os.path.getsize(path)
    if head.startswith(b"PAR1"):
        raise DataError(f"file '{path}' is a Parquet file, not CSV; rename it to end in .parquet")
    _check_signature(path, head)
    if head.startswith(b"\x1f\x8b"):
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            isize = int.from_bytes(f.read(4), "little")
        # the gzip trailer holds the size modulo 4 GiB: below the compressed size it has wrapped (or the
        # file holds several members), and past deflate's largest ratio (1032:1) it is not a trailer (a
        # truncated file); then the compressed size is the best lower bound we have
        return "gzip", None, isize if size <= isize <= 1032 * size else size
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        return "bz2", None, None
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz", None, None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(path) as archive:
                infos = [i for i in archive.infolist() if not i.is_dir()]
        except zipfile.BadZipFile as e:
            raise DataError(f"file '{path}' cannot be read as zip: {e}; fix the file, or save the table "
                            "again") from None
        names = [i.filename for i in infos]
        if "[Content_Types].xml" in names:
            kind = "an Excel workbook" if any(n.startswith("xl/") for n in names) else "an Office document"
            raise not_a_table(path, kind, "save the sheet as CSV UTF-8 (File > Save As) or Parquet")
        files = [i for i in infos if not i.filename.startswith("__MACOSX/")
                 and os.path.basename(i.filename) != ".DS_Store"]  # what macOS's Compress adds
        if len(files) != 1:
            listed = ", ".join(i.filename for i in files[:5]) + (" ..." if len(files) > 5 else "")
            held = f"{len(files)} files ({listed})" if files else "no files"
            raise DataError(f"file '{path}' is a zip archive holding {held}; nnrecipe reads a zip that holds "
                            "one CSV file: extract the table you want and give it instead")
        return "zip", files[0].filename, files[0].file_size
    return None, None, size


def _check_signature(path: Path, head: bytes) -> None:
    for magic, what, fix in SIGNATURES:
        if head.startswith(magic):
            raise not_a_table(path, what, fix)


def _decode(path: Path, head: bytes, whole: bool) -> tuple[str, int | None, str]:
    """(encoding, first non-UTF-8 byte or None, the sample as text)."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            break
    else:
        encoding = _utf16_without_bom(head) if b"\x00" in head else "utf-8"
        if encoding is None:
            _check_stray_nul(path, head)
            raise not_a_table(path, "binary data (it holds NUL bytes), not text", "give a CSV or Parquet file")
    not_utf8_at = None
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=whole)
    except UnicodeDecodeError as e:
        if encoding != "utf-8":
            raise DataError(f"file '{path}' is not valid {encoding.upper()} text (byte {e.start}); save it "
                            "again as UTF-8 CSV, or as Parquet") from None
        # Excel on Windows saves "CSV" in the ANSI code page: cp1252 for Western Europe and the Americas.
        # Latin-1 decodes every byte, for the 5 bytes cp1252 leaves undefined.
        not_utf8_at = e.start
        encoding = "cp1252"
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            encoding = "latin-1"
            text = head.decode(encoding)
    return encoding, not_utf8_at, text


def _check_stray_nul(path: Path, head: bytes) -> None:
    """Raise naming the NUL bytes of a text table that holds a few of them (a damaged copy, a field padded
    by a database export): text otherwise, so the fix is to remove them, not to find another file."""
    nuls = head.count(0)
    if nuls > MAX_CONTROL_SHARE * len(head):
        return
    text = head.replace(b"\x00", b"").decode("utf-8", errors="replace")
    if len(CONTROLS.findall(text)) > MAX_CONTROL_SHARE * len(text) or "\n" not in text:
        return
    first = head.index(0)
    line = head[:first].count(b"\n") + 1
    raise DataError(f"file '{path}' holds NUL bytes (\\0) in its text, the first on line {line} (byte {first}), "
                    f"which no table cell holds; remove them (tr -d '\\000' < {shlex.quote(str(path))} > "
                    "fixed.csv), or save the table again as CSV")


def _utf16_without_bom(head: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when every other byte is NUL (ASCII text saved as UTF-16 without a BOM)."""
    even, odd = head[0::2], head[1::2]
    if not even or not odd:
        return None
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.9 and even_nul < 0.1:
        return "utf-16-le"
    if even_nul > 0.9 and odd_nul < 0.1:
        return "utf-16-be"
    return None


# the tags an HTML or XML document (a web page sent for a download link, an RSS feed) starts with; markup of
# another tag is a document too when its first line holds no separator ('<h1>404 Not Found</h1>'), and a
# header cell that starts with markup ('<b>x</b>&y,b,target') is a column's name
DOCUMENT_TAGS = {"html", "head", "body", "meta", "title", "link", "script", "style", "div", "table", "svg", "xml",
                 "rss", "feed", "urlset", "note", "root"}


def _check_text(path: Path, text: str) -> None:
    """Raise when decoded text is binary data, JSON or HTML/XML rather than a delimited table."""
    controls = len(CONTROLS.findall(text))
    if text and controls > MAX_CONTROL_SHARE * len(text):
        raise not_a_table(path, "binary data, not text", "give a CSV or Parquet file")
    start = text.lstrip()[:2]
    if start[:1] == "{" or (start[:1] == "[" and (len(start) < 2 or start[1] in '{["]-0123456789\r\n\t ')):
        raise not_a_table(path, "a JSON document", "turn it into a table and save that as CSV or Parquet "
                                                   "(pandas.read_json or pandas.json_normalize, then to_parquet)")
    tag = re.match(r"<([A-Za-z][\w:-]*)", text.lstrip())
    first = text.lstrip().split("\n", 1)[0]
    if start in ("<!", "<?") or (tag and (tag.group(1).lower() in DOCUMENT_TAGS or not re.search(r"[,;\t|]", first))):
        raise not_a_table(path, "an HTML or XML document", "if it came from a download link, the server sent a "
                                                           "web page: download the CSV file itself")


def _delimiter(text: str) -> tuple[str, list[list[str]]]:
    """The delimiter among , ; tab | that splits the header into 2 fields or more and the largest share of
    the sample's rows into as many fields as the header (on a tie, the most fields), with the sample
    parsed into rows by it. Parsing with the csv module (not counting characters) keeps quoted fields
    with delimiters or line breaks whole."""
    best: tuple[float, int] = (0.0, 0)
    chosen, chosen_rows = ",", []
    for d in DELIMITERS:
        try:
            rows = [r for _, r in zip(range(100), csv.reader(io.StringIO(text, newline=""), delimiter=d)) if r]
        except csv.Error:
            continue
        if d == ",":
            chosen_rows = rows  # the default when nothing splits the header
        if not rows or len(rows[0]) < 2:
            continue
        agree = sum(len(r) == len(rows[0]) for r in rows) / len(rows)
        if (agree, len(rows[0])) > best:
            best, chosen, chosen_rows = (agree, len(rows[0])), d, rows
    return chosen, chosen_rows


def _marks(delimiter: str, rows: list[list[str]]) -> tuple[str, str | None]:
    """(decimal mark, thousands mark). The decimal mark is ',' when the delimiter is not a comma, some cells
    are numbers with a decimal comma ('1,5') and no cell is a number with a decimal point; else '.'. Dots
    group thousands (European exports: '1.315,4', '40.577' beside '989') when every number with a dot in it
    is written in groups of three and the sample shows it: a dot before a decimal comma, or a column of such
    cells beside whole numbers under 1000 and none of four digits or more; the decimal mark is then ','.
    (40.577 read as a decimal sorted below 989, with no notice.) A number under 1 ('0.512'), which grouping
    never writes, keeps the dot a decimal point."""
    if delimiter == ",":
        return ".", None
    cells = [c.strip() for r in rows for c in r]
    dotted = [c for c in cells if "." in c and (DOT_NUMBER.fullmatch(c) or GROUPED.fullmatch(c))]
    if dotted and all(GROUPED.fullmatch(c) for c in dotted) and _grouped_columns(rows):
        return ",", "."
    if any(DOT_NUMBER.fullmatch(c) for c in cells):
        return ".", None
    return ("," if any(COMMA_NUMBER.fullmatch(c) for c in cells) else "."), None


def _grouped_columns(rows: list[list[str]]) -> bool:
    """Whether the sample shows dots grouping thousands (see _marks)."""
    if any(GROUPED.fullmatch(c.strip()) and "," in c for r in rows for c in r):
        return True
    for column in itertools.zip_longest(*rows, fillvalue=""):
        cells = [c.strip() for c in column if c.strip()]
        if any(GROUPED.fullmatch(c) for c in cells) and any(SMALL_WHOLE.fullmatch(c) for c in cells) \
                and not any(BIG_WHOLE.fullmatch(c) for c in cells):
            return True
    return False
