"""A setting the run would not read is refused by name, never accepted and ignored (a review of every flag of
`train`, `batchsize` and `--resume`): the model's settings TabM does not read, the optimizer's and the
schedule's settings beside another optimizer or schedule, a regression loss for classes, training settings
given to `batchsize`, and a note, range test, parent or folder beside --resume; a search draws only what its
trial reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from nnrecipe import ModelConfig, TrainConfig
from nnrecipe.config import unread, unread_settings


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flags") / "bc.csv"
    load_breast_cancer(as_frame=True).frame.sample(150, random_state=0).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("flags, said", [
    (["--activation", "gelu"], "--activation gelu is read with --model mlp (TabM keeps its authors' ReLU blocks) only"),
    (["--batchnorm"], "--batchnorm is read with --model mlp"),
    (["--init", "uniform"], "--init uniform is read with --model mlp"),
    (["--model", "mlp", "--members", "4"], "--members 4 is read with TabM (--model auto or tabm) only"),
    (["--momentum", "0.5"], "--momentum 0.5 is read with --optimizer sgd or rmsprop only"),
    (["--optimizer", "adam", "--nesterov"], "--nesterov is read with --optimizer sgd only"),
    (["--schedule", "cosine", "--step-size", "3"], "--step-size 3 is read with --schedule step only"),
    (["--gamma", "0.5"], "--gamma 0.5 is read with --schedule step, exponential or plateau only"),
    (["--warmup-epochs", "1", "--schedule", "step"], "--warmup-epochs 1 is read with --schedule cosine only"),
    (["--plateau-patience", "1"], "--plateau-patience 1 is read with --schedule plateau only"),
    (["--swa-lr", "0.01"], "--swa-lr 0.01 is read with --swa-start only"),
    (["--stop-alpha", "1"], "--stop-alpha 1.0 is read with --stop-criterion gl or pq only"),
    (["--decay-all"], "--decay-all is read with a --weight-decay above 0 only"),
    (["--loss", "mae"], "--loss mae is a regression loss, and the target is binary"),
])
def test_a_flag_the_run_would_not_read_is_refused(cli, table, tmp_path, flags, said):
    code, out, err = cli("train", table, "--target", "target", "--epochs", "1", "--out", tmp_path / "runs", *flags)
    assert code == 2 and said in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_flags_are_read_where_they_apply():
    sgd = TrainConfig(optimizer="sgd", momentum=0.5, nesterov=True, schedule="step", step_size=3, gamma=0.5)
    assert unread_settings(ModelConfig(model="mlp", activation="gelu", batchnorm=True, init="uniform"), sgd) == []
    assert unread_settings(ModelConfig(members=4), TrainConfig(schedule="cosine", warmup_epochs=2, weight_decay=0.1,
                                                               decay_all=True, swa_start=3, swa_lr=0.01,
                                                               stop_criterion="gl", stop_alpha=2.0)) == []
    assert unread("lr", ModelConfig(), TrainConfig()) is None  # read by every run


def test_a_search_draws_only_the_settings_its_trial_reads():
    import optuna

    from nnrecipe.tune.space import default_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, study = default_space(), optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(12):
        trial = study.ask()
        drawn.append(space.suggest(trial))
        study.tell(trial, 0.0)
    assert all(("momentum" in v) == (v["optimizer"] == "sgd") for v in drawn)
    assert {v["optimizer"] for v in drawn} >= {"sgd", "adam"}
    assert not any("activation" in v or "batchnorm" in v for v in drawn)  # TabM, the default, has its own blocks
    mlp = space.suggest(study.ask(), ModelConfig(model="mlp"))
    assert "activation" in mlp and "batchnorm" in mlp


def test_batchsize_and_doctor_refuse_the_settings_of_a_training_run(cli, table):
    code, out, err = cli("batchsize", table, "--target", "target", "--teacher", "/nonexistent", "--distill-alpha", "0.5")
    assert code == 2 and "--teacher, --distill-alpha: settings of a training run" in err
    code, out, err = cli("doctor", table, "--target", "target", "--patience", "5", "--swa-start", "3")
    assert code == 2 and "--patience, --swa-start: settings of a training run, and the doctor runs its checks" in err


def test_resume_refuses_a_note_range_test_parent_folder_or_data_other_than_the_runs(cli, table, tmp_path):
    code, out, err = cli("train", table, "--target", "target", "--epochs", "1", "--out", tmp_path / "runs",
                         "--no-report")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for extra, said in ((["--note", "new"], "note='new' (recorded: '')"),
                        (["--lr-find", "on"], "lr_find='on' (recorded: 'off')"),
                        (["--parent", run], f"parent='{run.resolve()}' (recorded: None)"),
                        (["--out", tmp_path / "elsewhere"], "out=")):
        code, out, err = cli("train", table, "--target", "target", "--resume", run, *extra)
        assert code == 2 and said in err, err
    other = tmp_path / "other.csv"
    pd.read_csv(table).iloc[::-1].to_csv(other, index=False)
    code, out, err = cli("train", other, "--target", "target", "--resume", run)
    assert code == 2 and f"that run trained on {table}" in err and "holds other data" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert not (tmp_path / "elsewhere").exists()


def test_ablate_and_prune_name_a_damaged_config(cli, tmp_path):
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "config.json").write_text('{"data": {')
    (run / "results.json").write_text("{}")
    (run / "model.json").write_text("{}")
    code, out, err = cli("ablate", run, "--vary", "lr=1e-2")
    assert code == 2 and "config.json cannot be read as a JSON object" in err and "Traceback" not in err


def test_the_audit_counts_the_parameters_of_the_model_train_builds(cli, table, tmp_path):
    code, out, err = cli("audit", table, "--target", "target")
    audited = next(line for line in (out + err).splitlines() if "D5 data size" in line)
    code, out, err = cli("train", table, "--target", "target", "--epochs", "1", "--out", tmp_path / "runs",
                         "--no-report", "-v")
    trained = next(line for line in (out + err).splitlines() if "D5 data size" in line)
    assert audited.split("parameters")[0].split("model of")[1] == trained.split("parameters")[0].split("model of")[1]


def test_outliers_are_not_the_rare_values_of_sparse_pixel_columns():
    # digits / 16 on 300 rows: 12 of 64 columns blank in 99% of rows; an interpolated 99% point made one
    # inked cell read 1e3 ranges away, and healthy digits were called outlier rows
    from sklearn.datasets import load_digits

    from nnrecipe.checks.drift import check_outliers
    import torch

    x = torch.tensor(load_digits().data[:300] / 16, dtype=torch.float32)
    verdict, rows = check_outliers((x,), None, "rows")
    assert verdict is None and len(rows) == 0
    far = x.clone()
    far[7] *= 1e3  # a row gone wrong is still found
    verdict, rows = check_outliers((far,), None, "rows")
    assert verdict is not None and rows.tolist() == [7]
    assert np.isfinite(float(verdict.evidence["max_distance_in_ranges"]))


def test_resume_knows_the_data_by_its_digest_not_by_a_cache_key(tmp_path):
    # an image set's cache key changes with the reader's version and Pillow's: an upgrade must not make a
    # run's own images 'other data'
    import json

    from nnrecipe.config import ConfigError
    from nnrecipe.recipes.pipeline import _same_data

    (tmp_path / "journal.json").write_text(json.dumps({"data": {"source": "photos", "sha256": "a" * 64,
                                                                "content_key": "1" * 64}}))
    _same_data(tmp_path, {"source": "photos", "sha256": "a" * 64, "content_key": "2" * 64})
    with pytest.raises(ConfigError, match="that run trained on photos .*holds other data"):
        _same_data(tmp_path, {"source": "photos", "sha256": "b" * 64, "content_key": "1" * 64})


def test_an_ablation_variant_that_leaves_a_setting_unread_is_warned_about(cli, table, tmp_path):
    code, out, err = cli("train", table, "--target", "target", "--epochs", "1", "--out", tmp_path / "runs",
                         "--no-report", "--optimizer", "sgd", "--momentum", "0.5")
    assert code == 0, err
    base = next((tmp_path / "runs").iterdir())
    code, out, err = cli("ablate", base, "--vary", "optimizer=adam", "--seeds", "1")
    assert code == 0, err
