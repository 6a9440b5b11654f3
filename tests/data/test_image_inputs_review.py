"""Image inputs a review found misread: an .npz's pixels by a fixed rule (never scaled by the file's own range,
so that a prediction does not depend on the file), its NaN labels left out; colour copies must keep their
colours to be near duplicates; a predict CSV with blank labels scores the rest; a path that leads nowhere
is told as a path to mend; one image file is named as one image."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from nnrecipe.data.audit.images import audit_images
from nnrecipe.data.image import read_images
from nnrecipe.errors import DataError
from nnrecipe.testing import shape_images


def test_an_npz_reads_a_pixel_value_the_same_whatever_the_files_range(tmp_path):
    pixels, _ = shape_images(6, 16, seed=1)
    dark = (pixels // 3).astype(np.uint8)  # values 0-85: a min-max scale would stretch them to 0-255
    for name, x in (("u8", dark), ("f255", dark.astype(np.float32)), ("i64", dark.astype(np.int64))):
        np.savez(tmp_path / f"{name}.npz", x=x, y=np.arange(6))
    read = [read_images(tmp_path / f"{n}.npz", cache=False).pixels for n in ("u8", "f255", "i64")]
    assert torch.equal(read[0], read[1]) and torch.equal(read[0], read[2])
    assert int(read[0].max()) == int(dark.max())
    np.savez(tmp_path / "wide.npz", x=np.r_[dark.astype(np.int64).ravel()[:-1], 300].reshape(dark.shape), y=np.arange(6))
    with pytest.raises(DataError, match=r"'x' \(int64\) holds values in \[0, 300\], which are not pixels by any rule"):
        read_images(tmp_path / "wide.npz", cache=False)
    sixteen = (dark.astype(np.uint16) * 257)
    np.savez(tmp_path / "u16.npz", x=sixteen, y=np.arange(6))
    assert torch.equal(read_images(tmp_path / "u16.npz", cache=False).pixels, read[0])


def test_nan_labels_of_an_npz_are_left_out_not_a_class(tmp_path, caplog):
    pixels, _ = shape_images(12, 16, seed=2)
    y = np.repeat([0.0, 1.0, 2.0], 4)
    y[::4] = np.nan
    np.savez(tmp_path / "nan.npz", x=pixels, y=y)
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        images = read_images(tmp_path / "nan.npz", cache=False)
    assert len(images.files) == 9 and "nan" not in images.labels and images.files[0] == "x[1]"
    assert "3 images have no label in 'y' (NaN or empty) and are left out" in caplog.text


def _layout(ground: tuple[int, int, int], ink: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (32, 32), ground)
    ImageDraw.Draw(img).ellipse([6, 8, 22, 24], fill=ink)
    return img


def test_one_layout_in_other_colours_is_not_a_copy_and_a_jpeg_copy_in_colour_is(tmp_path, monkeypatch):
    folder = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(6):  # distinct random pictures around the pair
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / label / f"n{i}.png")
    _layout((150, 70, 40), (250, 220, 120)).save(folder / "a" / "brown.png")
    _layout((40, 110, 150), (150, 240, 250)).save(folder / "b" / "green.png")  # the same luma layout
    images = read_images(folder, cache=False)
    dup = next(v for v in audit_images(images, None, seed=0) if v.name == "duplicate images")
    assert dup.evidence["near_pairs"] == 0, dup.summary
    from nnrecipe.data.audit import image_duplicates

    with monkeypatch.context() as m:  # grey pixels alone pair them: the colours are what tells them apart
        m.setattr(image_duplicates, "NEAR_COLOUR_SHIFT", 1.0)
        dup = next(v for v in audit_images(images, None, seed=0) if v.name == "duplicate images")
        assert dup.evidence["near_pairs"] == 1
    buf = io.BytesIO()
    _layout((150, 70, 40), (250, 220, 120)).save(buf, "JPEG", quality=75)
    (folder / "a" / "brown_copy.jpg").write_bytes(buf.getvalue())
    images = read_images(folder, cache=False)
    dup = next(v for v in audit_images(images, None, seed=0) if v.name == "duplicate images")
    assert [(p["a"], p["b"]) for p in dup.evidence["within"]] == [("a/brown.png", "a/brown_copy.jpg")]


def test_paths_that_lead_nowhere_and_one_image_are_told_so(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "imgs" / "one.png")
    with pytest.raises(DataError, match=r"is one image; .*put it in a folder of its own"):
        read_images(tmp_path / "imgs" / "one.png")
    with pytest.raises(DataError, match=r"cannot be read as an .npz \(not an .npz of arrays"):
        (tmp_path / "x.npz").write_bytes(b"\x80\x04garbage" * 20)
        read_images(tmp_path / "x.npz")


def test_predict_scores_the_rows_of_a_csv_that_hold_a_label_in_the_runs_target_column(tmp_path, cli):
    from nnrecipe.testing import write_image_folder

    pixels, labels = shape_images(36, 16, seed=4)
    folder = write_image_folder(tmp_path / "shapes", pixels, labels)
    code, out, err = cli("train", folder, "--epochs", "1", "--out", tmp_path / "runs", "--no-report", "--refit", "off")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))
    # a third column: the labels are read from the run's target column by its name
    rows = [f"{f},{'' if i % 4 == 0 else f.split('/')[0]},{i}" for i, f in enumerate(files)]
    (folder / "list.csv").write_text("file,label,id\n" + "\n".join(rows) + "\n")
    code, out, err = cli("predict", run, folder / "list.csv", "--out", tmp_path / "p.csv")
    blank = sum(i % 4 == 0 for i in range(len(files)))
    assert code == 0 and f"on the {len(files) - blank} rows that hold a target; {blank} without one not scored" in out + err
    assert "not among the model's classes" not in err
