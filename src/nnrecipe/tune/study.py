"""R1, R2: a study over a search space with optuna, on a storage that several worker processes (and
machines) share, then the best configuration retrained on train+validation.

The budget of N trials is queued in the storage as N waiting trials when the study is made; a worker
claims one at a time with the storage's atomic WAITING -> RUNNING update and stops when none is left, so
N trials run whatever the number of workers: none lost, none run twice (launches at the same moment
that each queued N withdraw the surplus). A worker that dies leaves its trial RUNNING: the next worker on
its host that finds the process gone (or, on another machine, once the trial's heartbeat is older than
GRACE_S) fails it and queues its parameters again, so a killed study resumes, by running the same
command, with the trials it had left."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from ..config import DataConfig, ModelConfig, TrainConfig, from_dict, monitor_mode, to_dict
from ..errors import ConfigError, NNRecipeError, TrainingError, check_choice
from ..io import alive, read_json, sweep_temp, temp_path, write_json
from .objective import Job, run_trial, worker_name
from .space import SearchSpace, read_space

log = logging.getLogger("nnrecipe")

SAMPLERS = ("random", "tpe")
PRUNERS = ("median", "hyperband", "none")
HEARTBEAT_S = 20  # a running trial's heartbeat period, in seconds
WITHDRAWING = "withdrawing:"  # the worker a trial names while a launch withdraws it as surplus
GRACE_S = 120  # a trial whose heartbeat is older is taken for dead (another machine's worker died)
# optuna's MedianPruner default of 5 start-up trials, and no pruning before epoch 5 (our choice): a trial's
# first epochs say little about where it ends, as curves still cross there (warmup, an lr schedule's start).
# The steps are 1-based epochs and optuna prunes from step == n_warmup_steps: epochs 1-4 are the warmup
MEDIAN_STARTUP_TRIALS, MEDIAN_FIRST_PRUNED_EPOCH = 5, 5


@dataclass
class TuneResult:
    study: str
    storage: str
    study_dir: Path
    metric: str
    direction: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    counts: dict[str, int]  # trials per state: COMPLETE, PRUNED, FAIL, WAITING, ...
    refit: Any = None  # the TableRun of the best configuration retrained on train+validation (R2)
    report: Path | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)


def tune_table(data: str | os.PathLike | pd.DataFrame, target: str, *, trials: int = 20,
               space: str | os.PathLike | SearchSpace | None = None, sampler: Any = "random", pruner: Any = "median",
               storage: str | None = None, study: str | None = None, workers: int = 1, timeout: float | None = None,
               out: str | os.PathLike = "studies", seed: int = 0, data_config: DataConfig | None = None,
               model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
               refit: bool = True, callbacks: tuple[Any, ...] = ()) -> TuneResult:
    """Search `space` (a YAML file, a SearchSpace, or None for the default space) for `trials` trials
    of `train_table` on `data`, with `workers` processes sharing `storage` (default: a SQLite file in
    the study folder `out/<study>`); then retrain the best on train+validation (R2) and write the
    report. Running it again with the same study resumes it. `seed` seeds the sampler (random search
    draws trial k's values from the seed and k alone, whatever the workers); the train config's seed
    makes the split, which all trials share. `timeout`: seconds after which no new trial starts.
    `sampler` and `pruner` also take optuna's objects with one worker (worker processes get their job as
    JSON, which names them). `callbacks` run in the trials of this process (a worker's job holds no code)."""
    import optuna

    for argument, value, names in (("sampler", sampler, SAMPLERS), ("pruner", pruner, PRUNERS)):
        if isinstance(value, str):
            check_choice(argument, value, names)
    for name, value in (("trials", trials), ("workers", workers)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} is not allowed; choose a whole number of 1 or more")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"timeout={timeout!r} is not allowed; give seconds > 0, or none")
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or not 0 <= seed < 2 ** 32:  # numpy raised, a study made
        raise ConfigError(f"seed={seed!r} (--sampler-seed) is not allowed; choose a whole number in [0, 2**32 - 1]")
    if study is not None and (not str(study).strip() or any(c in str(study) for c in "/\\")
                              or str(study).strip() in (".", "..")):
        # '../x' wrote the study outside --out, 'a/b' nested folders, '' fell back to the default name
        raise ConfigError(f"--study {study!r}: a study's name is a folder's name under --out; give one without "
                          "'/' or '\\' (such as kills-2)")
    space = space if isinstance(space, SearchSpace) else read_space(space)
    dcfg = dataclasses.replace(data_config or DataConfig(), target=target)
    tcfg = train_config or TrainConfig()
    space.refuse_given(model_config or ModelConfig(), tcfg)
    if tcfg.cv_folds > 1:  # objective.run_trial: a trial is one model scored on the validation split
        log.warning("cv_folds=%d is not used by a search: each trial and the retrained best train one model",
                    tcfg.cv_folds)
    if tcfg.refit == "on":  # a trial is scored on the validation rows; the best is retrained on them (R2)
        log.warning("refit='on' is not used by a search: each trial trains one network on the training rows, and "
                    "the best is retrained on the training and validation rows (--no-refit: not)")
    metric = _metric(data, dcfg, tcfg)
    direction = "maximize" if monitor_mode(metric) == "max" else "minimize"
    name = study or _study_name(data, target)
    study_dir = Path(out) / name
    study_dir.mkdir(parents=True, exist_ok=True)
    _sweep(study_dir)
    url = storage or f"sqlite:///{(study_dir / 'study.db').resolve()}"
    job = Job(data, target, space, metric, study_dir, dcfg, model_config or ModelConfig(), tcfg, tuple(callbacks))
    # as the storage gives them back (JSON: tuples become lists), so that a resumed study compares them
    settings = json.loads(json.dumps({"target": target, "metric": metric, "space": space.to_dict()["params"],
                                      "data": _data_sha(data), "fixed": _fixed(dcfg, job.model_config, tcfg)},
                                     default=str))  # a Path given through the API: as its text

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial comes from nnrecipe instead
    try:
        the_study = _open_study(url, name, direction, settings, sampler, pruner, seed, tcfg.epochs, 0)
        _top_up(the_study, trials)
        deadline = None if timeout is None else time.time() + timeout
        args = (job, url, name, direction, settings, sampler, pruner, seed, deadline, workers)
        procs = _start_workers(study_dir, args, workers)
        try:
            _work(the_study, job, deadline, workers)
        except BaseException:
            for p in procs:  # their trials are lost with them: a resumed study queues them again
                p.kill()
            raise
        finally:
            codes = [p.wait() for p in procs]
            crashed = [f"worker {i} (exit code {code})" for i, code in enumerate(codes, 1) if code]
            for leftover in (temp_path(study_dir / JOB), temp_path(study_dir / JOB_DATA)):
                leftover.unlink(missing_ok=True)
        if crashed:
            log.warning("%s ended early; this process ran what they left", ", ".join(crashed))
            _work(the_study, job, deadline, workers)  # their trials, now that their processes are reaped
        # the best trial once, for the result, the refit and the report alike: another process's trial that
        # finishes in between (a shared study) cannot make them differ
        result, best = _result(the_study, name, url, study_dir, metric, direction)
        if result.counts.get("WAITING"):
            log.warning("study '%s': %d trials still wait (--timeout); the same command goes on with them",
                        name, result.counts["WAITING"])
        if refit:
            from .refit import refit_best

            result.refit = refit_best(the_study, job, best=best)
        from .report import write_report

        result.report = write_report(the_study, result, best=best)
    finally:
        optuna.logging.set_verbosity(previous)
    return result


def make_sampler(name: Any, seed: int, worker: int = 0) -> Any:
    """random (the default: Bergstra & Bengio 2012, random search beats grid search when few of the
    parameters matter; Rishit Dagli) or TPE (Bergstra et al. 2011), seeded per worker so workers differ."""
    import optuna

    if not isinstance(name, str):
        return name
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed + worker)
    from .sampler import TrialSeededRandomSampler  # imports optuna: here, when a study runs

    return TrialSeededRandomSampler(seed)


