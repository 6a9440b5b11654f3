"""Every flag whose values include a word for "off" (none, off) works through `main([...])`: it changes what
config.json records, over a --config file that set something else (issue 15: `--balance none` and
`--patience none` were accepted and silently ignored)."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from nnrecipe.cli import DATA_FLAGS
from nnrecipe.config import DataConfig, ModelConfig, TrainConfig
from nnrecipe.io import read_json
from nnrecipe.testing import small_table

SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# a value other than None for each setting that may be None: the --config file sets it, `--flag none` undoes it
SET = {"neutral_label": "maybe", "hidden": [16], "dropout": 0.3, "batch_size": 16, "patience": 5, "swa_start": 1,
       "swa_lr": 0.01, "clip_norm": 1.0, "clip_value": 1.0, "metric": "accuracy", "members": 4, "lr": 0.01,
       "max_tokens": 16, "text_encoder": "minilm"}
RESOLVED = ("hidden", "dropout", "batch_size", "members", "lr")  # None: the rule, whose choice is recorded
# images' settings: on a table they are refused when set (test_image_settings_on_a_table_are_refused); `none`
# leaves them unset, so a table run that a --config file gave one goes on
SET.update(image_size=32, path_column="file", phi=1, backbone="runs/backbone")
SET["teacher"] = "runs/teacher"  # T12: undone by --teacher none before any teacher is read
SET.update(latent=8, unlabelled="runs/unlabelled.csv")  # M13: undone by --latent none, --unlabelled none
SET["surrogate_test"] = "second.csv"  # T15: likewise, before the file is read
SET["adv_step_size"] = 0.01


def optional_settings() -> list[tuple[str, str]]:
    """(section, name) of every setting the train command takes that may be None."""
    found = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if (cls is DataConfig and f.name not in DATA_FLAGS) or f.name == "device":
                continue
            if type(None) in typing.get_args(hints[f.name]):
                found.append((section, f.name))
    return found


def test_every_optional_setting_has_a_value_here():
    assert {name for _, name in optional_settings()} == set(SET)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("none") / "t.csv"
    small_table(80, seed=0).to_csv(path, index=False)
    return path


def train(cli, table, tmp_path, file: dict, *flags: str) -> dict:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(file))
    code, out, err = cli("train", table, "--target", "y", "--epochs", "2", "--config", config, "--out",
                         tmp_path / "runs", "--no-report", *flags)
    assert code == 0 or (code == 1 and "training stopped" not in err), err  # 1: a verdict failed, not an error
    return read_json(next((tmp_path / "runs").iterdir()) / "config.json")


@pytest.mark.parametrize("section,name", optional_settings())
def test_none_undoes_a_setting(cli, table, tmp_path, section, name):
    flag = "--" + name.replace("_", "-")
    recorded = train(cli, table, tmp_path, {section: {name: SET[name]}}, flag, "none")
    if name in RESOLVED:  # None is the rule, and config.json records what the rule chose
        assert recorded[section][name] is not None and recorded[section][name] != SET[name]
    else:
        assert recorded[section][name] is None


def test_image_settings_on_a_table_are_refused(cli, table, tmp_path):
    code, out, err = cli("train", table, "--target", "y", "--image-size", "32", "--phi", "1", "--out", tmp_path)
    assert (code, out) == (2, "") and err == (
        f"nnrecipe: error: --image-size, --phi: image settings, and '{table}' is a table; leave them out (images: a "
        "folder with a subfolder per class, a CSV of image paths, an .npz)\n")


def test_balance_none_is_the_method_none(cli, table, tmp_path):
    recorded = train(cli, table, tmp_path, {"data": {"balance": "weights"}}, "--balance", "none")
    assert recorded["data"]["balance"] == "none" and recorded["head"].startswith("none")


@pytest.mark.parametrize("patience,epochs", [("0", 2), ("none", 4)])
def test_patience_none_trains_every_epoch(cli, table, tmp_path, patience, epochs):
    """With no epoch counting as an improvement after the first (min_delta 1e9), patience 0 stops after
    epoch 2; none trains all 4."""
    train(cli, table, tmp_path, {"train": {"patience": 5}}, "--patience", patience, "--epochs", "4",
          "--min-delta", "1e9")
    run = next((tmp_path / "runs").iterdir())
    assert len((run / "metrics.jsonl").read_text().splitlines()) == epochs
