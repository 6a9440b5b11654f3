"""R3 (Karpathy's recipe: "carry out many controlled experiments"; "fix the random seed"): from a base run, change
one setting at a time, train each value (and the base's own value, the control) over the same seeds,
and compare them side by side. Each run records its parent, the base, and what changed from it."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import REFIT_SETTINGS, SECTIONS, from_dict
from ..errors import ConfigError, did_you_mean
from ..io import atomic_write, read_json, read_json_or_none, write_json
from ..track import new_run_dir
from ..track.runs import run_config
from ..logs import quiet
from .space import convert_value

log = logging.getLogger("nnrecipe")

NOT_VARIED = ("target", "seed")  # the target defines the task; the seeds are the repetitions (--seeds)
# a retrained (R2) base's variants retrain too: the settings its refit fixes, and those that only act
# through them (stopping, SWA, the ensemble's folds), would be overridden and change nothing
REFIT_UNVARIED = (*REFIT_SETTINGS, "min_delta", "stop_criterion", "stop_alpha", "swa_lr")


@dataclass
class AblationResult:
    base: Path
    folder: Path  # holds the runs, ablation.json and ablation.txt
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per run: variable, value, seed, run_dir, scores
    table: str = ""  # the side-by-side comparison, mean +- std over the seeds


def ablate(run_dir: str | os.PathLike, vary: dict[str, list[Any]], *, seeds: int = 1,
           data: str | os.PathLike | pd.DataFrame | None = None, out: str | os.PathLike | None = None) -> AblationResult:
    """For each setting in `vary` ({"lr": [1e-2, 1e-3]}, values as Python values or strings), train the
    base run's configuration with that one setting changed, for each value and `seeds` seeds (the base's
    seed, +1, ...). The base's own value is the control: its seed is the base run itself. `data`: the
    table when the base run was trained on a DataFrame (its config names no file)."""
    from ..recipes import train_table

    base = Path(run_dir)
    if not (base / "config.json").is_file() or not (base / "results.json").is_file():
        raise ConfigError(f"ablate {base}: not a finished run folder (config.json and results.json); give a "
                          "folder that `nnrecipe train` printed")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is not allowed; choose a whole number of 1 or more")
    if not vary:
        raise ConfigError("ablate needs a setting to vary, as --vary lr=1e-2,1e-3")
    rec = run_config(base, tuple(SECTIONS))
    configs = {name: from_dict(cls, _known(cls, rec[name]), where=f"{base}/config.json, section '{name}'")
               for name, cls in SECTIONS.items()}
    source = data if data is not None else rec.get("source")
    if source is None:
        raise ConfigError(f"ablate {base}: the base run was trained on a DataFrame; pass its table as data=")
    if data is None and isinstance(source, str) and not Path(source).exists():
        raise ConfigError(f"ablate {base}: the run's data '{source}' is not there (config.json's source is relative "
                          "to the folder `nnrecipe train` ran in); run ablate from that folder, or give the data with "
                          "data= (CLI: --data PATH)")
    _same_data_as(base, source)
    plan = dict(_values(key, values, configs) for key, values in vary.items())
    refit = rec.get("refit")
    fixed = sorted(name for _, name in plan if name in REFIT_UNVARIED)
    if refit is not None and fixed:
        raise ConfigError(f"ablate {base}: {', '.join(fixed)} cannot be varied on a retrained (R2) base: its "
                          f"variants retrain for a set number of epochs on the training and validation rows, with "
                          f"no early stopping or SWA, so the value would not be used; vary them from the search's "
                          f"trial run instead, or vary epochs here")
    folder = new_run_dir(out if out is not None else base.parent, f"ablate-{base.name}")
    base_seed = configs["train"].seed
    rows = []
    for (section, name), values in plan.items():
        control = getattr(configs[section], name)
        for value in [control, *[v for v in values if v != control]]:
            for seed in range(base_seed, base_seed + seeds):
                if value == control and seed == base_seed:
                    rows.append(_row(name, value, seed, base, rec["task"], control=True))
                    continue
                changed = {**configs, section: dataclasses.replace(configs[section], **{name: value})}
                changed["train"] = dataclasses.replace(changed["train"], seed=seed)
                with quiet():  # each run keeps its full record; the log gets a line per run
                    run = train_table(source, configs["data"].target, out=folder, data_config=changed["data"],
                                      model_config=changed["model"], train_config=changed["train"],
                                      note=f"R3 ablation of {base.name}: {name}={value}, seed {seed}",
                                      parent=base,  # journal.json: the parent and what changed from it
                                      unread="warn",  # a variant may switch off what reads a base's setting
                                      # a retrained base (R2): its variants retrain too, for their own epochs
                                      refit=None if refit is None else {**refit, "epochs": changed["train"].epochs})
                log.info("ablation of %s: %s=%s, seed %d: test %s", base.name, name, value, seed,
                         {k: round(v, 4) for k, v in run.test.items()})
                rows.append(_row(name, value, seed, run.run_dir, run.task, control=value == control))
    table = _table(rows)
    write_json(folder / "ablation.json", {"base": str(base.resolve()), "vary": {n: v for (_, n), v in plan.items()},
                                          "seeds": seeds, "runs": rows})
    atomic_write(folder / "ablation.txt", table)
    return AblationResult(base, folder, rows, table)


def parse_vary(texts: list[str]) -> dict[str, list[str]]:
    """--vary lr=1e-2,1e-3 --vary dropout=0,0.2 -> {"lr": ["1e-2", "1e-3"], "dropout": ["0", "0.2"]}.
    Widths hold commas themselves: give them with ';' between values (hidden=64;128,64)."""
    vary: dict[str, list[str]] = {}
    for text in texts:
        name, sep, values = text.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ConfigError(f"--vary {text!r}: give SETTING=V1,V2, as --vary lr=1e-2,1e-3")
        if name.strip() in vary:  # the first flag's values were dropped
            raise ConfigError(f"--vary {name.strip()} is given twice; give its values in one flag, as --vary "
                              f"{name.strip()}=V1,V2,V3")
        vary[name.strip()] = values.split(";") if ";" in values else values.split(",")
    return vary


def _values(key: str, values: list[Any], configs: dict[str, Any]) -> tuple[tuple[str, str], list[Any]]:
    """((section, name), values converted to the setting's type and checked by its config)."""
    section, _, name = key.rpartition(".")
    holding = [s for s, cfg in configs.items() if name in {f.name for f in dataclasses.fields(cfg)}]
    if section and section in configs and section not in holding:  # 'model.lr' raised a KeyError
        raise ConfigError(f"--vary {key}: '{name}' is not a setting of section {section}"
                          + (f"; did you mean {holding[0]}.{name}?" if holding else ""))
    sections = [section] if section else holding
    names = sorted({f.name for cfg in configs.values() for f in dataclasses.fields(cfg)} - set(NOT_VARIED))
    if name in NOT_VARIED or len(sections) != 1 or section and section not in configs:
        raise ConfigError(f"--vary {key}: not a setting that can be varied{did_you_mean(name, names)}; "
                          f"allowed: {', '.join(names)} (seeds repeat with --seeds)")
    section = sections[0]
    cls = type(configs[section])
    converted = []
    for value in values:
        v = convert_value(cls, name, value, f"--vary {key}")
        try:
            dataclasses.replace(configs[section], **{name: v})
        except ConfigError as e:
            raise ConfigError(f"--vary {key}: the value {value!r} is not allowed ({e})") from None
        if v in converted:  # the same run twice, read as two seeds agreeing (0.2340 +- 0.0000)
            raise ConfigError(f"--vary {key}: the value {value!r} is given twice (as {v!r}); give each value once")
        converted.append(v)
    return (section, name), converted


def _same_data_as(base: Path, source: Any) -> None:
    """The variants train on the data the base trained on: a file changed since (or another one) would compare
    runs on two datasets, as prune refuses too. Read from journal.json's content hash of the file's bytes."""
    from ..data.cache import data_fingerprint

    journal = read_json_or_none(base / "journal.json")
    was = ((journal or {}).get("data") or {}).get("sha256") if isinstance(journal, dict) else None
    if not was or isinstance(source, pd.DataFrame) or not Path(source).is_file():
        return
    now = data_fingerprint(source, 0, ())["sha256"]
    if now != was:
        raise ConfigError(f"ablate {base}: '{source}' is not the data the base run trained on (content {now[:12]} "
                          f"now, {str(was)[:12]} then: the file changed, or another one); give the run's own data "
                          "(--data PATH), or train a new base on this data")


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """A recorded section's settings that the config class knows (a record may carry more keys)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _row(name: str, value: Any, seed: int, run_dir: Path, task: str, control: bool) -> dict[str, Any]:
    """One run's line: `task` is the run's own (config.json's "task"), which names its headline test metric."""
    from ..recipes import headline_metric

    results = read_json(run_dir / "results.json")
    test = results["test"]
    metric = headline_metric(task)
    return {"variable": name, "value": value, "seed": seed, "control": control, "run_dir": str(run_dir),
            "monitor": results["monitor"], "best_value": results["best_value"], "test_metric": metric,
            "test": test[metric]}


def _table(rows: list[dict[str, Any]]) -> str:
    """One line per (variable, value): runs, the monitor's best value and the test metric, mean +- std."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variable"], repr(r["value"])), []).append(r)
    first = rows[0]
    lines = [f"{'setting':<16}{'value':<20}{'runs':>5}  {first['monitor'] + ' (best)':<22}test {first['test_metric']}"]
    for (name, _), group in groups.items():
        shown = group[0]["value"]
        value = f"{f'{shown:.4g}' if isinstance(shown, float) else shown}{' (base)' if group[0]['control'] else ''}"
        lines.append(f"{name:<16}{value:<20}{len(group):>5}  {_mean_std([g['best_value'] for g in group]):<22}"
                     f"{_mean_std([g['test'] for g in group])}")
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    if len(finite) == 1:
        return f"{finite[0]:.4f}"
    return f"{statistics.mean(finite):.4f} +- {statistics.stdev(finite):.4f}"
