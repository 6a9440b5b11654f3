"""A lost trial's retry goes on in the folder where the parameters trained, even when the retry before it was
lost too before its own training began there (a kill in the moments a resume takes to start)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
from optuna.trial import TrialState, create_trial

from nnrecipe.tune.objective import lost_run


def _study(tmp_path: Path, folder_of_first: bool) -> optuna.Study:
    folder = tmp_path / "trials" / "run-of-trial-0"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    study = optuna.create_study()
    first = {"lost": "its worker is gone"} | ({"run_dir": str(folder)} if folder_of_first else {})
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=first))
    # its retry, lost before RunFolder recorded a folder for it; then a fresh trial beside them
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"retry_of": 0, "lost": "its worker is gone"}))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={"run_dir": str(tmp_path)}))
    return study


def test_the_retry_of_a_lost_retry_resumes_the_first_trials_folder(tmp_path):
    study = _study(tmp_path, folder_of_first=True)
    second_retry = SimpleNamespace(study=study, user_attrs={"retry_of": 1})
    assert lost_run(second_retry) == tmp_path / "trials" / "run-of-trial-0"
    assert lost_run(SimpleNamespace(study=study, user_attrs={"retry_of": 0})) == tmp_path / "trials" / "run-of-trial-0"


def test_a_chain_with_no_folder_and_a_fresh_trial_resume_nothing(tmp_path):
    study = _study(tmp_path, folder_of_first=False)
    assert lost_run(SimpleNamespace(study=study, user_attrs={"retry_of": 1})) is None
    assert lost_run(SimpleNamespace(study=study, user_attrs={})) is None
    assert lost_run(SimpleNamespace(study=study, user_attrs={"retry_of": 7})) is None  # not in the study
