"""R4, R5: the one recorder of a run folder, for the recipe's runs and a bare Trainer's alike, so that
`nnrecipe report`, `runs` and `compare` read both: config.json when the run starts, a line of
metrics.jsonl per epoch, checks.json, results.json when it ends. Every file is written atomically;
metrics.jsonl is rewritten from the checkpoint's history on resume (a kill can leave an epoch there that
the checkpoint does not hold)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..io import atomic_write, read_json_or_none, write_json
from ..repro import environment

CONFIG, RESULTS, METRICS, CHECKS = "config.json", "results.json", "metrics.jsonl", "checks.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def model_record(model: nn.Module) -> dict[str, Any]:
    """What a run records of its model: the class, the parameter counts, and the spec when the model has one
    (the registry's models: enough to build it again). The architecture as torch prints it rides in the
    checkpoint, which a resume compares."""
    record = {"class": type(model).__name__,
              "parameters": sum(p.numel() for p in model.parameters()),
              "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    spec = getattr(model, "spec", None)
    if isinstance(spec, Mapping):
        record["spec"] = dict(spec)
    return record


class RunRecorder:
    """Writes a run folder's record. `run_dir` is made when missing."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)

    def start(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """config.json: the settings, the data, the note and the time the run started."""
        record = {**config, "created": config.get("created") or now()}
        write_json(self.run_dir / CONFIG, record)
        return record

    def history(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """metrics.jsonl: a line per epoch, the whole file written again atomically after each epoch (a few
        kilobytes; an appended line could be torn by a kill), and from a checkpoint's history on resume."""
        atomic_write(self.run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows), durable=False)

    def checks(self, verdicts: Any) -> None:
        """checks.json: the doctor's verdicts (a Diagnosis or a list of dicts)."""
        write_json(self.run_dir / CHECKS, verdicts.to_dict() if hasattr(verdicts, "to_dict") else list(verdicts))

    def finish(self, results: Mapping[str, Any]) -> dict[str, Any]:
        """results.json: what the run achieved, with the environment it ran in."""
        record = {**results, "environment": results.get("environment") or environment()}
        write_json(self.run_dir / RESULTS, record)
        return record

    def recorded_config(self) -> dict[str, Any] | None:
        return read_json_or_none(self.run_dir / CONFIG)

    def used(self) -> list[str]:
        """The files that show a run already trained here (a checkpoint, epochs, results)."""
        return [name for name in ("checkpoints/last.safetensors", METRICS, RESULTS) if (self.run_dir / name).exists()]
