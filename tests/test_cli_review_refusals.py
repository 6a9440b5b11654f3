"""Settings that changed nothing or harmed the run, refused at once with the fix (issue 18's later review): a
--mode against the monitor's direction kept the worst epoch, --patience beside --stop-criterion gl, a
surrogate's held-out fractions and monitor, training settings given to audit and doctor, ROC AUC on
validation rows of one class (a crash after training); an --out that would replace a file of the run or write
the wrong format; and what predict says of a target it cannot score, of a value beyond float32, and of dates
written day first beside a run trained on ISO dates (read month first)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.testing import assert_bad_input, small_table

QUICK = {"checks": (), "report": False, "audit": False, "train_config": TrainConfig(epochs=1)}


def labelled(n: int, seed: int) -> pd.DataFrame:
    """The small binary table with labels 'benign'/'malign' and an ISO date column 'when'."""
    frame = small_table(n=n, seed=seed)
    frame["y"] = frame["y"].map({"yes": "malign", "no": "benign"})
    frame.insert(0, "when", pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"))
    return frame


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One-epoch runs: 'labels' on `labelled(150, 0)`, 'regression' on the small regression table."""
    folder = tmp_path_factory.mktemp("review")
    labelled(150, 0).to_csv(folder / "labels.csv", index=False)
    small_table(n=120, task="regression").to_csv(folder / "regression.csv", index=False)
    return {name: train_table(folder / f"{name}.csv", "y", out=folder / "runs", **QUICK).run_dir
            for name in ("labels", "regression")}


@pytest.fixture
def table(tmp_path) -> Path:
    small_table(n=120).to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv"


# ---------------------------------------------------------------- train and its settings


def test_a_mode_against_the_monitors_direction_is_refused_and_a_monitor_of_ones_own_is_not(cli, table, tmp_path):
    assert_bad_input(cli("train", table, "--target", "y", "--mode", "max", "--out", tmp_path / "runs"),
                     "mode='max' with monitor='val_loss', which is better when smaller: the run would keep its worst "
                     "epoch; leave mode 'auto' (or give mode='min')")
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ConfigError, match="the run would keep its worst epoch"):
        TrainConfig(monitor="val_accuracy", mode="min")
    assert TrainConfig(monitor="val_myscore", mode="max").monitor_mode == "max"


def test_a_mode_against_the_metrics_direction_is_refused(cli, table, tmp_path):
    # --metric accuracy makes the Trainer watch val_accuracy: the mode is judged against it, not val_loss
    code, _, err = cli("train", table, "--target", "y", "--metric", "accuracy", "--mode", "min", "--epochs", 1,
                       "--out", tmp_path / "runs")
    assert code == 2 and "the run would keep its worst epoch" in err


def test_patience_beside_the_gl_criterion_is_refused_and_gl_alone_trains(cli, table, tmp_path):
    assert_bad_input(cli("train", table, "--target", "y", "--stop-criterion", "gl", "--patience", 3,
                         "--out", tmp_path / "runs"),
                     "--patience 3 is read with --stop-criterion patience (gl and pq stop by their alpha) only: add "
                     "what reads them, or leave them out")
    assert not (tmp_path / "runs").exists()
    run = train_table(table, "y", out=tmp_path / "runs", **{**QUICK, "train_config": TrainConfig(
        epochs=1, stop_criterion="gl")})
    assert run.results["epochs_run"] == 1
    # patience none is read with any criterion (it turns early stopping off)
    code, _, err = cli("train", table, "--target", "y", "--stop-criterion", "gl", "--patience", "none", "--epochs", 1,
                       "--out", tmp_path / "runs2")
    assert code == 0, err


def test_a_surrogate_refuses_held_out_fractions_and_a_monitor_or_mode_of_its_own(cli, table, tmp_path):
    train = ("train", table, "--target", "y", "--surrogate", "--epochs", 1, "--out", tmp_path / "runs")
    assert_bad_input(cli(*train, "--val-fraction", 0.3),
                     "surrogate=True trains on every row, and val_fraction=0.3 asks for held-out rows; leave them out "
                     "(--surrogate-test measures the error on a second sample)")
    for flag, value in (("--monitor", "val_rmse"), ("--mode", "min")):
        assert_bad_input(cli(*train, flag, value),
                         f"--surrogate trains on every row and watches none, and {flag} {value} hold rows out or "
                         "follow them: leave them out (the surrogate's error is measured on --surrogate-test)")
    assert not (tmp_path / "runs").exists()


