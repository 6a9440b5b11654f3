"""R4, R7: run folders read back, listed (`nnrecipe runs`) and compared (`nnrecipe compare`).

A run folder is any folder holding config.json; results.json (written at the end) and metrics.jsonl (one
line per epoch) are read when present, so a run still training, or one that crashed, is listed too."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import monitor_mode
from ..errors import CheckpointError, ConfigError, did_you_mean
from .diff import MISSING, config_diff, flatten, short_key, single_change
from ..io import TEMP, read_json_or_none

log = logging.getLogger("nnrecipe")

# The settings `runs` shows when every listed run has the same ones (otherwise: those that differ).
KEY_PARAMS = ("model.hidden", "train.optimizer", "train.lr", "train.batch_size")
COLUMNS = ("id", "date", "note", "data", "best", "test")


@dataclass
class RunInfo:
    path: Path
    config: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    journal: dict[str, Any] = field(default_factory=dict)
    # the record's files that are there but cannot be read as what they hold (torn, edited): each is left
    # out of the pages, which say so instead of reading as a run that recorded nothing
    damaged: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether the run wrote its results.json (after training; a damaged one is named as damaged): a run
        still training or stopped has none."""
        return (self.path / "results.json").is_file()

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def date(self) -> str:
        return str(self.config.get("created", ""))[:19].replace("T", " ")

    @property
    def note(self) -> str:
        return str(self.config.get("note") or self.journal.get("note") or "")

    @property
    def data(self) -> str:
        source = self.config.get("source")
        return Path(source).name if source else str(self.config.get("data_name") or "DataFrame")

    @property
    def monitor(self) -> str:
        return str(self.results.get("monitor") or self.config.get("train", {}).get("monitor", "val_loss"))

    @property
    def best(self) -> float | None:
        """The best value of the monitored metric: results.json's, else the best epoch so far."""
        if self.results.get("best_value") is not None:
            return float(self.results["best_value"])
        values = [r[self.monitor] for r in self.history if isinstance(r.get(self.monitor), (int, float))
                  and math.isfinite(r[self.monitor])]
        if not values:
            return None
        mode = monitor_mode(self.monitor, self.config.get("train", {}).get("mode", "auto"))
        return min(values) if mode == "min" else max(values)

    @property
    def test_metric(self) -> str:
        """The metric the run is judged by on its test rows: rmse for regression, else accuracy."""
        return "rmse" if self.config.get("task") == "regression" else "accuracy"

    @property
    def test(self) -> float | None:
        """The headline metric on the test rows (results.json), None for a run still training or stopped."""
        value = (self.results.get("test") or {}).get(self.test_metric)
        return float(value) if isinstance(value, (int, float)) else None

    def flat(self) -> dict[str, Any]:
        """The flattened config (R3's unit of comparison), with the data's fingerprint when journalled."""
        flat = flatten(self.config)
        sha = (self.journal.get("data") or {}).get("sha256")
        if sha:
            flat["data.sha256"] = sha[:12]
        return flat


def run_config(path: str | os.PathLike, sections: tuple[str, ...] = ()) -> dict[str, Any]:
    """A run folder's config.json as a dict (with `sections`, each an object), or the error that the folder
    is damaged."""
    path = Path(path)
    config = read_json_or_none(path / "config.json")
    if not isinstance(config, dict) or any(not isinstance(config.get(k), dict) for k in sections):
        raise CheckpointError(f"{path / 'config.json'} cannot be read as a JSON object"
                              + (f" with sections {', '.join(sections)}" if sections else "")
                              + "; the run folder is damaged: restore the file or remove the folder")
    return config


def is_run_record(config: Any) -> bool:
    """Whether a config.json's content is an nnrecipe run's record: 'train' or 'data' settings, each an object
    (a Hugging Face model's config.json, or a project's own, is not)."""
    return isinstance(config, dict) and any(isinstance(config.get(k), dict) for k in ("train", "data")) and not any(
        k in config and not isinstance(config[k], dict) for k in ("data", "train"))


