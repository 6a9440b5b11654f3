"""R3: one setting at a time from a base run, over the same seeds, each run naming its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.recipes import train_table
from nnrecipe.testing import small_table
from nnrecipe.io import read_json
from nnrecipe.tune import ablate
from nnrecipe.tune.ablate import parse_vary


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ablate")
    small_table(200).to_csv(folder / "small.csv", index=False)
    return train_table(folder / "small.csv", "y", out=folder / "runs",
                       train_config=TrainConfig(epochs=3, device="cpu")).run_dir


def test_one_setting_varies_and_the_base_is_the_control(base: Path):
    result = ablate(base, parse_vary(["lr=1e-2"]), seeds=2)
    assert [(r["variable"], r["value"], r["seed"], r["control"]) for r in result.rows] == [
        ("lr", 2e-3, 0, True), ("lr", 2e-3, 1, True), ("lr", 1e-2, 0, False), ("lr", 1e-2, 1, False)]  # TabM's rate
    assert result.rows[0]["run_dir"] == str(base)  # the base run is its own seed's control, not trained again
    for row in result.rows[1:]:
        run = Path(row["run_dir"])
        assert run.parent == result.folder
        parent = read_json(run / "journal.json")["parent"]
        assert parent["run"] == base.name
        changed = {"train.lr": [2e-3, row["value"]]} if not row["control"] else {}
        if row["seed"] != 0:
            changed["train.seed"] = [0, row["seed"]]
        assert parent["changed"] == changed
        assert read_json(run / "config.json")["train"]["lr"] == row["value"]
    lines = result.table.splitlines()
    assert lines[0].split() == ["setting", "value", "runs", "val_loss", "(best)", "test", "accuracy"]
    assert lines[1].startswith("lr") and "0.002 (base)" in lines[1] and " 2 " in lines[1] and "+-" in lines[1]
    assert lines[2].split()[:3] == ["lr", "0.01", "2"]
    assert (result.folder / "ablation.txt").read_text() == result.table
    assert len(read_json(result.folder / "ablation.json")["runs"]) == 4


@pytest.mark.parametrize("vary, message", [
    (["lr"], "--vary 'lr': give SETTING=V1,V2, as --vary lr=1e-2,1e-3"),
    (["lrr=1e-2"], "--vary lrr: not a setting that can be varied (did you mean 'lr'?); allowed: "),
    (["seed=1,2"], "--vary seed: not a setting that can be varied"),
    (["dropout=1.5"], "--vary dropout: the value '1.5' is not allowed (dropout=1.5 is not allowed; "
                      "choose a value in [0, 1))"),
    (["batchnorm=maybe"], "--vary batchnorm: batchnorm takes true or false; got 'maybe'"),
])
def test_a_bad_vary_names_the_setting_and_the_fix(base: Path, vary: list[str], message: str):
    with pytest.raises(ConfigError) as e:
        ablate(base, parse_vary(vary))
    assert str(e.value).startswith(message)


def test_a_folder_that_is_no_run_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        ablate(tmp_path, {"lr": [1e-2]})
    assert str(e.value) == (f"ablate {tmp_path}: not a finished run folder (config.json and results.json); give "
                            "a folder that `nnrecipe train` printed")


@pytest.fixture(scope="module")
def refit_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retrained (R2) run, as `tune` leaves in best/: 3 epochs on the training and validation rows."""
    folder = tmp_path_factory.mktemp("ablate-refit")
    small_table(200).to_csv(folder / "small.csv", index=False)
    return train_table(folder / "small.csv", "y", out=folder / "runs", train_config=TrainConfig(device="cpu"),
                       refit={"epochs": 3, "trial": 0}).run_dir


def test_epochs_varied_on_a_retrained_base_are_the_ones_trained(refit_base: Path):
    result = ablate(refit_base, {"epochs": ["6"]})
    run = Path(result.rows[1]["run_dir"])
    config = read_json(run / "config.json")
    assert (config["train"]["epochs"], config["refit"]["epochs"], config["refit"]["trial"]) == (6, 6, 0)
    assert read_json(run / "results.json")["epochs_run"] == 6
    assert read_json(refit_base / "results.json")["epochs_run"] == 3


def test_a_setting_a_retrained_base_fixes_is_refused(refit_base: Path):
    with pytest.raises(ConfigError) as e:
        ablate(refit_base, {"lr": ["1e-2"], "patience": ["5"], "swa_start": ["2"]})
    assert str(e.value) == (
        f"ablate {refit_base}: patience, swa_start cannot be varied on a retrained (R2) base: its variants "
        "retrain for a set number of epochs on the training and validation rows, with no early stopping or "
        "SWA, so the value would not be used; vary them from the search's trial run instead, or vary epochs here")


def test_a_refit_judges_its_epochs_by_the_training_loss_whatever_mode_it_was_given(tmp_path: Path):
    """R2 swaps the monitor for train_loss: a mode recorded for val_accuracy ("max") would pick the epoch
    with the highest training loss and drive ReduceLROnPlateau the wrong way."""
    small_table(200).to_csv(tmp_path / "small.csv", index=False)
    run = train_table(tmp_path / "small.csv", "y", out=tmp_path / "runs", refit={"epochs": 4},
                      train_config=TrainConfig(device="cpu", monitor="val_accuracy", mode="max", schedule="plateau"))
    config, results = read_json(run.run_dir / "config.json"), read_json(run.run_dir / "results.json")
    assert (config["train"]["monitor"], config["train"]["mode"]) == ("train_loss", "auto")
    losses = [row["train_loss"] for row in run.history]
    assert results["best_epoch"] == 1 + losses.index(min(losses))
