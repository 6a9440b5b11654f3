"""The command line: `main([...])` returns the documented exit codes; bad input gets exit code 2 and one
message on stderr that names the input, what is wrong and the fix, with no traceback; `--help` works for
every subcommand."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd
import pytest

from nnrecipe import config
from nnrecipe.cli import DATA_FLAGS
from nnrecipe.config import DataConfig, ModelConfig, TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.testing import assert_bad_input, small_table


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def age_table(n: int = 20) -> list[str]:
    """CSV lines: a header, then `n` rows of age, size, y; data rows 3 and 7 hold typos in 'age'."""
    lines = ["age,size,y"]
    for i in range(n):
        age = {3: "x4O", 7: "4 0"}.get(i, str(20 + i))
        lines.append(f"{age},{i % 5},{'yes' if i % 2 else 'no'}")
    return lines


# ---------------------------------------------------------------- train: the file


def test_train_missing_file(cli, tmp_path):
    data = tmp_path / "nope.csv"
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' does not exist; check the path")
    assert not (tmp_path / "runs").exists()  # bad input leaves no half-made run folder


def test_train_directory(cli, tmp_path):
    folder = tmp_path / "tables"
    folder.mkdir()
    assert_bad_input(cli("train", folder, "--target", "y", "--out", tmp_path / "runs"),
                     f"'{folder}' is a folder; give a CSV or Parquet file")
    assert not (tmp_path / "runs").exists()


def test_train_binary_garbage(cli, tmp_path):
    data = tmp_path / "garbage.csv"
    data.write_bytes(bytes(range(1, 256)) * 4)
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' is not a table: it is binary data, not text; give a CSV or Parquet file")


def test_train_binary_with_nul_bytes(cli, tmp_path):
    data = tmp_path / "zeros.csv"
    data.write_bytes(b"\x00" * 300)
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' is not a table: it is binary data (it holds NUL bytes), not text; "
                     "give a CSV or Parquet file")


def test_train_utf16_text_is_decoded(cli, tmp_path):
    data = tmp_path / "excel.csv"
    # distinct rows, y from two columns: no duplicates and no single column that is the label, which the
    # doctor would rightly flag
    ab = [((i * 37) % 41 / 6, (i * 13) % 17 / 4) for i in range(40)]
    rows = "".join(f"{a:.3f},{b:.3f},{'yes' if a + b > 5 else 'no'}\n" for a, b in ab)
    data.write_bytes(("a,b,y\n" + rows).encode("utf-16"))  # what Excel's 'Unicode text' saves, with a BOM
    code, out, err = cli("train", data, "--target", "y", "--out", tmp_path / "runs", "--epochs", "1")
    assert code == 0, err
    assert "train 28" in out  # 40 rows split 70/15/15


def test_train_not_a_parquet_file(cli, tmp_path):
    data = tmp_path / "table.parquet"
    data.write_text("a,y\n1,no\n")
    code, out, err = cli("train", data, "--target", "y", "--out", tmp_path / "runs")
    assert (code, out, "Traceback" in err) == (2, "", False)
    assert err.startswith(f"nnrecipe: error: file '{data}' cannot be read as Parquet: ")
    assert err.endswith("; fix the file, or save the table again as Parquet\n")
    assert err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_train_file_without_read_permission(cli, tmp_path):
    data = write(tmp_path / "locked.csv", "a,y\n1,no\n2,yes\n")
    data.chmod(0)
    try:
        assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                         f"file '{data}' cannot be read (permission denied); fix its permissions")
    finally:
        data.chmod(0o644)


def test_train_empty_file(cli, tmp_path):
    data = write(tmp_path / "empty.csv", "")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' is empty; it needs a header row and data rows")


def test_train_blank_lines_only(cli, tmp_path):
    data = write(tmp_path / "blank.csv", "\n\n\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' has no columns; it needs a header row and data rows")


def test_train_header_only(cli, tmp_path):
    data = write(tmp_path / "header.csv", "age,size,y\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' has a header (3 columns) but no data rows; add the rows to train or predict on")


def test_train_ragged_csv(cli, tmp_path):
    data = write(tmp_path / "ragged.csv", "a,b,y\n1,2,no\n1,2,3,4,yes\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}' cannot be read as CSV: Error tokenizing data. C error: Expected 3 fields in "
                     "line 3, saw 5; fix the file, or save the table again as CSV")


# ---------------------------------------------------------------- train: the target


def test_train_target_missing_lists_columns_and_suggests(cli, tmp_path):
    data = write(tmp_path / "cells.csv", "radius,texture,diagnosis\n1,2,m\n3,4,b\n")
    assert_bad_input(cli("train", data, "--target", "diagnosys", "--out", tmp_path / "runs"),
                     f"target column 'diagnosys' is not in file '{data}' (did you mean 'diagnosis'?); "
                     "its columns are: radius, texture, diagnosis; pass one of them with --target")
    assert not (tmp_path / "runs").exists()


def test_train_target_all_empty(cli, tmp_path):
    data = write(tmp_path / "cells.csv", "radius,diagnosis\n1,\n2,\n3,\n")
    assert_bad_input(cli("train", data, "--target", "diagnosis", "--out", tmp_path / "runs"),
                     f"target column 'diagnosis' in file '{data}' is empty in all 3 rows; "
                     "fill it in, or choose another --target")


def test_train_single_class(cli, tmp_path):
    data = write(tmp_path / "cells.csv", "radius,diagnosis\n1,benign\n2,benign\n3,\n4,benign\n")
    assert_bad_input(cli("train", data, "--target", "diagnosis", "--out", tmp_path / "runs"),
                     f"target column 'diagnosis' in file '{data}' has a single class ('benign') in all 3 rows; "
                     "a classifier needs "
                     "at least two: check the target column, or choose another --target")


def test_train_single_integer_class(cli, tmp_path):
    # a numeric target with one value reads as one class label (README rule 3), not as a regression
    data = write(tmp_path / "cells.csv", "radius,label\n1,1\n2,1\n3,1\n")
    assert_bad_input(cli("train", data, "--target", "label", "--out", tmp_path / "runs"),
                     f"target column 'label' in file '{data}' has a single class ('1') in all 3 rows; "
                     "a classifier needs "
                     "at least two: check the target column, or choose another --target")


# ---------------------------------------------------------------- train: the features


def test_train_numeric_column_with_text(cli, tmp_path):
    data = write(tmp_path / "people.csv", "\n".join(age_table()) + "\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}': column 'age' has 2 values that are not numbers (first at line 5: 'x4O'); "
                     "fix them, leave them empty to impute, or pass --categorical age")
    assert not (tmp_path / "runs").exists()


def test_train_numeric_column_with_text_line_counts_rows_without_target(cli, tmp_path):
    # rows 0-1 have no target and are left out; the line named must still be the file's line
    lines = age_table(30)  # 26 of 28 cells are numbers: above the 90% that marks a numeric column
    lines[1] = lines[1].rsplit(",", 1)[0] + ","
    lines[2] = lines[2].rsplit(",", 1)[0] + ","
    data = write(tmp_path / "people.csv", "\n".join(lines) + "\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs"),
                     f"file '{data}': column 'age' has 2 values that are not numbers (first at line 5: 'x4O'); "
                     "fix them, leave them empty to impute, or pass --categorical age")


def test_train_every_problem_in_one_message(cli, tmp_path):
    lines = [ln + (",1.5" if i else ",weight") for i, ln in enumerate(age_table())]
    lines[10] = lines[10].rsplit(",", 1)[0] + ",inf"
    data = write(tmp_path / "people.csv", "\n".join(lines) + "\n")
    assert_bad_input(cli("train", data, "--target", "y", "--categorical", "colour", "--out", tmp_path / "runs"),
                     f"file '{data}': --categorical names column 'colour', which is not in the table; "
                     "column 'age' has 2 values that are not numbers (first at line 5: 'x4O'); fix them, leave them "
                     "empty to impute, or pass --categorical age; column 'weight' has 1 infinite values (first at "
                     "line 11); replace them with finite numbers, or leave the cells empty to impute")


# ---------------------------------------------------------------- train: the arguments


def test_train_unknown_optimizer_names_allowed_values(cli, tmp_path):
    data = write(tmp_path / "people.csv", "\n".join(age_table()) + "\n")
    assert_bad_input(cli("train", data, "--target", "y", "--optimizer", "adamm", "--out", tmp_path / "runs"),
                     "optimizer='adamm' is not allowed (did you mean 'adam'?); choose one of: "
                     + ", ".join(config.OPTIMIZERS))
    assert {"sgd", "adam", "adamw", "rmsprop"} <= set(config.OPTIMIZERS)


def test_train_out_is_a_file(cli, tmp_path):
    data = write(tmp_path / "people.csv", "\n".join(age_table()) + "\n")
    taken = write(tmp_path / "runs", "not a folder")
    # before any work: without the check this failed with NotADirectoryError after the recipe's checks
    assert_bad_input(cli("train", data, "--target", "y", "--out", taken),
                     f"--out {taken} is a file; give a folder for the run folders (default: runs)")


def test_train_flag_value_of_wrong_type(cli, tmp_path):
    code, out, err = cli("train", tmp_path / "t.csv", "--target", "y", "--lr", "fast")
    assert (code, out) == (2, "")
    assert err.startswith("usage: nnrecipe train ")
    assert err.endswith("\nnnrecipe: error: argument --lr: expected float or none, got 'fast'\n")
    assert "Traceback" not in err


def test_train_without_target(cli, tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n")
    code, out, err = cli("train", tmp_path / "t.csv")
    assert (code, out) == (2, "")
    assert err == (f"nnrecipe: error: {tmp_path / 't.csv'}: a table needs --target, the column to predict (images: "
                   "give a folder with a subfolder per class, a CSV of image paths, or an .npz)\n")


# ---------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A one-epoch run on the small binary table (columns a, b, color; target y)."""
    folder = tmp_path_factory.mktemp("tiny")
    small_table(n=120).to_csv(folder / "train.csv", index=False)
    return train_table(folder / "train.csv", "y", out=folder / "runs", train_config=TrainConfig(epochs=1)).run_dir


