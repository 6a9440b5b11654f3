"""Exporters: a finished (or running) run folder's parameters and metrics logged to TensorBoard or MLflow,
for users who keep their runs there. The run folder stays the record; an export reads it (config.json,
metrics.jsonl, results.json) and writes the same settings (flattened: 'train.lr') and the same metrics
(the metrics.jsonl names, one step per epoch; the test metrics as 'test_<name>').

Both libraries are optional (`pip install nnrecipe[export]`) and imported only here, when an export is
asked for: `import nnrecipe` does not load them."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, require, shorten
from .runs import RunInfo, read_run

MLFLOW_DB = "mlflow.db"
MAX_PARAM_CHARS = 6000  # MLflow refuses longer parameter values (mlflow.utils.validation)
MLFLOW_BATCH = 100  # MLflow takes at most 100 parameters and 1,000 metrics per log_batch call


def _require(module: str, package: str) -> Any:
    return require(module, "exporting", "export", package)


def _scalars(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))
            and not isinstance(v, bool) and math.isfinite(v)}


def _params(run: RunInfo) -> dict[str, str | int | float | bool]:
    """The flattened config with values TensorBoard's hparams and MLflow both take (None and lists as text)."""
    return {k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in run.flat().items()}


def _final(run: RunInfo) -> dict[str, float]:
    """The test metrics and the best monitored value, as logged once at the end."""
    final = {f"test_{k}": v for k, v in _scalars(run.results.get("test") or {}).items()}
    if run.best is not None:
        final[f"best_{run.monitor}"] = run.best
    return final


def export_tensorboard(run_dir: str | os.PathLike, log_dir: str | os.PathLike | None = None) -> Path:
    """Write the run's metrics per epoch and its settings (the HParams tab) as TensorBoard event files in
    `log_dir` (default: run_dir/tensorboard). `tensorboard --logdir runs` then shows every exported run."""
    run = read_run(run_dir)
    _require("tensorboard", "tensorboard")
    tb = _require("torch.utils.tensorboard", "tensorboard")
    if log_dir is None:  # the run's own folder: an export again replaces the last (TensorBoard showed each
        log_dir = run.path / "tensorboard"  # epoch twice, steps 1, 2, 3, 1, 2, 3)
        for old in log_dir.glob("events.out.tfevents.*") if log_dir.is_dir() else ():
            old.unlink()
    log_dir = Path(log_dir)
    with tb.SummaryWriter(log_dir=str(log_dir)) as writer:
        for row in run.history:
            for name, value in _scalars(row).items():
                writer.add_scalar(name, value, int(row["epoch"]))
        last = int(run.history[-1]["epoch"]) if run.history else 0
        final = _final(run)
        for name, value in final.items():
            writer.add_scalar(name, value, last)
        # run_name='.': the hparams summary goes into log_dir itself, not a timestamped subfolder
        writer.add_hparams(_params(run), {f"hparam/{k}": v for k, v in final.items()}, run_name=".")
    return log_dir


def default_tracking_uri(run_dir: str | os.PathLike) -> str:
    """$MLFLOW_TRACKING_URI, else a SQLite store beside the run folders (runs/mlflow.db): local, and
    MLflow's advised backend (its file store is in maintenance mode since MLflow 3)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(run_dir).resolve().parent / MLFLOW_DB}"


def export_mlflow(run_dir: str | os.PathLike, tracking_uri: str | None = None, experiment: str = "nnrecipe") -> str:
    """Log the run as an MLflow run (named after the run folder) of `experiment`: its settings as
    parameters, its metrics per epoch (step = epoch), the test metrics, the note and git commit as tags.
    Returns the MLflow run id. Each call logs a new MLflow run."""
    run = read_run(run_dir)
    _require("mlflow", "mlflow-skinny")
    entities = _require("mlflow.entities", "mlflow-skinny")
    client_mod = _require("mlflow.tracking", "mlflow-skinny")
    uri = tracking_uri or default_tracking_uri(run.path)
    if uri.startswith("sqlite:"):
        _require("sqlalchemy", "sqlalchemy (MLflow's SQLite store)")
        _require("alembic", "alembic (MLflow's SQLite store)")
    errors = _require("mlflow.exceptions", "mlflow-skinny")
    try:
        client = client_mod.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            # a local store keeps its artifacts beside itself, not in the current folder (MLflow's default); a
            # relative sqlite:///mlflow.db (MLflow's own example) resolved first: as_uri() takes absolute paths only
            local = Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts" \
                if uri.startswith("sqlite:///") else None
            experiment_id = client.create_experiment(experiment, artifact_location=local.as_uri() if local else None)
    except (errors.MlflowException, ValueError, OSError) as e:
        said = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"--tracking-uri {uri}: MLflow cannot use it as a tracking store ({shorten(said, 200)}); "
                          "give one it opens: sqlite:///mlflow.db (a file here) or http://HOST:PORT "
                          "of a running server") from None
    git = run.journal.get("git") or {}
    tags = {"nnrecipe.run_dir": str(run.path.resolve()), "mlflow.note.content": run.note,
            **({"mlflow.source.git.commit": git["commit"]} if git.get("commit") else {})}
    mlrun = client.create_run(experiment_id, run_name=run.id, tags=tags)
    run_id = mlrun.info.run_id
    now = int(time.time() * 1000)
    params = [entities.Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in _params(run).items()]
    last = int(run.history[-1]["epoch"]) if run.history else 0
    metrics = [entities.Metric(k, v, now, int(row["epoch"])) for row in run.history for k, v in _scalars(row).items()]
    metrics += [entities.Metric(k, v, now, last) for k, v in _final(run).items()]
    for i in range(0, len(params), MLFLOW_BATCH):
        client.log_batch(run_id, params=params[i:i + MLFLOW_BATCH])
    for i in range(0, len(metrics), 10 * MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + 10 * MLFLOW_BATCH])
    if run.results:  # a run still training (no results.json yet) stays RUNNING in MLflow
        client.set_terminated(run_id)
    return run_id


EXPORTERS = {"tensorboard": export_tensorboard, "mlflow": export_mlflow}


def export_run(run_dir: str | os.PathLike, to: str) -> str:
    """`nnrecipe export RUN --to tensorboard|mlflow` and `train --export`: where it went (folder or id)."""
    from ..errors import check_choice

    check_choice("--export", to, EXPORTERS)
    return str(EXPORTERS[to](run_dir))
