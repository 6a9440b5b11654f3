"""Images on the pipeline (issue 20): read (a class-per-subfolder folder, a CSV of paths and labels, an .npz)
-> decode, resize, cache -> split -> the image audit -> the CNN family sized by compound scaling -> the
pipeline's checks, training on batches augmented on the device (D11, training only), test and record.
`nnrecipe train FOLDER` and `nnrecipe predict RUN FOLDER_OR_CSV` are thin layers over `train_images` and
`predict_images`.

The images enter the network as float tensors in [0, 1], (N, C, S, S); the CNN standardises them with the
training images' per-channel mean and std, which it holds as buffers (model.json rebuilds it), so predict
needs nothing but the same resize rule."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..checks import Diagnosis
from ..config import DataConfig, ModelConfig, TrainConfig
from ..data.audit.augment_check import check_augmentation, check_split_augmentation
from ..data.audit.images import audit_images
from ..data.image import ImageSet, csv_columns, read_images
from ..data.image.read import SEPARATOR, TABLE_SUFFIXES, label_set
from ..data.image.augment import Augment, Augmented, resolve_preset
from ..data.prepare import SPLITS
from ..data.split import split_indices
from ..errors import ConfigError, DataError
from ..io import atomic_write, write_json
from ..models import load_model
from ..models.cnn import CNN, make_cnn
from ..models.layout import PLAIN, candidates, choose_layout
from ..models.transfer import to_channels
from ..repro import seed_everything
from ..tasks import create_task
from ..track.journal import label_counts
from ..track.predictions import record_predictions
from ..train.trainer import resolve_device
from .image_pictures import pictures, test_pictures, watched_pictures
from .pipeline import Options, Prepared, Recipe, Run, run
from .tabular import task_with_loss
from .transfer import build_transfer, choose_mode, load_backbone, probe_modes
from ..train.callbacks.unfreeze import GradualUnfreezing

log = logging.getLogger("nnrecipe")

LABEL = "label"  # the target's name for a folder of class subfolders (a CSV names its own column)
IMAGE_SPLITS = ("auto", "random", "stratified")
LAYOUT_SETTINGS = candidates(3)  # M10: each layout's name and its CNN settings (models/layout.py)


@dataclass
class PreparedImages:
    """The images as read and split: what the audit, the record and predict need beside the tensors."""
    images: ImageSet
    splits: dict[str, np.ndarray]  # indices into images.pixels
    task: str
    task_reason: str
    classes: list[str]
    mean: list[float]
    std: list[float]
    augment: str  # the preset used (D11)
    cuda: bool  # the run trains on CUDA: the sizing rule allows more compute (models/cnn.py choose_phi)
    device: str = "cpu"  # the run's device and precision: what M10's layout timing measures on
    precision: str = "32"
    batch_size: int | None = None  # the run's --batch-size (None: the rule), the layout timing's batch on CUDA
    layout: dict[str, Any] | None = None  # M10: the layout chosen and its timing (config.json), once per run
    backbone: nn.Module | None = None  # M11: the network started from (--backbone), never trained itself
    transfer: dict[str, Any] | None = None  # config.json's record: the backbone, the mode and why


def _task_of(labels: list[str], task: str, separated: bool = True) -> tuple[str, list[str], str]:
    """The task, the classes (sorted as text) and why: multi-label when a label cell holds several labels
    joined by '|' (`separated`: a CSV's cells; a folder's name is one class, '|' and all) or --task
    multilabel, else binary for two classes and multiclass for more."""
    multi = separated and any(SEPARATOR in label for label in labels)
    if multi or task == "multilabel":
        classes = sorted({c for label in labels for c in label_set(label, separated)})
        why = f"labels joined by '{SEPARATOR}'" if multi else "--task multilabel"
        return "multilabel", classes, f"{why}: multi-label over {len(classes)} classes"
    classes = sorted(set(labels))
    if task not in ("auto", "binary", "multiclass"):
        raise ConfigError(f"--task {task}: images predict classes; choose auto, binary, multiclass or multilabel")
    if len(classes) < 2:
        raise DataError(f"the images hold one class only ({classes[0]!r}): a classifier needs two or more; add a "
                        "folder (or labels) for another class")
    if task == "binary" and len(classes) > 2:
        shown = ", ".join(repr(c) for c in classes[:10]) + (" ..." if len(classes) > 10 else "")
        raise DataError(f"--task binary but the images hold {len(classes)} classes ({shown}); pass --task multiclass "
                        "or auto")
    name = task if task != "auto" else "binary" if len(classes) == 2 else "multiclass"
    return name, classes, f"{len(classes)} classes" + (f", --task {task}" if task != "auto" else "")


def refuse_table_settings(dcfg: DataConfig, mcfg: ModelConfig, data: Any) -> None:
    """Settings that images do not use, given for images: refused by name (a flag is never accepted and
    ignored). --target and --path-column name a CSV's columns: a folder's classes are its subfolders."""
    defaults_d, defaults_m = DataConfig(), ModelConfig()
    table_only = ("categorical", "numeric", "drop", "text", "text_encoder", "max_tokens", "scaling", "neutral_label",
                  "surrogate", "surrogate_test")
    given = [f"--{name.replace('_', '-')}" for name in table_only if getattr(dcfg, name) != getattr(defaults_d, name)]
    given += [f"--{name.replace('_', '-')}" for name in ("members", "hidden", "activation", "batchnorm", "init", "loss",
                                                          "text_model", "pretrain", "latent", "unlabelled")
              if getattr(mcfg, name) != getattr(defaults_m, name)]
    if given:
        raise ConfigError(f"{', '.join(given)}: table settings, and '{data}' is images; leave them out (the CNN's "
                          "settings: --phi, --dropout, --image-size, --augment; docs/images.md)")
    if Path(data).suffix.lower() not in TABLE_SUFFIXES:
        named = [flag for flag, value in (("--target", dcfg.target), ("--path-column", dcfg.path_column)) if value]
        if named:
            raise ConfigError(f"{', '.join(named)}: name{'s' if len(named) == 1 else ''} a CSV's columns, and '{data}' "
                              "is not a CSV (a folder's classes are its subfolders; an .npz holds x and y): leave "
                              f"{'it' if len(named) == 1 else 'them'} out")


def read_and_split(data: Any, dcfg: DataConfig, seed: int
                   ) -> tuple[ImageSet, str, list[str], str, torch.Tensor, dict[str, np.ndarray]]:
    """The images read as `train` reads them, their task, classes (and why), the loss-shaped targets and the
    split: stratified on the class codes (issue 4's rule for classes) unless random was asked for or the
    images are multi-label."""
    if dcfg.split not in IMAGE_SPLITS:
        raise ConfigError(f"--split {dcfg.split}: images are split auto, random or stratified (time: and group: "
                          "name columns of a table)")
    images = read_images(data, dcfg.image_size, path_column=dcfg.path_column, label_column=dcfg.target or None)
    labels = images.labels or []
    task_name, classes, reason = _task_of(labels, dcfg.task, images.separated)
    y_all = _targets(labels, task_name, classes, images.separated)
    stratify = None if task_name == "multilabel" or dcfg.split == "random" else y_all.view(-1).long().numpy()
    parts = split_indices(stratify, len(labels), dcfg.val_fraction, dcfg.test_fraction, seed,
                          classes if stratify is not None else None, where=f"'{data}'", target=dcfg.target or LABEL,
                          how=dcfg.split)
    return images, task_name, classes, reason, y_all, parts


def audit_image_data(data: str | os.PathLike, data_config: DataConfig | None = None, seed: int = 0,
                     out: str | os.PathLike | None = None) -> Diagnosis:
    """`nnrecipe audit FOLDER`: the image audit on the images and the split `train` would make, without
    training; `out`: a folder for audit.json, label_distribution.png and samples.png."""
    dcfg = data_config or DataConfig()
    refuse_table_settings(dcfg, ModelConfig(), data)
    images, task_name, classes, _, y_all, parts = read_and_split(data, dcfg, seed)
    found = audit_images(images, {k: np.asarray(v, dtype=np.int64) for k, v in parts.items()}, seed)
    # D11 on the augmentation `train` would use (a quick model: a few seconds)
    found.append(check_split_augmentation(images.pixels, y_all, parts, dcfg.augment, task_name, classes, seed))
    found.seconds["D11 augmentation"] = found[-1].evidence.get("seconds", 0.0)
    if out is not None:
        found.save(out)
    return found


def _targets(labels: list[str], task: str, classes: list[str], separated: bool = True) -> torch.Tensor:
    """The loss-shaped targets: class codes (N,) long, binary (N, 1) float, multi-label (N, K) 0/1 float."""
    index = {c: i for i, c in enumerate(classes)}
    if task == "multilabel":
        y = torch.zeros(len(labels), len(classes))
        for r, label in enumerate(labels):
            for c in label_set(label, separated):
                y[r, index[c]] = 1.0
        return y
    codes = torch.tensor([index[label] for label in labels], dtype=torch.long)
    return codes.float().view(-1, 1) if task == "binary" else codes


class ImageRecipe(Recipe):
    """A folder of class subfolders, a CSV of image paths and labels, or an .npz of x and y."""

    kind = "images"

    def prepare(self, data: Any, dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig) -> Prepared:
        if mcfg.model not in ("auto", "cnn"):
            raise ConfigError(f"--model {mcfg.model} builds a network for tables; images take --model auto or cnn")
        if mcfg.backbone and tcfg.swa_start is not None:
            raise ConfigError("--swa-start with --backbone: SWA's BatchNorm update would recompute the frozen blocks' "
                              "statistics and its one rate would replace the discriminative ones; leave one out")
        if mcfg.backbone and mcfg.model != "auto":
            raise ConfigError(f"--model {mcfg.model} and --backbone {mcfg.backbone}: the backbone is the network; "
                              "leave --model out")
        refuse_table_settings(dcfg, mcfg, data)
        images, task_name, classes, reason, y_all, parts = read_and_split(data, dcfg, tcfg.seed)
        pixels = images.pixels
        X = {k: (pixels[torch.from_numpy(np.asarray(parts[k], dtype=np.int64))].float().div_(255),) for k in SPLITS}
        y = {k: y_all[torch.from_numpy(np.asarray(parts[k], dtype=np.int64))] for k in SPLITS}
        train = X["train"][0]
        mean = train.mean(dim=(0, 2, 3)).tolist()
        std = train.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()  # a blank channel must not divide by zero
        task, head, unbalanced, balance = task_with_loss(task_name, classes, None, y, X, dcfg, mcfg, tcfg.seed,
                                                         tcfg.metric)
        preset, settings = resolve_preset(dcfg.augment, images.channels, images.size)
        step = Augmented(Augment(settings), tcfg.seed) if preset != "none" else None
        prep = PreparedImages(images, {k: np.asarray(parts[k], dtype=np.int64) for k in SPLITS}, task_name, reason,
                              classes, mean, std, preset, resolve_device(tcfg.device).type == "cuda",
                              str(resolve_device(tcfg.device)), tcfg.precision, tcfg.batch_size)
        target = dcfg.target or LABEL
        prepared = Prepared(task, target, X, y, {k: [int(i) for i in parts[k]] for k in SPLITS}, classes, head, prep,
                            None, unbalanced, balance=balance, step=step)
        if mcfg.backbone:
            self._choose_transfer(prepared, mcfg, tcfg)
        return prepared

    def _choose_transfer(self, prepared: Prepared, mcfg: ModelConfig, tcfg: TrainConfig) -> None:
        """M11: the backbone read, and the mode chosen (recipes/transfer.py: given, the size rule, or the probe)."""
        prep: PreparedImages = prepared.data
        prep.backbone = load_backbone(mcfg.backbone)
        prepared.callbacks = (GradualUnfreezing(),)
        mode, why = choose_mode(mcfg, len(prepared.rows["train"]), lambda: probe_modes(
            lambda m: self._transfer(prepared, mcfg, m, tcfg.seed, prepared.targets["train"]), prepared, tcfg))
        prep.transfer = {"backbone": str(mcfg.backbone), "mode": mode, **why}
        log.info("transfer from %s: %s (%s)", mcfg.backbone, mode, why["how"])

    def _transfer(self, prepared: Prepared, mcfg: ModelConfig, mode: str, seed: int, y_fit: torch.Tensor,
                  deterministic: bool = False) -> nn.Module:
        prep: PreparedImages = prepared.data
        assert prep.backbone is not None
        return build_transfer(prep.backbone, mode, prepared.task.out_features, prep.images.channels, mcfg,
                              prepared.task.activation, prepared.task.output_bias(y_fit), seed, deterministic)

    def build(self, prepared: Prepared, mcfg: ModelConfig, seed: int, y_fit: torch.Tensor,
              deterministic: bool = False) -> nn.Module:
        """The CNN of the family (models/cnn.py) the data's size calls for, its output bias at y_fit's prior
        (M6) and its head's weights near zero, so the loss at init is the prior's (Karpathy: 'init well')."""
        prep: PreparedImages = prepared.data
        if prep.transfer is not None:  # M11: the backbone and a new head, in the mode chosen
            model = self._transfer(prepared, mcfg, prep.transfer["mode"], seed, y_fit, deterministic)
            prep.transfer["blocks"] = model.groups
            return model
        images, n_train = prep.images, len(prepared.rows["train"])
        settings = dict(phi=mcfg.phi, dropout=mcfg.dropout, activation=prepared.task.activation, mean=prep.mean,
                        std=prep.std, cuda=prep.cuda)
        if prep.layout is None:  # once a run: the members of an ensemble and the R2 refit take the same
            prep.layout = self._layout(prepared, mcfg, settings, deterministic)
        seed_everything(seed, deterministic)
        model = make_cnn(images.channels, prepared.task.out_features, n_train, images.size, **settings,
                         **LAYOUT_SETTINGS[prep.layout["layout"]])
        head = model.output_layer
        with torch.no_grad():
            head.weight.mul_(0.01)
            bias = prepared.task.output_bias(y_fit)
            if bias is not None:
                head.bias.copy_(bias.view_as(head.bias))
            else:
                head.bias.zero_()
        return model

    def _layout(self, prepared: Prepared, mcfg: ModelConfig, settings: dict[str, Any],
                deterministic: bool) -> dict[str, Any]:
        """M10: the layout given, or (auto) the one models/layout.py's timing keeps on the run's device; a
        deterministic run keeps the contiguous one (a timing may choose otherwise on the next run, and the
        layouts round differently)."""
        prep: PreparedImages = prepared.data
        if "padded" in mcfg.layout and prep.images.channels != 3:
            raise ConfigError(f"--layout {mcfg.layout} pads RGB images to 4 channels, and these images have "
                              f"{prep.images.channels} channel(s); choose contiguous or channels_last, or auto")
        if mcfg.layout != "auto":
            return {"layout": mcfg.layout, "how": f"--layout {mcfg.layout}"}
        if deterministic:
            return {"layout": PLAIN, "how": "a deterministic run: the contiguous layout, untimed"}
        n_train = len(prepared.rows["train"])
        with torch.random.fork_rng(devices=[]):
            plain = make_cnn(prep.images.channels, prepared.task.out_features, n_train, prep.images.size, **settings)
        _, record = choose_layout(plain.spec, prep.images.channels, plain.resolution, prep.device,
                                  prep.batch_size or CNN.train_defaults(n_train)["batch_size"], prep.precision,
                                  side=prep.images.size)
        return {"layout": record["chosen"], "how": "timed on the device", "timing": record}

    def audit(self, data: Any, prepared: Prepared, dcfg: DataConfig, tcfg: TrainConfig,
              model: nn.Module) -> Diagnosis | None:
        prep: PreparedImages = prepared.data
        found = audit_images(prep.images, prep.splits, tcfg.seed)
        # D11: does each transform of the run's augmentation keep the label? ("none": skipped)
        found.append(check_augmentation(prepared.inputs["train"][0], prepared.targets["train"],
                                        prepared.inputs["val"][0], prepared.targets["val"],
                                        resolve_preset(prep.augment, prep.images.channels, prep.images.size)[1],
                                        prep.augment, prepared.task.name, tcfg.seed, prepared.classes))
        found.seconds["D11 augmentation"] = found[-1].evidence.get("seconds", 0.0)
        return found

    def name(self, data: Any, dcfg: DataConfig) -> str:
        return f"{Path(data).stem or 'images'}-{dcfg.target or LABEL}"

    def describe(self, data: Any, prepared: Prepared) -> dict[str, Any]:
        prep: PreparedImages = prepared.data
        return {"task_reason": prep.task_reason, "source": str(data), "label": prepared.target,
                "images": _image_settings(prep), **({"transfer": prep.transfer} if prep.transfer else {}),
                **({"layout": prep.layout} if prep.layout else {})}

    def journal(self, data: Any, prepared: Prepared, dcfg: DataConfig) -> dict[str, Any]:
        prep: PreparedImages = prepared.data
        return {**prep.images.fingerprint,
                "labels": {s: label_counts(prepared.targets[s].numpy(), prep.task, prep.classes, None)
                           for s in SPLITS}}

    def record(self, run_dir: Path, prepared: Prepared) -> None:
        """splits.json: each split's image files (relative to the source)."""
        prep: PreparedImages = prepared.data
        files = prep.images.files
        write_json(run_dir / "splits.json", {k: [files[i] for i in prep.splits[k]] for k in SPLITS})

    def previews(self, run_dir: Path, prepared: Prepared, predict: Any,
                 held_out: tuple[torch.Tensor, torch.Tensor, Sequence[int]] | None) -> None:
        """C9: val_predictions.csv, the worst first, with each image's file."""
        prep: PreparedImages = prepared.data
        if held_out is None:
            with torch.no_grad():
                outputs = predict(prepared.split("val"))
            y, rows = prepared.targets["val"], prepared.rows["val"]
        else:
            outputs, y, rows = held_out
        frame = record_predictions(run_dir, outputs, y, rows, prep.task, prep.classes)
        frame.insert(1, "file", [prep.images.files[r] for r in frame["row"]])
        atomic_write(run_dir / "val_predictions.csv", frame.to_csv(index=False, float_format="%.6g"))
        pictures(run_dir, prepared, frame)

    def finish(self, run_dir: Path, model: nn.Module, prepared: Prepared, meta: dict[str, Any]) -> None:
        """The pictures of the final model: its worst test images (C9), the watched images over the epochs (C10)."""
        test_pictures(run_dir, prepared, model)
        watched_pictures(run_dir, prepared)

    def artifact(self, prepared: Prepared) -> dict[str, Any]:
        return {"kind": "images", "images": _image_settings(prepared.data)}

    def summary(self, run_dir: Path, prepared: Prepared) -> list[str]:
        prep: PreparedImages = prepared.data
        images = prep.images
        return ["images",
                f"  {len(images.files)} read ({len(images.unreadable)} unreadable, left out), resized to "
                f"{images.size}x{images.size}, {images.channels} channel(s); augmentation: {prep.augment}",
                *([f"  transfer from {t['backbone']}: {t['mode']} ({t['how']})"] if (t := prep.transfer) else [])]


def _image_settings(prep: PreparedImages) -> dict[str, Any]:
    """What predict needs to read new images as training read these (model.json), and config.json's record."""
    images = prep.images
    return {"size": images.size, "channels": images.channels, "augment": prep.augment, "classes": prep.classes}


def train_images(data: str | os.PathLike, *, target: str = "", data_config: DataConfig | None = None,
                 model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                 **options: Any) -> Run:
    """Train the CNN the recipe advises on a folder of class subfolders (or a CSV of image paths with
    `target` its label column, or an .npz of x and y) and leave a run folder under `out`. `options`: the
    keywords of train_table (out, note, progress, callbacks, lr_find, resume, strict, parent, config_file,
    report, export, checks, audit). Raises DataError/ConfigError naming the input and the fix."""
    dcfg = dataclasses.replace(data_config or DataConfig(), target=target)
    return run(ImageRecipe(), data, dcfg, model_config or ModelConfig(), train_config or TrainConfig(),
               Options.of(**options))


PREDICT_NEEDS = ("task", "target", "classes", "images")


def _as_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """New images with the channels the model was trained on: grey repeated into RGB, or RGB to grey by
    ITU-R 601 luma (what Pillow's convert('L') uses)."""
    if x.shape[1] != channels:
        log.info("%s images given to a model of %s images: %s", *(("grey", "RGB", "the grey channel is repeated")
                 if channels == 3 else ("RGB", "grey", "converted to grey (ITU-R 601 luma)")))
    return to_channels(x, channels)


def run_label_column(meta: dict[str, Any], data: str | os.PathLike) -> str | None:
    """The column of labels in a CSV given to a run's model (predict, embed): the run's target column when
    the CSV has it (a CSV of more than paths and labels: read alone, the labels were left out)."""
    target = meta.get("target")
    return target if isinstance(target, str) and target in csv_columns(data) else None


def predict_images(run_dir: str | os.PathLike, data: str | os.PathLike, batch_size: int = 256,
                   path_column: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for every image of `data` (a folder, with or without class subfolders, a CSV of paths, an
    .npz) with the run's model: one line per image (file, prediction, class probabilities), and a report
    (the images read, those unreadable, the accuracy when the source has labels)."""
    model, meta = load_model(run_dir, required=PREDICT_NEEDS)
    settings = meta["images"]
    images = read_images(data, int(settings["size"]), labelled=False, path_column=path_column,
                         label_column=run_label_column(meta, data))
    x = _as_channels(images.pixels.float().div_(255), int(settings["channels"]))
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]) if len(x) else \
            torch.zeros(0, len(meta["classes"]))
    classes = meta["classes"]
    task = create_task(meta["task"], n_classes=len(classes))
    p = task.predict(outputs).numpy()
    report: dict[str, Any] = {"images": len(images.files), "unreadable": [f for f, _ in images.unreadable]}
    if task.name == "multilabel":
        on = task.decide(outputs).numpy().astype(bool)
        pred = np.asarray([SEPARATOR.join(c for c, o in zip(classes, row) if o) for row in on], dtype=object)
        probs = p
    else:
        probs = np.stack([1 - p, p], axis=1) if task.name == "binary" else p
        pred = np.asarray(classes, dtype=object)[task.decide(outputs).numpy()]
    out = pd.DataFrame({"file": images.files, "prediction": pred,
                        **{f"p_{c}": probs[:, i] for i, c in enumerate(classes)}})
    if images.labels is not None and task.name == "multilabel":
        # scored as the set of labels each image holds, every one right (scikit-learn's accuracy_score on
        # multi-label rows: the subset accuracy); a cell naming a class the model lacks is not scored
        sets = [None if t is None else frozenset(label_set(t, images.separated)) for t in images.labels]
        given = np.asarray([t is not None for t in sets])
        known = np.asarray([t is not None and t <= set(classes) for t in sets])
        report.update(scored_rows=int(known.sum()), unscored_rows=int((~known).sum()),
                      unknown_labels=sorted({c for t in sets if t is not None for c in t} - set(classes)),
                      unknown_rows=int((~known & given).sum()), accuracy_of="every label of an image right")
        if known.any():
            hits = [frozenset(c for c, o in zip(classes, row) if o) == t for row, t, k in zip(on, sets, known) if k]
            report["accuracy"] = float(np.mean(hits))
    elif images.labels is not None:
        # a run trained before an .npz's whole-number float labels were read as integers has classes '0.0',
        # '1.0': compared as the labels they write, '0' and '1'
        def written(label: Any) -> Any:
            return label[:-2] if isinstance(label, str) and re.fullmatch(r"-?\d+\.0", label) else label

        truth = np.asarray([written(t) for t in images.labels], dtype=object)
        named = np.asarray([written(c) for c in pred], dtype=object)
        known = np.isin(truth, [written(c) for c in classes])
        given = np.asarray([t is not None for t in images.labels])  # a blank label cell: not scored, not unknown
        report.update(scored_rows=int(known.sum()), unscored_rows=int((~known).sum()),
                      unknown_labels=sorted(set(truth[~known & given].tolist())),
                      unknown_rows=int((~known & given).sum()))
        if known.any():
            report["accuracy"] = float(np.mean(named[known] == truth[known]))
    return out, report


__all__ = ["ImageRecipe", "audit_image_data", "predict_images", "train_images"]
