"""Tables on the pipeline: read -> schema and task -> split -> preprocess (fitted on train) -> the MLP the
rules size -> the pipeline's checks, training, test and record. `nnrecipe train`, `doctor` and `predict`
on a CSV or Parquet file are thin layers over `train_table`, `doctor_table` and `predict_table`."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..checks import Diagnosis
from ..config import DataConfig, ModelConfig, TrainConfig, refuse_image_settings
from ..data import TablePreprocessor, read_table
from ..data.audit import audit_frame
from ..data.balance import class_weights, resample, resolve_balance
from ..data.cache import data_fingerprint
from ..data.load import header_is_data, header_shown
from ..data.prepare import SPLITS, PreparedTable, model_inputs, prepare_table, shown_texts
from ..data.schema import multilabel_frame, numeric_problems, target_columns
from ..data.text.folder import is_text_folder, read_text_folder, text_folder
from ..data.transforms import label_strings
from ..errors import CheckpointError, ConfigError, DataError, did_you_mean_column, shorten
from ..io import atomic_write, write_json
from ..models import load_model
from ..models.tables import init_table_model, make_table_model
from ..repro import seed_everything
from ..tasks import Task, create_task
from ..track.journal import label_counts
from ..track.predictions import record_outputs
from ..train.callbacks import Callback
from .pipeline import (Options, Prepared, Recipe, Run, batch_size_check, diagnose, headline_metric, model_rules,
                       run)
from .pretrain import pretrain_table, pretrained_of
from .techniques import technique_step

log = logging.getLogger("nnrecipe")

PREDICT_NEEDS = ("task", "target", "classes", "target_scale", "preprocessing")  # of model.json
TableRun = Run  # the name train_table's result had before the pipeline served every kind of data

__all__ = ["TableRecipe", "TableRun", "doctor_table", "headline_metric", "heavy_tailed", "predict_table",
           "train_table"]

# M3: a standardized target with more than 0.5% of its values beyond 4 standard deviations is heavy-tailed
# (a normal one has 0.006% there): its squared errors would be dominated by those few rows.
HEAVY_TAIL_Z, HEAVY_TAIL_SHARE = 4.0, 0.005


def heavy_tailed(y_std: torch.Tensor) -> bool:
    return bool((y_std.abs() > HEAVY_TAIL_Z).float().mean() > HEAVY_TAIL_SHARE)


class TableRecipe(Recipe):
    """A CSV or Parquet file, or a DataFrame, with a target column (or several 0/1 columns: multi-label)."""

    kind = "table"

    def prepare(self, data: Any, dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig) -> Prepared:
        """The table made ready (D8-D10, D13), and the task with its loss and rebalancing (D6, M1, M3)."""
        refuse_image_settings(dcfg, mcfg, "the DataFrame" if isinstance(data, pd.DataFrame) else f"'{data}'")
        prep, neutral = prepare_table(data, dcfg, tcfg.seed)
        if mcfg.text_model == "transformer" and not prep.pre.text_columns:
            raise ConfigError("--text-model transformer reads text columns, and this table has none; leave it "
                              "out, or name a text column with --text COL")
        if prep.pre.text_columns:  # the texts as read, for C9 (and the words in order: the bags lost it)
            frame = prep.frame if prep.frame is not None else _frame(data, _path(data), prep.content_key)
            n_train, n_val = prep.counts["train"], prep.counts["val"]  # C9 shows validation rows (T14: out of fold)
            shown = prep.rows[:n_train + n_val] if tcfg.cv_folds > 1 else prep.rows[n_train:n_train + n_val]
            prep.texts = shown_texts(frame.loc[shown], prep.pre.text_columns)
            if mcfg.text_model == "transformer":
                seq, prep.words = prep.pre.text_sequences(frame.loc[prep.rows])
                prep.sequences = torch.from_numpy(seq)
        X = {k: prep.inputs(k) for k in SPLITS}  # features[, codes[, term ids, term weights[, word ids]]]
        y = {k: prep.target(k) for k in SPLITS}
        task, head, unbalanced, balance = task_with_loss(prep.task, prep.classes, prep.target_scale, y, X, dcfg, mcfg,
                                                          tcfg.seed, tcfg.metric)
        prepared = Prepared(task, dcfg.target, X, y, {k: prep.data_rows(k) for k in SPLITS}, prep.classes, head,
                            prep, prep.pre.feature_names, unbalanced, neutral, balance=balance,
                            bucket_by=bucketing(prep, tcfg.batch_size),
                            callbacks=pretrain_table(prep, dcfg.target, mcfg, tcfg))  # M13
        return prepared

    def build(self, prepared: Prepared, mcfg: ModelConfig, seed: int, y_fit: torch.Tensor,
              deterministic: bool = False) -> nn.Module:
        """The network for the table (models/tables.py: TabM unless --model mlp), sized by the rules (M2,
        M10) and initialised (M5; M6: the output bias at y_fit's prior)."""
        prep: PreparedTable = prepared.data
        seed_everything(seed, deterministic)
        pretrained = pretrained_of(prepared)  # M13: the network reads the pretrained encoder's code
        x, raw = (prepared.inputs["train"][0], prep.pre.raw_features) if pretrained is None else \
            pretrained.network_features(prepared.inputs["train"][0], prep.pre.raw_features)
        model = make_table_model(mcfg, prep.task, x, prepared.task.out_features, prep.counts["train"],
                                 prep.pre.embeddings, prepared.task.activation, prep.pre.text_terms, raw, prep.words)
        init_table_model(model, prepared.task.output_bias(y_fit), distribution=mcfg.init)
        return model if pretrained is None else pretrained.wrap(model)

    def audit(self, data: Any, prepared: Prepared, dcfg: DataConfig, tcfg: TrainConfig,
              model: nn.Module) -> Diagnosis | None:
        """The data audit on every row, on train's own preparation."""
        prep: PreparedTable = prepared.data
        frame, prep.frame = prep.frame, None  # not kept in training
        path = _path(data)
        return audit_frame(frame if frame is not None else _frame(data, path, prep.content_key), dcfg, tcfg.seed,
                           path=path, prepared=prep,
                           params=(sum(p.numel() for p in model.parameters()), list(model.spec["hidden"])),
                           batch_size=tcfg.batch_size)

    def name(self, data: Any, dcfg: DataConfig) -> str:
        path = _path(data)
        return f"{path.stem if path else data.attrs.get('name', 'table')}-{dcfg.target}"

    def describe(self, data: Any, prepared: Prepared) -> dict[str, Any]:
        path = _path(data)
        return {"task_reason": prepared.data.task_reason, "source": str(path) if path else None}

    def journal(self, data: Any, prepared: Prepared, dcfg: DataConfig) -> dict[str, Any]:
        """The fingerprint of the rows and columns read, and the label counts of each split."""
        prep: PreparedTable = prepared.data
        columns = [*prep.schema.kinds, *prep.schema.dropped, *target_columns(dcfg.target)]
        rows = len(prep.rows) + len(prep.neutral_rows)
        found = data_fingerprint(data if isinstance(data, pd.DataFrame) else prep.source, rows, columns,
                                 prep.content_key)
        found["labels"] = {s: label_counts(prep.target(s).numpy(), prep.task, prep.classes, prep.target_scale)
                           for s in SPLITS}
        return found

    def record(self, run_dir: Path, prepared: Prepared) -> None:
        prep: PreparedTable = prepared.data
        write_json(run_dir / "splits.json", {k: prep.data_rows(k) for k in SPLITS})
        write_json(run_dir / "schema.json", prep.schema.to_dict())

    def previews(self, run_dir: Path, prepared: Prepared, predict: Any,
                 held_out: tuple[torch.Tensor, torch.Tensor, Sequence[int]] | None) -> None:
        """C9 (val predictions, best weights; an ensemble's out of fold) and D14 (input samples)."""
        record_outputs(run_dir, predict, prepared.data, held_out=held_out)

    def artifact(self, prepared: Prepared) -> dict[str, Any]:
        pre, pretrained = prepared.data.pre, pretrained_of(prepared)
        return {"preprocessing": pre.to_dict(), "feature_names": pre.feature_names,
                # the columns training left out (IDs, --drop, constants): predict passes over them quietly
                "dropped": [str(c) for c in getattr(getattr(prepared.data, "schema", None), "dropped", {})],
                **({"pretrain": pretrained.record} if pretrained is not None else {})}

    def finish(self, run_dir: Path, model: nn.Module, prepared: Prepared, meta: dict[str, Any]) -> None:
        """D7: the rows labelled neutral, predicted and sorted least confident first, in review.csv."""
        neutral = prepared.held_back
        if neutral is None or not len(neutral):
            return
        review, _ = predict_frame(model, meta, neutral)
        probs = review.filter(like="p_")
        review.insert(0, "row", neutral.index.to_numpy())
        review.insert(2, "confidence", probs.max(axis=1).to_numpy() if probs.shape[1] else np.nan)
        atomic_write(run_dir / "review.csv", review.sort_values("confidence").to_csv(index=False))
        log.info("%d rows with the neutral label are pre-labelled for review in %s", len(neutral),
                 run_dir / "review.csv")

    def summary(self, run_dir: Path, prepared: Prepared) -> list[str]:
        schema = prepared.data.schema.to_dict()
        by_kind: dict[str, list[str]] = {}
        for col, kind in schema["kinds"].items():
            by_kind.setdefault(kind, []).append(col)
        lines = [f"{kind} ({len(cols)}): {', '.join(shorten(c, 80) for c in cols[:8])}{' ...' if len(cols) > 8 else ''}"
                 for kind, cols in by_kind.items()]
        lines += [f"dropped: {shorten(col, 80)} ({why})" for col, why in schema["dropped"].items()]
        return ["columns", *[f"  {line}" for line in lines]]


def bucketing(prep: PreparedTable, batch_size: int | None) -> int | None:
    """D2: the word-id input's position when --text-model transformer's training batches are bucketed by length,
    which length_report chooses when per-batch padding would waste most of the compute; else None."""
    if prep.sequences is None:
        return None
    from ..data.audit.run import text_batch_size
    from ..data.text.lengths import length_report

    lengths = (prep.sequences[prep._slice("train")] != 0).sum(1).numpy()
    found = length_report(lengths, text_batch_size(prep, batch_size))
    log.info("text batches: %s (padding %.0f%% per batch, %.0f%% bucketed)", found.batching,
             100 * found.padding_per_batch, 100 * found.padding_bucketed)
    return len(prep.inputs("train")) - 1 if found.batching == "bucketed" else None


def task_with_loss(name: str, classes: list[str], target_scale: dict[str, float] | None,
                   y: dict[str, torch.Tensor], X: dict[str, tuple[torch.Tensor, ...]],
                   dcfg: DataConfig, mcfg: ModelConfig, seed: int, metric: str | None = None
                   ) -> tuple[Task, str, tuple[torch.Tensor, ...] | None, str | None]:
    """The task with its loss: D6 rebalancing for classes, following the metric the run optimises
    (resampling rewrites the training split), M3's robust loss for a regression target with heavy
    outliers. Returns the task, why, the training split as it was before resampling (None when it was
    not resampled) and the D6 method (None for regression and multi-label)."""
    n = len(classes)
    if name in ("multilabel", "regression") and dcfg.balance not in ("auto", "none"):
        raise ConfigError(f"--balance {dcfg.balance}: rebalancing weighs or resamples classes, and the target is "
                          f"{name}; leave --balance out" + (" (each label's bias starts at its prior)"
                                                             if name == "multilabel" else ""))
    if name != "regression" and mcfg.loss != "auto":
        raise ConfigError(f"--loss {mcfg.loss} is a regression loss, and the target is {name}: classes train with "
                          "cross-entropy; leave --loss out (or pass --task regression for a numeric target)")
    if name == "multilabel":
        return (create_task(name, n_classes=n), "multilabel: no rebalancing (each label's bias starts at its "
                "prior)", None, None)
    if name == "regression":
        loss = mcfg.loss if mcfg.loss != "auto" else ("huber" if heavy_tailed(y["train"]) else "mse")
        return create_task(name, loss=loss, target_scale=target_scale), f"regression loss {loss}", None, None
    codes = y["train"].view(-1).long().numpy()
    method, why = resolve_balance(dcfg.balance, codes, n, metric)
    log.info("class balance: %s (%s)", method, why)
    if method == "weights":
        return (create_task(name, n_classes=n, class_weights=class_weights(codes, n)), f"{method}: {why}", None,
                method)
    unbalanced = None
    if method in ("oversample", "undersample"):
        unbalanced = (*X["train"], y["train"])
        rows = torch.from_numpy(resample(codes, method, seed))
        X["train"] = tuple(t[rows] for t in X["train"])
        y["train"] = y["train"][rows]
    return create_task(name, n_classes=n), f"{method}: {why}", unbalanced, method


def _path(data: Any) -> Path | None:
    return None if isinstance(data, pd.DataFrame) else Path(data)


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


def train_table(data: str | os.PathLike | pd.DataFrame, target: str, *, out: str | os.PathLike = "runs",
                data_config: DataConfig | None = None, model_config: ModelConfig | None = None,
                train_config: TrainConfig | None = None, note: str = "", progress: bool = False,
                callbacks: Sequence[Callback] | None = None, lr_find: str = "off",
                resume: str | os.PathLike | None = None, strict: bool = False,
                parent: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
                report: bool = True, export: Sequence[str] = (), checks: Sequence[Any] | None = None,
                refit: dict[str, Any] | None = None, audit: bool = True, unread: str = "refuse") -> Run:
    """Train the model the recipe advises for `target` in a CSV/Parquet file or a DataFrame, and leave
    a run folder under `out`. `lr_find`: 'off', 'on' (T4: train at the range test's candidate) or
    'confirm' (the best of short runs around it). `strict`: stop before training when a check fails
    (TrainingError). `resume`: a run folder of an interrupted run; it goes on from its last checkpoint
    with the config it recorded (the configs and refit given here are not used). `parent`: the run this
    one varies (R3: journal.json records the settings that changed); `config_file`: the --config file,
    copied into the run folder (R8); `report`: write report.html; `export`: 'tensorboard' and/or 'mlflow'
    (needs the export extra). `checks`: names of the doctor's checks to run before training (None: all
    of them; () none, as a search's trials do). `refit` (R2): train on the training and validation rows
    together for refit["epochs"] epochs, no early stopping, the last weights kept; the dict (the trial it
    retrains, say) is recorded in config.json. `audit`: the data audit first (a search's trials, which
    share one table, leave it to the retrained best). `unread`: 'refuse' a setting the run would not read
    (momentum beside adam), or 'warn' (an ablation's variant, a grid search's candidate). Returns the Run,
    with its config and results.
    Raises DataError/ConfigError naming the input and the fix."""
    data, dcfg = text_folder(data, dataclasses.replace(data_config or DataConfig(), target=target))
    opts = Options.of(out=out, note=note, progress=progress, callbacks=callbacks, lr_find=lr_find, resume=resume,
                      strict=strict, parent=parent, config_file=config_file, report=report, export=export,
                      checks=checks, refit=refit, audit=audit, unread=unread)
    return run(TableRecipe(), data, dcfg, model_config or ModelConfig(), train_config or TrainConfig(), opts)


# settings of a training run that T17's measurement (a few steps on copies of the model) never reads
NOT_MEASURED = ("epochs", "schedule", "step_size", "gamma", "warmup_epochs", "plateau_patience", "patience",
                "min_delta", "stop_criterion", "stop_alpha", "restore_best", "swa_start", "swa_lr", "cv_folds", "refit",
                "teacher", "distill_temperature", "distill_alpha", "adversarial", "adv_epsilon", "adv_steps",
                "adv_step_size", "robustness", "checkpoint_every")


def refuse_training_settings(tcfg: TrainConfig, what: str, kept: tuple[str, ...] = ()) -> None:
    """A training run's settings given as flags to a command that does not train (`doctor`, `batchsize`:
    accepted, they would change nothing): refused by name. (The Python functions take a run's TrainConfig
    as it is, shared with train_table.)"""
    default = TrainConfig()
    unread = [f"--{name.replace('_', '-')}" for name in NOT_MEASURED
              if name not in kept and getattr(tcfg, name) != getattr(default, name)]
    if unread:
        raise ConfigError(f"{', '.join(unread)}: settings of a training run, and {what}; leave them out")


def batch_sizes_table(data: str | os.PathLike | pd.DataFrame, target: str, *, data_config: DataConfig | None = None,
                      model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                      **measure: Any) -> tuple[Any, Any, int]:
    """T17 (`nnrecipe batchsize`): (BatchSizeReport, the verdict, the batch size the run would use) for the
    model `train_table` would build on `data` with these settings, measured on its training rows without
    training it; `measure`: keywords of train.batch_size.measure_batch_sizes."""
    data, dcfg = text_folder(data, dataclasses.replace(data_config or DataConfig(), target=target))
    mcfg, tcfg = model_config or ModelConfig(), train_config or TrainConfig()
    recipe = TableRecipe()
    prepared = recipe.prepare(data, dcfg, mcfg, tcfg)
    model = recipe.build(prepared, mcfg, tcfg.seed, prepared.targets["train"], tcfg.deterministic)
    # the rate and batch the model's authors train it with, if any, as the run takes them
    tcfg = model_rules(tcfg, model, len(prepared.targets["train"]))
    return batch_size_check(model, prepared, tcfg, **measure)


def doctor_table(data: str | os.PathLike | pd.DataFrame, target: str, *, data_config: DataConfig | None = None,
                 model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                 checks: list[Any] | None = None) -> Diagnosis:
    """The doctor on the model `train_table` would train with these settings, without training it
    (`checks`: names of the doctor's checks, a subset of checks.doctor.CHECKS)."""
    data, dcfg = text_folder(data, dataclasses.replace(data_config or DataConfig(), target=target))
    mcfg, tcfg = model_config or ModelConfig(), train_config or TrainConfig()
    recipe = TableRecipe()
    prepared = recipe.prepare(data, dcfg, mcfg, tcfg)
    model = recipe.build(prepared, mcfg, tcfg.seed, prepared.targets["train"], tcfg.deterministic)
    if technique_step(prepared, recipe.artifact(prepared), dcfg, tcfg) is not prepared.step:  # a bad teacher fails
        log.info("the checks run the supervised step; --teacher and --adversarial add their loss in training")
    return diagnose(model, prepared, tcfg, checks)


def _inputs(pre: TablePreprocessor, df: pd.DataFrame, words: bool = False) -> tuple[tuple[torch.Tensor, ...], dict[str, int],
                                                                 dict[str, dict[str, int]]]:
    """The model's inputs for `df` (prepare.model_inputs); the unseen-cell counts; and per text column the
    rows truncated at its maximum length, its word tokens and the unknown ones."""
    features, codes, unknown = pre.transform(df)
    text = pre.text_inputs(df)
    inputs = model_inputs(torch.from_numpy(features), torch.from_numpy(codes) if codes is not None else None,
                          *((torch.from_numpy(text[0]), torch.from_numpy(text[1])) if text else ()))
    if words:  # --text-model transformer: the word ids too
        inputs = (*inputs, torch.from_numpy(pre.text_sequences(df)[0]))
    return inputs, unknown, (text[2] if text else {})


def predict_table(run_dir: str | os.PathLike, data: str | os.PathLike | pd.DataFrame,
                  keep: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions for every row of `data` with the run's model, and a report: the metric on the rows that
    hold a target when `data` has the target column (`scored_rows`, `unscored_rows`), and the count of
    cells the model had not seen in training. `keep`: columns of `data` copied to the output first (an ID
    to join on, say)."""
    model, meta = load_model(run_dir, required=PREDICT_NEEDS)
    _check_description(Path(run_dir) / "model.json", meta)
    if not isinstance(data, pd.DataFrame) and is_text_folder(data):  # .txt files: each file's name kept first
        data, keep = read_text_folder(data, labelled=False), ("file", *keep)
    path = _path(data)
    df = data.reset_index(drop=True) if isinstance(data, pd.DataFrame) else read_table(path)  # type: ignore[arg-type]
    where = f"file '{path}'" if path is not None else "the DataFrame"
    for col in keep:
        if col not in df.columns:
            raise DataError(f"--keep {col}: {where} has no column '{shorten(col, 80)}'"
                            f"{did_you_mean_column(col, df.columns)}; name a column of the data to copy")
    preds, report = predict_frame(model, meta, df, path)
    clash = [c for c in dict.fromkeys(keep) if c in preds.columns]
    if clash:  # the output would hold two columns of one name ('prediction', 'p_benign')
        raise ConfigError(f"--keep {clash[0]}: the predictions have a column '{shorten(clash[0], 80)}' of their own; "
                          "leave it out of --keep, or rename the column in the data")
    if keep:
        preds = pd.concat([df[list(dict.fromkeys(keep))].reset_index(drop=True), preds], axis=1)
    return preds, report


def _check_description(file: Path, meta: dict[str, Any]) -> None:
    """model.json's entries predict reads, of the types it reads them as (an edited file is named, not a
    traceback): the task's name, the target, the classes, the target's scale and the preprocessing."""
    scale, pre = meta["target_scale"], meta["preprocessing"]
    wrong = [key for key, ok in (
        ("task", isinstance(meta["task"], str)),
        ("target", isinstance(meta["target"], str)),
        ("classes", isinstance(meta["classes"], list) and all(isinstance(c, (str, int, float)) for c in meta["classes"])),
        ("target_scale", isinstance(scale, dict) and all(isinstance(scale.get(k), (int, float)) for k in ("mean", "std"))),
        ("preprocessing", isinstance(pre, dict) and isinstance(pre.get("columns"), dict)),
    ) if not ok]
    if wrong:
        raise CheckpointError(f"'{file}' holds {', '.join(map(repr, wrong))} in a form predict cannot read; the "
                              "file is damaged or was edited: restore the run folder, or train the run again")


def predict_frame(model: nn.Module, meta: dict[str, Any], df: pd.DataFrame, path: Path | None = None
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """predict_table on a table already read, with a model in memory and its model.json (`meta`)."""
    pre = TablePreprocessor.from_dict(meta["preprocessing"])
    missing = [c for c in pre.columns if c not in df.columns]
    if missing:
        where = f"file '{path}'" if path else "the table"
        trained = ", ".join(shorten(c, 40) for c in list(pre.columns)[:30]) + (" ..." if len(pre.columns) > 30 else "")
        if header_is_data(list(df.columns)):
            raise DataError(f"{where} has no header row: its first line holds numbers ({header_shown(df.columns)}), "
                            f"not column names; add a first line naming the columns (the model was trained on: "
                            f"{trained})")
        listed = ", ".join(repr(shorten(c, 40)) for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"{where} lacks {len(missing)} column(s) the model needs: {listed}"
                        f"{did_you_mean_column(missing[0], df.columns)}; add them (the model was trained on: "
                        f"{trained})")
    targets = target_columns(meta["target"])
    extra = [c for c in df.columns if c not in pre.columns and c not in targets]
    if extra:
        log.info("columns the model does not use are ignored: %s", ", ".join(map(str, extra)))
    known = set(meta.get("dropped") or ())
    unseen = [c for c in extra if str(c) not in known]  # not the columns training left out itself: new ones
    if unseen:
        log.warning("columns the training table did not have are ignored: %s",
                    ", ".join(shorten(str(c), 40) for c in unseen[:10]) + (" ..." if len(unseen) > 10 else ""))
    numeric = [c for c, spec in pre.columns.items() if spec["kind"] == "numeric"]
    problems = numeric_problems(df, numeric, path, trained=True)
    if problems:
        raise DataError(f"file '{path}': " + "; ".join(problems) if path else "; ".join(problems))
    spec = getattr(model, "spec", {})
    words = bool(spec.get("text_words") or any(m.get("text_words") for m in spec.get("members", [])))
    inputs, unknown, text = _inputs(pre, df, words)
    for col, c in text.items():
        if c["truncated_rows"] or c["unknown_tokens"]:
            log.info("text column '%s': %d of %d rows longer than the %d tokens the model reads (cut there); %d of "
                     "%d word tokens not in the training vocabulary", shorten(col, 80), c["truncated_rows"], len(df),
                     pre.columns[col]["max_length"], c["unknown_tokens"], c["tokens"])
    model.eval()
    with torch.no_grad():
        outputs = model(*inputs)
    classes = meta["classes"]
    task = create_task(meta["task"], n_classes=len(classes), target_scale=meta["target_scale"])
    p = task.predict(outputs).numpy()
    report: dict[str, Any] = {"rows": len(df), "unseen_cells": unknown, **({"text": text} if text else {})}
    if task.name == "regression":
        pred = task.unscale(p.astype(np.float64))
        out = pd.DataFrame({"prediction": pred})
    elif task.name == "multilabel":
        on = task.decide(outputs).numpy().astype(bool)
        out = pd.DataFrame({"prediction": ["|".join(c for c, o in zip(classes, row) if o) for row in on],
                            **{f"p_{c}": p[:, i] for i, c in enumerate(classes)}})
        if all(t in df.columns for t in targets):
            truth = multilabel_frame(df, targets, path).to_numpy()
            has = ~np.isnan(truth).any(axis=1)
            if has.any():
                report["accuracy"] = float(np.mean(on[has] == (truth[has] > 0.5)))
            report.update(scored_rows=int(has.sum()), unscored_rows=int((~has).sum()))
        return out, report
    else:
        probs = np.stack([1 - p, p], axis=1) if task.name == "binary" else p
        pred = np.asarray(classes, dtype=object)[task.decide(outputs).numpy()]
        out = pd.DataFrame({"prediction": pred, **{f"p_{c}": probs[:, i] for i, c in enumerate(classes)}})
    target = meta["target"]
    if target in df.columns:  # the rows that hold a target are scored, however many do not (the count said)
        truth = pd.to_numeric(df[target], errors="coerce") if task.name == "regression" else df[target]
        has = truth.notna().to_numpy().copy()
        # a target cell that holds something the model cannot be scored on (a label that is none of its
        # classes: 1/0 for benign/malign, 'SETOSA'; text where numbers are predicted) is named and left out of
        # the score, which read 0.0000 with no word (or 'the target column is empty')
        if task.name == "regression":
            odd = df[target].notna().to_numpy() & ~has & (df[target].astype("string").str.strip() != "").fillna(
                False).to_numpy(dtype=bool)
            strange = df[target][odd].astype("string")
        else:
            labels = label_strings(truth[has]).to_numpy(dtype=object)
            known = np.isin(labels, np.asarray(classes, dtype=object))
            strange = pd.Series(labels[~known], dtype="string")
            has[np.flatnonzero(has)[~known]] = False
        if len(strange):
            report.update(unknown_labels=[str(v) for v in pd.unique(strange)], unknown_rows=int(len(strange)),
                          unknown_word="rows", task=task.name, classes=[str(c) for c in classes])
        if has.any() and task.name == "regression":
            err = pred[has] - truth.to_numpy(dtype=np.float64)[has]
            report["rmse"] = float(np.sqrt(np.mean(err ** 2)))
        elif has.any():
            report["accuracy"] = float(np.mean(pred[has] == label_strings(truth[has]).to_numpy(dtype=object)))
        report.update(scored_rows=int(has.sum()), unscored_rows=int((~has).sum()))
    return out, report