def test_predict_missing_column(cli, tmp_path, tiny_run):
    data = tmp_path / "new.csv"
    small_table(n=10, seed=1).drop(columns=["b", "y"]).to_csv(data, index=False)
    assert_bad_input(cli("predict", tiny_run, data),
                     f"file '{data}' lacks 1 column(s) the model needs: 'b'; add them "
                     "(the model was trained on: a, b, color)")


def test_predict_numeric_column_with_text(cli, tmp_path, tiny_run):
    frame = small_table(n=10, seed=1)
    frame["a"] = frame["a"].round(3).astype(object)
    frame.loc[4, "a"] = "n/a?"
    data = tmp_path / "new.csv"
    frame.to_csv(data, index=False)
    assert_bad_input(cli("predict", tiny_run, data, "--out", tmp_path / "preds.csv"),
                     f"file '{data}': column 'a' has 1 values that are not numbers (first at line 6: 'n/a?'); "
                     "fix them, leave them empty to impute, or train a model that reads the column as categories "
                     "(train's --categorical a)")
    assert not (tmp_path / "preds.csv").exists()


def test_predict_out_in_a_missing_folder(cli, tmp_path, tiny_run):
    data = tmp_path / "new.csv"
    small_table(n=10, seed=1).to_csv(data, index=False)
    out = tmp_path / "nowhere" / "preds.csv"
    # without the check pandas raised OSError from to_csv: a traceback and exit code 1
    assert_bad_input(cli("predict", tiny_run, data, "--out", out),
                     f"--out {out}: folder '{out.parent}' does not exist; create it, or write elsewhere")