def make_pruner(name: Any, epochs: int) -> Any:
    """median: stop a trial whose metric is worse than the median of the earlier trials' at the same
    epoch (optuna's MedianPruner); hyperband (Li et al. 2018) over 1..epochs; none."""
    import optuna

    if not isinstance(name, str):
        return name
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_FIRST_PRUNED_EPOCH)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_storage(url: str) -> Any:
    """optuna's RDBStorage on `url` with heartbeats; SQLite waits up to 60 s for a lock that another
    worker holds (its default, 5 s, is short for several workers writing one file)."""
    import optuna

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # heartbeats are marked experimental in optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S,
                                              grace_period=GRACE_S)
    except ImportError as e:
        raise ConfigError(f"--storage {url}: its database driver is not installed ({e}); for PostgreSQL "
                          "install nnrecipe[tune-postgres] (psycopg 3)") from None
    except Exception as e:  # sqlalchemy's errors: a bad URL, a server that does not answer
        raise ConfigError(f"--storage {url} cannot be opened ({type(e).__name__}: {str(e).splitlines()[0]}); "
                          "give a URL optuna accepts, such as sqlite:///study.db or "
                          "postgresql://user@host/db") from None


def _open_study(url: str, name: str, direction: str, settings: dict[str, Any], sampler: Any, pruner: Any,
                seed: int, epochs: int, worker: int) -> Any:
    """The study, made on first use with the settings recorded; a later run must search the same thing."""
    import optuna

    storage = make_storage(url)
    kwargs = {"storage": storage, "sampler": make_sampler(sampler, seed, worker),
              "pruner": make_pruner(pruner, epochs), "study_name": name}
    try:
        study = optuna.create_study(direction=direction, **kwargs)
        for key, value in settings.items():
            study.set_user_attr(key, value)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**kwargs)
    # (a study made before a setting was recorded is compared on those it has)
    recorded = {k: study.user_attrs.get(k) for k in settings if study.user_attrs.get(k) is not None}
    differ = [k for k in recorded if (_shared(recorded[k], settings[k]) if k == "fixed" else recorded[k] != settings[k])]
    if differ:
        named = [_what_differs(k, recorded[k], settings[k]) for k in differ]
        raise ConfigError(f"study '{name}' in {url} was made with another {'; '.join(named)}; its trials would not "
                          "compare with new ones: resume it with the same data, target, space and settings, or give "
                          "a new --study name")
    return study