def read_run(path: str | os.PathLike) -> RunInfo:
    """A run folder's record. A missing or torn results.json, metrics.jsonl or journal.json reads as empty
    (a run still training, or killed); config.json is required."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: no config.json there; give a run folder that `nnrecipe train` made "
                          "(`nnrecipe runs DIR` lists them)")
    config = run_config(path)
    if not is_run_record(config):
        # a folder of another tool's (a Hugging Face model's config.json) got report.html written into it
        raise ConfigError(f"{path}: its config.json is not the record of an nnrecipe run (no 'train' or 'data' settings, "
                          "or ones that are not objects); give a run folder that `nnrecipe train` or a "
                          "Trainer with run_dir made (`nnrecipe runs DIR` lists them)")
    damaged: list[str] = []
    results, journal = (record(path, name, damaged) or {} for name in ("results.json", "journal.json"))
    for name in ("checks.json", "audit.json"):
        record(path, name, damaged)
    return RunInfo(path, config, results, read_metrics(path, damaged), journal, damaged)


# what each record file holds: a file that is there and holds something else is damaged
RECORDS = {"results.json": dict, "journal.json": dict, "checks.json": list, "audit.json": dict, "watch.json": dict,
           "samples.json": dict, "lr_find.json": dict, "model.json": dict, "prune.json": dict}


def record(path: Path, name: str, damaged: list[str] | None = None) -> Any:
    """A run folder's JSON record `name` (one of RECORDS) when it is there and holds what RECORDS says, else
    None; one that is there but holds something else (torn by a copy, edited) is added to `damaged` and
    logged, not taken for a record that is missing."""
    kind = RECORDS[name]
    file = path / name
    if not file.is_file():
        return None
    value = read_json_or_none(file)
    if isinstance(value, kind) and (kind is not list or all(isinstance(v, dict) for v in value)):
        return value
    if damaged is not None and name not in damaged:
        damaged.append(name)
        log.warning("%s cannot be read as a JSON %s (damaged or edited): what it records is left out; restore it, "
                    "or train the run again", file, "list of objects" if kind is list else "object")
    return None


def read_metrics(path: str | os.PathLike, damaged: list[str] | None = None) -> list[dict[str, Any]]:
    """metrics.jsonl as a list of epoch dicts; a torn last line (a run killed mid-write) is skipped, an
    earlier line that is not an epoch's object is left out with a warning (and the file added to `damaged`)."""
    file = Path(path) / "metrics.jsonl"
    if not file.is_file():
        return []
    rows, lines = [], file.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
            if i == len(lines) - 1:  # only the last line can be torn by a kill: an earlier one was damaged
                continue
        if isinstance(row, dict):
            rows.append(row)
            continue
        log.warning("%s: line %d is not an epoch's record (damaged or edited): that epoch is left out", file, i + 1)
        if damaged is not None and file.name not in damaged:
            damaged.append(file.name)
    return rows


