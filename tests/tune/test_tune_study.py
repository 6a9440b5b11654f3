"""Studies on a real storage: two worker processes share one study (SQLite; PostgreSQL when
NNRECIPE_TEST_POSTGRES names a server: .ci/run starts one), a killed study resumes, pruning stops a
planted bad curve, the best is retrained on train+validation (R2) and predicts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nnrecipe.config import TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.recipes import predict_table
from nnrecipe.testing import small_table
from nnrecipe.tune import PruningCallback, make_pruner, tune_table
from nnrecipe.io import read_json

from .scripted import EpochsRun, InterruptAtFit, PlantedCurve, WaitForWorkers

TESTS = Path(__file__).resolve().parents[1]
TINY = TrainConfig(epochs=4, device="cpu")
# a continuous rate: every trial's parameters differ, so a trial run twice would show
SPACE = "model:\n  layers: 1\n  units: {int: [8, 32], step: 8}\ntrain:\n  lr: {loguniform: [1.0e-3, 3.0e-2]}\n"


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, Path]:
    """(the CSV, the space file)."""
    csv, space = tmp_path / "small.csv", tmp_path / "space.yaml"
    small_table(200).to_csv(csv, index=False)
    space.write_text(SPACE)
    return csv, space


@pytest.fixture
def workers_import_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes started as the tests' worker script, which adds WaitForWorkers to its trials (a job
    file carries no code: a study's own callbacks stay in its process)."""
    monkeypatch.setattr("nnrecipe.tune.study.WORKER", [str(TESTS / "tune" / "worker_with_callbacks.py")])


