"""The recipe on a table, end to end: read -> schema and task -> split -> preprocess (fitted on train)
-> model for the task -> checks (C2, C1) -> train (Trainer) -> test -> record. `nnrecipe train` and
`nnrecipe predict` are thin layers over `train_table` and `predict_table`."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .data.audit import audit_frame
from .checks import Verdict, check_init_loss
from .checks.curves import check_longer
from .checks.doctor import CHECKS, Diagnosis, c2_init_loss, doctor
from .config import REFIT_SETTINGS, DataConfig, ModelConfig, TrainConfig, from_dict, to_dict
from .data import TablePreprocessor, read_table
from .data.prepare import SPLITS, PreparedTable, prepare_table
from .data.schema import multilabel_frame, numeric_problems, target_columns
from .data.balance import class_weights, resample, resolve_balance
from .data.transforms import label_strings
from .errors import ConfigError, DataError, TrainingError, check_choice
from .model import Ensemble, Head, init_weights, load_model, make_mlp, save_model
from .repro import environment, seed_everything
from .report import write_report
from .report.build import ensemble_line
from .track import check_parent, new_run_dir, read_json, record_start, write_json
from .track.export import export_run
from .track.predictions import PredictionWatch, record_outputs
from .train import Trainer
from .train.callbacks import Callback, ProgressBar
from .train.cross_fit import CrossFit, Member, member_curves, member_verdicts, resolve_folds
from .train.optim import make_optimizer

log = logging.getLogger("nnrecipe")


@dataclass
class TableRun:
    run_dir: Path
    task: str
    test: dict[str, float]
    verdicts: list[Verdict]
    history: list[dict[str, Any]] = field(default_factory=list)
    audit: Diagnosis | None = None  # the data audit's findings (audit.json)

    @property
    def metric(self) -> tuple[str, float]:
        """The headline test metric: accuracy for classes, RMSE (target units) for regression."""
        name = headline_metric(self.task)
        return name, self.test[name]


def headline_metric(task: str) -> str:
    """The metric a run of `task` is judged by: rmse (target units) for regression, else accuracy."""
    return "rmse" if task == "regression" else "accuracy"


def train_table(data: str | os.PathLike | pd.DataFrame, target: str, *, out: str | os.PathLike = "runs",
                data_config: DataConfig | None = None, model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None, note: str = "", progress: bool = False,
                callbacks: list[Callback] | None = None, lr_find: str = "off",
                resume: str | os.PathLike | None = None, strict: bool = False,
                parent: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
                report: bool = True, export: Sequence[str] = (), checks: Sequence[Any] | None = None,
                refit: dict[str, Any] | None = None, audit: bool = True) -> TableRun:
    """Train the model the recipe advises for `target` in a CSV/Parquet file or a DataFrame, and leave
    a run folder under `out`. `lr_find`: 'off', 'on' (T4: train at the range test's candidate) or
    'confirm' (the best of short runs around it). `strict`: stop before training when a check fails
    (TrainingError). `resume`: a run folder of an interrupted run; it goes
    on from its last checkpoint with the config it recorded (the configs and refit given here are not used).
    `parent`: the run this one varies (R3: journal.json records the settings that changed);
    `config_file`: the --config file, copied into the run folder (R8); `report`: write report.html;
    `export`: 'tensorboard' and/or 'mlflow' (needs the export extra). `checks`: the doctor's checks to run
    before training (None: all of them; () none, as a search's trials do). `refit` (R2): train on the
    training and validation rows together for refit["epochs"] epochs, no early stopping, the last
    weights kept; the dict (the trial it retrains, say) is recorded in config.json. `audit`: the data
    audit first (a search's trials, which share one table, leave it to the retrained best).
    Raises DataError/ConfigError naming the input and the fix."""
    check_choice("lr_find", lr_find, ("off", "on", "confirm"))
    dcfg = dataclasses.replace(data_config or DataConfig(), target=target)
    mcfg, tcfg = model_config or ModelConfig(), train_config or TrainConfig()
    if resume is not None:
        dcfg, mcfg, tcfg, note, refit = _recorded_config(Path(resume), target)
        lr_find = "off"  # the recorded lr is the one the range test chose
    if refit is not None:  # R2 (seed 001: retrain the best on all the data): nothing held out to stop on
        if tcfg.cv_folds > 1:
            log.info("R2 refit: one model on the training and validation rows; cv_folds=%d is not used", tcfg.cv_folds)
        tcfg = dataclasses.replace(tcfg, epochs=int(refit["epochs"]), **REFIT_SETTINGS)
    path = None if isinstance(data, pd.DataFrame) else Path(data)
    if parent is not None:
        check_parent(parent)  # a wrong --parent fails before the work, not after it

    prep, neutral, X, y, head, balance, model, loss_fn = _setup(data, dcfg, mcfg, tcfg)
    task, classes, target_scale, pre, schema = prep.task, prep.classes, prep.target_scale, prep.pre, prep.schema
    # T14: a cross-validation ensemble when asked for (a refit trains one model on every row)
    folds = resolve_folds(tcfg.cv_folds, prep.counts["train"] + prep.counts["val"])

    # -- the data audit on every row (seed 003: look at the data first), on train's own preparation
    started = time.perf_counter()
    frame, prep.frame = prep.frame, None  # not kept in training
    findings = None
    if audit:
        findings = audit_frame(frame if frame is not None else _frame(data, path, prep.content_key), dcfg,
                               tcfg.seed, path=path,
                               prepared=prep, params=(sum(p.numel() for p in model.parameters()),
                                                      list(model.spec["hidden"])))
        for v in findings:
            log.info("%s", v.line())
    audit_seconds = time.perf_counter() - started

    # -- the recipe's checks before training: the doctor (C1-C8, the setup lint)
    # C8 judges this run's own curves once it has trained (below), not a short run of its own; the data
    # checks ran in the audit, on every row rather than the doctor's sample
    chosen = [c for c in (CHECKS if checks is None else checks)
              if c not in ("curves:check_short_run", "data_checks:check_data")]
    verdicts, started = Diagnosis(), time.perf_counter()
    if chosen:  # a search's trials run none: no doctor's sample and setup to build for nothing
        # the first optimizer a process builds imports torch._dynamo (2 s here): any training pays it once,
        # so it is paid before the doctor's clock starts
        optimizer = make_optimizer(model.parameters(), tcfg)
        started = time.perf_counter()
        verdicts = diagnose(model, loss_fn, head, X, y, tcfg, chosen, optimizer=optimizer,
                            feature_names=pre.feature_names)
    checks_seconds = time.perf_counter() - started
    if strict and (verdicts.failed or (findings is not None and findings.failed)):
        raise TrainingError("a check failed and --strict stops before training: "
                            + "; ".join(f"{v.id} {v.name}: {v.summary} (fix: {v.fix})" for v in [*(findings or []), *verdicts]
                                        if v.status == "fail"))

    # -- training (T1, T7, T8) and the test
    run_dir = Path(resume) if resume is not None else new_run_dir(out, f"{path.stem if path else 'table'}-{target}")

    # C10: fixed validation rows, predicted after every epoch (none when they are trained on: R2)
    watch = [PredictionWatch.from_prepared(prep)] if refit is None else []
    fit_rows: tuple[torch.Tensor, ...] = (*X["train"], y["train"])
    val_rows: tuple[torch.Tensor, ...] | None = (*X["val"], y["val"]) if refit is None else None
    if refit is not None:
        fit_rows = tuple(torch.cat([a, b]) for a, b in zip(fit_rows, (*X["val"], y["val"])))
    cv = CrossFit(prep, head, mcfg, tcfg, dcfg.balance, run_dir) if folds > 1 else None
    members = [cv.member(k) for k in range(folds)] if cv is not None else [model]
    if cv is not None:  # member 0 is the run's model: its curves, watch and checkpoints are the run's
        (fit_rows, val_rows), watch = cv.split(0), [cv.watch(0)]

    # each member a fresh copy of the stateful callbacks given (an EarlyStopping, say), as they were before
    # member 1 trained: one member's state must not carry into the next (a resumed run could not repeat it)
    def fresh(given: Sequence[Callback]) -> list[Callback]:
        return [copy.deepcopy(c) if hasattr(c, "state_dict") else c for c in given]

    pristine = fresh(callbacks or []) if cv else []

    def make_trainer(cfg: TrainConfig, k: int = 0) -> Trainer:
        rows = (fit_rows, val_rows) if cv is None or k == 0 else cv.split(k)
        given = (callbacks or []) if k == 0 else fresh(pristine)
        return Trainer(members[k], loss_fn, *rows, cfg if cv is None else cv.config(cfg, k),
                       callbacks=[*given, *(watch if k == 0 else []), *([ProgressBar()] if progress else [])],
                       metrics=head.metrics(target_scale["std"]),
                       run_dir=run_dir if cv is None else cv.trainer_dir(k), train_metrics=True)

    trainer = make_trainer(tcfg)
    if lr_find != "off":
        found = trainer.lr_find(confirm=lr_find == "confirm")
        write_json(run_dir / "lr_find.json", found.to_dict())
        for warning in found.warnings:
            log.warning("LR range test: %s", warning)
        if found.suggestion is not None:
            log.info("LR range test: lr %.3g (%s)", found.suggestion, found.rule)
            tcfg = dataclasses.replace(tcfg, lr=found.suggestion)
            trainer = make_trainer(tcfg)
    # one batch size for every member, member 1's: each member's own row count could fall on either side of
    # a threshold of the sizing rule, and config.json (what --resume reads) records one
    if cv is not None:
        tcfg = dataclasses.replace(tcfg, batch_size=trainer.batch_size)
        trainer = make_trainer(tcfg)
    config = {"data": to_dict(dcfg),
              "model": {**to_dict(mcfg), "hidden": model.spec["hidden"], "dropout": model.spec["dropout"]},
              "train": {**to_dict(tcfg), "batch_size": trainer.batch_size}, "task": task, "head": balance,
              "loss": type(loss_fn).__name__,
              "task_reason": prep.task_reason, "source": str(path) if path else None, "note": note,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if refit is not None:
        config["refit"] = {"trained_on": ["train", "val"], **refit}
    if resume is None:
        write_json(run_dir / "config.json", config)
        record_start(run_dir, prep, config, note=note, source=data, parent=parent, config_file=config_file,
                     key=prep.content_key)
    write_json(run_dir / "checks.json", verdicts.to_dict())
    if findings is not None:
        findings.save(run_dir)  # audit.json and the label distribution plot
    write_json(run_dir / "splits.json", {k: prep.data_rows(k) for k in SPLITS})
    write_json(run_dir / "schema.json", schema.to_dict())
    started = time.perf_counter()
    if cv is None:
        history = trainer.fit()
        histories = [history]
        best_epoch, best_value = trainer.best_epoch, trainer.best_value
    else:  # T14: the members one after the other; a resumed run loads those that finished
        records: list[Member] = []
        for k in range(folds):
            record = cv.finished(k, members[k])
            if record is None:
                member_started = time.perf_counter()
                fitter = trainer if k == 0 else make_trainer(tcfg, k)
                fitter.fit()
                record = cv.record(k, members[k], fitter, time.perf_counter() - member_started)
            records.append(record)
        histories = [r.history for r in records]
        history = histories[0]
        # member 0's record, which a resumed run that had finished it loads rather than trains
        best_epoch, best_value = records[0].best_epoch, records[0].best_value
    final = members[0] if cv is None else Ensemble(members, head.activation)
    # C8 on the run (each member's), against C2's prior loss (absent when C2 could not run: the first
    # epoch stands in); a refit has no validation curve to judge
    prior = next((v.evidence.get("expected") for v in verdicts.by_id("C2")), None)
    # T16: did the epoch budget end it, the monitor still improving? (a refit trains a set number of epochs)
    for v in ([*member_curves(histories, prior),
               *member_verdicts([[check_longer(h, tcfg.epochs, trainer.monitor, trainer.mode)] for h in histories])]
              if refit is None else []):
        log.info("%s", v.line())
        verdicts.append(v)
    write_json(run_dir / "checks.json", verdicts.to_dict())
    seconds = time.perf_counter() - started
    test = trainer.evaluate((*X["test"], y["test"]), model=final)
    held_out = None if cv is None else cv.out_of_fold(trainer, members)
    if refit is None:  # a refit has trained on the validation rows: their predictions say nothing
        # C9, D14: val predictions (best weights; an ensemble's out of fold), input samples
        record_outputs(run_dir, trainer.predict, prep, held_out=held_out)

    # -- the record (R4)
    save_model(run_dir, final, {
        "task": task, "target": target, "classes": classes, "target_scale": target_scale,
        "preprocessing": pre.to_dict(), "feature_names": pre.feature_names, "output_activation": head.activation})
    if neutral is not None and len(neutral):
        review, _ = predict_table(run_dir, neutral)
        probs = review.filter(like="p_")
        review.insert(0, "row", neutral.index.to_numpy())
        review.insert(2, "confidence", probs.max(axis=1).to_numpy() if probs.shape[1] else np.nan)
        review.sort_values("confidence").to_csv(run_dir / "review.csv", index=False)
        log.info("%d rows labelled %r are pre-labelled for review in %s", len(neutral), dcfg.neutral_label,
                 run_dir / "review.csv")
    results = {"test": test, "best_epoch": best_epoch, "monitor": trainer.monitor,
               "best_value": best_value, "epochs_run": len(history), "train_seconds": round(seconds, 2),
               "checks_seconds": round(checks_seconds, 3), "audit_seconds": round(audit_seconds, 3),
               "checks_seconds_each": {k: round(v, 3) for k, v in verdicts.seconds.items()},
               "rows": prep.counts if refit is None else
               {**prep.counts, "train": prep.counts["train"] + prep.counts["val"], "val": 0},
               "environment": environment()}
    if cv is not None:  # T14: best_epoch, best_value and epochs_run above are member 0's
        results["cv"] = {"folds": folds, "members": [r.summary() for r in records],
                         "out_of_fold": trainer.score(*held_out[:2])}
    write_json(run_dir / "results.json", results)
    run = TableRun(run_dir, task, test, verdicts, history, findings)
    (run_dir / "summary.txt").write_text(_summary(run, config, results))
    if report:
        write_report(run_dir)
    for to in export:
        log.info("exported to %s: %s", to, export_run(run_dir, to))
    return run


def _frame(data: str | os.PathLike | pd.DataFrame, path: Path | None, key: str | None) -> pd.DataFrame:
    """The table as read, for the audit, when the preparation came from its cache: the DataFrame, or
    the file from the parsed-table cache (its notices were logged once already, so they are not repeated;
    `key`: the file's content key, hashed already by the preparation)."""
    if path is None:
        return data.reset_index(drop=True)  # type: ignore[union-attr]

    def quiet(record: logging.LogRecord) -> bool:
        return False

    log.addFilter(quiet)
    try:
        return read_table(path, key=key)
    finally:
        log.removeFilter(quiet)


def _setup(data: str | os.PathLike | pd.DataFrame, dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig
           ) -> tuple[PreparedTable, pd.DataFrame | None, dict[str, tuple[torch.Tensor, ...]], dict[str, torch.Tensor],
                      Head, str, torch.nn.Module, torch.nn.Module]:
    """The data made ready (D8-D10, D13), the head with its loss and rebalancing (D6, M1, M3), and the
    model for the task, initialised (M2, M5, M6)."""
    prep, neutral = prepare_table(data, dcfg, tcfg.seed)
    X = {k: prep.inputs(k) for k in SPLITS}  # each a tuple: features[, codes]
    y = {k: prep.target(k) for k in SPLITS}
    head, balance = _head(prep.task, prep.classes, y, X, dcfg, mcfg, tcfg.seed)
    seed_everything(tcfg.seed, tcfg.deterministic)
    model = make_mlp(X["train"][0].shape[1], head.out_features, prep.counts["train"], mcfg, prep.task,
                     prep.pre.embeddings)
    init_weights(model, head.output_bias(y["train"]), distribution=mcfg.init)
    return prep, neutral, X, y, head, balance, model, head.loss()


def doctor_table(data: str | os.PathLike | pd.DataFrame, target: str, *, data_config: DataConfig | None = None,
                 model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                 checks: list[Any] | None = None) -> Diagnosis:
    """The doctor on the model `train_table` would train with these settings, without training it
    (`checks`: a subset of the doctor's CHECKS)."""
    dcfg = dataclasses.replace(data_config or DataConfig(), target=target)
    tcfg = train_config or TrainConfig()
    prep, _, X, y, head, _, model, loss_fn = _setup(data, dcfg, model_config or ModelConfig(), tcfg)
    return diagnose(model, loss_fn, head, X, y, tcfg, checks, feature_names=prep.pre.feature_names)


def diagnose(model: torch.nn.Module, loss_fn: torch.nn.Module, head: Head, X: dict[str, tuple[torch.Tensor, ...]],
             y: dict[str, torch.Tensor], tcfg: TrainConfig, checks: list[Any] | None = None,
             optimizer: torch.optim.Optimizer | None = None, feature_names: list[str] | None = None) -> Diagnosis:
    """The doctor on the recipe's own setup, before training: every check, C2 against the head's prior
    over all the training rows (class weights included) rather than the doctor's sample."""
    sample = torch.randperm(len(y["train"]), generator=torch.Generator().manual_seed(tcfg.seed))[:1024]
    xs, ys = tuple(t[sample] for t in X["train"]), y["train"][sample]

    def c2(setup: Any) -> Verdict:
        return check_init_loss(model, loss_fn, xs, ys, head, y["train"])

    optimizer = optimizer if optimizer is not None else make_optimizer(model.parameters(), tcfg)
    diagnosis = doctor(model, (*X["train"], y["train"]), loss_fn=loss_fn, optimizer=optimizer,
                       val_data=(*X["val"], y["val"]), task=head.task, seed=tcfg.seed, feature_names=feature_names,
                       checks=[c2 if c is c2_init_loss else c for c in (CHECKS if checks is None else checks)])
    for v in diagnosis:
        log.info("%s", v.line())
    return diagnosis


def _inputs(pre: TablePreprocessor, df: pd.DataFrame) -> tuple[tuple[torch.Tensor, ...], dict[str, int]]:
    """The model's inputs for `df`: (features,) or (features, embedding codes); and the unseen-cell counts."""
    features, codes, unknown = pre.transform(df)
    inputs = (torch.from_numpy(features),) + ((torch.from_numpy(codes),) if codes is not None else ())
    return inputs, unknown


def _recorded_config(run_dir: Path, target: str
                     ) -> tuple[DataConfig, ModelConfig, TrainConfig, str, dict[str, Any] | None]:
    """The configs, the note and the refit (R2) settings a run recorded, for --resume."""
    if not (run_dir / "config.json").exists():
        raise ConfigError(f"--resume {run_dir}: no config.json there; give a run folder that `nnrecipe train` made")
    rec = read_json(run_dir / "config.json")
    if rec["data"]["target"] != target:
        raise ConfigError(f"--resume {run_dir}: that run predicts '{rec['data']['target']}', not '{target}'; "
                          f"pass --target {rec['data']['target']}")
    log.info("resuming %s with the config it recorded", run_dir)
    return (from_dict(DataConfig, rec["data"]), from_dict(ModelConfig, rec["model"]),
            from_dict(TrainConfig, rec["train"]), rec.get("note", ""), rec.get("refit"))


def _head(task: str, classes: list[str], y: dict[str, torch.Tensor], X: dict[str, tuple[torch.Tensor, ...]],
          dcfg: DataConfig, mcfg: ModelConfig, seed: int) -> tuple[Head, str]:
    """The head with its loss: D6 rebalancing for classes (resampling rewrites the training split in
    place), M3's robust loss for a regression target with heavy outliers. Returns the head and why."""
    if task == "multilabel":
        return Head(task, len(classes)), "multilabel: no rebalancing (each label's bias starts at its prior)"
    if task == "regression":
        loss = mcfg.loss if mcfg.loss != "auto" else ("huber" if heavy_tailed(y["train"]) else "mse")
        return Head(task, regression_loss="mse" if loss == "auto" else loss), f"regression loss {loss}"
    codes = y["train"].view(-1).long().numpy()
    method, why = resolve_balance(dcfg.balance, codes, len(classes))
    log.info("class balance: %s (%s)", method, why)
    if method == "weights":
        return Head(task, len(classes), class_weights(codes, len(classes))), f"{method}: {why}"
    if method in ("oversample", "undersample"):
        rows = torch.from_numpy(resample(codes, method, seed))
        X["train"] = tuple(t[rows] for t in X["train"])
        y["train"] = y["train"][rows]
    return Head(task, len(classes)), f"{method}: {why}"


# M3: a standardized target with more than 0.5% of its values beyond 4 standard deviations is heavy-tailed
# (a normal one has 0.006% there): its squared errors would be dominated by those few rows.
HEAVY_TAIL_Z, HEAVY_TAIL_SHARE = 4.0, 0.005


def heavy_tailed(y_std: torch.Tensor) -> bool:
    return bool((y_std.abs() > HEAVY_TAIL_Z).float().mean() > HEAVY_TAIL_SHARE)


def _summary(run: TableRun, config: dict[str, Any], results: dict[str, Any]) -> str:
    name, value = run.metric
    lines = [
        f"nnrecipe run {run.run_dir.name}",
        f"data     {config['source'] or 'DataFrame'} -> target '{config['data']['target']}', "
        f"task {run.task} ({config['task_reason']})",
        f"rows     train {results['rows']['train']}, validation {results['rows']['val']}, test {results['rows']['test']}",
        f"model    MLP hidden {config['model']['hidden']}, {config['model']['activation']}; "
        f"{config['train']['optimizer']} lr {config['train']['lr']}, batch {config['train']['batch_size']}",
        f"training {results['epochs_run']} epochs on the training and validation rows (R2 refit); the last "
        "epoch's weights kept" if config.get("refit") else
        f"training {results['epochs_run']} epochs; best epoch {results['best_epoch']} by {results['monitor']} "
        f"= {results['best_value']:.4f}; weights restored from it",
        f"test     {name} {value:.4f}, loss {run.test['loss']:.4f}",
        "columns",
        *[f"  {line}" for line in _schema_lines(run.run_dir)],
        "data audit (audit.json)",
        *[f"  {v.line()}" for v in (run.audit or [])],
        "checks",
        *[f"  {v.line()}" for v in run.verdicts],
    ]
    if results.get("cv"):
        lines.insert(5, f"ensemble {ensemble_line(results['cv'])}")
    if config["note"]:
        lines.insert(1, f"note     {config['note']}")
    return "\n".join(lines) + "\n"


def _schema_lines(run_dir: Path) -> list[str]:
    schema = read_json(run_dir / "schema.json")
    by_kind: dict[str, list[str]] = {}
    for col, kind in schema["kinds"].items():
        by_kind.setdefault(kind, []).append(col)
    lines = [f"{kind} ({len(cols)}): {', '.join(cols[:8])}{' ...' if len(cols) > 8 else ''}"
             for kind, cols in by_kind.items()]
    return lines + [f"dropped: {col} ({why})" for col, why in schema["dropped"].items()]


def predict_table(run_dir: str | os.PathLike, data: str | os.PathLike | pd.DataFrame
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for every row of `data` with the run's model, and a report: the metric when `data`
    holds the target column, and the count of cells the model had not seen in training."""
    model, meta = load_model(run_dir)
    path = None if isinstance(data, pd.DataFrame) else Path(data)
    df = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_table(path)  # type: ignore[arg-type]
    pre = TablePreprocessor.from_dict(meta["preprocessing"])
    missing = [c for c in pre.columns if c not in df.columns]
    if missing:
        where = f"file '{path}'" if path else "the table"
        raise DataError(f"{where} lacks {len(missing)} column(s) the model needs: {', '.join(map(repr, missing))}; "
                        f"add them (the model was trained on: {', '.join(pre.columns)})")
    targets = target_columns(meta["target"])
    extra = [c for c in df.columns if c not in pre.columns and c not in targets]
    if extra:
        log.info("columns the model does not use are ignored: %s", ", ".join(map(str, extra)))
    numeric = [c for c, spec in pre.columns.items() if spec["kind"] == "numeric"]
    problems = numeric_problems(df, numeric, path)
    if problems:
        raise DataError(f"file '{path}': " + "; ".join(problems) if path else "; ".join(problems))
    inputs, unknown = _inputs(pre, df)
    with torch.no_grad():
        outputs = model(*inputs)
    head, classes, scale = Head(meta["task"], len(meta["classes"])), meta["classes"], meta["target_scale"]
    p = head.predict(outputs).numpy()
    report: dict[str, Any] = {"rows": len(df), "unseen_cells": unknown}
    if head.task == "regression":
        pred = p.astype(np.float64) * scale["std"] + scale["mean"]
        out = pd.DataFrame({"prediction": pred})
    elif head.task == "multilabel":
        on = (outputs > 0).numpy()
        out = pd.DataFrame({"prediction": ["|".join(c for c, o in zip(classes, row) if o) for row in on],
                            **{f"p_{c}": p[:, i] for i, c in enumerate(classes)}})
        if all(t in df.columns for t in targets):
            truth = multilabel_frame(df, targets, path).to_numpy()
            if not np.isnan(truth).any():
                report["accuracy"] = float(np.mean(on == (truth > 0.5)))
        return out, report
    else:
        probs = np.stack([1 - p, p], axis=1) if head.task == "binary" else p
        # the decision comes from the logits, exactly as the accuracy logged in training
        chosen = (outputs.squeeze(-1) > 0).long() if head.task == "binary" else outputs.argmax(-1)
        pred = np.asarray(classes, dtype=object)[chosen.numpy()]
        out = pd.DataFrame({"prediction": pred, **{f"p_{c}": probs[:, i] for i, c in enumerate(classes)}})
    target = meta["target"]
    if target in df.columns and df[target].notna().all():
        if head.task == "regression":
            err = pred - df[target].to_numpy(dtype=np.float64)
            report["rmse"] = float(np.sqrt(np.mean(err ** 2)))
        else:
            report["accuracy"] = float(np.mean(pred == label_strings(df[target]).to_numpy(dtype=object)))
    return out, report


def read_results(run_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(run_dir) / "results.json")