def _counted(study: Any) -> list[Any]:
    """The trials that count toward the budget, by number: all but those lost with their worker (queued
    again when found) and those withdrawn as surplus."""
    return [t for t in study.get_trials(deepcopy=False) if not {"lost", "withdrawn"} & t.user_attrs.keys()]


def _top_up(study: Any, trials: int) -> None:
    """Queue waiting trials until the study holds `trials` that count."""
    counted = _counted(study)
    if trials < len(counted):
        log.warning("study '%s' already holds %d trials; --trials %d adds none", study.study_name, len(counted), trials)
    if trials <= len(counted):
        return
    for _ in range(trials - len(counted)):
        study.enqueue_trial({}, skip_if_exists=False)
    _withdraw_surplus(study, trials)


def _withdraw_surplus(study: Any, trials: int) -> None:
    """Launches of one study at the same moment (the same command on several machines) can each count the
    same trials and each queue the difference. Each then withdraws the surplus beyond its budget: the
    highest-numbered fresh trials (a lost trial's retry keeps its parameters), picked by position, so that
    every launch aims at the same ones whatever their state mid-withdrawal. Taking one is the storage's
    atomic WAITING -> RUNNING update, so each is withdrawn once; workers claim the lowest numbers first,
    so the surplus waits behind the budget's trials."""
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001
    counted = _counted(study)
    surplus = [t for t in reversed(counted) if "retry_of" not in t.user_attrs][:max(0, len(counted) - trials)]
    withdrawn = 0
    for trial in surplus:
        if trial.state != TrialState.WAITING or not _take(storage, trial._trial_id, f"{WITHDRAWING}{worker_name()}"):  # noqa: SLF001
            continue  # another launch is withdrawing it (or, rarely, a worker runs it)
        withdrawn += _withdraw(storage, trial._trial_id)  # noqa: SLF001
    if withdrawn:
        log.info("study '%s': %d surplus waiting trials withdrawn (launched twice at once)", study.study_name,
                 withdrawn)