def test_predict_out_is_a_folder(cli, tmp_path, tiny_run):
    data = tmp_path / "new.csv"
    small_table(n=10, seed=1).to_csv(data, index=False)
    assert_bad_input(cli("predict", tiny_run, data, "--out", tmp_path),
                     f"--out {tmp_path} is a folder; give a file name, such as {tmp_path / 'predictions.csv'}")


def test_predict_run_folder_missing(cli, tmp_path):
    data = tmp_path / "new.csv"
    small_table(n=10).to_csv(data, index=False)
    assert_bad_input(cli("predict", tmp_path / "no-run", data),
                     f"run folder '{tmp_path / 'no-run'}' does not exist; give the folder that `nnrecipe train` "
                     "printed")


def test_predict_missing_data_file(cli, tmp_path, tiny_run):
    assert_bad_input(cli("predict", tiny_run, tmp_path / "new.csv"),
                     f"file '{tmp_path / 'new.csv'}' does not exist; check the path")


def test_predict_to_stdout(cli, tmp_path, tiny_run):
    data = tmp_path / "new.csv"
    frame = small_table(n=10, seed=1)
    frame.to_csv(data, index=False)
    code, out, err = cli("predict", tiny_run, data)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "prediction,p_no,p_yes"
    assert len(lines) == 11
    assert {ln.split(",")[0] for ln in lines[1:]} <= {"no", "yes"}
    assert err.startswith("accuracy against the target column: ")


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("command", [[], ["train"], ["predict"]], ids=["nnrecipe", "train", "predict"])
def test_help_works_for_every_subcommand(cli, command):
    code, out, err = cli(*command, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(" ".join(["usage: nnrecipe", *command]))


def test_top_level_help_lists_subcommands(cli):
    out = cli("--help")[1]
    assert "train" in out and "predict" in out


def test_train_help_has_a_flag_and_the_default_for_every_config_field(cli):
    code, out, _ = cli("train", "--help")
    assert code == 0
    text = " ".join(out.split())  # undo argparse's line wrapping
    for cls, only in ((DataConfig, DATA_FLAGS), (ModelConfig, None), (TrainConfig, None)):
        for f in dataclasses.fields(cls):
            if only is not None and f.name not in only:
                continue
            assert "--" + f.name.replace("_", "-") in text, f.name
            if f.name != "device" and isinstance(f.default, (int, float, str)) and not isinstance(f.default, bool):
                assert f"(default: {f.default})" in text, f.name
    assert "--target TARGET" in text


def test_no_subcommand_is_a_usage_error(cli):
    code, out, err = cli()
    assert (code, out) == (2, "")
    assert "usage: nnrecipe" in err and "Traceback" not in err


def test_predict_table_frame_missing_column(tiny_run):
    # predict_table also takes a DataFrame; a missing column is the same DataError, naming 'the table'
    from nnrecipe.errors import DataError
    from nnrecipe.recipes import predict_table

    with pytest.raises(DataError) as e:
        predict_table(tiny_run, pd.DataFrame({"a": [1.0], "color": ["red"]}))
    assert str(e.value) == ("the table lacks 1 column(s) the model needs: 'b'; add them "
                            "(the model was trained on: a, b, color)")


# ---------------------------------------------------------------- a config file


def test_config_file_sets_values_and_flags_win(cli, tmp_path):
    import json

    from nnrecipe.testing import small_table

    data = tmp_path / "t.csv"
    small_table(60).to_csv(data, index=False)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"data": {"drop": ["b"]}, "model": {"hidden": [16]}, "train": {"epochs": 2, "lr": 0.01}}))
    code, out, err = cli("train", data, "--target", "y", "--out", tmp_path / "runs", "--config", conf, "--lr", "0.005")
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    config = json.loads((Path(run) / "config.json").read_text())
    assert config["data"]["drop"] == ["b"] and config["model"]["hidden"] == [16]
    assert config["train"]["epochs"] == 2 and config["train"]["lr"] == 0.005


def test_config_file_unknown_key_gets_a_did_you_mean(cli, tmp_path):
    import json

    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"train": {"epoch": 3}}))
    data = write(tmp_path / "t.csv", "a,y\n1,x\n2,y\n")
    assert_bad_input(cli("train", data, "--target", "y", "--out", tmp_path / "runs", "--config", conf),
                     f"config file '{conf}', section 'train': unknown key 'epoch' (did you mean 'epochs'?); "
                     "allowed keys: " + ", ".join(f.name for f in dataclasses.fields(TrainConfig)))
