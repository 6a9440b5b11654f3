"""Issue 16, the corpus of malformed and hostile inputs, part 2: targets, flags and config files, and the
inputs of `predict`, `audit`, `clean` and `tune`. The machinery and part 1 (files, encodings, columns,
cells): malformed_corpus.py and test_malformed_inputs.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from malformed_corpus import (TRAIN, Case, Where, alternating, bad, bad_with, csv_text, done, numbers, registry,
                              run_kind, table, usage_error, write)

from nnrecipe.config import TrainConfig
from nnrecipe.recipes import train_table

KINDS, kind = registry()


def train(w: Where, data: object, *extra: object, target: str = "y", command: str = "train") -> list[object]:
    return [command, data, "--target", target, *(["--out", w.tmp.parent / "runs"] if command == "train" else []),
            *extra]


def good(w: Where, name: str = "table.csv", n: int = 40) -> Path:
    return write(w.tmp / name, csv_text(table(n)))


# ---------------------------------------------------------------- the target


@kind("target-missing")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, target="label"), bad(f"target column 'label' is not in file '{data}'; its columns "
                                                    "are: a, b, color, y; pass one of them with --target"))


@kind("target-misspelt")
def _(w: Where) -> Case:
    data = write(w.tmp / "cells.csv", "radius,texture,diagnosis\n1,2,m\n3,4,b\n")
    return Case(train(w, data, target="diagnosys"), bad(
        f"target column 'diagnosys' is not in file '{data}' (did you mean 'diagnosis'?); its columns are: radius, "
        "texture, diagnosis; pass one of them with --target"))


@kind("target-case-mismatch")
def _(w: Where) -> Case:
    data = good(w)  # `--target Y` for a column 'y' got no suggestion
    return Case(train(w, data, target="Y"), bad(f"target column 'Y' is not in file '{data}' (did you mean 'y'?); "
                                                "its columns are: a, b, color, y; pass one of them with --target"))


@kind("target-case-mismatch-long-name")
def _(w: Where) -> Case:
    data = write(w.tmp / "t.csv", csv_text(table().rename(columns={"y": "Diagnosis"})))
    return Case(train(w, data, target="DIAGNOSIS"), bad(
        f"target column 'DIAGNOSIS' is not in file '{data}' (did you mean 'Diagnosis'?); its columns are: a, b, "
        "color, Diagnosis; pass one of them with --target"))


@kind("target-with-trailing-space")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, target="y "), bad(f"target column 'y ' is not in file '{data}' (did you mean 'y'?); "
                                                 "its columns are: a, b, color, y; pass one of them with --target"))


@kind("target-empty-string")
def _(w: Where) -> Case:
    return Case(train(w, good(w), target=""), bad("no target column given; pass --target COLUMN"))


@kind("target-one-class")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = "benign"
    data = write(w.tmp / "one.csv", csv_text(frame))
    return Case(train(w, data), bad(f"target column 'y' in file '{data}' has a single class ('benign') in all 40 "
                                    "rows; a classifier needs at least two: check the target column, or choose "
                                    "another --target"))


@kind("target-all-empty")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = np.nan
    data = write(w.tmp / "nolabels.csv", csv_text(frame))
    return Case(train(w, data), bad(f"target column 'y' in file '{data}' is empty in all 40 rows; fill it in, or "
                                    "choose another --target"))


@kind("target-text-unique-per-row")
def _(w: Where) -> Case:
    frame = table(200)
    frame["y"] = [f"note number {i} about the patient" for i in range(200)]
    data = write(w.tmp / "notes.csv", csv_text(frame))
    # a 3 KB line listing 200 classes that never named the column
    return Case(train(w, data), bad(
        f"target column 'y' in file '{data}' holds a different value in each of its 200 rows ('note number 0 "
        "about the pat...', 'note number 1 about the pat...', 'note number 2 about the pat...' ...): it is an ID "
        "or free text, not class labels; choose the column that holds the labels with --target"))


@kind("target-many-tiny-classes")
def _(w: Where) -> Case:
    frame = table(200)
    frame["y"] = [f"c{i // 2:03d}" for i in range(200)]  # 100 classes of 2 rows
    data = write(w.tmp / "tiny-classes.csv", csv_text(frame))
    return Case(train(w, data), bad(
        f"target column 'y' in file '{data}': classes 'c000' (2), 'c001' (2), 'c002' (2), 'c003' (2), 'c004' (2) "
        "and 95 more have fewer than 3 rows, too few to appear in the training, validation and test splits; add "
        "rows, merge or remove those classes"))


@kind("target-floats-3-distinct-values")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = [0.5, 1.5, 2.5] * 13 + [0.5]
    data = write(w.tmp / "floats.csv", csv_text(frame))
    return Case(train(w, data, *TRAIN), done(out_has=("task regression (the target is numeric with 3 distinct "
                                                      "values)",)))


@kind("target-infinite")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = np.linspace(0, 10, 40)
    frame.loc[5, "y"] = np.inf
    data = write(w.tmp / "inf-target.csv", csv_text(frame))
    # it went on to a non-finite loss, reported as a training failure (exit 1)
    return Case(train(w, data), bad(f"target column 'y' in file '{data}' has 1 infinite values (first at line 7); "
                                    "replace them with finite numbers, or leave the cells empty to leave those rows "
                                    "out"))


@kind("target-regression-near-1e308")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = np.linspace(-1, 1, 40) * 1.7e308
    data = write(w.tmp / "huge-target.csv", csv_text(frame))

    def report(out: str, err: str) -> None:  # the residuals plot raised 'Singular matrix': no report.html
        assert (Path(out.strip().splitlines()[-1]) / "report.html").is_file()

    return Case(train(w, data, "--epochs", "1"), done(out_has=("task regression",), extra=report))


@kind("target-integer-classes-past-int64")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = [(i % 3 - 1) * 5e307 for i in range(40)]  # 3 integer-valued floats: classes, by the rule
    data = write(w.tmp / "huge-classes.csv", csv_text(frame))
    # the class labels were cast to int64: 'cannot safely cast non-equivalent float64 to int64'
    return Case(train(w, data, *TRAIN), done(out_has=("task multiclass",)))


@kind("task-binary-with-3-classes")
def _(w: Where) -> Case:
    frame = table()
    frame["y"] = ["a", "b", "c", "a"] * 10
    data = write(w.tmp / "three.csv", csv_text(frame))
    return Case(train(w, data, "--task", "binary"), bad(f"--task binary but target column 'y' in file '{data}' holds "
                                                        "3 distinct values; use --task multiclass"))


@kind("task-regression-on-text")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, "--task", "regression"),
                bad(f"--task regression but target column 'y' in file '{data}' is not numeric; use --task binary or "
                    "multiclass"))


@kind("multilabel-column-not-0-1")
def _(w: Where) -> Case:
    frame = table()
    frame["sport"] = [i % 2 for i in range(40)]
    frame["news"] = [i % 3 for i in range(40)]
    data = write(w.tmp / "labels.csv", csv_text(frame.drop(columns="y")))
    return Case(train(w, data, target="sport,news"), bad(
        f"target column 'news' of a multi-label target in file '{data}' holds 13 values that are not 0/1 (first: "
        "'2'); each label column must hold 0/1 or true/false"))


@kind("multilabel-column-missing")
def _(w: Where) -> Case:
    frame = table().drop(columns="y")
    frame["sport"] = [i % 2 for i in range(40)]
    data = write(w.tmp / "labels.csv", csv_text(frame))
    return Case(train(w, data, target="sport,News"), bad(
        f"target column 'News' is not in file '{data}'; its columns are: a, b, color, sport; pass one of them "
        "with --target"))


@kind("multilabel-empty-name")
def _(w: Where) -> Case:
    return Case(train(w, good(w), target="y,"), bad("--target 'y,' names an empty column; name each label column "
                                                     "once, separated by commas (--target sport,news,local)"))


@kind("only-the-target-column")
def _(w: Where) -> Case:
    data = write(w.tmp / "labels-only.csv", "y\n" + "\n".join(alternating(30)) + "\n")
    return Case(train(w, data), bad(f"file '{data}' holds only the target column 'y'; the model needs at least one "
                                    "input column besides it: add the columns to learn from to the file"))


@kind("all-features-constant")
def _(w: Where) -> Case:
    data = write(w.tmp / "const.csv", "a,b,y\n" + "".join(f"1,x,{v}\n" for v in alternating(30)))
    return Case(train(w, data), bad(f"file '{data}': no input column is left besides the target (left out: 'a' as "
                                    "constant (every row holds '1'), 'b' as constant (every row holds 'x')); the "
                                    "model needs at least one: keep a column (--numeric a or --categorical a), "
                                    "or add columns to learn from"))


@kind("two-rows")
def _(w: Where) -> Case:
    data = write(w.tmp / "two.csv", "a,y\n1,no\n2,yes\n")
    return Case(train(w, data), bad(f"file '{data}' has 2 usable rows; training needs at least 10 to hold out "
                                    "validation and test rows: add rows"))


@kind("five-rows-one-without-target")
def _(w: Where) -> Case:
    data = write(w.tmp / "five.csv", "a,y\n1,no\n2,yes\n3,\n4,no\n5,yes\n")
    return Case(train(w, data), bad(f"file '{data}' has 4 usable rows (of 5: rows without a target, or with the "
                                    "neutral label, are left out); training needs at least 10 to hold out "
                                    "validation and test rows: add rows"))


@kind("1000-identical-rows")
def _(w: Where) -> Case:
    data = write(w.tmp / "same.csv", "a,b,y\n" + "1.5,red,yes\n" * 1000)
    return Case(train(w, data), bad(f"target column 'y' in file '{data}' has a single class ('yes') in all 1000 "
                                    "rows; a classifier needs at least two: check the target column, or choose "
                                    "another --target"))


@kind("neutral-label-absent")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, "--neutral-label", "unsure", *TRAIN), done(
        f"--neutral-label 'unsure': no row of target column 'y' in file '{data}' holds it, so every row is trained "
        "on; check its spelling (the column holds: no, yes)"))


# ---------------------------------------------------------------- column flags


@kind("drop-names-missing-column")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, "--drop", "colour"), bad(f"file '{data}': --drop names column 'colour', which is not in "
                                                        "the table (did you mean 'color'?)"))


@kind("categorical-names-column-in-other-case")
def _(w: Where) -> Case:
    data = good(w)
    return Case(train(w, data, "--categorical", "A"), bad(f"file '{data}': --categorical names column 'A', which is "
                                                          "not in the table (did you mean 'a'?)"))


# ---------------------------------------------------------------- flags and config files


@kind("negative-epochs")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--epochs", "-1"), bad_with("epochs=-1 is not allowed", "1 or more"))


@kind("lr-nan")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--lr", "nan"), bad_with("lr=nan is not allowed", "finite"))


@kind("lr-not-a-number")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--lr", "fast"), usage_error("argument --lr: expected float or none, got 'fast'"))


@kind("batch-size-0")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--batch-size", "0"), bad_with("batch_size=0 is not allowed", "1 or more"))


@kind("val-fraction-0.9")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--val-fraction", "0.9"), bad_with("val_fraction=0.9 is not allowed", "(0, 0.5)"))


@kind("dropout-2")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--dropout", "2"), bad_with("dropout=2.0 is not allowed", "[0, 1)"))


@kind("out-is-a-file")
def _(w: Where) -> Case:
    taken = write(w.tmp / "runs", "not a folder")
    return Case(["train", good(w), "--target", "y", "--out", taken],
                bad(f"--out {taken} is a file; give a folder for the run folders (default: runs)"))


@kind("config-invalid-json")
def _(w: Where) -> Case:
    conf = write(w.tmp / "c.json", "{data: 1")
    return Case(train(w, good(w), "--config", conf), bad_with(f"config file '{conf}' is not valid JSON (line 1",
                                                              "; fix it"))


@kind("config-unknown-key")
def _(w: Where) -> Case:
    conf = write(w.tmp / "c.json", json.dumps({"train": {"epoch": 3}}))
    return Case(train(w, good(w), "--config", conf), bad_with(
        f"config file '{conf}', section 'train': unknown key 'epoch' (did you mean 'epochs'?); allowed keys: "))


@kind("config-not-an-object")
def _(w: Where) -> Case:
    conf = write(w.tmp / "c.json", "[1, 2]")
    return Case(train(w, good(w), "--config", conf), bad_with(f"config file '{conf}' must hold an object"))


@kind("config-wrong-type")
def _(w: Where) -> Case:
    conf = write(w.tmp / "c.json", json.dumps({"train": {"epochs": "ten"}}))
    # config.py's from_dict passes 'ten' on: TrainConfig compares it with 1 (a TypeError traceback)
    return Case(train(w, good(w), "--config", conf), bad_with(f"config file '{conf}'", "epochs"))


@kind("config-section-not-an-object")
def _(w: Where) -> Case:
    conf = write(w.tmp / "c.json", json.dumps({"model": [64, 32]}))
    return Case(train(w, good(w), "--config", conf), bad_with(f"config file '{conf}'", "model"))


@kind("config-missing-file")
def _(w: Where) -> Case:
    conf = w.tmp / "missing.json"
    return Case(train(w, good(w), "--config", conf), bad_with(f"config file '{conf}' cannot be read",
                                                              "; check the path"))


# ---------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A one-epoch run on the small binary table (columns a, b, color; target y), no audit, no report."""
    folder = tmp_path_factory.mktemp("trained")
    table(60).to_csv(folder / "train.csv", index=False)
    return train_table(folder / "train.csv", "y", out=folder / "runs", train_config=TrainConfig(epochs=1),
                       report=False, audit=False).run_dir


