"""M13 on tables: an autoencoder trained on the training rows' features plus unlabelled rows, its encoder
read by the recipe's network (models/autoencoder.py has the modes and the latent-size rule).

What it reads: the feature vector of the fitted TablePreprocessor (numeric columns scaled, low-cardinality
categories one-hot, missing-value indicators, a pretrained text encoder's dimensions). High-cardinality
categories (learned embeddings, D10) and the text columns' bags go to the network as before, not through
the autoencoder. The rows: the training split's (before D6's resampling) and the rows of the --unlabelled
file, preprocessed with the run's preprocessing; never the validation or test rows (their inputs would
shape the features they are judged on). 10% of those rows, drawn by the seed, are held out for early
stopping on the reconstruction loss.

The trained autoencoder is stored under the cache ($NNRECIPE_CACHE/autoencoders/KEY/, KEY the SHA-256 of
the rows it trains on and its settings), so a resumed run, or any run on the same rows with the same
settings, loads it instead of training it again; the run folder gets a copy (autoencoder/: model.json with
the record, model.safetensors, loadable with nnrecipe.load_model) when training starts, and model.json's
"pretrain" entry records what was pretrained, on how many rows, and its reconstruction loss."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, ConfigError, DataError, did_you_mean_column, shorten
from ..models import load_model, save_model
from ..models.autoencoder import Autoencoder, Encoded, encoded, hidden_size, latent_size
from ..repro import seed_everything
from ..train.callbacks import Callback

log = logging.getLogger("nnrecipe")

PRETRAIN_VERSION = 1  # bump when the autoencoder or its training changes what a key stores
# The autoencoder's training: Adam at 3e-3 on batches of 128 rows, early stopping on the held-out tenth after
# 10 epochs without improvement (T7's 5-20), 200 epochs at most. The pretraining is a preamble to the run: on
# the test's table (2,000 rows of 20 columns, tests/models/test_autoencoder_features.py) batches of 32 at
# Adam's 1e-3 took 6.2 s for a held-out reconstruction loss of 0.030; 128 at 3e-3, 0.95 s for 0.034 (of a
# variance of 1.1); 256 at 1e-3 ran its 200 epochs for 0.038
AE_LR, AE_EPOCHS, AE_PATIENCE, AE_HELD_OUT, AE_BATCH = 3e-3, 200, 10, 0.1, 128
AE_MIN_ROWS = 20  # fewer rows than this cannot hold out a tenth and still train


@dataclass
class Pretrained:
    """The trained autoencoder, the mode its encoder serves the network in, and the record of its training."""
    autoencoder: Autoencoder
    mode: str
    record: dict[str, Any]

    def network_features(self, x: torch.Tensor, raw: list[int]) -> tuple[torch.Tensor, list[int]]:
        """The features as the network reads them for rows `x`, and the positions among them that TabM reads
        as they are (`raw`: the text encoder's dimensions; the code always: a learned representation)."""
        with torch.no_grad():
            z = self.autoencoder.frozen_encoder()(x)
        if self.mode == "features":
            return torch.cat([x, z], dim=1), [*raw, *range(x.shape[1], x.shape[1] + z.shape[1])]
        return z, list(range(z.shape[1]))

    def wrap(self, network: nn.Module) -> Encoded:
        """`network` behind a copy of the encoder, frozen unless the mode fine-tunes it."""
        return encoded(network, self.autoencoder.frozen_encoder(trainable=self.mode == "init"), self.mode)


class PretrainRecord(Callback):
    """Carries the pretrained autoencoder with the prepared data (the recipe's builds read it) and copies it
    to the run folder's autoencoder/ when the run's training starts (the folder that holds config.json: a
    T14 member's or an R2 second network's folder is not the run's). A resumed run finds it there."""

    def __init__(self, pretrained: Pretrained):
        self.pretrained = pretrained

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        run_dir = getattr(trainer, "run_dir", None)
        if run_dir is None or not (run_dir / "config.json").exists():
            return
        folder = run_dir / "autoencoder"
        if not (folder / "model.json").exists():
            save_model(folder, self.pretrained.autoencoder, {"pretrain": self.pretrained.record})


def pretrained_of(prepared: Any) -> Pretrained | None:
    """The Pretrained a prepared table carries (None without --pretrain)."""
    return next((c.pretrained for c in prepared.callbacks if isinstance(c, PretrainRecord)), None)


def pretrain_table(prep: Any, target: str, mcfg: ModelConfig, tcfg: TrainConfig) -> tuple[Callback, ...]:
    """TableRecipe.prepare's part: () without --pretrain; else the autoencoder trained (or loaded from the
    cache) on the training rows plus the --unlabelled file's, in a PretrainRecord. Raises ConfigError for
    --unlabelled without --pretrain, DataError naming the file for unlabelled rows that cannot be read."""
    if mcfg.pretrain == "off":
        given = [f"--{name} {value}" for name, value in (("unlabelled", mcfg.unlabelled), ("latent", mcfg.latent))
                 if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: settings of the autoencoder pretraining (M13), and --pretrain "
                              "is off; add --pretrain features (or latent, init), or leave them out")
        return ()
    train = prep.inputs("train")[0]  # the training split as prepared, before any D6 resampling
    extra = (unlabelled_features(mcfg.unlabelled, prep.pre, target) if mcfg.unlabelled is not None
             else torch.zeros((0, train.shape[1])))
    n_features = train.shape[1]
    if n_features < 2:
        raise ConfigError(f"--pretrain {mcfg.pretrain}: the table has {n_features} input feature(s), and an "
                          "autoencoder compresses several; leave --pretrain out")
    latent = mcfg.latent if mcfg.latent is not None else latent_size(n_features)
    autoencoder, record = pretrain_autoencoder(train, extra, latent, tcfg.seed, tcfg.device)
    record = {**record, "mode": mcfg.pretrain, "unlabelled_file": mcfg.unlabelled,
              "latent_rule": "given (--latent)" if mcfg.latent is not None else
              "ceil(features / 4) in [2, 512] (docs/autoencoder.md)"}
    log.info("M13: %s", pretrain_line(record))
    return (PretrainRecord(Pretrained(autoencoder, mcfg.pretrain, record)),)


def pretrain_line(record: dict[str, Any]) -> str:
    """One line for the screen and the report: what was pretrained, on how many rows, its loss."""
    rows = record["rows"]
    return (f"autoencoder {record['inputs']} -> {record['latent']} features ({record['mode']}), trained on "
            f"{rows['training']} training + {rows['unlabelled']} unlabelled rows; reconstruction loss "
            f"{record['reconstruction_loss']:.4g} on the held-out {rows['held_out']} (their variance "
            f"{record['variance']:.4g})" + (" [from the cache]" if record.get("cached") else ""))


def unlabelled_features(path: str, pre: Any, target: str) -> torch.Tensor:
    """The --unlabelled file's rows as the run's preprocessing turns them into features. Refused, naming the
    file: missing input columns, values in the target, cells the preprocessing cannot read as numbers."""
    from ..data import read_table
    from ..data.load import row_labels
    from ..data.schema import numeric_problems, target_columns

    df = read_table(path)
    missing = [c for c in pre.columns if c not in df.columns]
    if missing:
        listed = ", ".join(repr(shorten(c, 40)) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"--unlabelled file '{path}' lacks {len(missing)} input column(s) of the table: {listed}"
                        f"{did_you_mean_column(missing[0], df.columns)}; give it the training table's input "
                        "columns (the target may be absent or empty)")
    for col in target_columns(target):
        if col in df.columns and df[col].notna().any():
            held = df[col].notna().to_numpy()
            first = row_labels(path, [int(np.flatnonzero(held)[0])])[0]
            raise DataError(f"--unlabelled file '{path}': {int(held.sum())} rows hold a value in target "
                            f"'{shorten(col, 80)}' (first at {first}); unlabelled rows have none: empty the "
                            "column or drop it (labelled rows belong in the training table, whose split keeps the "
                            "validation and test rows out of the autoencoder)")
    numeric = [c for c, spec in pre.columns.items() if spec["kind"] == "numeric"]
    problems = numeric_problems(df, numeric, path)
    if problems:
        raise DataError(f"--unlabelled file '{path}': " + "; ".join(problems))
    features, _, _ = pre.transform(df)
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


def pretrain_autoencoder(train: torch.Tensor, unlabelled: torch.Tensor, latent: int, seed: int,
                         device: str = "auto") -> tuple[Autoencoder, dict[str, Any]]:
    """The autoencoder of the rows of `train` and `unlabelled` (features, (N, F) each), from the cache when
    these rows and settings trained one before, else trained (early stopping on a seeded tenth held out) and
    stored there. Returns it in eval mode with the record of its training."""
    rows = torch.cat([train, unlabelled]).float().contiguous()
    if len(rows) < AE_MIN_ROWS:
        raise ConfigError(f"--pretrain: {len(rows)} rows to train an autoencoder on; give {AE_MIN_ROWS} or more "
                          "(unlabelled rows with --unlabelled FILE), or leave --pretrain out")
    n_features = rows.shape[1]
    hidden = hidden_size(n_features, latent)
    settings = {"version": PRETRAIN_VERSION, "latent": latent, "hidden": hidden, "seed": seed, "lr": AE_LR,
                "epochs": AE_EPOCHS, "patience": AE_PATIENCE, "held_out": AE_HELD_OUT, "batch_size": AE_BATCH}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(f"{tuple(rows.shape)}".encode())
    digest.update(rows.numpy().tobytes())
    folder = _cache_folder() / digest.hexdigest()
    found = _load(folder)
    if found is not None:
        return found
    model, record = train_autoencoder(rows, latent, hidden, seed, device)
    record = {**record, "rows": {"training": len(train), "unlabelled": len(unlabelled), **record["rows"]},
              "key": folder.name}
    _store(folder, model, record)
    return model, record


def train_autoencoder(rows: torch.Tensor, latent: int, hidden: int, seed: int, device: str = "auto"
                      ) -> tuple[Autoencoder, dict[str, Any]]:
    """An autoencoder of `rows` (N, F) trained with steps.Reconstruction, early stopping on a seeded tenth
    held out; its code's mean and std over every row set for the frozen encoder. Returns it on the CPU in
    eval mode, with the record of its training."""
    from ..steps import Reconstruction
    from ..train import Trainer, for_trainer

    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(AE_HELD_OUT * len(rows))))
    fit, held = rows[order[n_val:]], rows[order[:n_val]]
    seed_everything(seed)
    model = Autoencoder(rows.shape[1], hidden, latent)
    config = TrainConfig(epochs=AE_EPOCHS, batch_size=AE_BATCH, lr=AE_LR, patience=AE_PATIENCE, seed=seed,
                         device=device)
    started = time.perf_counter()
    trainer = Trainer(model, None, (fit,), (held,), for_trainer(config), step=Reconstruction())
    history = trainer.fit()
    model = model.cpu().eval()
    with torch.no_grad():
        z = model.encoder.code(rows)
        model.encoder.mean.copy_(z.mean(0))
        model.encoder.std.copy_(z.std(0).clamp_min(1e-6))  # a dead unit (a constant code) stays finite
        loss = float(nn.functional.mse_loss(model(held), held))
    return model, {"what": "autoencoder", "inputs": rows.shape[1], "hidden": hidden, "latent": latent,
                   "rows": {"fit": len(fit), "held_out": n_val}, "reconstruction_loss": loss,
                   "variance": float(held.var(0, unbiased=False).mean()), "epochs_run": len(history),
                   "best_epoch": trainer.best_epoch, "seconds": round(time.perf_counter() - started, 2)}