def _withdraw(storage: Any, trial_id: int) -> int:
    """Mark a surplus trial this process took withdrawn (FAIL, out of the counts); 1 when it did."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_user_attr(trial_id, "withdrawn", "queued twice by launches at once")
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        return 1
    except UpdateFinishedTrialError:
        return 0


def _sweep(study_dir: Path) -> None:
    """What killed launches of this study left: their workers' job files and the temporary files of writes
    they were in the middle of (a trial's checkpoint, say), all named as temporary files of their process;
    a process that is still running keeps its own."""
    swept = sweep_temp(study_dir)
    if swept:
        log.info("study folder %s: removed %d files that killed launches left", study_dir, len(swept))


WORKER = ["-m", "nnrecipe.tune.worker"]
JOB, JOB_DATA = "job.json", "job-data.parquet"  # a worker's job, and a DataFrame it trains on  # how a worker process starts: `python -m nnrecipe.tune.worker JOB INDEX`


def _start_workers(study_dir: Path, args: tuple[Any, ...], workers: int) -> list[subprocess.Popen[bytes]]:
    """workers - 1 processes beside this one, each `python -m nnrecipe.tune.worker JOB INDEX`: a fresh
    interpreter (forking after torch started its threads is unsafe, and multiprocessing's spawn would
    import the caller's main script again). JOB is this study's arguments as JSON in the study folder:
    settings and names only, so whoever can write there can change a setting but run no code (a pickle
    there ran whatever it held)."""
    if workers == 1:
        return []
    job_file = temp_path(study_dir / JOB)  # it lives as long as this process: named as its temporary file
    write_json(job_file, _job_document(study_dir, *args))
    return [subprocess.Popen([sys.executable, *WORKER, str(job_file), str(i)]) for i in range(1, workers)]


def _job_document(study_dir: Path, job: Job, url: str, name: str, direction: str, settings: dict[str, Any],
                  sampler: Any, pruner: Any, seed: int, deadline: float | None, workers: int) -> dict[str, Any]:
    """A worker's job as JSON: a DataFrame goes as a Parquet file beside it; the sampler and the pruner by
    their names."""
    if not isinstance(sampler, str) or not isinstance(pruner, str):
        raise ConfigError(f"workers={workers} runs trials in other processes, which get the sampler and the pruner by "
                          f"name: give sampler one of {', '.join(SAMPLERS)} and pruner one of {', '.join(PRUNERS)} "
                          "(optuna objects work with workers=1)")
    if job.callbacks:
        log.warning("the callbacks given run in this process's trials only: a worker's job holds no code")
    data: dict[str, str] = {"file": str(Path(job.data).resolve())} if not isinstance(job.data, pd.DataFrame) else {}
    if isinstance(job.data, pd.DataFrame):
        table = temp_path(study_dir / JOB_DATA)
        try:
            job.data.to_parquet(table)
        except (ValueError, TypeError, ImportError) as e:  # object columns of mixed types
            raise ConfigError(f"workers={workers}: the DataFrame cannot be handed to the worker processes as Parquet "
                              f"({e}); give the table as a file, or workers=1") from None
        data = {"parquet": str(table.resolve())}
    return {"format": "nnrecipe-tune-job", "version": 1, "data": data, "target": job.target,
            "space": job.space.to_dict(), "metric": job.metric, "out": str(job.out),
            "data_config": to_dict(job.data_config), "model_config": to_dict(job.model_config),
            "train_config": to_dict(job.train_config), "url": url, "name": name, "direction": direction,
            "settings": settings, "sampler": sampler, "pruner": pruner, "seed": seed, "deadline": deadline,
            "workers": workers}


def work_from_file(job_file: str, index: int, callbacks: tuple[Any, ...] = ()) -> None:
    """A worker process: its own connection to the storage, its own sampler seed (tune/worker.py). The job
    is read as JSON (no code is loaded with it); `callbacks` for its trials come from the process that
    starts it, not from the file."""
    import optuna

    doc = read_json(job_file)
    if not isinstance(doc, dict) or doc.get("format") != "nnrecipe-tune-job":
        raise ConfigError(f"'{job_file}' is not a worker's job of nnrecipe tune")
    data = doc["data"]
    table = pd.read_parquet(data["parquet"]) if "parquet" in data else data["file"]
    job = Job(table, doc["target"], SearchSpace.from_dict(doc["space"]), doc["metric"], Path(doc["out"]),
              from_dict(DataConfig, doc["data_config"]), from_dict(ModelConfig, doc["model_config"]),
              from_dict(TrainConfig, doc["train_config"]), tuple(callbacks))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_study(doc["url"], doc["name"], doc["direction"], doc["settings"], doc["sampler"], doc["pruner"],
                        doc["seed"], job.train_config.epochs, index)
    _work(study, job, doc["deadline"], doc["workers"])


def _work(study: Any, job: Job, deadline: float | None, workers: int) -> None:
    """Claim waiting trials one at a time and run them until none is left or the deadline passed."""
    import optuna
    import torch

    from optuna.trial import TrialState

    # the workers of one machine share its cores (the tests' 1 thread stays when it is fewer)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // workers)))
    storage = study._storage  # noqa: SLF001 (the claim and the heartbeat are storage operations)
    while deadline is None or time.time() < deadline:
        _reclaim(study)
        trial_id = _claim(study)
        if trial_id is None:
            return
        storage.record_heartbeat(trial_id)
        trial = optuna.Trial(study, trial_id)
        stop = threading.Event()
        beat = threading.Thread(target=_beat, args=(storage, trial_id, stop), daemon=True)
        beat.start()
        try:
            value = run_trial(job, trial)
        except optuna.TrialPruned as e:
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned (%s)", trial.number, e)
        except NNRecipeError as e:  # a configuration that cannot train (a diverging rate): a failed trial
            trial.set_user_attr("error", str(e))
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, e)
        except (KeyboardInterrupt, SystemExit, OSError) as e:  # stopped, not failed: a resume runs it again
            # (a full disk or a lost mount is the machine's failure, not the configuration's: as a kill)
            if _requeue(study, trial._trial_id, trial.number, trial.params, f"interrupted ({type(e).__name__})"):  # noqa: SLF001
                log.warning("trial %d was interrupted: its parameters are queued again", trial.number)
            raise
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
            log.info("trial %d: %s %.4f %s", trial.number, job.metric, value, trial.params)
        finally:
            stop.set()
            beat.join()


def _beat(storage: Any, trial_id: int, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        storage.record_heartbeat(trial_id)


def _claim(study: Any) -> int | None:
    """A waiting trial's id, set RUNNING by this worker; None when none is waiting. The storage's
    update refuses a trial that is no longer waiting (optuna's own queue does the same in Study.ask,
    which would then make a new trial: here the budget stays the queue's)."""
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if _take(storage, trial._trial_id, worker_name()):  # noqa: SLF001
            return trial._trial_id  # noqa: SLF001
    return None


def _take(storage: Any, trial_id: int, worker: str) -> bool:
    """Set a waiting trial RUNNING, by `worker`; False when another process took it first. On SQLite (the
    lock file makes the check and the writes one step) the worker is named before the trial runs, so a
    process killed between the steps leaves a RUNNING trial that names it, which _reclaim finds at once.
    On a database server, whose row locks cover one statement, naming a trial that another process may be
    taking could rename a running trial: there the worker is named once the take succeeded, and a trial a
    kill left nameless is found once it is older than the heartbeat's grace."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        with _exclusive(storage) as locked:
            if locked:
                if storage.get_trial(trial_id).state != TrialState.WAITING:
                    return False
                storage.set_trial_user_attr(trial_id, "worker", worker)
            taken = bool(storage.set_trial_state_values(trial_id, state=TrialState.RUNNING))
            if taken and not locked:
                storage.set_trial_user_attr(trial_id, "worker", worker)
            return taken
    except UpdateFinishedTrialError:
        return False


@contextlib.contextmanager
def _exclusive(storage: Any) -> Iterator[bool]:
    """Make a trial's check-then-write one step between the processes sharing a SQLite study. optuna reads
    the trial's state with SELECT ... FOR UPDATE, which locks the row on PostgreSQL and MySQL; SQLite has
    no row locks and pysqlite starts the transaction only at the write, so two processes can both read
    WAITING and both take the trial (here 10 of 300 trials, two processes claiming in a loop). A lock file
    beside the database serializes them: a SQLite study lives on one machine's disk."""
    url = str(getattr(getattr(storage, "_backend", storage), "url", ""))  # optuna wraps its RDBStorage in a cache
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if path is None or fcntl is None:  # another database, an in-memory SQLite, or no flock (Windows)
        yield False
        return
    with open(path + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _reclaim(study: Any) -> None:
    """Fail the running trials whose worker is gone and queue their parameters again, once each: the
    storage lets one process only move a trial out of RUNNING. Gone: a worker of this host whose process
    has ended, or any worker whose heartbeat is older than GRACE_S."""
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001
    host = os.uname().nodename
    stale = set(storage._get_stale_trial_ids(study._study_id))  # noqa: SLF001 (optuna's heartbeat check)
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker", "")
        withdrawing = worker.startswith(WITHDRAWING)
        where, _, pid = worker.removeprefix(WITHDRAWING).rpartition(":")
        # a trial that names no worker (taken by an older nnrecipe, killed before it named one): gone when
        # it has been running for longer than the heartbeat's grace
        nameless = not worker and trial.datetime_start is not None and \
            (now - trial.datetime_start).total_seconds() > GRACE_S
        if trial._trial_id not in stale and not nameless and \
                not (where == host and pid.isdigit() and not alive(int(pid))):  # noqa: SLF001
            continue
        if withdrawing:  # a launch killed while withdrawing a surplus trial: finish the withdrawal
            _withdraw(storage, trial._trial_id)  # noqa: SLF001
        elif _requeue(study, trial._trial_id, trial.number, trial.params, f"worker {worker or '?'} is gone"):  # noqa: SLF001
            log.warning("trial %d was left running by worker %s, which is gone: its parameters are queued again",
                        trial.number, worker or "?")


def _requeue(study: Any, trial_id: int, number: int, params: dict[str, Any], why: str) -> bool:
    """A running trial that will not finish, marked lost (FAIL, with why) and its parameters queued again,
    so the study still runs its N trials; False when another process moved the trial first."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001
    try:
        with _exclusive(storage):  # two workers finding the same lost trial: one queues it again
            storage.set_trial_user_attr(trial_id, "lost", why)
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                return False
    except UpdateFinishedTrialError:
        return False  # another worker got there first
    study.enqueue_trial(params, user_attrs={"retry_of": number}, skip_if_exists=False)
    return True


def _metric(data: str | os.PathLike | pd.DataFrame, dcfg: DataConfig, tcfg: TrainConfig) -> str:
    """The validation metric the study optimizes: --metric when given (checked against the table's task),
    else the headline metric of a run: accuracy for classes, RMSE for regression. Reading the table here
    also fails early on bad data, before any worker."""
    from ..data.prepare import prepare_table
    from ..recipes import headline_metric
    from ..tasks import get_metric

    prep, _ = prepare_table(data, dcfg, tcfg.seed)
    if tcfg.metric is not None:
        get_metric(tcfg.metric, prep.task)
        return f"val_{tcfg.metric}"
    return "val_" + headline_metric(prep.task)


def _data_sha(data: str | os.PathLike | pd.DataFrame) -> str | None:
    """The content hash of the data a study searches on (a file's bytes, a DataFrame's rows)."""
    from ..data.cache import data_fingerprint

    if not isinstance(data, pd.DataFrame) and not Path(data).is_file():
        return None  # a folder (text files): its reader names what is wrong with it
    return data_fingerprint(data, 0, ())["sha256"]


# settings that may change between the launches of one study: where it runs, not what it trains
MACHINE = ("device", "precision", "deterministic", "checkpoint_every")


def _fixed(dcfg: DataConfig, mcfg: ModelConfig, tcfg: TrainConfig) -> dict[str, Any]:
    """The settings every trial shares (the searched ones vary on top of them), as the study records them."""
    return {section: {k: v for k, v in to_dict(cfg).items() if k not in MACHINE}
            for section, cfg in (("data", dcfg), ("model", mcfg), ("train", tcfg))}


def _shared(then: Any, now: Any) -> bool:
    """Whether two records of `fixed` differ in a setting both hold (a release that adds a setting would
    otherwise refuse every study made before it)."""
    if not isinstance(then, dict) or not isinstance(now, dict):
        return then != now
    return any(then[s].get(k) != now[s][k] for s in now if isinstance(then.get(s), dict)
               for k in now[s] if k in then[s])


def _what_differs(key: str, then: Any, now: Any) -> str:
    if key == "data":
        return f"data (content {str(then)[:12]} then, {str(now)[:12]} now)"
    if key == "fixed" and isinstance(then, dict) and isinstance(now, dict):
        changed = [f"{s}.{k}: {then.get(s, {}).get(k)!r} then, {now.get(s, {}).get(k)!r} now" for s in now
                   for k in sorted(now[s]) if k in then.get(s, {}) and then[s][k] != now[s][k]]
        return "settings (" + "; ".join(changed[:6]) + ")"
    return key


def _study_name(data: str | os.PathLike | pd.DataFrame, target: str) -> str:
    stem = "table" if isinstance(data, pd.DataFrame) else Path(data).stem
    return f"{stem}-{target}"


def best_trial(study: Any, trials: list[Any] | None = None) -> Any:
    """The best completed trial by the study's score; among trials tied on it (val_accuracy reaches 1.0 on
    breast cancer's 86 validation rows in most trials), the lowest validation loss at the same epoch, then
    the earliest. optuna's own study.best_trial takes the first of the tied. `trials`: the study's trials
    as already read (default: read them now)."""
    from optuna.trial import TrialState

    done = (study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trials is None
            else [t for t in trials if t.state == TrialState.COMPLETE])
    top = min(t.value for t in done) if study.direction.name == "MINIMIZE" else max(t.value for t in done)
    return min((t for t in done if t.value == top),
               key=lambda t: (t.user_attrs.get("val_loss", float("inf")), t.number))


def _result(study: Any, name: str, url: str, study_dir: Path, metric: str, direction: str) -> tuple[TuneResult, Any]:
    """The study's result, and its best trial (a FrozenTrial), from one reading of its trials."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if "withdrawn" not in t.user_attrs]  # never ran
    counts: dict[str, int] = dict(Counter(t.state.name for t in trials))  # in the order the states first appear
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise TrainingError(f"study '{name}' has no completed trial ({counts}); see the trials' run folders "
                            f"in {study_dir / 'trials'}, or run it again to go on")
    best = best_trial(study, trials)
    rows = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             **{k: t.user_attrs.get(k) for k in ("best_epoch", "epochs_run", "run_dir", "retry_of", "lost", "error")}}
            for t in trials]
    return TuneResult(name, url, study_dir, metric, direction, best.number, float(best.value), dict(best.params),
                      counts, trials=rows), best