def _trials(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _two_workers_share_one_study(table: tuple[Path, Path], out: Path, url: str, storage: str | None) -> None:
    csv, space = table
    name = f"two-{uuid.uuid4().hex[:8]}"
    result = tune_table(csv, "y", trials=4, space=space, pruner="none", workers=2, out=out, study=name,
                        storage=storage, train_config=TINY, callbacks=(WaitForWorkers(url.format(name=name), name),))
    trials = _trials(name, url.format(name=name))
    assert sorted(t.number for t in trials) == list(range(4))  # none lost, none extra
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # the trials' parameters are distinct
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    runs = {t.user_attrs["run_dir"] for t in trials}
    assert len(runs) == 4 and all((Path(r) / "model.safetensors").is_file() for r in runs)
    assert not any((Path(r) / "audit.json").exists() for r in runs)  # the audit is the retrained best's
    # a trial run twice would leave a fifth run folder (its params, drawn from its number, would match)
    assert len([p for p in (out / name / "trials").iterdir() if p.is_dir()]) == 4
    assert result.counts == {"COMPLETE": 4}
    # the best score; among trials tied on it, the lowest validation loss (then the earliest)
    top = max(t.value for t in trials)
    best = min((t for t in trials if t.value == top), key=lambda t: (t.user_attrs["val_loss"], t.number))
    assert (result.best_trial, result.best_params) == (best.number, best.params)

    # R2: the best retrained on train+validation for its best epoch count, a normal run that predicts
    refit = result.refit.run_dir
    config, results = read_json(refit / "config.json"), read_json(refit / "results.json")
    assert config["refit"]["epochs"] == best.user_attrs["best_epoch"] == results["epochs_run"]
    assert config["refit"]["trial"] == best.number and config["model"]["hidden"] == [best.params["units"]]
    trial_rows = read_json(Path(best.user_attrs["run_dir"]) / "results.json")["rows"]
    assert results["rows"]["train"] == trial_rows["train"] + trial_rows["val"]
    assert (refit / "audit.json").is_file() and read_json(refit / "checks.json")  # audit and doctor ran here
    preds, report = predict_table(refit, small_table(200))
    assert len(preds) == 200 and report["accuracy"] > 0.6

    page = result.report.read_text()
    for part in ("<h2>trials</h2>", "<h2>parameter importances</h2>", "data:image/png;base64,",
                 f"{result.refit.test['accuracy']:.4f}", f"{result.best_value:.4f}"):
        assert part in page
    assert read_json(out / name / "study.json")["refit"]["test"] == result.refit.test


def test_two_workers_share_one_sqlite_study(table, tmp_path: Path, workers_import_tests):
    out = tmp_path / "studies"
    url = f"sqlite:///{out.resolve()}/{{name}}/study.db"  # the default storage: a file in the study folder
    _two_workers_share_one_study(table, out, url, storage=None)


@pytest.mark.skipif(not os.environ.get("NNRECIPE_TEST_POSTGRES"),
                    reason="no PostgreSQL server: NNRECIPE_TEST_POSTGRES is unset (`eval \"$(scripts/postgres.sh "
                           "start)\"` starts one; .ci/run does)")
def test_two_workers_share_one_postgresql_study(table, tmp_path: Path, workers_import_tests):
    url = os.environ["NNRECIPE_TEST_POSTGRES"]
    _two_workers_share_one_study(table, tmp_path / "studies", url, storage=url)


def test_a_killed_study_resumes_and_runs_the_trials_it_had_left(table, tmp_path: Path):
    csv, space = table
    out, marker = tmp_path / "studies", tmp_path / "blocked"
    url = f"sqlite:///{(out / 'kill' / 'study.db').resolve()}"
    script = (f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
              "import torch; torch.set_num_threads(1)\n"
              "from nnrecipe.config import TrainConfig\nfrom nnrecipe.tune import tune_table\n"
              "from tune.scripted import BlockAtFit\n"
              f"tune_table({str(csv)!r}, 'y', trials=4, space={str(space)!r}, pruner='none', out={str(out)!r}, "
              f"study='kill', train_config=TrainConfig(epochs=4, device='cpu'), refit=False, "
              f"callbacks=(BlockAtFit(2, {str(marker)!r}),))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # waits for the worker's state, bounded: no timing is asserted
        assert marker.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no marker"
        # mid-way, as the storage has it: one trial done, the second running, two waiting
        assert [t.state for t in _trials("kill", url)] == [TrialState.COMPLETE, TrialState.RUNNING] + \
            [TrialState.WAITING] * 2
    finally:
        proc.kill()
        proc.wait()

    result = tune_table(csv, "y", trials=4, space=space, pruner="none", out=out, study="kill", train_config=TINY)
    trials = _trials("kill", url)
    lost = trials[1]
    assert lost.state == TrialState.FAIL and lost.user_attrs["lost"].startswith("worker ")
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == lost.params and retry[0].state == TrialState.COMPLETE
    assert [t.number for t in trials if t.state == TrialState.COMPLETE] == [0, 2, 3, 4]
    assert result.counts == {"COMPLETE": 4, "FAIL": 1} and result.refit is not None



@pytest.mark.parametrize("at_end", [False, True], ids=["at-the-start", "after-the-last-epoch"])
def test_an_interrupted_study_queues_the_trial_again_and_a_resume_runs_all_trials(table, tmp_path: Path,
                                                                                    at_end: bool):
    # Ctrl-C in trial 1: the trial is lost, not failed, and its parameters are queued again; the retry goes
    # on in the lost trial's folder (from its checkpoint after the last epoch: no epoch trained again)
    csv, space = table
    out = tmp_path / "studies"
    with pytest.raises(KeyboardInterrupt):
        tune_table(csv, "y", trials=4, space=space, pruner="none", out=out, study="ctrl-c", train_config=TINY,
                   refit=False, callbacks=(InterruptAtFit(2, at_end),))
    epochs = EpochsRun()
    result = tune_table(csv, "y", trials=4, space=space, pruner="none", out=out, study="ctrl-c",
                        train_config=TINY, refit=False, callbacks=(epochs,))
    trials = _trials("ctrl-c", f"sqlite:///{(out / 'ctrl-c' / 'study.db').resolve()}")
    lost = trials[1]
    assert lost.state == TrialState.FAIL and lost.user_attrs["lost"] == "interrupted (KeyboardInterrupt)"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retry) == 1 and retry[0].params == lost.params and retry[0].state == TrialState.COMPLETE
    assert result.counts == {"COMPLETE": 4, "FAIL": 1}
    assert retry[0].user_attrs["run_dir"] == lost.user_attrs["run_dir"]
    assert len(list((out / "ctrl-c" / "trials").iterdir())) == 4  # one folder per parameters
    # the resumed study trained trials 2 and 3 (4 epochs each, no early stop in 4) and the retry: all of
    # it when it was stopped at its start, none when its last epoch had been checkpointed
    assert epochs.epochs == 2 * TINY.epochs + (0 if at_end else TINY.epochs)


class _Trainer:
    stop_training = False


def test_the_median_pruner_stops_a_planted_bad_curve_and_not_a_good_one():
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", epochs=10))
    good, bad = [0.5 + 0.04 * e for e in range(10)], [0.1] * 10

    def run(curve: list[float]) -> int | None:
        trial, trainer = study.ask(), _Trainer()
        callback = PruningCallback(trial, "val_accuracy")
        for epoch, value in enumerate(curve, 1):
            callback.on_epoch_end(trainer, {"epoch": epoch, "val_accuracy": value})
            if trainer.stop_training:
                break
        study.tell(trial, curve[-1] if callback.pruned_at is None else None,
                   state=TrialState.COMPLETE if callback.pruned_at is None else TrialState.PRUNED)
        return callback.pruned_at

    assert [run(good) for _ in range(5)] == [None] * 5  # optuna's 5 start-up trials are never pruned
    assert run(bad) == 5  # at the first epoch after the warmup (epochs 1-4 say little)
    assert run(good) is None


def test_a_trial_with_a_bad_validation_curve_is_pruned_in_a_study(table, tmp_path: Path):
    csv, space = table
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)  # the default's rule, sooner
    result = tune_table(csv, "y", trials=4, space=space, pruner=pruner, out=tmp_path, study="prune",
                        train_config=TrainConfig(epochs=4, device="cpu", patience=None), refit=False,
                        callbacks=(PlantedCurve(bad={3}),))
    trials = _trials("prune", f"sqlite:///{(tmp_path / 'prune' / 'study.db').resolve()}")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert max(trials[2].intermediate_values) == 2 and trials[2].user_attrs["epochs_run"] == 2
    assert result.counts == {"COMPLETE": 3, "PRUNED": 1}


