"""A search killed at seeded random moments (SIGKILL to the command and its worker processes) and run again
ends with exactly its N trials, none run twice, and the retrained best (issue 16); benchmarks/tune_kills.py
is the long version."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nnrecipe.io import read_json
from nnrecipe.testing import run_with_kills, small_table

SPACE = "model:\n  layers: 1\n  units: {int: [8, 32], step: 8}\ntrain:\n  lr: {loguniform: [1.0e-3, 3.0e-2]}\n"
TRIALS = 8


def test_tune_with_two_workers_killed_twice_ends_with_its_trials_once_each(tmp_path: Path):
    csv, space, out = tmp_path / "t.csv", tmp_path / "space.yaml", tmp_path / "studies"
    small_table(200).to_csv(csv, index=False)
    space.write_text(SPACE)
    argv = [sys.executable, "-m", "nnrecipe", "tune", str(csv), "--target", "y", "--trials", str(TRIALS),
            "--workers", "2", "--space", str(space), "--pruner", "none", "--epochs", "5", "--device", "cpu",
            "--out", str(out), "--study", "kills"]
    log = run_with_kills(argv, kills=2, seed=0, low=3.0, high=7.0, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert log[0].startswith("killed after"), log  # a kill landed mid-search (else the test proves nothing)
    trials = optuna.load_study(study_name="kills", storage=f"sqlite:///{(out / 'kills' / 'study.db').resolve()}")\
        .get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == TRIALS, log
    assert len({tuple(sorted(t.params.items())) for t in done}) == TRIALS  # no parameters trained to the end twice
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert all("lost" in t.user_attrs for t in lost)  # only trials a kill interrupted, each queued again
    assert {t.user_attrs.get("retry_of") for t in trials} - {None} <= {t.number for t in lost}
    finished = [p for p in (out / "kills" / "trials").iterdir() if (p / "results.json").is_file()]
    assert len(finished) == TRIALS
    best = [p for p in (out / "kills" / "best").iterdir() if (p / "results.json").is_file()]
    assert len(best) >= 1 and read_json(best[-1] / "config.json")["refit"]["trial"] in {t.number for t in done}
    assert not list(out.rglob(".*.tmp-*"))  # no job file, no half-written file left (a job file is temporary)
