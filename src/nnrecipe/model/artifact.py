"""The shareable model: `model.safetensors` (weights) + `model.json` (architecture, task, classes,
preprocessing, schema). Loading it builds the network from JSON and reads tensors: no code, no pickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save

from torch import nn

from ..errors import CheckpointError
from ..train.checkpoint import atomic_write
from .ensemble import build_model

FORMAT = "nnrecipe-model"
VERSION = 1


def save_weights(path: Path, model: nn.Module) -> None:
    """The model's weights alone, as safetensors, written atomically."""
    atomic_write(path, save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}))


def save_model(run_dir: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    save_weights(run_dir / "model.safetensors", model)
    doc = {"format": FORMAT, "version": VERSION, "architecture": model.spec, **meta}
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
        model.load_state_dict(load_file(str(weights)))
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise CheckpointError(f"the model in '{run_dir}' cannot be loaded ({e}); train it again") from None
    model.eval()
    return model, meta