def _cache_folder() -> Path:
    from ..data.cache import cache_folder

    return cache_folder(kind="autoencoders")


def _load(folder: Path) -> tuple[Autoencoder, dict[str, Any]] | None:
    """The stored autoencoder and its record (marked cached), or None on a miss or a damaged entry."""
    if not (folder / "model.json").exists():
        return None
    try:
        model, meta = load_model(folder, required=("pretrain",))
    except CheckpointError as e:
        log.warning("the stored autoencoder in %s cannot be read (%s): training it again", folder, e)
        return None
    if not isinstance(model, Autoencoder):
        return None
    from ..data.cache import touch

    for file in (folder / "model.json", folder / "model.safetensors"):
        touch(file)
    log.info("autoencoder loaded from the cache (%s)", folder)
    return model, {**meta["pretrain"], "cached": True}


def _store(folder: Path, model: Autoencoder, record: dict[str, Any]) -> None:
    """The autoencoder in the cache (the weights, then model.json: a reader never sees one without the
    other); a failure is logged and ignored (the cache only saves time)."""
    from ..data.cache import trim

    try:
        save_model(folder, model, {"pretrain": record})
        trim(keep=folder / "model.json")
    except OSError as e:
        log.warning("could not store the autoencoder in %s (%s)", folder, str(e).strip() or type(e).__name__)
        with contextlib.suppress(OSError):
            (folder / "model.json").unlink(missing_ok=True)


__all__ = ["Pretrained", "PretrainRecord", "pretrain_autoencoder", "pretrain_line", "pretrain_table",
           "pretrained_of", "unlabelled_features"]
