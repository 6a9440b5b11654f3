"""Image inputs as users lay them out (a review of the image path with inputs nobody here wrote): a run
folder written into the folder of images, Kaggle's train/ and test/ folders, a class none of whose files
decode, NA label cells, a tab-separated or ';' list of paths, linked folders, a '|' in a folder's name, an
.npz whose labels are floats, --path-column beside a folder, multi-label predictions scored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnrecipe import TrainConfig
from nnrecipe.cli import main
from nnrecipe.data.image import read_images
from nnrecipe.data.audit.images import audit_images
from nnrecipe.errors import ConfigError, DataError
from nnrecipe.recipes.images import predict_images, train_images
from nnrecipe.testing import shape_images, write_image_folder

FAST = TrainConfig(epochs=1, patience=None, seed=0, refit="off")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pixels, labels = shape_images(40, side=16)
    return write_image_folder(tmp_path_factory.mktemp("shapes") / "shapes", pixels, labels)


@pytest.fixture(scope="module")
def run_dir(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_images(shapes, out=tmp_path_factory.mktemp("runs"), train_config=FAST, report=False).run_dir


def _list(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_run_folder_inside_the_folder_of_images_is_refused(shapes, tmp_path, capsys, monkeypatch):
    before = _list(shapes)
    monkeypatch.chdir(shapes)  # `cd photos && nnrecipe train .`: the default --out runs is inside the images
    assert main(["train", ".", "--epochs", "1"]) == 2
    assert "--out runs is inside the input folder ." in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["audit", str(shapes), "--out", str(shapes / "audit")]) == 2
    assert "is inside the input folder" in capsys.readouterr().err
    assert _list(shapes) == before  # nothing written: the next run would have read it as a class


def test_predictions_written_into_the_folder_of_images_are_refused(shapes, run_dir, capsys):
    assert main(["predict", str(run_dir), str(shapes), "--out", str(shapes / "circle" / "preds.csv")]) == 2
    assert "is inside the input folder" in capsys.readouterr().err
    assert not (shapes / "circle" / "preds.csv").exists()


def test_kaggles_train_and_test_folders_are_named_as_splits_not_read_as_classes(tmp_path):
    pixels, labels = shape_images(20, side=16)
    write_image_folder(tmp_path / "data" / "train", pixels, labels)
    write_image_folder(tmp_path / "data" / "test" / "flat", pixels[:5], ["x"] * 5)  # test/flat/x/*.png
    for p in (tmp_path / "data" / "test" / "flat" / "x").iterdir():
        p.rename(tmp_path / "data" / "test" / p.name)  # test/*.png: unlabelled, as Kaggle gives it
    with pytest.raises(DataError, match=r"holds 'test', 'train', named as a split.*'.*data/train', whose "
                                        r"subfolders are circle, square"):
        read_images(tmp_path / "data")
    (tmp_path / "only").mkdir()
    (tmp_path / "data" / "train").rename(tmp_path / "only" / "train")  # train/ alone: one class 'train' before
    with pytest.raises(DataError, match=r"holds 'train', named as a split.*only/train"):
        read_images(tmp_path / "only")


def test_a_class_none_of_whose_files_decode_is_named(tmp_path):
    pixels, labels = shape_images(20, side=16)
    folder = write_image_folder(tmp_path / "f", pixels, labels)
    (folder / "triangle").mkdir()
    for i in range(6):
        (folder / "triangle" / f"{i}.png").write_text("not an image")
    images = read_images(folder)
    assert images.lost_classes == ["triangle"]
    d3 = next(v for v in audit_images(images, None) if v.name == "unreadable images")
    assert d3.status == "warn" and "no image of class(es) 'triangle' could be read" in d3.summary
    assert d3.evidence["lost_classes"] == ["triangle"]


def _csv(tmp_path: Path, sep: str = ",", name: str = "list.csv", encoding: str = "utf-8") -> Path:
    pixels, labels = shape_images(24, side=16)
    folder = write_image_folder(tmp_path / "img", pixels, labels)
    files = sorted(str(p.relative_to(tmp_path)) for p in folder.rglob("*.png"))
    frame = pd.DataFrame({"file": files, "label": [Path(f).parent.name for f in files],
                          "note": ["é"] * len(files)})
    path = tmp_path / name
    frame.to_csv(path, index=False, sep=sep, encoding=encoding)
    return path


def test_na_label_cells_are_missing_labels_not_a_class(tmp_path):
    path = _csv(tmp_path)
    frame = pd.read_csv(path)
    frame.loc[:3, "label"] = ["NA", "NaN", "null", "N/A"]
    frame.to_csv(path, index=False)
    images = read_images(path, label_column="label")
    assert sorted(set(images.labels)) == ["circle", "square"] and len(images.labels) == 20


def test_a_tab_separated_list_of_paths_takes_target(tmp_path):
    path = _csv(tmp_path, sep="\t", name="list.tsv")
    assert main(["audit", str(path), "--target", "label", "--out", str(tmp_path / "a")]) == 0


def test_a_semicolon_list_of_paths_in_cp1252_is_read_as_images(tmp_path):
    path = _csv(tmp_path, sep=";", encoding="cp1252")
    images = read_images(path, label_column="label")
    assert len(images.files) == 24 and sorted(set(images.labels)) == ["circle", "square"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links")
def test_a_linked_folder_inside_a_class_is_read_as_the_image_folder_convention_does(tmp_path):
    pixels, labels = shape_images(20, side=16)
    folder = write_image_folder(tmp_path / "f", pixels, labels)
    extra = write_image_folder(tmp_path / "extra", pixels[:3], ["circle"] * 3)
    os.symlink(extra / "circle", folder / "circle" / "more")
    os.symlink(folder / "circle", folder / "circle" / "more" / "loop")  # a loop is walked once
    images = read_images(folder)
    assert len(images.files) == 23 and sum(f.startswith("circle/more/") for f in images.files) == 3


def test_a_bar_in_a_folders_name_is_one_class_not_multi_label(tmp_path):
    pixels, labels = shape_images(20, side=16)
    folder = write_image_folder(tmp_path / "f", pixels, ["rock|pop" if c == "circle" else "jazz" for c in labels])
    run = train_images(folder, out=tmp_path / "runs", train_config=FAST, report=False)
    assert run.task == "binary" and json.loads((run.run_dir / "model.json").read_text())["classes"] == \
        ["jazz", "rock|pop"]


def test_path_column_beside_a_folder_is_refused_not_ignored(shapes, run_dir, tmp_path):
    with pytest.raises(ConfigError, match="--path-column names a CSV's column"):
        predict_images(run_dir, shapes, path_column="nonexistent")
    assert main(["embed", str(run_dir), str(shapes), "--path-column", "x", "--out", str(tmp_path / "e.csv")]) == 2


def test_npz_labels_of_whole_floats_are_the_integer_classes(tmp_path):
    pixels, labels = shape_images(30, side=16)
    y = np.array([0 if c == "circle" else 1 for c in labels])
    np.savez(tmp_path / "int.npz", x=pixels, y=y)
    np.savez(tmp_path / "float.npz", x=pixels, y=y.astype(np.float64))
    run = train_images(tmp_path / "int.npz", out=tmp_path / "runs", train_config=FAST, report=False)
    _, report = predict_images(run.run_dir, tmp_path / "float.npz")
    assert report["scored_rows"] == 30 and not report["unknown_labels"]  # '0.0' was no class of '0' and '1'


def test_multi_label_predictions_on_labelled_rows_are_scored(tmp_path, capsys):
    pixels, labels = shape_images(40, side=16)
    folder = write_image_folder(tmp_path / "img", pixels, labels)
    files = sorted(str(p.relative_to(tmp_path)) for p in folder.rglob("*.png"))
    cells = [f"{Path(f).parent.name}|round" if Path(f).parent.name == "circle" else "square" for f in files]
    pd.DataFrame({"file": files, "label": cells}).to_csv(tmp_path / "multi.csv", index=False)
    run = train_images(tmp_path / "multi.csv", out=tmp_path / "runs", train_config=FAST, report=False)
    assert run.task == "multilabel"
    preds, report = predict_images(run.run_dir, tmp_path / "multi.csv")
    assert report["scored_rows"] == 40 and report["accuracy_of"] == "every label of an image right"
    from sklearn.metrics import accuracy_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarize = MultiLabelBinarizer(classes=["circle", "round", "square"])
    truth = binarize.fit_transform([c.split("|") for c in cells])
    said = binarize.transform([str(p).split("|") if str(p) else [] for p in preds["prediction"].fillna("")])
    assert report["accuracy"] == pytest.approx(accuracy_score(truth, said))  # the subset accuracy
    assert main(["predict", str(run.run_dir), str(tmp_path / "multi.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    assert "accuracy against the target column" in capsys.readouterr().out


def test_npz_pixels_that_are_not_real_numbers_are_refused_by_name(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.ones((4, 8, 8), dtype=complex), y=np.arange(4))
    with pytest.raises(DataError, match=r"'x' holds complex128 values; give pixels as numbers"):
        read_images(tmp_path / "c.npz")


def test_the_word_none_is_a_class_of_an_image_csv_as_of_a_table(tmp_path):
    path = _csv(tmp_path)
    frame = pd.read_csv(path)
    frame.loc[frame["label"] == "circle", "label"] = "None"  # a defect class 'None' beside another
    frame.to_csv(path, index=False)
    images = read_images(path, label_column="label")
    assert sorted(set(images.labels)) == ["None", "square"] and len(images.labels) == 24