def predict(w: Where, data: Path, run: Path | None = None) -> list[object]:
    return ["predict", run or w.run, data]


def own_run(w: Where) -> Path:
    """A copy of the trained run folder in the kind's own folder, to damage."""
    copy = w.tmp / "run"
    shutil.copytree(w.run, copy)  # type: ignore[arg-type]
    return copy


@kind("predict-missing-column", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", csv_text(table(10, 1).drop(columns=["b", "y"])))
    return Case(predict(w, data), bad(f"file '{data}' lacks 1 column(s) the model needs: 'b'; add them (the model "
                                      "was trained on: a, b, color)"))


@kind("predict-column-in-other-case", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", csv_text(table(10, 1).rename(columns={"color": "Color"})))
    return Case(predict(w, data), bad(f"file '{data}' lacks 1 column(s) the model needs: 'color' (did you mean "
                                      "'Color'?); add them (the model was trained on: a, b, color)"))


@kind("predict-extra-columns", needs_run=True)
def _(w: Where) -> Case:
    frame = table(10, 1)
    frame["note"] = "x"
    data = write(w.tmp / "new.csv", csv_text(frame))
    return Case(predict(w, data), done("columns the model does not use are ignored: note", codes=(0,),
                                       out_has=("prediction,p_no,p_yes",)))


@kind("predict-numeric-column-with-text", needs_run=True)
def _(w: Where) -> Case:
    frame = table(10, 1).astype({"a": object})
    frame.loc[4, "a"] = "n/a?"
    data = write(w.tmp / "new.csv", csv_text(frame))
    return Case(predict(w, data), bad(f"file '{data}': column 'a' has 1 values that are not numbers (first at line "
                                      "6: 'n/a?'); fix them, leave them empty to impute, or train a model that reads "
                                      "the column as categories (train's --categorical a)"))


@kind("predict-unseen-categories", needs_run=True)
def _(w: Where) -> Case:
    frame = table(10, 1)
    frame.loc[[2, 5], "color"] = "purple"
    data = write(w.tmp / "new.csv", csv_text(frame))
    return Case(predict(w, data), done("cells the model had not seen in training (imputed or unknown category): "
                                       "color 2", codes=(0,)))


@kind("predict-empty-table", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", "a,b,color\n")
    return Case(predict(w, data), bad(f"file '{data}' has a header (3 columns) but no data rows; add the rows to "
                                      "train or predict on"))


@kind("predict-header-row-is-data", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", "0.5,1.5,7\n0.1,0.2,3\n")
    return Case(predict(w, data), bad(f"file '{data}' has no header row: its first line holds numbers (0.5, 1.5, "
                                      "7), not column names; add a first line naming the columns (the model was "
                                      "trained on: a, b, color)"))


@kind("predict-binary-data-file", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", bytes(range(1, 256)) * 4)
    return Case(predict(w, data), bad(f"file '{data}' is not a table: it is binary data, not text; give a CSV or "
                                      "Parquet file"))


@kind("predict-folder-that-is-not-a-run", needs_run=True)
def _(w: Where) -> Case:
    folder = w.tmp / "notes"
    folder.mkdir()
    write(folder / "readme.txt", "not a run")
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    return Case(predict(w, data, folder), bad(f"run folder '{folder}' holds no model (model.json and "
                                              "model.safetensors); the run may not have finished: train it again"))


@kind("predict-run-folder-missing", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    return Case(predict(w, data, w.tmp / "no-run"), bad(f"run folder '{w.tmp / 'no-run'}' does not exist; give the "
                                                        "folder that `nnrecipe train` printed"))


@kind("predict-truncated-weights", needs_run=True)
def _(w: Where) -> Case:
    run = own_run(w)
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    return Case(predict(w, data, run), bad_with(str(weights), "train the run again"))


@kind("predict-model-json-lacks-a-key", needs_run=True)
def _(w: Where) -> Case:
    run = own_run(w)
    meta = json.loads((run / "model.json").read_text())
    del meta["preprocessing"]
    write(run / "model.json", json.dumps(meta))
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    return Case(predict(w, data, run), bad_with(str(run / "model.json"), "'preprocessing'", "train the run again"))


@kind("predict-model-json-not-json", needs_run=True)
def _(w: Where) -> Case:
    run = own_run(w)
    write(run / "model.json", "{ oops")
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    return Case(predict(w, data, run), bad_with(f"'{run / 'model.json'}' cannot be read as JSON", "train the run "
                                                                                                  "again"))


@kind("predict-out-is-the-input", needs_run=True)
def _(w: Where) -> Case:
    data = write(w.tmp / "new.csv", csv_text(table(10, 1)))
    # predict wrote its predictions over the data it read
    return Case([*predict(w, data), "--out", data], bad_with(f"--out {data}", "input"))


# ---------------------------------------------------------------- audit


@kind("audit-values-near-1e308")
def _(w: Where) -> Case:
    frame = table()
    frame["big"] = np.where(np.arange(40) % 2, 1e308, -1e308)
    data = write(w.tmp / "big.csv", csv_text(frame))
    # the leakage check stacked an empty list: a traceback
    return Case(train(w, data, command="audit"), done(out_has=("leakage leaked target",)))


@kind("audit-test-file-missing")
def _(w: Where) -> Case:
    return Case(train(w, good(w), "--test", w.tmp / "nope.csv", command="audit"),
                bad(f"file '{w.tmp / 'nope.csv'}' does not exist; check the path"))


@kind("audit-test-file-binary")
def _(w: Where) -> Case:
    test = write(w.tmp / "test.csv", b"\x89PNG\r\n\x1a\n" + bytes(64))
    return Case(train(w, good(w), "--test", test, command="audit"),
                bad(f"file '{test}' is not a table: it is a PNG image; give a CSV or Parquet file"))


@kind("audit-test-file-other-columns")
def _(w: Where) -> Case:
    test = write(w.tmp / "test.csv", "q,r\n1,2\n")
    return Case(train(w, good(w), "--test", test, command="audit"), bad_with(f"file '{test}' lacks 3 column(s)",
                                                                            "'a', 'b', 'color'"))


@kind("audit-only-the-target")
def _(w: Where) -> Case:
    data = write(w.tmp / "labels-only.csv", "y\n" + "\n".join(alternating(30)) + "\n")
    return Case(train(w, data, command="audit"), bad(f"file '{data}' holds only the target column 'y'; the model "
                                                     "needs at least one input column besides it: add the columns to "
                                                     "learn from to the file"))


@kind("audit-json-in-missing-folder")
def _(w: Where) -> Case:
    out = w.tmp / "nowhere" / "audit.json"
    return Case(train(w, good(w), "--json", out, command="audit"),
                bad(f"--json {out}: folder '{out.parent}' does not exist; create it, or write elsewhere"))


# ---------------------------------------------------------------- clean


def clean(w: Where, data: Path, out: Path, *extra: object) -> list[object]:
    return ["clean", data, "--target", "y", "--out", out, *extra]


@kind("clean-out-is-the-input")
def _(w: Where) -> Case:
    data = good(w)
    return Case(clean(w, data, data), bad(f"--out {data} is the input file; clean never overwrites its input: write "
                                          "the cleaned copy to another file"))


@kind("clean-log-is-the-input")
def _(w: Where) -> Case:
    data = good(w)
    return Case(clean(w, data, w.tmp / "clean.csv", "--log", data),
                bad(f"--log {data} is the input file; clean never overwrites its input: write the cleaned copy to "
                    "another file"))


@kind("clean-out-not-csv-or-parquet")
def _(w: Where) -> Case:
    out = w.tmp / "clean.xlsx"
    return Case(clean(w, good(w), out), bad(f"--out {out}: write the cleaned copy as .csv or .parquet (the extension "
                                            "decides)"))


@kind("clean-empty-file")
def _(w: Where) -> Case:
    data = write(w.tmp / "empty.csv", "")
    return Case(clean(w, data, w.tmp / "clean.csv"), bad(f"file '{data}' is empty; it needs a header row and data "
                                                          "rows"))


@kind("clean-thousands-separators")
def _(w: Where) -> Case:
    frame = table()
    frame["price"] = [f"{int(v):,}" for v in np.linspace(900, 250_000, 40)]
    data = write(w.tmp / "prices.csv", csv_text(frame))
    return Case(clean(w, data, w.tmp.parent / "clean.csv"), done("holds numbers written with thousands separators",
                                                                 codes=(0,), out_has=("kept ",)))


# ---------------------------------------------------------------- tune


def tune(w: Where, data: Path, *extra: object) -> list[object]:
    return ["tune", data, "--target", "y", "--out", w.tmp.parent / "studies", "--trials", "1", *extra]


@kind("tune-data-file-missing")
def _(w: Where) -> Case:
    write(w.tmp / "other.csv", "a,y\n")
    return Case(tune(w, w.tmp / "nope.csv"), bad(f"file '{w.tmp / 'nope.csv'}' does not exist; check the path"))


@kind("tune-space-not-yaml")
def _(w: Where) -> Case:
    space = write(w.tmp / "space.yaml", "train: {lr: [1, 2, 3]\n")
    return Case(tune(w, good(w), "--space", space), bad_with(f"space file '{space}' is not valid YAML", "; fix it"))


@kind("tune-space-unknown-setting")
def _(w: Where) -> Case:
    space = write(w.tmp / "space.yaml", "train:\n  lrr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    return Case(tune(w, good(w), "--space", space),
                bad_with(f"space file '{space}'", "'train.lrr' is not a setting that can be searched",
                         "(did you mean 'lr'?)"))


@kind("tune-trials-0")
def _(w: Where) -> Case:
    return Case([*tune(w, good(w)), "--trials", "0"], bad_with("trials=0 is not allowed", "1 or more"))


@kind("tune-header-row-is-data")
def _(w: Where) -> Case:
    data = write(w.tmp / "noheader.csv", "".join(f"{v:.3f},{i % 2}\n" for i, v in enumerate(numbers(30))))
    return Case(tune(w, data), bad_with(f"target column 'y' is not in file '{data}': its first line holds numbers"))


@pytest.mark.parametrize("name", list(KINDS))
def test_malformed_input(name, cli, tmp_path, caplog, request):
    run = request.getfixturevalue("trained") if getattr(KINDS[name], "needs_run", False) else None
    run_kind(KINDS, name, cli, tmp_path, caplog, run)
