"""The shareable model: `model.safetensors` (weights) + `model.json` (the model's name and arguments in the
registry, the task, classes, preprocessing, schema). Loading builds the network by its name from JSON and
reads tensors: no code, no pickle. Every model of the registry loads the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write, load_tensors, save_weights
from .registry import build_model

FORMAT = "nnrecipe-model"
VERSION = 1


def save_model(run_dir: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """model.safetensors, then model.json naming the model (its `spec`, from the registry)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"a {type(model).__name__} has no registry spec; save_model saves the registry's models "
                          "(nnrecipe.models.create_model), or save its state_dict with safetensors yourself")
    save_weights(run_dir / "model.safetensors", model)
    doc = {"format": FORMAT, "version": VERSION, "model": spec["name"], "architecture": spec, **meta}
    atomic_write(run_dir / "model.json", json.dumps(doc, indent=2) + "\n")


def load_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    run_dir = Path(run_dir)
    meta_path, weights = run_dir / "model.json", run_dir / "model.safetensors"
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder '{run_dir}' does not exist; give the folder that `nnrecipe train` printed")
    if not meta_path.exists() or not weights.exists():
        raise CheckpointError(f"run folder '{run_dir}' holds no model (model.json and model.safetensors); "
                              "the run may not have finished: train it again")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError("not an nnrecipe model file")
        model = build_model(meta["architecture"])
        model.load_state_dict(load_tensors(weights))
    except Exception as e:  # a damaged or foreign file: safetensors, json and torch each raise their own
        raise CheckpointError(f"the model in '{run_dir}' cannot be loaded ({type(e).__name__}: {e}); the files are "
                              "damaged or not nnrecipe's: train the run again, or restore its folder") from None
    model.eval()
    return model, meta
