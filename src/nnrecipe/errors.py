"""The error hierarchy. Each error also inherits the builtin it refines (optuna's pattern), so callers
that catch ValueError or OSError keep working. Messages name the input, what was wrong and the fix."""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable
from typing import Any
from pathlib import Path


class NNRecipeError(Exception):
    """Base of every error nnrecipe raises on purpose; the CLI turns it into exit code 2."""


class ConfigError(NNRecipeError, ValueError):
    """An argument or config value is not allowed."""


class DataError(NNRecipeError, ValueError):
    """An input file or table cannot be used as it is."""


class CheckpointError(NNRecipeError, OSError):
    """A checkpoint or run folder cannot be read."""


class MissingDependencyError(NNRecipeError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class TrainingError(NNRecipeError, RuntimeError):
    """Training cannot go on (a non-finite loss, say); the message carries the diagnosis."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    match = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def did_you_mean_column(name: str, columns: Iterable[object]) -> str:
    """did_you_mean for a column name: a name that differs only in case ('Y' for 'y') or in the spaces
    around it first, then a close match ignoring case, so `--target Price` finds 'price'."""
    names = [str(c) for c in columns]
    key = str(name).strip().casefold()
    for c in names:
        if c.strip().casefold() == key and c != name:
            return f" (did you mean '{c}'?)"
    folded = {c.casefold(): c for c in reversed(names)}  # the first column of each folded name
    match = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.6)
    return f" (did you mean '{folded[match[0]]}'?)" if match else ""


def shorten(text: object, limit: int = 60) -> str:
    """User text (a cell, a column name) cut to `limit` characters for a message or a plot label: a 10 MB
    cell is still named, not printed whole; line breaks shown as \\n so a message stays one line."""
    text = str(text).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def flag(name: str, value: object) -> str:
    """A command-line flag with the user's own value, shell-quoted: flag('--drop', 'my id') -> --drop 'my id'."""
    return f"{name} {shlex.quote(shorten(str(value), 200))}"


def clean_command(path: str | Path | None, target: str) -> str:
    """The `nnrecipe clean` command for the user's own file and target, shell-quoted, writing the cleaned
    copy beside it; for a DataFrame, the Python call."""
    if path is None:
        return f"nnrecipe.clean(frame, {target!r}, 'clean.csv')"
    path = Path(path)
    out = path.with_name(f"{path.name.split('.')[0]}.clean.csv")
    return shlex.join(["nnrecipe", "clean", str(path), "--target", target, "--out", str(out)])


def check_choice(argument: str, value: object, allowed: Iterable[str]) -> None:
    """Raise ConfigError naming the argument, the value and what is allowed."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(
            f"{argument}={value!r} is not allowed{did_you_mean(str(value), allowed)}; "
            f"choose one of: {', '.join(allowed)}"
        )


def require(module: str, what: str, extra: str, package: str | None = None) -> Any:
    """Import an optional dependency, or raise MissingDependencyError saying `what` needs it (`package`:
    its name on PyPI, when not the module's) and the extra that brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(f"{what} needs {package or module}, which is not installed ({e}); install it "
                                     f"with pip install 'nnrecipe[{extra}]'") from None
