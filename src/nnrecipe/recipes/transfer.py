"""M11 for the image recipe: `--backbone RUN_OR_FILE` starts from a network you have and `--transfer`
says how much of it trains (models/transfer.py has the modes). `--transfer auto` chooses by the data's
size, then by measurement:

- from PROBE_MAX_IMAGES training images up, "full": the articles' advice for a large training set
  (train "almost all layers ... while initializing your weights on the pre-trained data"); a probe of three
  modes would cost three runs' worth of epochs on such a set;
- below, a short probe: each mode trains for the same few epochs (enough for "full" to thaw every block
  and train 3 more; at least 300 steps) from the same start on the training split, and the mode with the
  lowest validation loss wins. The articles choose by size and by how similar the new images are to the
  backbone's; the probe measures both at once on the data itself, where a size rule would have to guess
  the similarity.
  config.json records the probe's figures and the mode chosen.

A backbone is a run folder of nnrecipe (its network: the first member of an R2 pair or a T14 ensemble), or
a .safetensors file whose metadata names its architecture in the registry (`save_backbone` writes one from
any registry model, torchvision's and timm's through `torchvision_backbone` / `timm_backbone`)."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, ConfigError
from ..io import atomic_write, tensors_bytes
from ..models import load_model
from ..models.registry import build_model
from ..models.transfer import MODES, Transfer, cut, first_member
from ..repro import seed_everything
from ..train import Trainer, for_trainer
from ..train.callbacks.unfreeze import GradualUnfreezing

log = logging.getLogger("nnrecipe")

PROBE_MAX_IMAGES = 10_000  # auto: from this many training images, "full" without a probe
PROBE_EPOCHS = 3  # the probe's epochs after the last block has thawed (full thaws one block an epoch)
PROBE_STEPS = 300  # and at least this many optimizer steps per mode
SPEC_KEY = "nnrecipe_architecture"  # a backbone file's safetensors metadata: the registry spec, as JSON


def save_backbone(model: nn.Module, path: str | os.PathLike) -> Path:
    """`model` (a registry model: it has a `spec`) as one .safetensors file that --backbone reads: its
    weights, and its spec in the file's metadata (a string of JSON: loading it runs no code)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"a {type(model).__name__} has no registry spec: register its class with "
                          "nnrecipe.models.register_model and create it with create_model, then save it")
    path = Path(path)
    atomic_write(path, tensors_bytes(dict(model.state_dict()), metadata={SPEC_KEY: json.dumps(spec)}))
    return path