def test_tune_refuses_bad_arguments_with_the_fix(table, tmp_path: Path):
    csv, space = table
    with pytest.raises(ConfigError) as e:
        tune_table(csv, "y", sampler="grid", out=tmp_path)
    assert str(e.value) == "sampler='grid' is not allowed; choose one of: random, tpe"
    with pytest.raises(ConfigError) as e:
        tune_table(csv, "y", workers=0, out=tmp_path)
    assert str(e.value) == "workers=0 is not allowed; choose a whole number of 1 or more"
    with pytest.raises(ConfigError, match=r"^--storage mysql://nobody@127.0.0.1:1/x cannot be opened|"
                                          r"^--storage mysql://nobody@127.0.0.1:1/x: its database driver"):
        tune_table(csv, "y", trials=1, space=space, storage="mysql://nobody@127.0.0.1:1/x", out=tmp_path)


def test_a_study_resumed_with_another_space_is_refused(table, tmp_path: Path):
    csv, space = table
    tune_table(csv, "y", trials=1, space=space, out=tmp_path, study="s", train_config=TINY, refit=False)
    other = tmp_path / "other.yaml"
    other.write_text(SPACE.replace("[8, 32]", "[8, 64]"))
    with pytest.raises(ConfigError) as e:
        tune_table(csv, "y", trials=1, space=other, out=tmp_path, study="s", train_config=TINY, refit=False)
    assert str(e.value) == (f"study 's' in sqlite:///{(tmp_path / 's' / 'study.db').resolve()} was made with "
                            "another space; its trials would not compare with new ones: resume it with the same data, "
                            "target, space and settings, or give a new --study name")
    # another setting every trial shares, or other data (the file changed): refused as well, each named
    with pytest.raises(ConfigError, match=r"another settings \(train.epochs: 4 then, 5 now\)"):
        tune_table(csv, "y", trials=1, space=space, out=tmp_path, study="s", refit=False,
                   train_config=TrainConfig(epochs=5, device="cpu"))
    pd.read_csv(csv).assign(y=lambda d: d["y"][::-1].to_numpy()).to_csv(tmp_path / "changed.csv", index=False)
    csv.write_bytes((tmp_path / "changed.csv").read_bytes())
    with pytest.raises(ConfigError, match=r"was made with another data \(content [0-9a-f]{12} then, [0-9a-f]{12} now\)"):
        tune_table(csv, "y", trials=1, space=space, out=tmp_path, study="s", train_config=TINY, refit=False)