def list_runs(folder: str | os.PathLike = "runs") -> list[RunInfo]:
    """The run folders directly under `folder` (or `folder` itself when it is one), oldest first."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give the folder `nnrecipe train --out` wrote runs to (default: runs)")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give the folder `nnrecipe train --out` wrote runs to "
                          "(default: runs)")
    # a run folder itself, unless run folders sit in it: then its config.json is a settings file (--config)
    # kept beside the runs, and read as a run it hid them all
    if (folder / "config.json").is_file() and not any(
            (p / "config.json").is_file() for p in folder.iterdir() if p.is_dir()):
        return [read_run(folder)]
    runs = []
    for p in sorted(folder.iterdir()):
        if (p / "config.json").is_file() and not TEMP.match(p.name):  # a run folder staged, never renamed: a kill
            try:
                runs.append(read_run(p))
            except CheckpointError as e:  # one damaged folder does not hide the others
                log.warning("%s", e)
            except ConfigError as e:  # another tool's folder beside the runs (a model's config.json)
                log.info("%s", e)
    return sorted(runs, key=lambda r: (r.date, r.id))


def varying_params(runs: Sequence[RunInfo]) -> list[str]:
    """The settings that differ between the runs, else KEY_PARAMS: what tells the runs apart."""
    keys = list(config_diff([r.flat() for r in runs])) if len(runs) > 1 else []
    keys = [k for k in keys if k not in ("source", "data.sha256")]
    return keys or [k for k in KEY_PARAMS if any(k in r.flat() for r in runs)]


def resolve_key(name: str, keys: Sequence[str]) -> str:
    """A column or a setting named in full ('train.lr') or by its last part ('lr') when that is unique."""
    if name in keys or name in COLUMNS:
        return name
    matches = [k for k in keys if k.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"'{name}' names several settings ({', '.join(matches)}); give one in full")
    raise ConfigError(f"'{name}' is neither a column ({', '.join(COLUMNS)}) nor a setting of these runs"
                      f"{did_you_mean(name, [*COLUMNS, *keys, *(k.rsplit('.', 1)[-1] for k in keys)])}")


def _value(run: RunInfo, key: str) -> Any:
    return getattr(run, key) if key in COLUMNS else run.flat().get(key)


_FILTER = re.compile(r"^(?P<key>[^~=]+?)(?P<op>~|=)(?P<value>.*)$")


def filter_runs(runs: Sequence[RunInfo], filters: Sequence[str]) -> list[RunInfo]:
    """Keep the runs matching every filter: 'KEY~text' (contains, any case) or 'KEY=value' (equal; numbers
    compared as numbers, so lr=0.001 matches 1e-3). KEY: note, id, data, date or a setting ('lr')."""
    keys = sorted({k for r in runs for k in r.flat()})
    kept = list(runs)
    for text in filters:
        m = _FILTER.match(text)
        if not m:
            raise ConfigError(f"--filter {text!r}: write KEY~text (contains) or KEY=value (equals), "
                              "e.g. note~baseline or lr=0.001")
        key = resolve_key(m["key"].strip(), keys)
        want = m["value"].strip()
        kept = [r for r in kept if _matches(_value(r, key), m["op"], want)]
    return kept


def _matches(value: Any, op: str, want: str) -> bool:
    if op == "~":
        return want.lower() in _text(value).lower()
    try:
        return math.isclose(float(value), float(want), rel_tol=1e-9)
    except (TypeError, ValueError):
        return _text(value) == want


def sort_runs(runs: Sequence[RunInfo], key: str) -> list[RunInfo]:
    """Sorted by a column or a setting; '-KEY' for descending. Runs without the value go last."""
    descending = key.startswith("-")
    name = resolve_key(key.lstrip("-"), sorted({k for r in runs for k in r.flat()}))
    present = [r for r in runs if _value(r, name) not in (None, "")]
    missing = [r for r in runs if _value(r, name) in (None, "")]

    def order(r: RunInfo) -> tuple[int, Any]:
        v = _value(r, name)
        return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, _text(v))

    return sorted(present, key=order, reverse=descending) + missing


def format_runs(runs: Sequence[RunInfo], params: Sequence[str] | None = None) -> str:
    """The runs as a text table: id, date, note, data, the settings that tell them apart, the best validation
    value of the monitor, and the headline test metric with its name."""
    params = list(params) if params is not None else varying_params(runs)
    keys = sorted({k for r in runs for k in r.flat()})
    header = ["id", "date", "note", "data", *(short_key(p, keys) for p in params), "best", "test"]
    lines = [[r.id, r.date, _cut(r.note, 40), r.data, *(_text(r.flat().get(p)) for p in params),
              "-" if r.best is None else f"{r.monitor} {r.best:.4g}",
              ("-" if r.test is None else f"{r.test_metric} {r.test:.4g}") + _no_model(r)
              + ("" if r.finished else " (not finished: training, or stopped)")] for r in runs]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
                     for row in [header, *lines]) + "\n"


def _no_model(run: RunInfo) -> str:
    """A finished run of `train` whose model file is gone: listed, but said, since predict cannot use it."""
    lost = run.config.get("kind") not in (None, "trainer") and bool(run.results) \
        and not (run.path / "model.safetensors").is_file()
    return " (model.safetensors missing)" if lost else ""


def _text(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Comparison:
    runs: list[RunInfo]
    diff: dict[str, list[Any]]  # the settings that differ, {key: [value per run]}
    changed: str | None  # R3: the single setting that differs, when there is exactly one

    @property
    def apart(self) -> str:
        """Why these runs' curves do not compare, when they do not: other tasks (losses on other scales) or
        other data; '' when they share both."""
        tasks = list(dict.fromkeys(str(r.config.get("task") or "?") for r in self.runs))
        if len(tasks) > 1:
            return (f"the runs are of different tasks ({', '.join(tasks)}): their losses are on different scales, "
                    "and their curves and scores do not compare")
        known = all((r.journal.get("data") or {}).get("sha256") for r in self.runs)  # else: by the file's name
        if "data.sha256" in self.diff or not known and "source" in self.diff:
            return ("the runs were trained on different data (their sources or contents differ): a difference in "
                    "their curves is the data's as much as the settings'")
        return ""


def compare_runs(paths: Sequence[str | os.PathLike]) -> Comparison:
    """R3, R7: the runs' settings side by side and the one that changed."""
    if len(paths) < 2:
        raise ConfigError(f"compare needs two run folders or more, got {len(paths)}; e.g. "
                          "nnrecipe compare runs/A runs/B")
    seen: dict[Path, str] = {}
    for p in paths:
        if (key := Path(p).resolve()) in seen:
            raise ConfigError(f"compare: {p} is given twice (also as {seen[key]}); give each run once")
        seen[key] = str(p)
    runs = [read_run(p) for p in paths]
    diff = config_diff([r.flat() for r in runs])
    if MISSING in diff.get("data.sha256", ()):  # a run without a journal: the data's identity is unknown
        del diff["data.sha256"]
    return Comparison(runs, diff, single_change(diff))
