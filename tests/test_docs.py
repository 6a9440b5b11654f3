"""The documentation holds together: the README stays short, every relative link (and #anchor) in README.md
and docs/*.md lands on a file and a heading, docs/techniques.md has a row for every technique id, each row's
code and tests exist as cited, and no internal working name leaks into the docs or the code."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TECHNIQUES = DOCS / "techniques.md"
README_LIMIT = 12 * 1024  # bytes: the README is the front page; the reference lives in docs/

IDS = ([f"D{i}" for i in range(1, 17)] + [f"M{i}" for i in range(1, 16)] + [f"T{i}" for i in range(1, 18)]
       + [f"C{i}" for i in range(1, 11)] + [f"R{i}" for i in range(1, 9)])

# internal working names that must not reach a reader (checked case-insensitively where the flag is set)
FORBIDDEN = [("seed 00", re.IGNORECASE), ("seed-features", 0), ("doctor-cases", 0), ("doctor-faults", 0)]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
NAME = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")
TEST_REF = re.compile(r"(tests/[\w/.-]+\.py)::(\w+)")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fence = [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip(" `~"):
                fence = None
        else:
            out.append((number, line))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link and image outside code, web links left out."""
    found = []
    for number, line in prose_lines(path):
        for m in LINK.finditer(CODE_SPAN.sub("", line)):
            target = m.group(2)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto: ...
                found.append((number, target))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, markup and punctuation dropped, lower case, spaces
    to hyphens."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    out = set()
    for _, line in prose_lines(path):
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def cells(line: str) -> list[str]:
    """A table row's cells, split on the pipes that are not escaped."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def technique_rows() -> dict[str, dict[str, str]]:
    """Every table row of docs/techniques.md, by its id, as {column: cell}."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] | None = None
    for _, line in prose_lines(TECHNIQUES):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = [c.lower() for c in row]
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in row):
            continue
        assert len(row) == len(header), f"docs/techniques.md: the row {row[0]!r} has {len(row)} cells, its table {len(header)}"
        by_column = {name.split(" (")[0]: cell for name, cell in zip(header, row)}
        assert row[0] not in rows, f"docs/techniques.md: {row[0]} has two rows"
        rows[row[0]] = by_column
    return rows


def defines(source: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", source, re.MULTILINE) is not None


# --------------------------------------------------------------------------------------------- (1) size
def test_the_readme_stays_under_12_kib():
    size = (ROOT / "README.md").stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT} (move reference text to docs/)"


# --------------------------------------------------------------------------------------------- (2) links
@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_lands_on_a_file_and_a_heading(path: Path):
    broken = []
    for number, target in links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(ROOT)}:{number}: ({target})"
        if not dest.exists():
            broken.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{where}: no heading with the anchor #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_the_slug_follows_github():
    assert slug("The model the recipe builds") == "the-model-the-recipe-builds"
    assert slug("How the task is inferred (`--task auto`)") == "how-the-task-is-inferred---task-auto"
    assert slug("Callbacks, the end of fit, non-finite losses") == "callbacks-the-end-of-fit-non-finite-losses"
    assert slug("The data audit: `nnrecipe audit` and [clean](audit.md)") == "the-data-audit-nnrecipe-audit-and-clean"


# --------------------------------------------------------------------------------------------- (3) ids
def test_techniques_has_a_row_for_every_id_and_no_other():
    rows = technique_rows()
    assert len(IDS) == 66
    missing = [i for i in IDS if i not in rows]
    unknown = [i for i in rows if i not in IDS]
    assert not missing and not unknown, f"docs/techniques.md: missing rows {missing}, unknown ids {unknown}"
    for i, row in rows.items():
        assert set(row) == {"id", "technique", "how to use it", "code", "test"}, f"{i}: columns {sorted(row)}"
        assert row["technique"] and row["how to use it"] and row["code"] and row["test"], f"{i}: an empty cell"


# --------------------------------------------------------------------------------------------- (4) code and tests
@pytest.mark.parametrize("tid", IDS)
def test_each_rows_code_and_tests_exist(tid: str):
    row = technique_rows().get(tid)
    if row is None:
        pytest.fail(f"docs/techniques.md has no row {tid}")
    problems = []
    # every src/...py linked anywhere in the row exists
    for cell in row.values():
        for m in LINK.finditer(cell):
            target = m.group(2).partition("#")[0]
            if "src/" in target and target.endswith(".py") and not (DOCS / target).resolve().is_file():
                problems.append(f"{target}: no such file")
    # the code column: each backticked name is defined in the file linked before it
    code = row["code"]
    names_found = 0
    current: Path | None = None
    tokens = sorted([(m.start(), "link", m.group(2)) for m in LINK.finditer(code)]
                    + [(m.start(), "name", m.group(1)) for m in NAME.finditer(code)
                       if not any(l.start() <= m.start() < l.end() for l in LINK.finditer(code))])
    for _, kind, value in tokens:
        if kind == "link":
            path = (DOCS / value.partition("#")[0]).resolve()
            current = path if path.suffix == ".py" else None
            continue
        if current is None:
            problems.append(f"`{value}` follows no linked .py file")
            continue
        if not current.is_file():
            continue  # reported above
        source = current.read_text(encoding="utf-8")
        for part in value.split("."):
            if not defines(source, part):
                problems.append(f"`{value}`: no def or class {part} in {current.relative_to(ROOT)}")
        names_found += 1
    if not code.lower().startswith("not yet") and not names_found:
        problems.append("the code column names no function or class (write 'not yet' if nothing implements it)")
    # every cited test exists, with its test function
    for path, name in TEST_REF.findall(" ".join(row.values())):
        file = ROOT / path
        if not file.is_file():
            problems.append(f"{path}: no such test file")
        elif not re.search(rf"^\s*(?:async\s+)?def\s+{name}\s*\(", file.read_text(encoding="utf-8"), re.MULTILINE):
            problems.append(f"{path}::{name}: no such test")
    assert not problems, f"docs/techniques.md, {tid}:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------------------- (5) names
def texts_to_scan() -> list[Path]:
    return [*markdown_files(), *sorted((ROOT / "src" / "nnrecipe").rglob("*.py"))]


def test_no_internal_working_name_reaches_the_docs_or_the_code():
    hits = []
    for path in texts_to_scan():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for needle, flags in FORBIDDEN:
                if re.search(re.escape(needle), line, flags):
                    hits.append(f"{path.relative_to(ROOT)}:{number}: {needle!r}")
    assert not hits, "\n".join(hits)