def test_the_refit_keeps_its_trials_batch_size(tmp_path: Path):
    """4,900 rows: the trial's 3,430 training rows size TabM's batch of 64 (under 4,000 rows); the
    refit's 4,165 training and validation rows would size 256, and the trial's epoch count is for 64."""
    csv, space = tmp_path / "rows.csv", tmp_path / "space.yaml"
    small_table(4900).to_csv(csv, index=False)
    space.write_text(SPACE)
    result = tune_table(csv, "y", trials=1, space=space, pruner="none", out=tmp_path / "studies",
                        train_config=TrainConfig(epochs=1, device="cpu"))
    refit = read_json(result.refit.run_dir / "config.json")
    trial = read_json(Path(refit["refit"]["trial_run"]) / "config.json")
    assert trial["train"]["batch_size"] == refit["train"]["batch_size"] == 64
    # recorded on the trial too: on a shared study its folder may be on another machine
    stored = optuna.load_study(study_name=result.study, storage=result.storage).trials[0]
    assert stored.user_attrs["batch_size"] == 64
    assert read_json(result.refit.run_dir / "results.json")["rows"]["train"] == 4165


def test_two_launches_at_once_run_the_budget_once(table, tmp_path: Path):
    """The same command started on two machines at once: both counted an empty study and each queued 4
    trials (8 waiting, and a lost trial's retry). Each launch withdraws the surplus beyond its budget; the
    second finds nothing left to withdraw; 4 fresh trials and the retry run, as one launch would have."""
    from nnrecipe.tune.study import _withdraw_surplus

    csv, space = table
    url = f"sqlite:///{(tmp_path / 'race' / 'study.db').resolve()}"
    (tmp_path / "race").mkdir()
    study = optuna.create_study(study_name="race", storage=url, direction="maximize")
    for _ in range(8):
        study.enqueue_trial({}, skip_if_exists=False)
    study.enqueue_trial({"layers": 1, "units": 16, "lr": 0.01}, user_attrs={"retry_of": 99}, skip_if_exists=False)
    _withdraw_surplus(study, 5)  # launch A (its 4 fresh trials and the retry)
    _withdraw_surplus(study, 5)  # launch B, a moment later
    trials = _trials("race", url)
    assert [(t.number, t.state.name, t.user_attrs.get("withdrawn")) for t in trials] == [
        *[(n, "WAITING", None) for n in range(4)],
        *[(n, "FAIL", "queued twice by launches at once") for n in range(4, 8)], (8, "WAITING", None)]

    result = tune_table(csv, "y", trials=5, space=space, pruner="none", out=tmp_path, study="race", storage=url,
                        train_config=TINY, refit=False)
    assert result.counts == {"COMPLETE": 5}  # the withdrawn trials never ran and are not counted
    assert [t["number"] for t in result.trials] == [0, 1, 2, 3, 8]
    assert [t.state.name for t in _trials("race", url)].count("COMPLETE") == 5


def test_a_launch_that_counted_before_another_queued_withdraws_its_surplus(tmp_path: Path, monkeypatch):
    """Launch B counted the study before launch A's 4 trials were queued (a stale first count): B queues 4
    more, then withdraws them, so 4 wait."""
    from nnrecipe.tune import study as study_module

    study = optuna.create_study(study_name="race", storage=f"sqlite:///{tmp_path / 'study.db'}")
    for _ in range(4):  # launch A's
        study.enqueue_trial({}, skip_if_exists=False)
    counted, calls = study_module._counted, []

    def stale_first(s: optuna.Study) -> list[optuna.trial.FrozenTrial]:  # B's first count saw none of A's
        calls.append(s)
        return [] if len(calls) == 1 else counted(s)

    monkeypatch.setattr(study_module, "_counted", stale_first)
    study_module._top_up(study, 4)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["WAITING"] * 4 + ["FAIL"] * 4