def load_backbone(source: str | os.PathLike) -> nn.Module:
    """The network of a run folder, or of a .safetensors file saved by save_backbone (a run's own
    model.safetensors is read with its model.json)."""
    path = Path(source)
    if path.is_dir() or (path.suffix == ".safetensors" and (path.parent / "model.json").exists()
                         and path.name == "model.safetensors"):
        model, meta = load_model(path if path.is_dir() else path.parent)
        if meta.get("kind") != "images":
            raise ConfigError(f"--backbone {source}: a run of a table ({meta.get('architecture', {}).get('name')}); "
                              "give a run trained on images, or a .safetensors file from nnrecipe.save_backbone")
        return first_member(model)
    if not path.exists():
        raise ConfigError(f"--backbone {source}: no such file or folder; give a run folder of nnrecipe or a "
                          ".safetensors file written by nnrecipe.save_backbone")
    if path.suffix != ".safetensors":
        raise ConfigError(f"--backbone {source}: not a run folder nor a .safetensors file; give one of those "
                          "(a .pt or .pth is a pickle, which nnrecipe never loads: save the model with "
                          "nnrecipe.save_backbone)")
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # a damaged file: safetensors raises its own errors
        raise CheckpointError(f"--backbone {source}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
    if SPEC_KEY not in meta:
        raise ConfigError(f"--backbone {source}: the file's metadata does not name its architecture; save it with "
                          "nnrecipe.save_backbone(model, path), which records the registry spec beside the weights")
    try:
        spec = json.loads(meta[SPEC_KEY])
        model = build_model(spec)
    except (ValueError, TypeError, ConfigError) as e:  # bad JSON, arguments the model does not take, a name unknown
        raise ConfigError(f"--backbone {source}: the architecture in its metadata cannot be built ({e}); a model of "
                          "your own must be registered (nnrecipe.models.register_model) in the process that reads "
                          "it: use the Python API, or save a model of nnrecipe's") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise CheckpointError(f"--backbone {source}: its weights do not fit the architecture it names ({e})") from None
    return model.eval()


def build_transfer(backbone: nn.Module, mode: str, out_features: int, in_channels: int, mcfg: ModelConfig,
                   activation: str, output_bias: torch.Tensor | None, seed: int, deterministic: bool = False
                   ) -> Transfer:
    """A Transfer on a copy of `backbone` (the caller's is never trained), its head initialised as the CNN's:
    weights near zero and the bias at the prior (M6), so the loss at init is the prior's."""
    seed_everything(seed, deterministic)
    dropout = mcfg.dropout if mcfg.dropout is not None else 0.2
    model = Transfer(copy.deepcopy(backbone), out_features, in_channels, mode, dropout=dropout, activation=activation)
    head = model.output_layer
    with torch.no_grad():
        head.weight.mul_(0.01)
        if output_bias is not None:
            head.bias.copy_(output_bias.view_as(head.bias))
        else:
            head.bias.zero_()
    return model


def choose_mode(mcfg: ModelConfig, n_train: int, probe: Any) -> tuple[str, dict[str, Any]]:
    """The mode and why: the one given; "full" from PROBE_MAX_IMAGES training images; else `probe()`'s
    winner ({mode: figures})."""
    if mcfg.transfer != "auto":
        return mcfg.transfer, {"how": f"--transfer {mcfg.transfer}"}
    if n_train >= PROBE_MAX_IMAGES:
        return "full", {"how": f"{n_train} training images (>= {PROBE_MAX_IMAGES:,}): a large set fine-tunes every "
                               "block"}
    figures = probe()
    best = min(figures, key=lambda m: (figures[m]["val_loss"], MODES.index(m)))
    shown = ", ".join(f"{m} {f['val_loss']:.4f}" for m, f in figures.items())
    return best, {"how": f"probe: the lowest validation loss after a few epochs of each mode ({shown})",
                  "probe": figures}


def probe_modes(make: Any, prepared: Any, tcfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """Each mode trained from the same start for the same epochs (no checkpoint, no record) on the training
    split, judged by its best validation loss: {mode: {val_loss, epochs, best_epoch, val_*}}."""
    from .pipeline import model_rules

    figures: dict[str, dict[str, Any]] = {}
    n_train = len(prepared.rows["train"])
    for mode in MODES:
        model = make(mode)
        config = model_rules(dataclasses.replace(tcfg, patience=None, refit="off", cv_folds=1, swa_start=None,
                                                 monitor="val_loss", metric=None, checkpoint_every=0), model, n_train)
        # every mode the same epochs: full's thaw (a block an epoch) and PROBE_EPOCHS more, and at least
        # PROBE_STEPS steps, so that a head on frozen features, which moves least per step, is not judged
        # before it has learnt (on 87 images, 4 epochs of 6 steps left it at twice full's validation loss)
        steps_per_epoch = math.ceil(n_train / config.batch_size)
        epochs = max(len(model.groups) + 1 + PROBE_EPOCHS, math.ceil(PROBE_STEPS / steps_per_epoch))
        config = dataclasses.replace(config, epochs=min(epochs, tcfg.epochs))
        trainer = Trainer(model, prepared.task.loss(), prepared.split("train"), prepared.split("val"), for_trainer(config),
                          callbacks=[GradualUnfreezing()], metrics=prepared.task.metrics(), task=prepared.task,
                          step=copy.deepcopy(prepared.step), record=False)
        trainer.fit()
        best = trainer.history[(trainer.best_epoch or len(trainer.history)) - 1]
        figures[mode] = {"val_loss": round(float(best["val_loss"]), 6), "epochs": len(trainer.history),
                         "best_epoch": trainer.best_epoch,
                         **{k: round(float(v), 6) for k, v in best.items() if k.startswith("val_") and k != "val_loss"}}
        log.info("transfer probe: %s, validation loss %.4f after %d epochs", mode, figures[mode]["val_loss"],
                 len(trainer.history))
    return figures


def embed_images(run_dir: str | os.PathLike, data: str | os.PathLike, at: str | None = None, batch_size: int = 256,
                 path_column: str | None = None) -> pd.DataFrame:
    """M12: the embeddings of every image of `data` by a run's network cut at layer `at` (default: the CNN's
    pooled embedding, the input of the last Linear layer otherwise): one row per image with its file, its
    label when the source has labels, and e0, e1, ...: a table the tabular recipe trains on
    (`nnrecipe train emb.csv --target label --drop file`)."""
    from ..data.image import read_images
    from .images import PREDICT_NEEDS, _as_channels, run_label_column

    model, meta = load_model(run_dir, required=PREDICT_NEEDS)
    network = first_member(model)
    if at is not None and not at.strip():
        raise ConfigError("at='' (CLI: --at '') names no layer: leave it out for the default cut, or name one, "
                          "such as stages.1")
    if at is not None and isinstance(network, Transfer):
        # named as in the run's model ('head': the transfer's own head) or as in its backbone ('stages.1'); the
        # run's model is cut, so a layer its forward never runs (the backbone's own classifier, cut off by the
        # transfer) is refused by Cut rather than embedded by a network the run does not use
        names = dict(network.named_modules())
        at = at if at in names else f"backbone.model.{at}" if f"backbone.model.{at}" in names else at
    embedder = cut(network, at) if at is not None or not isinstance(network, Transfer) else network.features
    images = read_images(data, int(meta["images"]["size"]), labelled=False, path_column=path_column,
                         label_column=run_label_column(meta, data))
    x = _as_channels(images.pixels.float().div_(255), int(meta["images"]["channels"]))
    with torch.no_grad():
        rows = [embedder(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    e = torch.cat(rows).numpy() if rows else np.zeros((0, 0), dtype=np.float32)
    frame = pd.DataFrame(e, columns=[f"e{i}" for i in range(e.shape[1])])
    if images.labels is not None:
        frame.insert(0, "label", images.labels)
    frame.insert(0, "file", images.files)
    log.info("embeddings of %d images from %s, %d values each", len(frame), run_dir, e.shape[1])
    if images.unreadable:  # left out of the table: said, with the first files and why (predict says so too)
        shown = "; ".join(f"{f} ({why})" for f, why in images.unreadable[:5])
        log.warning("%d image(s) could not be read and have no embedding: %s%s", len(images.unreadable), shown,
                    " ..." if len(images.unreadable) > 5 else "")
    return frame


__all__ = ["build_transfer", "choose_mode", "embed_images", "load_backbone", "probe_modes", "save_backbone"]
