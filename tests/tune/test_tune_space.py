"""The search space file: the default space follows its sources (Rishit Dagli, Lavanya Shukla); errors name
the file, the key and the forms."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.tune import default_space, read_space
from nnrecipe.tune.study import make_sampler


def _by_name(space):
    return {p.name: p for p in space.params}


def test_default_space_follows_rishit_dagli():
    params = _by_name(default_space())
    units, lr = params["units"], params["lr"]
    assert (units.kind, units.low, units.high, units.step) == ("int", 32, 512, 32)
    assert (lr.kind, lr.choices) == ("choice", (1e-2, 1e-3, 1e-4))
    assert params["weight_decay"].kind == "loguniform"
    assert {"layers", "activation", "dropout", "batchnorm", "optimizer", "momentum", "schedule"} <= set(params)


def test_a_trial_s_values_make_the_configs(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("model:\n  layers: {int: [2, 2]}\n  units: {choice: [48]}\n  dropout: 0.1\n"
                    "train:\n  lr: {loguniform: [1e-4, 1e-2]}\n  batch_size: {int: [16, 64], step: 16}\n"
                    "  nesterov: {choice: [true]}\n")
    space = read_space(path)
    study = optuna.create_study()
    trial = study.ask()
    base = (ModelConfig(activation="gelu"), TrainConfig(epochs=7, optimizer="sgd"))  # sgd reads nesterov
    values = space.suggest(trial, *base)
    model, train = space.apply(values, *base)
    assert model.hidden == (48, 48) and model.dropout == 0.1 and model.activation == "gelu"
    assert 1e-4 <= train.lr <= 1e-2 and train.batch_size in (16, 32, 48, 64) and train.nesterov is True
    assert train.epochs == 7
    assert set(trial.params) == {"layers", "units", "lr", "batch_size", "nesterov"}  # the fixed dropout is not searched


@pytest.mark.parametrize("text, message", [
    ("model:\n  widht: {int: [1, 3]}\n",
     "key 'model.widht' is not a setting that can be searched; allowed: activation, batchnorm, dropout, init, "
     "latent, layers, loss, members, model, pretrain, text_model, units"),
    ("train:\n  lr: {uniform: [1, 2]}\n",
     "key 'train.lr' has the form {'uniform': [1, 2]}; use one of: {int: [low, high], step: k}; "
     "{float: [low, high]}; {loguniform: [low, high]}; {choice: [a, b, ...]}; a fixed value"),
    ("model:\n  dropout: {float: [0.0, 1.5]}\n",
     "key 'model.dropout': the value 1.5 is not allowed (dropout=1.5 is not allowed; choose a value in [0, 1))"),
    ("train:\n  lr: {loguniform: [0, 1e-2]}\n",
     "key 'train.lr': loguniform needs 0 < low <= high; got {'loguniform': [0, '1e-2']}"),
    ("model:\n  units: {int: [32, 512], step: 32}\n",
     "key 'model.units' needs its partner: give both model.layers and model.units (hidden = layers x units), "
     "or neither"),
    ("trian:\n  lr: 1e-3\n", "unknown section 'trian' (did you mean 'train'?); sections: model, train"),
    ("train:\n  optimizer: {choice: [adam, adma]}\n",
     "key 'train.optimizer': the value 'adma' is not allowed (optimizer='adma' is not allowed (did you mean "
     "'adamax'?); choose one of: sgd, adam, adamw, nadam, rmsprop, adamax, adagrad)"),
])
def test_a_bad_space_file_names_the_file_the_key_and_the_fix(tmp_path: Path, text: str, message: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        read_space(path)
    assert str(e.value) == f"space file '{path}': {message}"


def test_every_problem_is_named_at_once(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("model:\n  widht: 3\ntrain:\n  lr: {choice: []}\n")
    with pytest.raises(ConfigError) as e:
        read_space(path)
    assert "model.widht" in str(e.value) and "key 'train.lr': choice takes a non-empty list" in str(e.value)


def test_invalid_yaml_and_a_missing_file(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("model: [\n")
    with pytest.raises(ConfigError, match=r"^space file '.*space.yaml' is not valid YAML \(line 2\): .*; fix it$"):
        read_space(path)
    with pytest.raises(ConfigError) as e:
        read_space(tmp_path / "none.yaml")
    assert str(e.value) == f"space file '{tmp_path / 'none.yaml'}' cannot be read (No such file or directory); check the path"


def test_random_search_draws_depend_on_the_seed_and_the_trial_alone():
    """Bergstra & Bengio's random search, reproducible whatever the workers: trial k's values are the
    same when its trials are asked in another order, as another worker would claim them."""
    space = default_space()

    def draws(order: list[int], seed: int) -> dict[int, dict]:
        study = optuna.create_study(sampler=make_sampler("random", seed))
        trials = [study.ask() for _ in order]  # numbers 0..n-1
        return {trials[k].number: space.suggest(trials[k]) for k in order}

    assert draws([0, 1, 2, 3], seed=1) == draws([3, 1, 0, 2], seed=1)
    assert draws([0, 1], seed=1) != draws([0, 1], seed=2)


@pytest.mark.parametrize("text, message", [
    ("train:\n  batch_size: {float: [16, 64]}\n", r"key 'train.batch_size': batch_size takes whole numbers, and "
     r"float draws fractions; draw it with \{int: \[16, 64\]\}, or a choice"),
    ("train:\n  accumulate: {loguniform: [1, 8]}\n", r"key 'train.accumulate': accumulate takes whole numbers"),
    ("model:\n  units: {float: [32, 64]}\n  layers: 2\n", r"key 'model.units': units takes whole numbers"),
    ("train:\n  cv_folds: {choice: [3]}\n", r"key 'train.cv_folds' is not a setting that can be searched"),
    ("train:\n  refit: {choice: ['on', 'off']}\n", r"key 'train.refit' is not a setting that can be searched"),
])
def test_whole_number_settings_take_int_ranges_and_trial_only_settings_are_not_searched(tmp_path: Path, text,
                                                                                      message):
    """A float range on batch_size ended in a traceback, on accumulate it stepped at odd batches; cv_folds
    and refit were drawn and every trial trained with 1 and off."""
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_space(path)


def test_a_setting_given_and_drawn_by_the_space_is_refused():
    space = default_space()
    with pytest.raises(ConfigError, match=r"^lr=0\.05: given, and the search space \(.*\) draws it for each trial"):
        space.refuse_given(ModelConfig(), TrainConfig(lr=0.05))
    with pytest.raises(ConfigError, match=r"^hidden=\(64, 64\): given"):
        space.refuse_given(ModelConfig(hidden=(64, 64)), TrainConfig())
    space.refuse_given(ModelConfig(), TrainConfig(epochs=7, seed=3))  # not drawn: the trials keep them


def test_a_value_the_space_fixes_or_never_reads_is_not_refused(tmp_path: Path):
    path = tmp_path / "space.yaml"
    path.write_text("train:\n  optimizer: sgd\n  lr: {choice: [0.01, 0.1]}\nmodel:\n  activation: {choice: [relu, gelu]}\n")
    space = read_space(path)
    space.refuse_given(ModelConfig(), TrainConfig(optimizer="sgd"))  # the very value the space fixes
    space.refuse_given(ModelConfig(activation="gelu"), TrainConfig())  # TabM reads no activation: never drawn
    with pytest.raises(ConfigError, match=r"^optimizer='adamw': given"):
        space.refuse_given(ModelConfig(), TrainConfig(optimizer="adamw"))
    with pytest.raises(ConfigError, match=r"^activation='gelu': given"):
        space.refuse_given(ModelConfig(model="mlp", activation="gelu"), TrainConfig())
