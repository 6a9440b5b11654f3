"""R3, R4, R8: the journal of a run (journal.json), written when training starts so that a crashed run
has one too: the motivation (--note), the command line, the environment, the git commit and the diff of
the working tree, the data's fingerprint and label counts, the parent run and what changed from it, and a
copy of the config file or script that launched the run.

Karpathy's recipe asks to record every run's parameters and motivation and to change one thing at a
time; it also asks to back up the code of each run: the commit plus the uncommitted diff
is that backup, without copying the tree."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..repro import environment
from .diff import config_diff
from ..io import atomic_write, read_json, write_json

log = logging.getLogger("nnrecipe")

JOURNAL = "journal.json"
GIT_DIFF = "git.diff"
LAUNCH = "launch"  # R8: the folder holding the copy of the config file or script
GIT_TIMEOUT = 10.0  # seconds; git on a local repository answers in milliseconds, a hung one must not stop a run
MAX_DIFF_BYTES = 5 << 20  # a diff larger than this (data files under git) is cut, with a line saying so
MAX_COPY_BYTES = 5 << 20
MAX_UNTRACKED = 200


def check_parent(parent: str | os.PathLike) -> Path:
    """The parent run folder (--parent RUN), refused early when it holds no config.json."""
    path = Path(parent)
    if not (path / "config.json").is_file():
        raise ConfigError(f"--parent {parent}: no config.json there; give a run folder that `nnrecipe train` made "
                          f"(`nnrecipe runs` lists them)")
    return path


def parent_record(parent: str | os.PathLike, config: Mapping[str, Any]) -> dict[str, Any]:
    """R3: the parent run and the settings that differ from it, {key: [parent's, this run's]}."""
    path = check_parent(parent)
    return {"run": path.name, "path": str(path.resolve()),
            "changed": config_diff([read_json(path / "config.json"), config])}


def git_record(where: str | os.PathLike) -> dict[str, Any] | None:
    """The repository holding `where`: its root, HEAD's commit (None before the first commit), whether the
    working tree differs from it, `git diff HEAD` and the untracked files (folders collapsed). None when
    git is not installed or `where` is in no repository: never an error. Runs git locally, no network."""
    where = Path(where)
    where = where if where.is_dir() else where.parent
    root = _git(where, "rev-parse", "--show-toplevel")
    if root is None:
        return None
    commit = _git(where, "rev-parse", "--verify", "-q", "HEAD")
    # before the first commit there is no HEAD: what is staged is the whole change
    diff = _git(where, "diff", "HEAD", "--no-color", "--no-ext-diff") if commit else \
        _git(where, "diff", "--cached", "--no-color", "--no-ext-diff")
    untracked = (_git(where, "ls-files", "--others", "--exclude-standard", "--directory") or "").splitlines()
    return {"root": root.strip(), "commit": commit.strip() if commit else None,
            "branch": (_git(where, "rev-parse", "--abbrev-ref", "HEAD") or "").strip() or None,
            "dirty": bool(diff) or bool(untracked), "diff": diff or "",
            "untracked": untracked[:MAX_UNTRACKED], "untracked_count": len(untracked)}


def _git(where: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, timeout=GIT_TIMEOUT,
                              env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def label_counts(y: np.ndarray, task: str, classes: Sequence[str], scale: Mapping[str, float]) -> dict[str, Any]:
    """One split's labels: counts per class (positives per label for multi-label), or the quantiles of a
    regression target in its units."""
    y = np.asarray(y)
    if task in ("binary", "multiclass"):
        codes = y.reshape(-1).astype(np.int64)
        return {c: int((codes == i).sum()) for i, c in enumerate(classes)}
    if task == "multilabel":
        return {c: int(y[:, i].sum()) for i, c in enumerate(classes)}
    # in standardized units first, then the target's: the moments of values near 1e308 overflow when summed
    names = ("min", "p5", "p25", "median", "p75", "p95", "max")
    z = y.reshape(-1).astype(np.float64)
    if not len(z):
        return dict.fromkeys((*names, "mean", "std"))
    with np.errstate(over="ignore", invalid="ignore"):
        found = {name: q * scale["std"] + scale["mean"]
                 for name, q in zip(names, np.quantile(z, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]))}
        found.update(mean=z.mean() * scale["std"] + scale["mean"], std=z.std() * scale["std"])
    return {k: float(v) if np.isfinite(v) else None for k, v in found.items()}


def launching_script(argv: Sequence[str]) -> Path | None:
    """argv[0] when it is the user's .py script; not a file of an installed package (`python -m pytest`)
    nor nnrecipe's own (`python -m nnrecipe`): those launch the run but are not its code."""
    if not argv or not str(argv[0]).endswith(".py"):
        return None
    path = Path(argv[0]).resolve()
    ours = Path(__file__).resolve().parents[1]
    if not path.is_file() or ours in path.parents or any(p.name in ("site-packages", "dist-packages")
                                                          for p in path.parents):
        return None
    return path


def copy_launcher(run_dir: str | os.PathLike, config_file: str | os.PathLike | None = None,
                  argv: Sequence[str] | None = None) -> list[str]:
    """R8: copy the config file (--config) and the script that launched the run (launching_script) into
    run_dir/launch/. Returns the copies' paths relative to run_dir; a file that cannot be read
    or is larger than MAX_COPY_BYTES is logged and skipped (the record must not stop a run)."""
    argv = sys.argv if argv is None else argv
    script = launching_script(argv)
    wanted = [Path(config_file)] if config_file else []
    wanted += [script] if script is not None else []
    copies = []
    for file in wanted:
        target = Path(run_dir) / LAUNCH / file.name
        try:
            if file.stat().st_size > MAX_COPY_BYTES:
                log.warning("%s is larger than %d MiB: not copied into the run folder", file, MAX_COPY_BYTES >> 20)
                continue
            atomic_write(target, file.read_bytes())
            copies.append(target.relative_to(run_dir).as_posix())
        except OSError as e:
            log.warning("could not copy %s into the run folder (%s)", file, e)
    return copies


def write_journal(run_dir: str | os.PathLike, *, config: Mapping[str, Any], data: Mapping[str, Any],
                  note: str = "", parent: str | os.PathLike | None = None,
                  config_file: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
                  cwd: str | os.PathLike | None = None) -> dict[str, Any]:
    """journal.json (and git.diff, launch/) in run_dir. `data`: data_fingerprint(...) with a 'labels'
    entry when known. The repository is looked up from the launching script (launching_script), else
    from `cwd` (default: the current folder)."""
    run_dir = Path(run_dir)
    argv = list(sys.argv if argv is None else argv)
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    script = launching_script(argv)
    git = git_record(script.parent if script else cwd)
    if git is not None:
        diff = git.pop("diff")
        if diff:
            raw = diff.encode()
            cut = len(raw) > MAX_DIFF_BYTES
            atomic_write(run_dir / GIT_DIFF, raw[:MAX_DIFF_BYTES] + (b"\n# [cut by nnrecipe at 5 MiB]\n" if cut else b""))
            git["diff_file"], git["diff_bytes"] = GIT_DIFF, len(raw)
    journal = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": note, "argv": argv, "cwd": str(cwd),
               "environment": environment(), "git": git, "data": dict(data),
               "parent": parent_record(parent, config) if parent is not None else None,
               "launch": copy_launcher(run_dir, config_file, argv)}
    write_json(run_dir / JOURNAL, journal)
    return journal