def test_a_launch_reading_the_study_mid_withdrawal_aims_at_the_same_trials(tmp_path: Path):
    """Launch A has taken trial 7 to withdraw it when launch B reads the study: B picks the surplus by
    position (7, 6, 5, 4), so between them they withdraw 4 and the budget's 4 wait."""
    from nnrecipe.tune.study import _take, _withdraw_surplus

    study = optuna.create_study(study_name="race", storage=f"sqlite:///{tmp_path / 'study.db'}")
    for _ in range(8):
        study.enqueue_trial({}, skip_if_exists=False)
    storage, seventh = study._storage, study.trials[7]._trial_id
    assert _take(storage, seventh, "withdrawing:host:1")  # A, mid-withdrawal
    _withdraw_surplus(study, 4)  # B
    storage.set_trial_user_attr(seventh, "withdrawn", "queued twice by launches at once")  # A goes on
    storage.set_trial_state_values(seventh, state=TrialState.FAIL)
    _withdraw_surplus(study, 4)  # A's pass over the rest: nothing left
    assert [t.state.name for t in study.get_trials()] == ["WAITING"] * 4 + ["FAIL"] * 4


CLAIM_LOOP = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from nnrecipe.tune.study import _claim, make_storage
study = optuna.load_study(study_name="claims", storage=make_storage(sys.argv[1]))
got = []
while (trial_id := _claim(study)) is not None:
    got.append(trial_id)
print(" ".join(map(str, got)))
"""


def test_two_processes_claiming_from_one_sqlite_study_never_take_the_same_trial(tmp_path: Path):
    """SQLite has no row locks: without the lock file two processes claiming in a loop took the same trial
    (10 of 300 here). Each of the 100 is taken once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="claims", storage=url)
    for _ in range(100):
        study.enqueue_trial({}, skip_if_exists=False)
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_LOOP, url], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    taken = [int(t) for p in procs for t in p.communicate()[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(taken) == sorted(t._trial_id for t in study.get_trials())  # each once, none left


def test_a_trial_taken_by_a_process_killed_before_it_ran_is_found_and_run_again(tmp_path: Path):
    """A claim names its worker before the trial is RUNNING: a kill between the claim and the trial's first
    line leaves a RUNNING trial naming a process that is gone, which the next launch queues again (a trial
    that named nobody stayed RUNNING for ever, and the study ended a trial short)."""
    from nnrecipe.tune.study import _reclaim, _take, make_storage

    study = optuna.create_study(study_name="killed", storage=make_storage(f"sqlite:///{tmp_path / 'study.db'}"))
    for _ in range(2):
        study.enqueue_trial({}, skip_if_exists=False)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = os.uname().nodename
    assert _take(study._storage, study.trials[0]._trial_id, f"{host}:{gone.pid}")  # then the kill
    assert _take(study._storage, study.trials[1]._trial_id, f"withdrawing:{host}:{gone.pid}")  # a withdrawal, killed
    _reclaim(study)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "WAITING"]
    assert trials[0].user_attrs["lost"] == f"worker {host}:{gone.pid} is gone" and trials[2].user_attrs["retry_of"] == 0
    assert "withdrawn" in trials[1].user_attrs  # a withdrawal is finished, not queued again


def test_a_claim_that_loses_the_race_leaves_the_running_trial_as_it_was(tmp_path: Path):
    """A worker walking a stale list of waiting trials tries to take one another worker runs: the trial keeps
    its runner's name (renamed, a later _reclaim would have failed the live trial and queued it again)."""
    from nnrecipe.tune.study import _take, make_storage

    study = optuna.create_study(study_name="race", storage=make_storage(f"sqlite:///{tmp_path / 'study.db'}"))
    study.enqueue_trial({}, skip_if_exists=False)
    trial_id = study.trials[0]._trial_id
    assert _take(study._storage, trial_id, "host:1")
    assert not _take(study._storage, trial_id, "host:2")
    [trial] = study.get_trials()
    assert trial.state == TrialState.RUNNING and trial.user_attrs == {"worker": "host:1"}


def test_a_pruned_trial_stays_pruned_through_a_resume():
    # the pruning callback's verdict rides in the checkpoint: a retry that resumes a pruned trial's folder
    # (its worker killed before the study heard) tells the study it was pruned, not complete
    pruned = PruningCallback(trial=None, metric="val_accuracy")
    pruned.pruned_at = 3
    again = PruningCallback(trial=None, metric="val_accuracy")
    again.load_state_dict(pruned.state_dict())
    assert again.pruned_at == 3
