"""The machinery of the malformed-input corpus (issue 16; tests/test_malformed_inputs*.py): each kind of input
is a function that writes its files under a folder and returns the command to run and what must come of it.
A kind is one test id; every kind also checks that the files it wrote are byte-identical after the run
(nnrecipe only reads its inputs)."""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nnrecipe.testing import small_table

Check = Callable[[int, str, str, str], None]  # (exit code, stdout, stderr, the log's text)


@dataclass
class Case:
    """A command (`argv`, after `nnrecipe`) and the check of its (exit code, stdout, stderr)."""

    argv: list[Any]
    check: Check
    inputs: list[Path] = field(default_factory=list)  # more files to hold byte-identical (a run folder's)


@dataclass
class Where:
    """What a kind gets: its own folder, and (for predict) a run folder trained once per module."""

    tmp: Path
    run: Path | None = None


Kind = Callable[[Where], Case]


def registry() -> tuple[dict[str, Kind], Callable[..., Callable[[Kind], Kind]]]:
    """A module's kinds by name, and the decorator that adds one (`needs_run`: predict's kinds)."""
    kinds: dict[str, Kind] = {}

    def kind(name: str, needs_run: bool = False) -> Callable[[Kind], Kind]:
        def add(fn: Kind) -> Kind:
            assert name not in kinds, name
            fn.needs_run = needs_run  # type: ignore[attr-defined]
            kinds[name] = fn
            return fn
        return add

    return kinds, kind


# ---------------------------------------------------------------- what must come of a command


def bad(message: str) -> Check:
    """Bad input, a message of ours matched whole: exit 2, nothing on stdout, one error on stderr, its last
    line (the library's notices, such as rows left out for an empty target, may come before it)."""
    def check(code: int, out: str, err: str, log: str) -> None:
        assert "Traceback" not in err, err[-3000:]
        lines = err.splitlines()
        assert (code, out) == (2, "") and lines[-1] == f"nnrecipe: error: {message}", err[-3000:]
        assert sum(line.startswith("nnrecipe: error:") for line in lines) == 1
    return check


def bad_with(*parts: str, start: str | None = None) -> Check:
    """Bad input whose message we did not write whole (pandas' or argparse's words in it): exit 2, nothing on
    stdout, one 'nnrecipe: error:' line holding each of `parts`."""
    def check(code: int, out: str, err: str, log: str) -> None:
        assert "Traceback" not in err, err[-3000:]
        assert (code, out) == (2, ""), err[-3000:]
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("nnrecipe: error: "), err[-3000:]
        if start is not None:
            assert lines[0].startswith(f"nnrecipe: error: {start}"), lines[0]
        for part in parts:
            assert part in lines[0], (part, lines[0])
        assert len(lines[0]) < 1000, len(lines[0])  # user text (a 10 MB cell) is cut, not printed whole
    return check


def usage_error(*parts: str) -> Check:
    """argparse's own refusal of a flag's value: its usage, then one 'nnrecipe: error:' line."""
    def check(code: int, out: str, err: str, log: str) -> None:
        assert "Traceback" not in err
        assert (code, out) == (2, "")
        assert err.startswith("usage: nnrecipe ") and err.count("nnrecipe: error: ") == 1
        last = err.splitlines()[-1]
        for part in parts:
            assert part in last, (part, last)
    return check


def done(*notices: str, codes: tuple[int, ...] = (0, 1), out_has: tuple[str, ...] = (),
         extra: Callable[[str, str], None] | None = None) -> Check:
    """A handled outcome: exit 0 (or 1: a check of the run failed, which is a finding, not an error), no
    traceback, each of `notices` logged (the CLI shows the log on stderr; in-process pytest holds it) or on
    stderr, and `out_has` on stdout."""
    def check(code: int, out: str, err: str, log: str) -> None:
        assert "Traceback" not in err, err[-3000:]
        assert code in codes, (code, err[-3000:], log[-3000:])
        for notice in notices:
            assert notice in log or notice in err, (notice, err[-3000:], log[-3000:])
        for text in out_has:
            assert text in out, (text, out[-3000:])
        if extra is not None:
            extra(out, err + log)
    return check


def run_folder(out: str) -> Path:
    """The run folder `train` printed last."""
    return Path(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- files


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(content)
    return path


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """The small binary table (a, b, color; target y) that trains in a second."""
    return small_table(n=n, seed=seed)


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def alternating(n: int, a: str = "yes", b: str = "no") -> list[str]:
    return [a if i % 2 else b for i in range(n)]


def numbers(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


# ---------------------------------------------------------------- the test body


TRAIN = ("--epochs", "1", "--no-report")  # kinds that train: one epoch, no report unless it is the point


def digests(folder: Path, extra: list[Path]) -> dict[Path, str]:
    """SHA-256 of every file under `folder` (the kind's inputs, written before the run) and of `extra`."""
    found: dict[Path, str] = {}
    for path in [*sorted(folder.rglob("*")), *(p for e in extra for p in sorted(e.rglob("*")) if e.is_dir()),
                 *(e for e in extra if e.is_file())]:
        if path.is_file() and not path.is_symlink():
            try:
                found[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            except PermissionError:  # the unreadable file's kind: its bytes cannot change either
                found[path] = "unreadable"
    return found


def run_kind(kinds: dict[str, Kind], name: str, cli: Callable[..., tuple[int, str, str]], tmp_path: Path,
             caplog: pytest.LogCaptureFixture, run: Path | None = None) -> None:
    """Write the kind's files under tmp_path/in, run its command, check the outcome, and check that no input
    changed by a byte."""
    folder = tmp_path / "in"
    folder.mkdir()
    case = kinds[name](Where(folder, run))
    case.inputs += [run] if run is not None else []  # predict reads the shared run folder: it stays as it was
    before = digests(folder, case.inputs)
    assert before, "a kind writes at least one input file"
    caplog.set_level(logging.INFO, logger="nnrecipe")
    result = cli(*case.argv)
    case.check(*result, caplog.text)
    after = {p: d for p, d in digests(folder, case.inputs).items() if p in before}
    assert after == before, "an input file changed"
