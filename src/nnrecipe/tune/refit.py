"""R2 (Rishit Dagli): "to get the best performance you should retrain your model with the best
hyperparameters you get on the full dataset". The best trial's configuration trains again on the
training and validation rows together, for the best trial's best epoch count (there is no validation
split left to stop on), and is tested on the test split the search never saw. It leaves a normal run
folder: `nnrecipe predict` takes it. The preprocessing stays fitted on the training rows, as in the trial,
so the refit changes the weights' data only."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ..config import DataConfig, ModelConfig, TrainConfig
from ..io import read_json_or_none
from .objective import Job

log = logging.getLogger("nnrecipe")


def refit_best(study: Any, job: Job, best: Any) -> Any:
    """The study's best trial retrained on train+validation (a TableRun), in the study folder. `best`: that
    trial (a FrozenTrial), as study.best_trial picked it for the result and the report alike."""
    model_config, train_config = job.space.apply(best.params, job.model_config, job.train_config)
    epochs = int(best.user_attrs.get("best_epoch") or train_config.epochs)
    trial_run = best.user_attrs.get("run_dir")
    if train_config.batch_size is None:
        # the trial's epoch count holds for the trial's batch size: the default sized from the training
        # rows alone, where sizing it again from train+validation could cross a threshold (4,000 rows...)
        recorded = best.user_attrs.get("batch_size")
        if recorded is None and trial_run:  # a study from before the trials recorded it
            recorded = (read_json_or_none(Path(trial_run) / "config.json") or {}).get("train", {}).get("batch_size")
        if recorded is None:
            log.warning("R2: trial %d's batch size is not recorded (its folder %s is not here); the refit sizes "
                        "its own from the training and validation rows", best.number, trial_run)
        else:
            train_config = dataclasses.replace(train_config, batch_size=int(recorded))
    earlier = _earlier_refit(job.out / "best", study.study_name, best.number, epochs)
    if earlier is not None:  # a rerun of the study: its refit goes on (killed) or is read again (finished)
        from ..recipes import train_table

        log.info("R2: trial %d's retraining is in %s already: resumed there", best.number, earlier)
        return train_table(job.data, job.target, out=job.out / "best", resume=earlier)
    run = refit(job.data, job.target, epochs, out=job.out / "best", data_config=job.data_config,
                model_config=model_config, train_config=train_config,
                note=f"R2: trial {best.number} of study '{study.study_name}' ({job.metric} {best.value:.4f}) "
                     f"retrained on train+validation for {epochs} epochs",
                origin={"study": study.study_name, "trial": best.number, "search_value": best.value,
                        "metric": job.metric, "trial_run": trial_run})
    log.info("R2: best trial %d retrained on train+validation for %d epochs: test %s, in %s", best.number,
             epochs, {k: round(v, 4) for k, v in run.test.items()}, run.run_dir)
    return run


def _earlier_refit(best_dir: Path, study: str, trial: int, epochs: int) -> Path | None:
    """The run folder under `best_dir` where this study's trial was retrained before (the newest), finished or
    killed: a rerun of the study resumes it, rather than leave a second folder beside a half-done one."""
    found = []
    for folder in sorted(best_dir.iterdir()) if best_dir.is_dir() else []:
        if folder.name.startswith("."):  # a folder still being staged: no run yet (runs --clean removes it)
            continue
        record = (read_json_or_none(folder / "config.json") or {}).get("refit") or {}
        if (record.get("study"), record.get("trial"), record.get("epochs")) == (study, trial, epochs):
            found.append(folder)
    return found[-1] if found else None


def refit(data: Any, target: str, epochs: int, *, out: str | Path, data_config: DataConfig | None = None,
          model_config: ModelConfig | None = None, train_config: TrainConfig | None = None, note: str = "",
          origin: dict[str, Any] | None = None) -> Any:
    """Train the recipe's model on the train and validation splits together for `epochs` epochs (no
    early stopping: patience off, the last epoch's weights kept), test it, and leave a run folder:
    train_table's R2 mode, with the doctor's checks (the trials ran without them)."""
    from ..recipes import train_table

    return train_table(data, target, out=out, data_config=data_config, model_config=model_config,
                       train_config=train_config, note=note, refit={"epochs": int(epochs), **(origin or {})})
