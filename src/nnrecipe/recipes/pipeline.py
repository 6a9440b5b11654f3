"""The recipe as one pipeline: prepare -> build -> check -> fit -> evaluate -> record.

A kind of data plugs in as a Recipe (recipes/tabular.py for tables): it supplies its reader and
preprocessing (`prepare`), its audit, its default model (`build`), its previews for the report and what a
saved model needs to predict. The pipeline does the rest the same way for every kind: the doctor's checks
before training (Karpathy's recipe: verify the setup before you train), the Trainer with early stopping
and checkpoints, or a T14 cross-validation ensemble, or the R2 refit; the curves judged after training
(C8, T16); the test metrics; and the record of the run folder. `run()` returns everything the tuner and
the refit need in memory: nothing is written to be read back."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import Diagnosis, Verdict, check_init_loss, check_simple_models, fit_simple_models
from ..checks.curves import after_range_test, check_longer, kept_best
from ..checks.doctor import c2_init_loss, doctor, resolve_checks
from ..config import (DEFAULT_LR, REFIT_SETTINGS, DataConfig, ModelConfig, TrainConfig, from_dict, to_dict,
                      unread_settings)
from ..errors import CheckpointError, ConfigError, TrainingError, check_choice, did_you_mean
from ..io import atomic_write, read_json_or_none, sweep_temp, write_json
from ..models import Ensemble, save_model
from ..repro import environment
from ..data.balance import BALANCED_METRICS
from ..data.prepare import SPLITS
from ..tasks import Task, classification_report, create_task
from ..tasks.metrics import ALIASES
from ..track import check_parent, new_run_dir
from ..track.journal import write_journal
from ..track.recorder import RunRecorder, now
from ..train import Trainer, for_trainer
from ..train import distributed as dist
from ..train.callbacks import Callback, PredictionWatch, ProgressBar
from ..train.optim import make_optimizer, model_parameters
from ..train.trainer import default_batch_size
from .cross_fit import CrossFit, Member, MemberStore, member_curves, member_verdicts, resolve_folds
from .techniques import (distillation_record, robustness_record, surrogate_measured_on, surrogate_settings,
                         surrogate_verdict, technique_step, train_alone)

log = logging.getLogger("nnrecipe")

MEASURED_CHOICES = ("transfer", "layout")  # config.json entries a recipe measured to choose (images: M11, M10)
# C8 judges the run's own curves after training, not a short run of its own; the data checks run in the
# audit, on every row rather than the doctor's sample
SKIPPED_BEFORE_TRAINING = ("C8", "data")


@dataclass
class Prepared:
    """What a kind of data hands the pipeline: the task (its loss set: class weights, M3's robust loss), the
    model's inputs and the loss-shaped targets of each split, each split's data rows, and the modality's own
    preparation (a PreparedTable for tables)."""
    task: Task
    target: str  # what is predicted: a column, or several joined by commas (multi-label)
    inputs: dict[str, tuple[torch.Tensor, ...]]
    targets: dict[str, torch.Tensor]
    rows: dict[str, list[int]]
    classes: list[str]
    head: str  # how the task's loss was chosen: D6 rebalancing, M3's regression loss
    data: Any
    feature_names: list[str] | None = None
    # the training split before D6's over- or undersampling, when it was resampled (T14 resamples per member)
    unbalanced: tuple[torch.Tensor, ...] | None = None
    held_back: Any = None  # rows kept out of training to be predicted for review (D7's neutral rows)
    balance: str | None = None  # the D6 method used for classes (none, weights, oversample, undersample)
    # the training step (steps/step.py) when the kind of data has its own: images train on augmented batches
    # (D11); None: the supervised step. Evaluation and prediction never go through it
    step: Any = None
    # callbacks every training of the kind's model takes (a transfer model's GradualUnfreezing)
    callbacks: tuple[Callback, ...] = ()
    # the position of an input of token ids whose training batches are bucketed by length (D2: chosen when
    # per-batch padding would waste most of the compute); None: random batches
    bucket_by: int | None = None

    def split(self, name: str) -> tuple[torch.Tensor, ...]:
        """A split's inputs and target, as the Trainer takes them."""
        return (*self.inputs[name], self.targets[name])

    def tested_on(self, name: str) -> Prepared:
        """The same data whose test split is split `name`'s rows (none was held out: T15's surrogate fits
        every row, test_fraction 0 keeps no test rows)."""
        return dataclasses.replace(self, inputs={**self.inputs, "test": self.inputs[name]},
                                   targets={**self.targets, "test": self.targets[name]},
                                   rows={**self.rows, "test": self.rows[name]})


@dataclass
class Run:
    """A finished run: its folder and what it recorded there, in memory."""
    run_dir: Path
    task: str
    test: dict[str, float]
    verdicts: Diagnosis
    history: list[dict[str, Any]] = field(default_factory=list)
    audit: Diagnosis | None = None  # the data audit's findings (audit.json)
    config: dict[str, Any] = field(default_factory=dict)  # config.json
    results: dict[str, Any] = field(default_factory=dict)  # results.json

    @property
    def metric(self) -> tuple[str, float]:
        """The headline test metric: accuracy for classes, RMSE (target units) for regression."""
        name = headline_metric(self.task)
        return name, self.test[name]

    @property
    def best_epoch(self) -> int | None:
        return self.results.get("best_epoch")

    @property
    def batch_size(self) -> int:
        return int(self.config["train"]["batch_size"])

    def _repr_html_(self) -> str:  # Jupyter: metrics beside the baselines, verdicts, plots (report/notebook.py)
        from ..report.notebook import run_html

        return run_html(self)


def headline_metric(task: str) -> str:
    """The metric a run of `task` is judged by: rmse (target units) for regression, else accuracy."""
    return create_task(task).headline


@dataclass(frozen=True)
class Options:
    """How one run goes, beside its data, model and training settings (train_table's keywords)."""
    out: str | os.PathLike = "runs"
    note: str = ""
    progress: bool = False
    callbacks: tuple[Callback, ...] = ()
    # the position of an input of token ids whose training batches are bucketed by length (D2: chosen when
    # per-batch padding would waste most of the compute); None: random batches
    bucket_by: int | None = None
    lr_find: str = "off"  # off | on | confirm (T4)
    resume: str | os.PathLike | None = None  # a run folder to go on with (T8)
    strict: bool = False  # stop before training when a check fails
    parent: str | os.PathLike | None = None  # R3
    config_file: str | os.PathLike | None = None  # R8
    report: bool = True
    export: tuple[str, ...] = ()
    checks: tuple[Any, ...] | None = None  # the doctor's checks before training (None: all; (): none)
    refit: dict[str, Any] | None = None  # R2: {"epochs": N, ...the trial it retrains}
    audit: bool = True
    # settings the run would not read (config.unread): refused; warned about where another tool chose them
    # (an ablation's variant that switches the optimizer, a grid search's candidate)
    unread: str = "refuse"

    def __post_init__(self) -> None:
        check_choice("lr_find", self.lr_find, ("off", "on", "confirm"))
        check_choice("unread", self.unread, ("refuse", "warn"))

    @classmethod
    def of(cls, callbacks: Sequence[Callback] | None = None, export: Sequence[str] = (),
           checks: Sequence[Any] | None = None, **given: Any) -> Options:
        """The options from train_table's keywords (its sequences as tuples); an unknown keyword is named."""
        known = {f.name for f in dataclasses.fields(cls)}
        for name in given:
            if name not in known:
                raise ConfigError(f"{name}= is not a keyword of training{did_you_mean(name, known)}; allowed: "
                                  f"{', '.join(sorted(known))}")
        return cls(callbacks=tuple(callbacks or ()), export=tuple(export),
                   checks=None if checks is None else tuple(checks), **given)


class Recipe:
    """One kind of data on the pipeline. Subclasses supply these; the pipeline calls them in order."""

    kind = "data"

    def prepare(self, data: Any, dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig) -> Prepared:
        raise NotImplementedError

    def build(self, prepared: Prepared, mcfg: ModelConfig, seed: int, y_fit: torch.Tensor,
              deterministic: bool = False) -> nn.Module:
        """The default model for the data, initialised (M5, M6: the output bias at y_fit's prior)."""
        raise NotImplementedError

    def audit(self, data: Any, prepared: Prepared, dcfg: DataConfig, tcfg: TrainConfig,
              model: nn.Module) -> Diagnosis | None:
        return None

    def name(self, data: Any, dcfg: DataConfig) -> str:
        """The run folder's name after its timestamp."""
        return self.kind

    def describe(self, data: Any, prepared: Prepared) -> dict[str, Any]:
        """config.json's entries about the data (source, why this task)."""
        return {}

    def journal(self, data: Any, prepared: Prepared, dcfg: DataConfig) -> dict[str, Any]:
        """journal.json's data entry: the data's fingerprint and label counts."""
        return {}

    def record(self, run_dir: Path, prepared: Prepared) -> None:
        """Files of the run folder that describe the data (splits, schema)."""

    def previews(self, run_dir: Path, prepared: Prepared, predict: Any,
                 held_out: tuple[torch.Tensor, torch.Tensor, Sequence[int]] | None) -> None:
        """C9, D14: what the report shows of the validation predictions and the inputs."""

    def artifact(self, prepared: Prepared) -> dict[str, Any]:
        """model.json's entries beside the architecture: what predict needs."""
        return {}

    def finish(self, run_dir: Path, model: nn.Module, prepared: Prepared, meta: dict[str, Any]) -> None:
        """Anything left once the model is saved (D7's review of the neutral rows)."""

    def summary(self, run_dir: Path, prepared: Prepared) -> list[str]:
        """summary.txt's lines about the data."""
        return []


def run(recipe: Recipe, data: Any, dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig, opts: Options) -> Run:
    """Train the recipe's model on `data` and leave a run folder under opts.out (see the module's docstring).
    Raises DataError/ConfigError naming the input and the fix, TrainingError when --strict stops it."""
    opts = dist.rank_options(opts)  # T10 under torchrun: a rank other than 0 runs in a private folder
    lr_find, note, refit = opts.lr_find, opts.note, opts.refit
    resuming = opts.resume is not None
    asked_lr_find = lr_find  # what the run records, whether or not the range test has still to run
    if resuming:
        run_dir = Path(opts.resume)  # type: ignore[arg-type]
        given = (dcfg, mcfg, tcfg)
        dcfg, mcfg, tcfg, note, refit, lr_find = recorded_config(run_dir, dcfg.target)
        changed = [f"{name}={mine!r} (recorded: {theirs!r})" for a, b in zip(given, (dcfg, mcfg, tcfg))
                   for name, mine, theirs in _changed(a, b) if name != "target"]
        # the run's own record: its note, its range test, its parent and its folder are the recorded ones (a
        # search's retried trial is resumed under its new trial's note)
        changed += [] if opts.callbacks else [f"{name}={mine!r} (recorded: {theirs!r})" for name, mine, theirs, unset in (
            ("note", opts.note, note, ""), ("lr_find", opts.lr_find, lr_find, "off"),
            ("parent", None if opts.parent is None else str(Path(opts.parent).resolve()), _recorded_parent(run_dir),
             None)) if mine != unset and mine != theirs]
        if Path(opts.out) != Path(Options().out) and Path(opts.out).resolve() != run_dir.resolve().parent:
            changed.append(f"out={str(opts.out)!r} (the run's folder is {str(run_dir)!r})")
        if changed:  # a resumed run trains on with what it recorded: a setting given beside --resume is refused
            raise ConfigError(f"--resume {run_dir} goes on with the settings the run recorded, and these differ: "
                              f"{', '.join(changed)}; leave them out, or start a new run with them")
        asked_lr_find = lr_find
        for path, size in sweep_temp(run_dir):  # a killed writer cannot remove its temp files itself
            log.info("removed %s (%d bytes), left by the run's killed process", path, size)
        found = read_json_or_none(run_dir / "lr_find.json")
        if lr_find != "off" and found is not None:  # the range test ran before the stop: its rate, not again
            if found.get("suggestion") is not None:
                tcfg = dataclasses.replace(tcfg, lr=found["suggestion"])
            lr_find = "off"
    elif lr_find != "off" and tcfg.lr is not None:  # two sources for one rate: never one quietly dropped
        raise ConfigError(f"--lr {tcfg.lr:g} and --lr-find {lr_find}: the range test picks the rate; give one of "
                          "them")
    # the metric the run answers to (D6's rebalancing, C4, config.json's "optimises"): a refit stops on none,
    # but it retrains a trial that followed its study's metric
    aim = tcfg.metric if refit is None else (str(refit.get("metric") or "").removeprefix("val_") or tcfg.metric)
    if refit is not None:  # R2 (Rishit Dagli: retrain the best on all the data): nothing held out to stop on
        if tcfg.cv_folds > 1:
            log.info("R2 refit: one model on the training and validation rows; cv_folds=%d is not used", tcfg.cv_folds)
        tcfg = dataclasses.replace(tcfg, epochs=int(refit["epochs"]), **REFIT_SETTINGS)
    if opts.parent is not None:
        check_parent(opts.parent)  # a wrong --parent fails before the work, not after it

    # -- prepare and build
    # (a refit's own settings monitor the training loss: the metric rides along for the preparation only)
    aimed = tcfg if aim == tcfg.metric else dataclasses.replace(tcfg, metric=aim, monitor="val_loss")
    prepared = recipe.prepare(data, dcfg, mcfg, aimed)  # (an image recipe refuses a table's settings first)
    if not resuming and not opts.callbacks and refit is None:  # a search's trials draw only what they read
        unused = unread_settings(mcfg, tcfg)
        if unused and opts.unread == "warn":
            log.warning("%s: this run does not use them", "; ".join(unused))
        elif unused:  # accepted, they would be ignored
            raise ConfigError("; ".join(unused) + ": add what reads them, or leave them out")
    if resuming:
        _same_data(run_dir, recipe.journal(data, prepared, dcfg))
    task = prepared.task
    if dcfg.surrogate:  # T15: fit every row; held-out rows, when given, only measure
        tcfg, prepared = surrogate_settings(tcfg, prepared)
        aimed = tcfg
    # test_fraction 0 (a scikit-learn estimator's fit): the validation rows stand in for the test rows
    stand_in = not dcfg.surrogate and not len(prepared.targets["test"])
    if stand_in:
        log.info("no test split (test_fraction 0): the run's test metrics are measured on the %d validation rows",
                 len(prepared.rows["val"]))
        prepared = prepared.tested_on("val")
    if tcfg.metric is not None:
        task.metrics([tcfg.metric])  # a metric that does not apply to the task fails here, naming both
    val_y = prepared.targets["val"]
    if (tcfg.metric in ("roc_auc", "auc") or tcfg.monitor in ("val_roc_auc", "val_auc")) and len(val_y) and len(torch.unique(torch.as_tensor(val_y))) < 2:
        # ROC AUC is undefined on one class: every epoch's value NaN, no best epoch, a crash after training
        raise ConfigError(f"--metric roc_auc: the {len(val_y)} validation rows hold one class (the split "
                          f"{dcfg.split!r} put the other in training or test), where ROC AUC is undefined; use a "
                          "random or stratified --split, or --metric accuracy, balanced_accuracy or log_loss")
    model = recipe.build(prepared, mcfg, tcfg.seed, prepared.targets["train"], tcfg.deterministic)
    tcfg = model_rules(tcfg, model, len(prepared.rows["train"]))
    # T12/T13: the step distils from a teacher or trains adversarially, on the kind of data's own batches
    base_step = prepared.step
    prepared = dataclasses.replace(prepared, step=technique_step(prepared, recipe.artifact(prepared), dcfg, tcfg))
    # T14: a cross-validation ensemble when asked for (a refit trains one model on every row)
    folds = resolve_folds(tcfg.cv_folds, len(prepared.rows["train"]) + len(prepared.rows["val"]), dcfg.split)
    tcfg = dataclasses.replace(tcfg, refit=resolve_refit(tcfg, folds, len(prepared.rows["train"])
                                                         + len(prepared.rows["val"]), opts, resuming))

    # -- the data audit (Karpathy's recipe: become one with the data), then the doctor's checks
    started = time.perf_counter()
    findings = recipe.audit(data, prepared, dcfg, tcfg, model) if opts.audit else None
    for v in findings or []:
        log.info("%s", v.line())
    audit_seconds = time.perf_counter() - started
    chosen = [c for c in resolve_checks(None if opts.checks is None else list(opts.checks))
              if c[0] not in SKIPPED_BEFORE_TRAINING]
    verdicts, started, batch_report = Diagnosis(), time.perf_counter(), None
    if chosen:  # a search's trials run none: no doctor's sample and setup to build for nothing
        # the first optimizer a process builds imports torch._dynamo (2 s here): any training pays it once,
        # so it is paid before the doctor's clock starts
        optimizer = make_optimizer(model_parameters(model, tcfg.lr), tcfg)
        started = time.perf_counter()
        verdicts = diagnose(model, prepared, tcfg, [fn for _, fn in chosen], optimizer=optimizer)
        measured = time.perf_counter()
        batch_report, batch_verdict, _ = batch_size_check(model, prepared, tcfg, judge_speed=False,
                                                          budget=BATCH_SIZE_BUDGET)
        verdicts.seconds["T17"] = time.perf_counter() - measured
        log.info("%s", batch_verdict.line())
        verdicts.append(batch_verdict)
    checks_seconds = time.perf_counter() - started
    if opts.strict and (verdicts.failed or (findings is not None and findings.failed)):
        raise TrainingError("a check failed and --strict stops before training: "
                            + "; ".join(v.stop_line() for v in [*(findings or []), *verdicts] if v.status == "fail"))

    # -- fit (T1, T7, T8; T14, R2)
    config = {"data": to_dict(dcfg), "model": {**to_dict(mcfg), **_model_shape(model)}, "train": to_dict(tcfg),
              "lr_find": asked_lr_find, "task": task.name, "head": prepared.head, "loss": type(task.loss()).__name__,
              "optimises": optimises(task, aimed, prepared.head),
              **recipe.describe(data, prepared), "note": note, "kind": recipe.kind, "created": now(),
              **({"refit": {"trained_on": ["train", "val"], **refit}} if refit is not None else {})}
    if not resuming:  # the folder appears with the settings in it: resumable from the moment it exists
        run_dir = new_run_dir(opts.out, recipe.name(data, dcfg), config=config)
    # a setting found invalid once the folder exists (a monitor that is never logged, fp16 without CUDA) can
    # never resume: the fresh folder goes with the error, leaving nothing half-made
    with _removed_on_config_error(run_dir if not resuming else None):
        recorder = RunRecorder(run_dir)
        fit = Fit(recipe, prepared, model, mcfg, tcfg, opts, run_dir, folds, refit, prepared.balance or "none")
        # R2 beside early stopping: the early-stopped network is member 1 of the pair, the refit member 2
        if lr_find != "off":
            fit.find_lr(confirm=lr_find == "confirm")
        tcfg = fit.tcfg
        recorded = recorder.recorded_config() or {}
        # what the first start measured to choose (the transfer probe, the layout timing) stays in the record: a
        # resumed run is given the choices, not the measurements
        kept = {k: recorded[k] for k in MEASURED_CHOICES if k in recorded} if resuming else {}
        config = recorder.start({**config, **kept, "train": {**to_dict(tcfg), "batch_size": fit.trainer.batch_size},
                                 "created": recorded.get("created", config["created"])})
        if not (run_dir / "journal.json").exists():
            write_journal(run_dir, config=config, data=recipe.journal(data, prepared, dcfg), note=note,
                          parent=opts.parent, config_file=opts.config_file)
        if findings is not None:
            findings.save(run_dir)  # audit.json and the label distribution plot
        recorder.checks(verdicts)  # now, so that a run that crashes or is still training shows them; again below
        recipe.record(run_dir, prepared)
        started = time.perf_counter()
        final, histories, best_epoch, best_value, members = fit.train()
        seconds = time.perf_counter() - started
    trainer, history = fit.trainer, histories[0]

    # C8 on the run (each member's), against C2's prior loss (absent when C2 could not run: the first epoch
    # stands in); T16: did the epoch budget end it, the monitor still improving? A refit has no validation
    # curve to judge and trains a set number of epochs
    prior = next((v.evidence.get("expected") for v in verdicts.by_id("C2")), None)
    if dcfg.surrogate:  # T15: fitting every row is the aim, and no held-out curve exists to judge
        for v in (surrogate_verdict(history, surrogate_measured_on(dcfg, prepared)),
                  check_longer(history, tcfg.epochs, trainer.monitor, trainer.mode)):
            log.info("%s", v.line())
            verdicts.append(v)
    elif refit is None:
        # the rows val_accuracy counts (each T14 member's fold; for multi-label every label of every row)
        labels = len(prepared.classes) if task.name == "multilabel" else 1
        sizes = [len(k) for k in fit.cv.held_out] if fit.cv is not None else [len(prepared.rows["val"])] * len(histories)
        curves = member_curves(histories, prior, [n * labels for n in sizes])
        # the rise after the best epoch is not in the model: it kept the epoch of the validation loss's minimum
        if tcfg.restore_best and tcfg.patience is not None and trainer.monitor == "val_loss":
            curves = kept_best(curves)
        if asked_lr_find != "off" and read_json_or_none(run_dir / "lr_find.json") is not None and tcfg.lr:
            curves = after_range_test(curves, tcfg.lr)  # its advice must not send the user back to the test
        for v in [*curves,
                  *member_verdicts([[check_longer(h, tcfg.epochs, trainer.monitor, trainer.mode)] for h in histories])]:
            log.info("%s", v.line())
            verdicts.append(v)
    recorder.checks(verdicts)

    # -- evaluate: every metric of the task on the test rows (and per class)
    test_outputs = trainer.predict(prepared.split("test"), model=final)
    y_test = prepared.targets["test"]

    def scored(t: Trainer, outputs: torch.Tensor) -> dict[str, float]:
        return test_metrics(t, task, outputs, y_test)

    test = scored(trainer, test_outputs)
    techniques: dict[str, Any] = {}
    if dcfg.surrogate:  # T15: where the test metrics come from
        techniques["surrogate"] = {"measured_on": surrogate_measured_on(dcfg, prepared),
                                   "second_sample": dcfg.surrogate_test, "rows": len(y_test)}
    if tcfg.teacher is not None:  # T12's control: the same model trained without the teacher
        def fit_of(p: Prepared, where: Path) -> Fit:
            return Fit(recipe, p, recipe.build(p, mcfg, tcfg.seed, p.targets["train"], tcfg.deterministic), mcfg,
                       tcfg, dataclasses.replace(opts, callbacks=(), progress=False), where, folds, refit,
                       p.balance or "none")

        def test_of(t: Trainer, m: nn.Module) -> dict[str, float]:
            return scored(t, t.predict(prepared.split("test"), model=m))

        techniques["distillation"] = distillation_record(
            tcfg, test, train_alone(fit_of, prepared, base_step, run_dir, test_of))
    if tcfg.adversarial != "off" or tcfg.robustness:
        robust = robustness_record(trainer, final, prepared.split("test"), tcfg, task.loss())
        if robust is not None:
            techniques["robustness"] = robust
    alone = None  # R2 pair: the early-stopped network's own test score, beside the pair's
    if fit.pair is not None:
        alone = _finite(trainer.score(trainer.predict(prepared.split("test"), model=fit.members[0]), y_test))
    # C4 after training: simple models on the same split, against the network on the same test rows
    simple, fit_on = baselines(prepared, tcfg.seed) if dist.is_main() else (None, "")  # T10: rank 0's work
    # with no test split, C4 on the validation rows is fair to the simple models only while the network did
    # no more than pick its epoch on them: an R2 refit (beside early stopping, or a search's retrained best)
    # or a T14 ensemble trained on them
    trained_on_test = stand_in and (refit is not None or fit.pair is not None or fit.cv is not None)
    if trained_on_test:
        simple = None
    if simple is not None:
        v = check_simple_models(task, judged_metric(task.name, aim), test_outputs, y_test, simple,
                                split="validation" if stand_in else "test")
        log.info("%s", v.line())
        verdicts.append(v)
        recorder.checks(verdicts)
    held_out = fit.out_of_fold() if fit.cv is not None else None
    if refit is None and not dcfg.surrogate:  # a refit has trained on the validation rows: nothing to say
        recipe.previews(run_dir, prepared, trainer.predict, held_out)

    # -- the record (R4)
    meta = {"task": task.name, "target": prepared.target, "classes": prepared.classes,
            "target_scale": task.target_scale, "output_activation": task.activation, **recipe.artifact(prepared)}
    save_model(run_dir, final, meta)
    recipe.finish(run_dir, final, prepared, meta)
    results = {"test": test, "best_epoch": best_epoch, "monitor": trainer.monitor,
               "best_value": best_value, "epochs_run": len(history), "train_seconds": round(seconds, 2),
               "checks_seconds": round(checks_seconds, 3), "audit_seconds": round(audit_seconds, 3),
               "checks_seconds_each": {k: round(v, 3) for k, v in verdicts.seconds.items()},
               "rows": {s: len(prepared.rows[s]) for s in SPLITS} if refit is None else
               {"train": len(prepared.rows["train"]) + len(prepared.rows["val"]), "val": 0,
                "test": len(prepared.rows["test"])},
               "environment": environment()}
    if task.name in ("binary", "multiclass", "multilabel"):
        results["test_report"] = classification_report(task, test_outputs, y_test, prepared.classes)
    if simple is not None:
        results["baselines"] = simple.record(fit_on)
    if alone is not None:  # best_epoch, best_value and epochs_run above are the early-stopped network's
        results["refit"] = {"epochs": members[1].epochs_run, "seconds": members[1].seconds,
                            "trained_on": ["train", "val"], "early_stopped_test": alone}
    results.update(techniques)
    if stand_in:  # said beside the figures: they are not a held-out test's
        results["test_measured_on"] = ("the validation rows, which the R2 refit or the T14 ensemble trained on "
                                       "(no test split: test_fraction 0)" if trained_on_test else
                                       "the validation rows, which chose the epoch (no test split: test_fraction 0)")
    if (pretrained := meta.get("pretrain")) is not None:  # M13: the autoencoder the network reads
        results["pretrain"] = pretrained
    if batch_report is not None:  # T17: the measurement behind the batch-size verdict
        results["batch_size"] = batch_report.to_dict()
    if fit.cv is not None:  # T14: best_epoch, best_value and epochs_run above are member 1's
        results["cv"] = {"folds": folds, "members": [m.summary() for m in members],
                         "out_of_fold": trainer.score(*held_out[:2])}  # type: ignore[index]
    results = recorder.finish(results)
    done = Run(run_dir, task.name, test, verdicts, history, findings, config, results)
    atomic_write(run_dir / "summary.txt", summary(done, recipe.summary(run_dir, prepared)))
    if opts.report:
        from ..report import write_report

        write_report(run_dir)
    for to in opts.export:
        from ..track.export import export_run

        log.info("exported to %s: %s", to, export_run(run_dir, to))
    return done


class Fit:
    """Training for one run: one model, or a T14 ensemble's members one after the other (member 1 in the
    run folder itself), or the R2 refit on the training and validation rows together."""

    def __init__(self, recipe: Recipe, prepared: Prepared, model: nn.Module, mcfg: ModelConfig, tcfg: TrainConfig,
                 opts: Options, run_dir: Path, folds: int, refit: dict[str, Any] | None, balance: str):
        self.prepared, self.opts, self.run_dir = prepared, opts, run_dir
        self.build = lambda seed, y: recipe.build(prepared, mcfg, seed, y, tcfg.deterministic)
        self.fit_rows: tuple[torch.Tensor, ...] = prepared.split("train")
        self.val_rows: tuple[torch.Tensor, ...] | None = prepared.split("val")
        self.watch: list[Callback] = []
        if refit is None and len(prepared.targets["val"]):  # C10: fixed validation rows, predicted each epoch
            self.watch = [PredictionWatch.of_rows(prepared.inputs["val"], prepared.targets["val"], prepared.rows["val"],
                                                  prepared.task.name, prepared.classes, prepared.task.target_scale)]
        else:  # R2: the validation rows join the training rows; nothing is held out to watch
            self.fit_rows = tuple(torch.cat([a, b]) for a, b in zip(self.fit_rows, self.val_rows))
            self.val_rows = None
        self.cv: CrossFit | None = None
        self.members = [model]
        if folds > 1:
            self.cv = CrossFit(prepared, lambda seed, y: recipe.build(prepared, mcfg, seed, y), tcfg, balance, run_dir)
            self.members = [self.cv.member(k) for k in range(folds)]
            (self.fit_rows, self.val_rows), self.watch = self.cv.split(0), [self.cv.watch(0)]
            # one batch size for every member, member 1's: each member's own row count could fall on either
            # side of a threshold of the sizing rule, and config.json (what --resume reads) records one
            tcfg = dataclasses.replace(tcfg, batch_size=tcfg.batch_size or default_batch_size(len(self.fit_rows[0])))
        # each member a fresh copy of the stateful callbacks given (an EarlyStopping, say), as they were before
        # member 1 trained: one member's state must not carry into the next (a resumed run could not repeat it)
        self.pair = MemberStore(run_dir, 2, "R2") if tcfg.refit == "on" and refit is None and folds == 1 else None
        self.pristine = _fresh(opts.callbacks) if self.cv is not None or self.pair is not None else []
        self.tcfg = tcfg
        self.trainer = self._trainer(0)

    def _trainer(self, k: int) -> Trainer:
        cv, opts = self.cv, self.opts
        rows = (self.fit_rows, self.val_rows) if cv is None or k == 0 else cv.split(k)
        given = list(opts.callbacks) if k == 0 else _fresh(self.pristine)
        return Trainer(self.members[k], self.prepared.task.loss(), *rows,
                       for_trainer(self.tcfg if cv is None else cv.config(self.tcfg, k)),
                       callbacks=[*given, *self.prepared.callbacks, *(self.watch if k == 0 else []),
                                  *([ProgressBar()] if opts.progress else [])],
                       metrics=self.prepared.task.metrics(), train_metrics=True, task=self.prepared.task,
                       step=self.prepared.step, run_dir=self.run_dir if cv is None else cv.trainer_dir(k),
                       record=False, resume="auto" if opts.resume is not None else False,
                       bucket_by=self.prepared.bucket_by, distributed=True)

    def find_lr(self, confirm: bool) -> None:
        """T4: the range test on member 1's trainer; its candidate becomes the run's rate."""
        found = self.trainer.lr_find(confirm=confirm)
        write_json(self.run_dir / "lr_find.json", found.to_dict())
        for warning in found.warnings:
            log.warning("LR range test: %s", warning)
        if found.suggestion is not None:
            log.info("LR range test: lr %.3g (%s)", found.suggestion, found.rule)
            self.tcfg = dataclasses.replace(self.tcfg, lr=found.suggestion)
            self.trainer = self._trainer(0)

    def train(self) -> tuple[nn.Module, list[list[dict[str, Any]]], int | None, float | None, list[Member]]:
        """The final model (the ensemble of the members), every member's history, and member 1's best."""
        if self.pair is not None:
            return self._train_pair(self.pair)
        if self.cv is None:
            history = self.trainer.fit()
            return self.members[0], [history], self.trainer.best_epoch, self.trainer.best_value, []
        records: list[Member] = []
        for k in range(len(self.members)):  # a resumed run loads the members that finished
            record = self.cv.finished(k, self.members[k])
            if record is None:
                started = time.perf_counter()
                fitter = self.trainer if k == 0 else self._trainer(k)
                fitter.fit()
                record = self.cv.record(k, self.members[k], fitter, time.perf_counter() - started)
            records.append(record)
        final = Ensemble(self.members, self.prepared.task.activation)
        return final, [r.history for r in records], records[0].best_epoch, records[0].best_value, records

    def _train_pair(self, store: MemberStore) -> tuple[nn.Module, list[list[dict[str, Any]]], int | None,
                                                       float | None, list[Member]]:
        """R2 beside early stopping (Rishit Dagli: "retrain your model ... on the full dataset"): member 1
        stops early on the validation rows, member 2 (built and seeded as member 1) trains on the training
        and validation rows together for member 1's best epoch count, and the two are averaged. The
        validation rows, which the early stopping spent, still train a network, and the average of two
        networks is a 2-member T14-style ensemble (docs/recipe.md has the panel's figures). Each member
        leaves members/n/ when it finishes, so a resumed run loads it."""
        first_model = self.members[0]
        first = store.finished(0, first_model)
        if first is None:
            started = time.perf_counter()
            self.trainer.fit()
            first = store.record(0, first_model, self.trainer, time.perf_counter() - started)
        assert self.val_rows is not None
        pooled = tuple(torch.cat([a, b]) for a, b in zip(self.fit_rows, self.val_rows))
        second_model = self.build(self.tcfg.seed, pooled[-1])
        second = store.finished(1, second_model)
        if second is None:
            epochs = max(1, int(first.best_epoch or first.epochs_run))
            # member 1's batch size (config.json records it, and --resume reads it): its epoch count is for it
            config = dataclasses.replace(self.tcfg, epochs=epochs, batch_size=self.trainer.batch_size, **REFIT_SETTINGS)
            log.info("R2: a second network on the training and validation rows (%d) for %d epochs, member 1's best",
                     len(pooled[-1]), epochs)
            started = time.perf_counter()
            trainer = Trainer(second_model, self.prepared.task.loss(), pooled, None, for_trainer(config),
                              callbacks=[*_fresh(self.pristine), *self.prepared.callbacks,
                                         *([ProgressBar()] if self.opts.progress else [])],
                              metrics=self.prepared.task.metrics(), train_metrics=True, task=self.prepared.task,
                              step=self.prepared.step, run_dir=store.member_dir(1), record=False,
                              bucket_by=self.prepared.bucket_by, distributed=True,
                              resume="auto" if self.opts.resume is not None else False)
            trainer.fit()
            second = store.record(1, second_model, trainer, time.perf_counter() - started)
        self.members = [first_model, second_model]
        final = Ensemble(self.members, self.prepared.task.activation)
        return final, [first.history], first.best_epoch, first.best_value, [first, second]

    def out_of_fold(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Every pooled row's raw outputs by the member that held it out, with the targets and data rows."""
        assert self.cv is not None
        return self.cv.out_of_fold(self.trainer, self.members)


# R2 beside early stopping by default up to this many training and validation rows: the second network costs
# about half a run again (its epochs are member 1's best, without the patience), and what the validation
# rows add shrinks as the table grows (on the panel of benchmarks/tabular.py, tables of 178-5,000 rows,
# the pair was +0.0021 +- 0.0014 over one network, better in 31 of 65 runs and worse in 12)
REFIT_MAX_ROWS = 100_000


@contextlib.contextmanager
def _removed_on_config_error(run_dir: Path | None) -> Iterator[None]:
    """`run_dir` (a fresh run's folder) removed when a ConfigError leaves the block before any checkpoint was
    written (after one, the folder holds work to resume); None: kept (a resumed run)."""
    try:
        yield
    except ConfigError:
        if run_dir is not None and not any(run_dir.rglob("*.safetensors")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def resolve_refit(tcfg: TrainConfig, folds: int, pooled: int, opts: Options, resuming: bool) -> str:
    """TrainConfig.refit's 'auto' made 'on' or 'off' for this run (config.json records which): on for one
    model up to REFIT_MAX_ROWS training and validation rows; off for a T14 ensemble (every row trains a
    member already), an R2 refit itself, a run given callbacks (a search's trials: a trial is scored on
    the validation rows; a user's callbacks drive the one training they were written for) and a run
    resumed from before the setting existed."""
    if tcfg.refit != "auto":
        return tcfg.refit
    if folds > 1 or opts.refit is not None or opts.callbacks or resuming or pooled > REFIT_MAX_ROWS:
        return "off"
    return "on"


def model_rules(tcfg: TrainConfig, model: nn.Module, n_rows: int) -> TrainConfig:
    """The training settings left to the rule (None) filled in for the model built: the learning rate and
    batch size its authors train it with where it has them (`train_defaults(n_rows)`: TabM's), else Adam's
    3e-4 (config.DEFAULT_LR) and the Trainer's batch-size rule. config.json records the values used."""
    own = getattr(model, "train_defaults", None)
    own = own(n_rows) if callable(own) else {}
    return dataclasses.replace(tcfg, lr=tcfg.lr if tcfg.lr is not None else own.get("lr", DEFAULT_LR),
                               batch_size=tcfg.batch_size if tcfg.batch_size is not None else own.get("batch_size"))


def diagnose(model: nn.Module, prepared: Prepared, tcfg: TrainConfig, checks: list[Any] | None = None,
             optimizer: torch.optim.Optimizer | None = None) -> Diagnosis:
    """The doctor on the recipe's own setup, before training: every check, C2 against the task's prior over
    all the training rows (class weights included) rather than the doctor's sample."""
    task, X, y = prepared.task, prepared.inputs, prepared.targets
    sample = torch.randperm(len(y["train"]), generator=torch.Generator().manual_seed(tcfg.seed))[:1024]
    xs, ys = tuple(t[sample] for t in X["train"]), y["train"][sample]
    loss_fn = task.loss()

    def c2(setup: Any) -> Verdict:
        return check_init_loss(model, loss_fn, xs, ys, task, y["train"])

    optimizer = optimizer if optimizer is not None else make_optimizer(model_parameters(model, tcfg.lr), tcfg)
    chosen = [fn for _, fn in resolve_checks(checks)]
    diagnosis = doctor(model, prepared.split("train"), loss_fn=loss_fn, optimizer=optimizer,
                       val_data=prepared.split("val") if len(y["val"]) else None, task=task.name, seed=tcfg.seed,
                       feature_names=prepared.feature_names,
                       checks=[c2 if c is c2_init_loss else c for c in chosen])
    for v in diagnosis:
        log.info("%s", v.line())
    return diagnosis


# T17 in every run: the timing stops here (seconds); `nnrecipe batchsize` measures at leisure (2 s)
BATCH_SIZE_BUDGET = 0.3


def batch_size_check(model: nn.Module, prepared: Prepared, tcfg: TrainConfig, judge_speed: bool = True,
                     **measure: Any) -> tuple[Any, Verdict, int]:
    """T17 on the recipe's model and training rows (train/batch_size.py, on copies): the measurement, the
    verdict on the batch size the run trains with, and that batch size. `judge_speed`: see
    batch_size_verdict (a run's verdict does not, `nnrecipe batchsize` does); `measure`: keywords of
    measure_batch_sizes."""
    from ..checks.batch_size import batch_size_verdict
    from ..train.batch_size import SMALLEST, measure_batch_sizes
    from ..train.trainer import resolve_device

    rows = len(prepared.targets["train"])
    chosen = tcfg.batch_size or default_batch_size(rows)  # as the Trainer chooses
    if rows < SMALLEST:  # too few rows to draw batches of: nothing to measure
        return None, Verdict("T17", "batch size", "skipped", f"{rows} training rows: too few to time batches of "
                             f"{SMALLEST} or more and to measure the gradient noise scale"), chosen
    if prepared.inputs["train"][0].dim() > 2:  # images: a CNN's step costs what a table's epoch does
        measure.setdefault("rounds", 4)
        measure.setdefault("chunks", 8)
    measure.setdefault("device", resolve_device(tcfg.device))
    measure.setdefault("seed", tcfg.seed)
    report = measure_batch_sizes(model, prepared.task.loss(), prepared.inputs["train"], prepared.targets["train"],
                                 optimizer=make_optimizer(model_parameters(model, tcfg.lr), tcfg), **measure)
    return report, batch_size_verdict(report, chosen, judge_speed), chosen


def optimises(task: Task, tcfg: TrainConfig, head: str) -> dict[str, str]:
    """config.json's "optimises": the metric the run follows and is judged by, and why (issue 18)."""
    metric = ALIASES.get(tcfg.metric, tcfg.metric) if tcfg.metric is not None else task.headline
    stop = (f"--monitor {tcfg.monitor}: early stopping and the best epoch follow {tcfg.monitor}, judged by {metric}"
            if tcfg.monitor not in (None, "val_loss", "train_loss", f"val_{tcfg.metric}")
            else f"--metric {metric}: early stopping and the best epoch follow val_{metric}" if tcfg.metric is not None
            else f"a surrogate (T15): the training loss picks the epoch and stops the run, judged by {metric}"
            if tcfg.monitor == "train_loss"
            else f"no --metric: early stopping on the validation loss, judged by {metric}")
    how = f"class balance {head}" if task.name in ("binary", "multiclass") else head
    return {"metric": metric, "why": f"{stop}; {how}"}


def judged_metric(task: str, metric: str | None) -> str:
    """What C4 compares on the test rows: RMSE for regression; balanced accuracy when the run optimises a
    balanced metric (balanced_accuracy, macro_f1); else accuracy (the share of labels right, multi-label)."""
    if task == "regression":
        return "rmse"
    balanced = task in ("binary", "multiclass") and ALIASES.get(metric, metric) in BALANCED_METRICS
    return "balanced_accuracy" if balanced else "accuracy"


# The simple models fit on the training and validation rows (the training rows as they came, before D6's
# resampling): they have no use for a validation set, and the network's use of it is to stop early. A
# model fit on them is what a user would deploy; the network's way to train on them too is the R2 refit or
# a T14 ensemble, which the fix of C4 names. A refit and a T14 run fit on the same rows as their network.
BASELINE_SPLITS = "training and validation"


def baselines(prepared: Prepared, seed: int) -> tuple[Any, str]:
    """The simple models (checks/simple_models.py) fit on the pooled training and validation rows and scored
    on the test rows, with the rows they were fit on in words; (None, '') for a task they do not serve."""
    task = prepared.task
    if task.name not in ("binary", "multiclass", "multilabel", "regression") or not len(prepared.targets["test"]):
        return None, ""
    train = prepared.unbalanced or prepared.split("train")
    *inputs, y = tuple(torch.cat([a, b]) for a, b in zip(train, prepared.split("val")))
    test = prepared.inputs["test"]
    started = time.perf_counter()
    from ..data.text.bag import bag_matrix  # (deferred: scikit-learn and pandas)

    terms = getattr(getattr(prepared.data, "pre", None), "text_terms", 0)  # a table's text columns: TF-IDF rows
    text = (bag_matrix(inputs[2].numpy(), inputs[3].numpy(), terms), bag_matrix(test[2].numpy(), test[3].numpy(),
                                                                                 terms)) if terms else None
    simple = fit_simple_models(task, inputs[0], inputs[1] if len(inputs) > 1 else None, y, test[0],
                               test[1] if len(test) > 1 else None, prepared.targets["test"], seed=seed,
                               balanced=prepared.balance in ("weights", "oversample", "undersample"), text=text)
    log.info("simple models on the test rows in %.2f s: %s %s", time.perf_counter() - started, task.headline,
             ", ".join(f"{k} {x:.4g}" if (x := v.get(task.headline)) is not None else f"{k} -"
                       for k, v in simple.scores.items()))
    return simple, BASELINE_SPLITS


def _changed(given: Any, recorded: Any) -> list[tuple[str, Any, Any]]:
    """(name, given, recorded) for each setting given away from its default that the record holds otherwise."""
    def value(cfg: Any, name: str) -> Any:  # a list given in Python is the tuple the record reads back
        v = getattr(cfg, name)
        return tuple(v) if isinstance(v, list) else v

    default = type(given)()
    return [(f.name, value(given, f.name), value(recorded, f.name)) for f in dataclasses.fields(given)
            if value(given, f.name) != value(default, f.name) and value(given, f.name) != value(recorded, f.name)]


def _recorded_parent(run_dir: Path) -> str | None:
    journal = read_json_or_none(run_dir / "journal.json")
    parent = journal.get("parent") if isinstance(journal, dict) else None
    return parent.get("path") if isinstance(parent, dict) else None


def _same_data(run_dir: Path, now: dict[str, Any]) -> None:
    """--resume goes on with the data the run trained on: other data (another file, or the file changed)
    would mix two datasets in one run folder (its splits, its model and its record)."""
    journal = read_json_or_none(run_dir / "journal.json")
    then = journal.get("data") if isinstance(journal, dict) else None
    if not isinstance(then, dict):  # killed before its journal: config.json names the file it was started on
        config = read_json_or_none(run_dir / "config.json")
        source = config.get("source") if isinstance(config, dict) else None
        if isinstance(source, str) and now.get("source") and Path(source).exists() and Path(now["source"]).exists() \
                and not os.path.samefile(source, now["source"]):
            raise ConfigError(f"--resume {run_dir}: that run was started on {source}, not {now['source']}; resume "
                              "with the data the run trained on, or start a new run on this data")
        return
    # sha256: a table's file bytes, an image set's files and labels (never a cache key: it changes with the
    # reader's version, and an upgrade would refuse every resume)
    was, is_ = then.get("sha256"), now.get("sha256")
    if was and is_ and was != is_:
        raise ConfigError(f"--resume {run_dir}: that run trained on {then.get('source') or 'other data'} (content "
                          f"{str(was)[:12]}), and {now.get('source') or 'the data given'} holds other data (content "
                          f"{str(is_)[:12]}); resume with the data the run trained on, or start a new run on this data")


def recorded_config(run_dir: Path, target: str
                    ) -> tuple[DataConfig, ModelConfig, TrainConfig, str, dict[str, Any] | None, str]:
    """The configs, the note, the refit (R2) settings and the LR range test a run recorded, for --resume."""
    if not (run_dir / "config.json").exists():
        raise ConfigError(f"--resume {run_dir}: no config.json there; give a run folder that `nnrecipe train` made")
    rec = read_json_or_none(run_dir / "config.json")
    if not (isinstance(rec, dict) and all(isinstance(rec.get(k), dict) for k in ("data", "model", "train"))
            and isinstance(rec["data"].get("target"), str)):
        raise CheckpointError(f"--resume {run_dir}: its config.json cannot be read as a run's settings (damaged or "
                              "edited); restore the file, or train the run again without --resume")
    if rec["data"]["target"] != target:
        raise ConfigError(f"--resume {run_dir}: that run predicts '{rec['data']['target']}', not '{target}'; "
                          f"pass --target {rec['data']['target']}")
    log.warning("resuming %s with the config it recorded", run_dir)
    model = {k: v for k, v in rec["model"].items() if k in {f.name for f in dataclasses.fields(ModelConfig)}}
    if rec.get("kind") == "images" and "layout" not in model and not model.get("backbone"):
        model["layout"] = "contiguous"  # an image run from before M10's timing: its CNN was built contiguous
    return (from_dict(DataConfig, rec["data"]), from_dict(ModelConfig, model),
            from_dict(TrainConfig, rec["train"]), rec.get("note", ""), rec.get("refit"), rec.get("lr_find", "off"))


def summary(run: Run, data_lines: list[str]) -> str:
    """summary.txt: the run in a dozen lines, then every finding of the audit and every check."""
    return "\n".join([*headline(run), *data_lines, "data audit (audit.json)", *[f"  {v.line()}" for v in (run.audit or [])],
                      "checks", *[f"  {v.line()}" for v in run.verdicts]]) + "\n"


def screen(run: Run) -> str:
    """What `train` prints (issue 19: a short screen): the headline lines of summary.txt, every warning and
    failure of the audit and the checks with its fix (failures first), one line counting the rest, then
    last_lines (the headline metric, the run folder)."""
    found = [*(run.audit or []), *run.verdicts]
    attention = needs_attention(run)
    passed = sum(v.status == "pass" for v in found)
    skipped = sum(v.status == "skipped" for v in found)
    count = (f"{passed} checks passed" + (f", {skipped} skipped" if skipped else "")
             + (f"; {len(attention)} need attention (above)" if attention else "")
             + "; every verdict: summary.txt, report.html (or -v)")
    return "\n".join([*headline(run), *[v.line() for v in attention], count, last_lines(run)]) + "\n"


def needs_attention(run: Run) -> list[Verdict]:
    """The run's failed, then warned, findings of the audit and the checks."""
    found = [*(run.audit or []), *run.verdicts]
    return [v for status in ("error", "fail", "warn") for v in found if v.status == status]


def last_lines(run: Run) -> str:
    """What `train` ends with, whatever it printed before: the headline metric on a line of its own (for
    scripts) and the run folder."""
    name, value = run.metric
    return (f"test {name}: {value:.4f}" if abs(value) < 1e6 else f"test {name}: {value:.4g}") + f"\n{run.run_dir}"


def headline(run: Run) -> list[str]:
    """The run's first lines: what it trained on, the model, how it trained, the test metrics beside the
    simple baselines, per-class recall."""
    from ..report.build import (baselines_line, distillation_line, ensemble_line, recall_line, refit_line,
                                robustness_line)

    config, results = run.config, run.results
    name, value = run.metric
    model = config["model"]
    shape = (f"hidden {model.get('hidden')}, {model.get('activation')}" if "depths" not in model else  # a CNN
             f"phi {model.get('phi')}: depths {model['depths']}, widths {model['widths']}, {model.get('resolution')} px")
    if model.get("name") == "transfer":
        shape = f"{model.get('transfer')} from {model.get('backbone')}"
    lines = [
        f"nnrecipe run {run.run_dir.name}",
        f"data     {config.get('source') or 'DataFrame'} -> target '{config['data']['target'] or config.get('label')}', "
        f"task {run.task} ({config.get('task_reason', '')})",
        f"rows     train {results['rows']['train']}, validation {results['rows']['val']}, test {results['rows']['test']}",
        f"model    {model.get('name', 'mlp').upper()} {shape}; {config['train']['optimizer']} lr {config['train']['lr']}, "
        f"batch {config['train']['batch_size']}",
        f"training {results['epochs_run']} epochs on the training and validation rows (R2 refit); the last "
        "epoch's weights kept" if config.get("refit") else
        f"training {results['epochs_run']} epochs; best epoch {results['best_epoch']} by {results['monitor']} "
        f"= {results['best_value']:.4f}; weights restored from it" if results.get("best_value") is not None else
        f"training {results['epochs_run']} epochs; {results['monitor']} never had a finite value: the last epoch's "
        "weights kept",
        *([f"optimises {aim['metric']}: {aim['why']}"] if (aim := config.get("optimises")) else []),
        f"test     {name} {value:.4f}"
        + (f", balanced_accuracy {balanced:.4f}" if (balanced := run.test.get("balanced_accuracy")) is not None
           else "") + f", loss {run.test['loss']:.4f}",
        *([f"baselines {line}"] if (line := baselines_line(results.get("baselines"), run.test)) else []),
        *([f"recall   per class on the test rows: {line}"] if (line := recall_line(results.get("test_report")))
          else []),
    ]
    if results.get("cv"):
        lines.insert(5, f"ensemble {ensemble_line(results['cv'])}")
    if results.get("refit"):
        lines.insert(5, f"final    {refit_line(results['refit'])}")
    if results.get("pretrain"):
        from .pretrain import pretrain_line

        lines.append(f"pretrain {pretrain_line(results['pretrain'])} (M13)")
    if results.get("surrogate"):
        lines.append(f"surrogate trained on every row (T15); the test metrics: {results['surrogate']['measured_on']}")
    if results.get("test_measured_on"):  # no test split: the figures above are not a held-out test's
        lines.append(f"note     the test metrics are measured on {results['test_measured_on']}")
    if results.get("distillation"):
        lines.append(f"distil   {distillation_line(results['distillation'], name)}")
    if results.get("robustness"):
        lines.append(f"robust   {robustness_line(results['robustness'], name)}")
    if config["note"]:
        lines.insert(1, f"note     {config['note']}")
    return lines


def _model_shape(model: nn.Module) -> dict[str, Any]:
    """config.json's record of the model built: its registry name and the settings the rules chose."""
    spec = getattr(model, "spec", {})
    return {"name": spec.get("name"),
            **{k: spec[k] for k in ("hidden", "dropout", "depths", "widths", "resolution") if k in spec},
            **({"phi": model.phi} if isinstance(getattr(model, "phi", None), int) else {}),
            **({"transfer": spec["mode"]} if spec.get("name") == "transfer" else {}),
            **({"layout": _layout_name(spec)} if spec.get("name") == "cnn" else {}),
            **({"members": spec["k"]} if "k" in spec else {})}


def _layout_name(spec: dict[str, Any]) -> str:
    """M10: a CNN spec's layout by name (models/layout.py), which --resume builds again without timing."""
    from ..models.layout import candidates

    given = {"pad_channels": bool(spec.get("pad_channels")), "channels_last": bool(spec.get("channels_last"))}
    return next(name for name, settings in candidates(3).items() if settings == given)


def _fresh(given: Sequence[Callback]) -> list[Callback]:
    return [copy.deepcopy(c) if hasattr(c, "state_dict") else c for c in given]


def test_metrics(trainer: Trainer, task: Task, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every metric of the task on the test rows, the loss first, as results.json's `test` holds them."""
    found = trainer.score(outputs, y)
    return _finite({**found, **{k: fn(outputs, y) for k, fn in task.metrics(task.test_metrics).items()
                                if k not in found}})


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    """NaN (a metric undefined on these rows: ROC AUC with one class) as None, which JSON can hold."""
    return {k: (float(v) if math.isfinite(v) else None) for k, v in values.items()}
