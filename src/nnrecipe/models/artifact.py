"""The shareable model: `model.safetensors` (weights) + `model.json` (the model's name and arguments in the
registry, the task, classes, preprocessing, schema). Loading builds the network by its name from JSON and
reads tensors: no code, no pickle. Every model of the registry loads the same way.

The two files are one unit: the weights are written first, then model.json with the SHA-256 of the
weights' bytes, which loading checks, so a reader never pairs new weights with an old description (a run
killed between the two writes, or files copied from two runs)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write, tensors_bytes
from .registry import build_model

FORMAT = "nnrecipe-model"
VERSION = 1


def save_model(run_dir: Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """model.safetensors, then model.json naming the model (its `spec`, from the registry) and the weights'
    hash."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"a {type(model).__name__} has no registry spec; save_model saves the registry's models "
                          "(nnrecipe.models.create_model), or save its state_dict with safetensors yourself")
    weights = tensors_bytes(dict(model.state_dict()))
    atomic_write(run_dir / "model.safetensors", weights)
    doc = {"format": FORMAT, "version": VERSION, "model": spec["name"], "architecture": spec,
           "weights_sha256": hashlib.sha256(weights).hexdigest(), **meta}
    atomic_write(run_dir / "model.json", json.dumps(doc, indent=2) + "\n")


def load_model(run_dir: str | Path, required: Sequence[str] = ()) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a run folder, in eval mode, and its model.json; `required`: the entries of model.json the
    caller needs (predict's preprocessing, say), refused by name when missing."""
    run_dir = Path(run_dir)
    meta_path, weights = run_dir / "model.json", run_dir / "model.safetensors"
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder '{run_dir}' does not exist; give the folder that `nnrecipe train` printed")
    if not meta_path.exists() or not weights.exists():
        raise CheckpointError(f"run folder '{run_dir}' holds no model (model.json and model.safetensors); "
                              + ("the run stopped before it finished: go on with it (nnrecipe train DATA --resume "
                                 f"{run_dir}), or train it again"
                                 # a run folder resumes from the moment it exists (docs/run-folder.md): from
                                 # its last checkpoint, or from the start when killed before the first
                                 if (run_dir / "config.json").exists() and not (run_dir / "results.json").exists() else
                                 "the run may not have finished: train it again"))
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"'{meta_path}' cannot be read as JSON ({e}); the file is damaged: restore the run "
                              "folder, or train the run again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"'{meta_path}' is not an nnrecipe model description; give the folder that "
                              "`nnrecipe train` printed")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > VERSION:
        # a newer release's description (or an edited one) read as this one's would build another model
        raise CheckpointError(f"'{meta_path}' is a model description of version {version!r}, and this nnrecipe reads "
                              f"version {VERSION} and older; upgrade nnrecipe (pip install -U nnrecipe), or train the "
                              "run again with this one")
    missing = [k for k in ("architecture", *required) if k not in meta]
    if missing:
        raise CheckpointError(f"'{meta_path}' lacks {', '.join(map(repr, missing))}; the file is damaged or was "
                              "edited: restore the run folder, or train the run again")
    data = weights.read_bytes()
    expected = meta.get("weights_sha256")  # absent in models saved before the hash was recorded
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(f"'{weights}' is not the weights '{meta_path}' describes (their hash differs: a run "
                              "killed while saving its model, or files from two runs); train the run again")
    try:
        from safetensors.torch import load as load_bytes

        model = build_model(meta["architecture"])
        model.load_state_dict(load_bytes(data))
    except Exception as e:  # a damaged or foreign file: safetensors, json and torch each raise their own
        raise CheckpointError(f"the model in '{run_dir}' cannot be loaded ({type(e).__name__}: {e}); the files are "
                              "damaged or not nnrecipe's: train the run again, or restore its folder") from None
    model.eval()
    return model, meta
