"""One trial: the space's values for it, `train_table` with them and a pruning callback, and the score
(R1: the objective is on the validation split, Rishit Dagli's "highest validation accuracy")."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import DataConfig, ModelConfig, TrainConfig
from ..logs import quiet
from ..train.callbacks import Callback
from .space import SearchSpace

log = logging.getLogger("nnrecipe")



class RunFolder(Callback):
    """Records the trial's run folder on the trial as its training starts: a worker killed later leaves
    the trial RUNNING, and its retry goes on in that folder (T8) instead of training the same parameters
    again in a new one."""

    def __init__(self, trial: Any):
        self.trial = trial

    def on_fit_start(self, trainer: Any, logs: dict[str, Any]) -> None:
        if trainer.run_dir is not None:
            self.trial.set_user_attr("run_dir", str(trainer.run_dir))


def lost_run(trial: Any) -> Path | None:
    """The run folder of the lost trial that `trial` retries, when that trial's training had begun there;
    its checkpoint (or finished results) is where the retry goes on. None for a fresh trial. A retry that was
    itself lost before its training began there (a kill in the moments a resume takes to start) passes the
    folder on: the chain of retries is followed back to the trial that has one, else a finished training
    would be run again in a folder of its own, beside the first."""
    trials = {t.number: t for t in trial.study.get_trials(deepcopy=False)}
    number, seen = trial.user_attrs.get("retry_of"), set()
    while number is not None and number not in seen and number in trials:
        seen.add(number)
        folder = trials[number].user_attrs.get("run_dir")
        if folder and (Path(folder) / "config.json").is_file():
            return Path(folder)
        number = trials[number].user_attrs.get("retry_of")
    return None


class PruningCallback(Callback):
    """Reports the trial's metric after each epoch (optuna's intermediate values, step = epoch) and, when
    the pruner says the trial is behind, stops training by the trainer's flag (STYLE 2: no exception out
    of a hook). The objective then tells optuna the trial was pruned (`pruned_at` is the epoch)."""

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer: Any, logs: dict[str, Any]) -> None:
        value = logs.get(self.metric)
        if value is None or not math.isfinite(value):
            return  # a non-finite loss stops training on its own (TrainingError), with the diagnosis
        self.trial.report(float(value), step=int(logs["epoch"]))
        if self.trial.should_prune():
            self.pruned_at = int(logs["epoch"])
            trainer.stop_training = True

    def state_dict(self) -> dict[str, Any]:  # in the checkpoint: a resumed trial that was pruned stays pruned
        return {"pruned_at": self.pruned_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pruned_at = state.get("pruned_at")


@dataclass(frozen=True)
class Job:
    """All a worker needs to run trials; picklable, so a spawned worker process gets it whole."""
    data: str | pd.DataFrame
    target: str
    space: SearchSpace
    metric: str  # the logged validation metric the study optimizes: val_accuracy or val_rmse
    out: Path  # the study folder; each trial's run folder goes under out/trials
    data_config: DataConfig = field(default_factory=DataConfig)
    model_config: ModelConfig = field(default_factory=ModelConfig)
    train_config: TrainConfig = field(default_factory=TrainConfig)
    callbacks: tuple[Callback, ...] = ()  # extra callbacks for every trial's training (tests script them)


def run_trial(job: Job, trial: Any) -> float:
    """Train the trial's configuration and return its score: the metric at the run's best epoch (the
    epoch whose weights the run keeps, chosen by the training monitor). Raises optuna.TrialPruned when
    the pruner stopped it."""
    import optuna

    values = job.space.suggest(trial, job.model_config, job.train_config)
    model_config, train_config = job.space.apply(values, job.model_config, job.train_config)
    # a trial is one model scored on the validation split (R1): a T14 ensemble would cost K trainings a
    # trial and report each member's epochs to the pruner in turn
    train_config = dataclasses.replace(train_config, cv_folds=1, refit="off")
    pruning = PruningCallback(trial, job.metric)
    from ..recipes import train_table

    # a retry of a trial whose worker was killed goes on from that trial's last checkpoint, in its folder
    # (which holds its results when the kill came after they were written): one folder per parameters
    from ..errors import CheckpointError

    def train(resume: Path | None) -> Any:
        with quiet():
            return train_table(job.data, job.target, out=job.out / "trials", data_config=job.data_config,
                               model_config=model_config, train_config=train_config,
                               note=f"trial {trial.number} of the study in {job.out}", resume=resume,
                               # the job's before the pruning: they may edit the logs
                               callbacks=[RunFolder(trial), *job.callbacks, pruning],
                               # the doctor's short runs (C1, C3) cost a trial several times its training on small
                               # tables; the retrained best gets them (refit), and `nnrecipe doctor` checks a setup;
                               # the data audit, the same for every trial of one table, likewise
                               checks=(), report=False, audit=False)

    resume = lost_run(trial)
    try:
        run = train(resume)
    except CheckpointError as e:  # the lost trial's folder is damaged: its parameters train again, anew
        if resume is None:
            raise
        log.warning("trial %d: the lost trial's folder %s cannot be resumed (%s); training it again", trial.number,
                    resume, e)
        run = train(None)
    epoch = run.best_epoch or len(run.history)
    best = next((row for row in run.history if row["epoch"] == epoch), run.history[-1])
    trial.set_user_attr("run_dir", str(run.run_dir))
    trial.set_user_attr("best_epoch", int(best["epoch"]))
    if best.get("val_loss") is not None:  # breaks ties of the score (an accuracy saturates on small splits)
        trial.set_user_attr("val_loss", float(best["val_loss"]))
    trial.set_user_attr("epochs_run", len(run.history))
    # the refit (R2) trains at this batch size: its epoch count is for it, and the trial's folder may be on
    # another machine of a shared study
    trial.set_user_attr("batch_size", run.batch_size)
    trial.set_user_attr("test", run.test)
    if pruning.pruned_at is not None:
        raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_at}: {job.metric} behind the other trials'")
    return float(best[job.metric])


def worker_name() -> str:
    """host:pid, recorded on each trial a worker claims: a later run on this host fails the trials of a
    worker that is gone and queues their parameters again."""
    return f"{os.uname().nodename}:{os.getpid()}"