def test_audit_and_doctor_refuse_settings_they_never_read(cli, table):
    assert_bad_input(cli("audit", table, "--target", "y", "--lr", 0.5),
                     "--lr: settings of a training run, and the audit looks at the data without training; leave them "
                     "out (train takes them)")
    assert_bad_input(cli("audit", table, "--target", "y", "--activation", "tanh"),
                     "--activation tanh is read with --model mlp (TabM keeps its authors' ReLU blocks) only: add what "
                     "reads them, or leave them out")
    assert_bad_input(cli("doctor", table, "--target", "y", "--momentum", 0.3),
                     "--momentum 0.3 is read with --optimizer sgd or rmsprop only: add what reads them, or leave them "
                     "out")
    code, out, err = cli("audit", table, "--target", "y", "--seed", 3)  # the audit reads the seed
    assert code in (0, 1) and out.startswith("audit of "), err


def test_roc_auc_on_validation_rows_of_one_class_is_refused_before_training(cli, tmp_path):
    n = 200  # by x1 the first half is 'no', the rest 'yes': a time split's validation rows (141-170) are all 'yes'
    data = tmp_path / "series.csv"
    pd.DataFrame({"x1": np.arange(n), "a": np.random.default_rng(0).normal(size=n),
                  "y": np.where(np.arange(n) < n // 2, "no", "yes")}).to_csv(data, index=False)
    assert_bad_input(cli("train", data, "--target", "y", "--metric", "roc_auc", "--split", "time:x1",
                         "--epochs", 1, "--out", tmp_path / "runs"),
                     "--metric roc_auc: the 31 validation rows hold one class (the split 'time:x1' put the other in "
                     "training or test), where ROC AUC is undefined; use a random or stratified --split, or --metric "
                     "accuracy, balanced_accuracy or log_loss")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------- --out of predict, report, compare, export


def test_predict_refuses_an_out_that_is_no_csv_or_a_file_of_the_run(cli, runs, tmp_path):
    run = shutil.copytree(runs["labels"], tmp_path / "run")  # a copy: a file replaced would break the other tests
    data = tmp_path / "new.csv"
    labelled(20, 1).to_csv(data, index=False)
    kept = {name: (run / name).read_bytes() for name in ("model.json", "val_predictions.csv")}
    assert_bad_input(cli("predict", run, data, "--out", run / "model.json"),
                     f"--out {run / 'model.json'}: this command writes a .csv file; name it so, such as "
                     f"{run / 'model.csv'}")
    assert_bad_input(cli("predict", run, data, "--out", run / "val_predictions.csv"),
                     f"--out {run / 'val_predictions.csv'} is a file of run folder {run}, which it would replace; "
                     "write elsewhere")
    assert_bad_input(cli("predict", run, data, "--out", tmp_path / "x.parquet"),
                     f"--out {tmp_path / 'x.parquet'}: this command writes a .csv file; name it so, such as "
                     f"{tmp_path / 'x.csv'}")
    assert_bad_input(cli("predict", run, data, "--out", "-"),
                     "--out -: predict prints the predictions as CSV when --out is left out; leave it out to print "
                     "them")
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert not (tmp_path / "x.parquet").exists()


def test_report_compare_and_export_refuse_an_out_of_the_wrong_kind(cli, runs, tmp_path):
    run = shutil.copytree(runs["labels"], tmp_path / "run")
    model = (run / "model.json").read_bytes()
    assert_bad_input(cli("report", run, "--out", tmp_path),
                     f"--out {tmp_path} is a folder; give a file name, such as {tmp_path / 'report.html'}")
    assert_bad_input(cli("report", run, "--out", run / "model.json"),
                     f"--out {run / 'model.json'}: this command writes a .html file; name it so, such as "
                     f"{run / 'model.html'}")
    victim = tmp_path / "data.csv"
    victim.write_text("a,y\n1,no\n")
    assert_bad_input(cli("compare", run, run, "--out", victim),
                     f"--out {victim}: this command writes a .html file; name it so, such as {tmp_path / 'data.html'}")
    # refused before the ONNX packages are looked for: no need of them here
    assert_bad_input(cli("export", run, "--to", "onnx", "--out", victim),
                     f"--out {victim}: this command writes a .onnx file; name it so, such as {tmp_path / 'data.onnx'}")
    assert victim.read_text() == "a,y\n1,no\n" and (run / "model.json").read_bytes() == model


# ---------------------------------------------------------------- predict: what it reads and says


def test_predict_names_target_labels_that_are_none_of_the_models_classes(cli, runs, tmp_path):
    frame = labelled(20, 1)
    frame["y"] = np.where(frame["y"] == "malign", "1", "0")  # the same labels written as 1/0
    frame.to_csv(tmp_path / "coded.csv", index=False)
    code, _, err = cli("predict", runs["labels"], tmp_path / "coded.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert ("labels that are not among the model's classes ('1', '0'): those 20 rows are not scored (the model's "
            "classes: benign, malign)") in err.splitlines()
    assert "accuracy against the target column" not in err  # it read 0.0000


def test_predict_names_regression_targets_that_are_not_numbers(cli, runs, tmp_path):
    small_table(n=20, seed=1, task="regression").assign(y="abc").to_csv(tmp_path / "words.csv", index=False)
    code, _, err = cli("predict", runs["regression"], tmp_path / "words.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert "target values that are not numbers ('abc'): those 20 rows are not scored" in err
    assert "the target column is empty" not in err


def test_predict_refuses_a_value_beyond_what_the_model_takes_naming_the_column(cli, runs, tmp_path):
    frame = labelled(20, 1)
    frame.loc[3, "a"] = 1e300  # the training rows' 'a' are about 1
    frame.to_csv(tmp_path / "huge.csv", index=False)
    code, out, err = cli("predict", runs["labels"], tmp_path / "huge.csv", "--out", tmp_path / "p.csv")
    assert (code, out, "Traceback" in err) == (2, "", False)
    assert err.startswith("nnrecipe: error: column 'a', data row 4 (line 5 of a CSV with a header): the value 1e+300 is beyond what "
                          "the model takes")
    assert not (tmp_path / "p.csv").exists()


def test_predict_reads_day_first_dates_as_the_iso_dates_the_run_trained_on(runs, tmp_path):
    frame = labelled(150, 0)
    frame.to_csv(tmp_path / "iso.csv", index=False)
    days = pd.to_datetime(frame["when"])
    frame.assign(when=days.dt.strftime("%d/%m/%Y")).to_csv(tmp_path / "dmy.csv", index=False)
    iso, _ = predict_table(runs["labels"], tmp_path / "iso.csv")
    dmy, _ = predict_table(runs["labels"], tmp_path / "dmy.csv")  # rows of day 12 or less were read month first
    pd.testing.assert_frame_equal(dmy, iso)


def test_a_model_description_of_a_newer_version_is_refused_not_read_as_this_ones(cli, runs, tmp_path):
    import json

    run = shutil.copytree(runs["labels"], tmp_path / "run")
    doc = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**doc, "version": 9}))
    data = tmp_path / "new.csv"
    labelled(20, 1).to_csv(data, index=False)
    code, out, err = cli("predict", run, data)
    assert (code, out) == (2, "") and "is a model description of version 9, and this nnrecipe reads version 1" in err


def test_an_out_that_is_the_input_or_inside_the_input_folder_is_refused(tmp_path):
    from nnrecipe.cli import _check_out

    paths = tmp_path / "paths.csv"
    paths.write_text("path,label\nimgs/a.png,red\n")
    (tmp_path / "imgs").mkdir()
    with pytest.raises(ConfigError, match="is the input file .*; the input is never written to"):
        _check_out(str(paths), "file", "embeddings.csv", inputs=(str(paths),))  # embed replaced its CSV of paths
    with pytest.raises(ConfigError, match="is inside the input folder"):
        _check_out(str(tmp_path / "imgs" / "e.csv"), "file", "embeddings.csv", inputs=(str(tmp_path / "imgs"),))
    _check_out(str(tmp_path / "e.csv"), "file", "embeddings.csv", inputs=(str(paths), str(tmp_path / "imgs")))


def test_a_few_whole_numbers_under_a_unit_are_categories_and_a_surrogate_may_hold_no_test_rows():
    from nnrecipe.config import DataConfig
    from nnrecipe.data.schema import _kind

    plain = DataConfig(target="y")
    assert _kind(pd.Series([["3G", "4G", "5G"][i % 3] for i in range(300)]), "net", plain)[0] == "categorical"
    assert _kind(pd.Series([f"{i} kg" for i in range(300)]), "w", plain)[0] == "units"  # 300 levels: numbers
    assert _kind(pd.Series([f"{60 + i % 7}.5 kg" for i in range(300)]), "w", plain)[0] == "units"  # decimals
    assert DataConfig(target="y", surrogate=True, test_fraction=0).test_fraction == 0
