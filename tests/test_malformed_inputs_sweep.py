"""Issue 16's rules on a review's sweep of 150 inputs (the cases it found broken): settings out of the range
torch takes are refused before anything is written; a setting that turns out invalid once the run folder
exists takes the folder with it; column flags on the target or on one column twice, rebalancing a
regression, --lr beside --lr-find and settings beside --resume are refused, never ignored; targets written
as '12%' or with one stray '?', labels spelt several ways, day-first dates, 16-bit PNGs, an image folder split
into train/ and test/ folders, a group split on a column unique per row."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nnrecipe.config import DataConfig, TrainConfig
from nnrecipe.data.image.decode import as_grey_or_rgb


def _table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    a, b = r.normal(size=n).round(3), r.normal(size=n).round(3)
    return pd.DataFrame({"a": a, "b": b, "c": r.choice(["red", "green", "blue"], n),
                         "y": np.where(a + b > 0.3, "yes", "no"), "v": (3 * a + b).round(3)})


@pytest.fixture
def csv(tmp_path):
    def write(df: pd.DataFrame, name: str = "t.csv"):
        path = tmp_path / name
        df.to_csv(path, index=False)
        return path
    return write


@pytest.mark.parametrize("flags, named", [
    (["--weight-decay", "-0.1"], "weight_decay=-0.1"), (["--optimizer", "sgd", "--momentum", "-1"], "momentum=-1.0"),
    (["--schedule", "step", "--step-size", "0"], "step_size=0"), (["--warmup-epochs", "-2"], "warmup_epochs=-2"),
    (["--seed", "-1"], "seed=-1"), (["--clip-norm", "-1"], "clip_norm=-1.0"), (["--clip-value", "0"], "clip_value=0.0"),
    (["--gamma", "-1"], "gamma=-1.0"), (["--swa-lr", "-1"], "swa_lr=-1.0"), (["--l1", "-1"], "l1=-1.0"),
    (["--min-delta", "-1"], "min_delta=-1.0"), (["--stop-alpha", "-5"], "stop_alpha=-5.0"),
    (["--plateau-patience", "-1"], "plateau_patience=-1"), (["--checkpoint-every", "-1"], "checkpoint_every=-1")])
def test_settings_outside_their_range_are_refused_before_any_folder(cli, csv, tmp_path, flags, named):
    data = csv(_table())
    code, _, err = cli("train", data, "--target", "v", "--epochs", "2", "--out", tmp_path / "runs", *flags)
    assert code == 2 and named in err and "not allowed" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_setting_found_invalid_after_the_folder_exists_takes_the_folder_with_it(cli, csv, tmp_path):
    data = csv(_table())
    code, _, err = cli("train", data, "--target", "v", "--epochs", "2", "--out", tmp_path / "runs",
                       "--model", "mlp", "--monitor", "bogus")
    assert code == 2 and "'bogus', which is not logged" in err
    assert not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("flags, said", [
    (["--drop", "y"], "--drop names column 'y', the target"),
    (["--categorical", "y"], "--categorical names column 'y', the target"),
    (["--numeric", "a", "--categorical", "a"], "column 'a' is named by both --categorical and --numeric"),
    (["--drop", "a", "--numeric", "a"], "column 'a' is named by both --numeric and --drop")])
def test_column_flags_on_the_target_or_twice_on_one_column_are_refused(cli, csv, tmp_path, flags, said):
    code, _, err = cli("train", csv(_table()), "--target", "y", "--out", tmp_path / "runs", *flags)
    assert code == 2 and said in err


def test_rebalancing_a_regression_and_lr_beside_lr_find_are_refused(cli, csv, tmp_path):
    data = csv(_table())
    code, _, err = cli("train", data, "--target", "v", "--out", tmp_path / "runs", "--balance", "weights")
    assert code == 2 and "--balance weights" in err and "regression" in err
    code, _, err = cli("train", data, "--target", "v", "--out", tmp_path / "runs", "--lr-find", "on", "--lr", "0.1")
    assert code == 2 and "--lr 0.1 and --lr-find on" in err


def test_settings_beside_resume_that_differ_from_the_record_are_refused(cli, csv, tmp_path):
    data = csv(_table())
    code, out, _ = cli("train", data, "--target", "v", "--epochs", "3", "--model", "mlp", "--out", tmp_path / "runs",
                       "--no-report")
    assert code == 0
    run = out.strip().splitlines()[-1]
    code, _, err = cli("train", data, "--target", "v", "--resume", run, "--model", "tabm", "--epochs", "2")
    assert code == 2 and "model='tabm' (recorded: 'mlp')" in err and "epochs=2 (recorded: 3)" in err
    code, _, err = cli("train", data, "--target", "v", "--resume", run, "--model", "mlp", "--epochs", "3")
    assert code == 0, err  # the recorded settings repeated: nothing differs


def test_a_target_of_written_numbers_trains_and_is_audited_as_numbers(cli, csv, tmp_path):
    df = _table()
    df["v"] = [f"{x:.1f}%" for x in df["v"]]
    data = csv(df.drop(columns="y"))
    code, _, err = cli("train", data, "--target", "v", "--epochs", "2", "--out", tmp_path / "runs", "--no-report")
    assert code == 0, err
    code, out, err = cli("audit", data, "--target", "v")
    assert code in (0, 1) and "Traceback" not in err


def test_a_numeric_target_with_one_stray_cell_names_the_cell(cli, csv, tmp_path):
    df = _table().drop(columns="y")
    df["v"] = df["v"].astype(object)
    df.loc[9, "v"] = "?"
    code, _, err = cli("train", csv(df), "--target", "v", "--out", tmp_path / "runs")
    assert code == 2 and "holds numbers but for 1 cell that is not (first at line 11: '?')" in err


def test_class_labels_written_several_ways_are_refused_with_the_spellings(cli, csv, tmp_path):
    df = _table()
    df["y"] = df["y"].astype(object)
    df.loc[::4, "y"] = df["y"][::4].str.capitalize()
    df.loc[2::8, "y"] = df["y"][2::8] + " "
    code, _, err = cli("train", csv(df), "--target", "y", "--out", tmp_path / "runs")
    assert code == 2 and "writes one label several ways" in err and "'yes' / 'yes '" in err
    df = _table()  # a numeric column pandas reads as floats ('1', '1.0'): one label, no error
    df["y"] = (df["a"] > 0).astype(int).astype(str)
    df.loc[::5, "y"] = df["y"][::5] + ".0"
    code, _, err = cli("train", csv(df, "n.csv"), "--target", "y", "--epochs", "2", "--out", tmp_path / "runs",
                       "--no-report")
    assert code == 0, err


def test_day_first_dates_order_a_time_split(cli, csv, tmp_path):
    df = _table()
    df["when"] = pd.date_range("2020-01-01", periods=len(df)).strftime("%d/%m/%Y")
    code, out, err = cli("train", csv(df.drop(columns="v")), "--target", "y", "--split", "time:when", "--epochs", "2",
                         "--out", tmp_path / "runs", "--no-report")
    assert code == 0, err
    splits = json.loads((tmp_path / "runs").joinpath(out.strip().splitlines()[-1].split("/")[-1],
                                                      "splits.json").read_text())
    assert max(splits["train"]) < min(splits["val"]) <= max(splits["val"]) < min(splits["test"])


def test_16_bit_pngs_are_scaled_by_their_depth(tmp_path):
    means = {}
    for v in (250, 20000, 65535):
        Image.fromarray(np.full((4, 4), v, np.uint16)).save(tmp_path / f"{v}.png")
        with Image.open(tmp_path / f"{v}.png") as img:
            means[v] = int(np.asarray(as_grey_or_rgb(img)).max())
    assert means == {250: 1, 20000: 78, 65535: 255}


def test_an_image_folder_split_into_train_and_test_folders_is_refused(cli, tmp_path):
    for split in ("train", "test"):
        for c, v in (("cat", 40), ("dog", 200)):
            (tmp_path / "photos" / split / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(np.full((8, 8), v + i, np.uint8)).save(tmp_path / "photos" / split / c / f"{i}.png")
    code, _, err = cli("train", tmp_path / "photos", "--out", tmp_path / "runs")
    assert code == 2 and "a split into folders" in err and "photos/train" in err


def test_a_group_split_on_a_column_unique_per_row_warns(csv, tmp_path, caplog):
    from nnrecipe.recipes import train_table

    caplog.set_level(logging.WARNING, logger="nnrecipe")
    train_table(csv(_table().drop(columns="v")), "y", out=tmp_path / "runs", report=False,
                data_config=DataConfig(target="y", split="group:a"), train_config=TrainConfig(epochs=2))
    assert "so the split is nearly a random one" in caplog.text


def test_a_column_named_like_a_made_feature_keeps_a_name_of_its_own(csv, tmp_path):
    from nnrecipe.recipes import train_table

    df = _table().drop(columns="v")
    df.loc[::7, "a"] = np.nan  # a gets its indicator 'a__missing'
    df["a__missing"] = np.arange(len(df)) % 3
    run = train_table(csv(df), "y", out=tmp_path / "runs", report=False, train_config=TrainConfig(epochs=2))
    names = json.loads((run.run_dir / "model.json").read_text())["feature_names"]
    assert len(names) == len(set(names)) and "a__missing#2" in names


# ---------------------------------------------------------------- the review of the change above


def test_resume_through_python_with_the_settings_given_as_lists(tmp_path):
    from nnrecipe.config import ModelConfig
    from nnrecipe.recipes import train_table

    df = _table().drop(columns="y")
    kwargs = dict(out=tmp_path / "runs", report=False, data_config=DataConfig(target="v", drop=["c"]),
                  model_config=ModelConfig(model="mlp", hidden=[16]), train_config=TrainConfig(epochs=2))
    run = train_table(df, "v", **kwargs)
    again = train_table(df, "v", resume=run.run_dir, **kwargs)  # lists here, tuples in the record: the same
    assert again.run_dir == run.run_dir


def test_labels_that_differ_only_in_case_are_warned_about_not_refused(cli, csv, tmp_path, caplog):
    df = _table()
    df["y"] = np.random.default_rng(1).choice(["AA", "Aa", "aa"], len(df))  # genotypes: three classes
    caplog.set_level(logging.WARNING, logger="nnrecipe")
    code, _, err = cli("train", csv(df), "--target", "y", "--epochs", "2", "--out", tmp_path / "runs", "--no-report")
    assert code == 0, err
    assert "differ only in case" in caplog.text


def test_a_class_folder_layout_sharing_a_subfolder_name_is_read_as_classes(cli, tmp_path):
    from nnrecipe.data.image.read import _list_folder

    for c in ("n01", "n02"):  # Tiny ImageNet's train/: each class's images in its own images/ subfolder
        (tmp_path / "tiny" / c / "images").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(tmp_path / "tiny" / c / "images" / f"{i}.png")
    listed = _list_folder(tmp_path / "tiny", True)
    assert sorted({label for _, _, label in listed}) == ["n01", "n02"] and len(listed) == 6


def test_day_first_is_kept_with_the_preprocessing_so_predict_reads_dates_as_training_did():
    from nnrecipe.data.transforms import TablePreprocessor

    train = pd.DataFrame({"when": ["31/12/2020", "01/02/2020", "15/03/2021", "02/01/2021"]})
    pre = TablePreprocessor.fit(train, {"when": "datetime"})
    assert pre.columns["when"].get("day_first") is True
    alone = pd.DataFrame({"when": ["01/02/2020"]})  # nothing above 12 here: read as training read it
    restored = TablePreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    np.testing.assert_array_equal(restored.transform(alone)[0][0], pre.transform(train)[0][1])


def test_the_sklearn_estimator_takes_categorical_columns_of_an_array():
    from nnrecipe.sklearn import NNRecipeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    x[:, 2] = rng.integers(0, 3, 120)
    y = (x[:, 0] > 0).astype(int)
    model = NNRecipeClassifier(categorical=("x2",), epochs=2, checks=False).fit(x, y)
    assert model.predict(x).shape == (120,)


def test_gamma_of_1_is_refused_for_the_plateau_schedule_only():
    with pytest.raises(Exception, match="below 1 for plateau"):
        TrainConfig(schedule="plateau", gamma=1.0)
    assert TrainConfig(schedule="step", gamma=1.0).gamma == 1.0


# ---------------------------------------------------------------- a sweep of 16 real tables


def test_a_few_repeated_answers_of_several_words_are_categories_not_text():
    from nnrecipe.data.prepare import prepare_table

    df = _table()
    df["fold"] = np.random.default_rng(2).choice(["R on L", "L on R", "Neither"], len(df))  # MASS's survey
    prep, _ = prepare_table(df.drop(columns="v"), DataConfig(target="y"), seed=0, cache=False)
    assert prep.schema.kinds["fold"] == "categorical"


def test_a_count_target_with_rare_values_is_told_of_task_regression(cli, csv, tmp_path):
    df = _table(200)
    goals = np.random.default_rng(3).poisson(1.5, len(df))
    goals[:2] = [9, 10]  # one row each: too rare for three splits as classes
    df["goals"] = goals
    code, _, err = cli("train", csv(df.drop(columns=["y", "v"])), "--target", "goals", "--out", tmp_path / "runs")
    assert code == 2 and "pass --task regression" in err
