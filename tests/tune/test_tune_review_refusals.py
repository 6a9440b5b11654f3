"""What a review of tune and ablate found accepted without a word or raising deep inside: a sampler seed
numpy refuses (a study half made), a study name that leaves --out, an ablation whose data changed since
the base run, a --vary repeated or holding one value twice, and a setting named under a section that lacks
it (a KeyError)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.testing import small_table
from nnrecipe.tune import tune_table
from nnrecipe.tune.ablate import _same_data_as, _values, parse_vary


@pytest.mark.parametrize("seed", [-1, 2 ** 32, 1.5])
def test_a_sampler_seed_out_of_range_is_refused_before_a_study_is_made(tmp_path, seed):
    small_table(50).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError, match=r"\(--sampler-seed\) is not allowed; choose a whole number in \[0, 2\*\*32 - 1\]"):
        tune_table(tmp_path / "t.csv", "y", seed=seed, out=tmp_path / "studies")
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "..", "a\\b"])
def test_a_study_name_that_is_not_one_folder_is_refused(tmp_path, name):
    small_table(50).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ConfigError, match="a study's name is a folder's name under --out"):
        tune_table(tmp_path / "t.csv", "y", study=name, out=tmp_path / "studies")
    assert not (tmp_path / "studies").exists() and not (tmp_path / "escape").exists()


def test_vary_repeated_or_twice_the_same_value_or_under_the_wrong_section_is_refused():
    with pytest.raises(ConfigError, match="--vary lr is given twice; give its values in one flag"):
        parse_vary(["lr=0.01", "lr=0.001"])
    configs = {"model": ModelConfig(), "train": TrainConfig()}
    with pytest.raises(ConfigError, match=r"the value '1e-2' is given twice \(as 0.01\)"):
        _values("lr", ["0.01", "1e-2"], configs)
    with pytest.raises(ConfigError, match=r"'lr' is not a setting of section model; did you mean train.lr\?"):
        _values("model.lr", ["0.1"], configs)
    assert _values("train.lr", ["0.1", "0.01"], configs) == (("train", "lr"), [0.1, 0.01])


def test_an_ablation_on_data_changed_since_the_base_run_is_refused(tmp_path):
    from nnrecipe.data.cache import data_fingerprint

    csv, base = tmp_path / "t.csv", tmp_path / "base"
    small_table(60).to_csv(csv, index=False)
    base.mkdir()
    (base / "journal.json").write_text(json.dumps({"data": data_fingerprint(csv, 60, ())}))
    _same_data_as(base, csv)  # the same bytes: goes on
    small_table(60, seed=1).to_csv(csv, index=False)
    with pytest.raises(ConfigError, match=r"is not the data the base run trained on \(content [0-9a-f]{12} now"):
        _same_data_as(base, csv)
    _same_data_as(tmp_path / "no-journal", csv)  # a base from before the journal: nothing to compare with
    assert Path(csv).exists()
