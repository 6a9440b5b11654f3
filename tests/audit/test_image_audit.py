"""The image audit: each finding fires on its planted fault, naming the file or the class, and passes on
the healthy twin; near duplicates are found and distinct images are not called copies."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from nnrecipe.data.audit.images import audit_images, save_sample_grid
from nnrecipe.data.image import read_images
from nnrecipe.testing import shape_images, write_image_folder

CLASSES = ("circle", "square", "triangle")


def _write(tmp_path: Path, name: str, faults: bool) -> Path:
    """90 distinct 32 x 32 colour images in three classes; with `faults`: a truncated JPEG, a grey image, a
    JPEG-re-encoded copy of a training image, and a class 'rare' of two images."""
    pixels, labels = shape_images(90, 32, seed=1, classes=CLASSES)
    folder = write_image_folder(tmp_path / name, pixels, labels)
    if faults:
        buffer = io.BytesIO()
        Image.fromarray(shape_images(1, 48, seed=9)[0][0]).save(buffer, "JPEG", quality=90)
        (folder / "circle" / "cut.jpg").write_bytes(buffer.getvalue()[:300])
        Image.fromarray(shape_images(1, 32, seed=8)[0][0].mean(2).astype(np.uint8)).save(folder / "square" / "grey.png")
        Image.fromarray(pixels[0]).save(folder / "circle" / "zz_copy.jpg", quality=75)  # sorts last in circle/
        rare = shape_images(2, 32, seed=7)[0]
        (folder / "rare").mkdir()
        for i, image in enumerate(rare):
            Image.fromarray(image).save(folder / "rare" / f"r{i}.png")
    return folder


def _splits(files: list[str], test: list[str]) -> dict[str, np.ndarray]:
    """Every third image to test, plus the files named; the rest train."""
    test_idx = [i for i, f in enumerate(files) if i % 3 == 0 and f not in ("circle/0000.png",) or f in test]
    train_idx = [i for i in range(len(files)) if i not in test_idx]
    return {"train": np.array(train_idx), "val": np.array([], dtype=np.int64), "test": np.array(test_idx)}


def _verdict(audit, name):
    (found,) = [v for v in audit if v.name == name]
    return found


def test_each_planted_fault_is_named_and_the_healthy_twin_passes(tmp_path):
    faulty = read_images(_write(tmp_path, "faulty", True), cache_dir=tmp_path / "cache")
    audit = audit_images(faulty, _splits(faulty.files, ["circle/zz_copy.jpg"]), seed=0)
    unread = _verdict(audit, "unreadable images")
    assert unread.status == "warn" and unread.id == "D3" and "'circle/cut.jpg': truncated (the file ends" in unread.summary
    assert unread.evidence["files"] == [{"file": "circle/cut.jpg",
                                         "reason": "truncated (the file ends before the image does)"}]
    channels = _verdict(audit, "channels")
    assert channels.status == "warn" and "'square/grey.png'" in channels.summary
    assert "repeating the grey channel" in channels.summary and channels.evidence["grey_files"] == ["square/grey.png"]
    dup = _verdict(audit, "duplicate images")
    assert dup.status == "warn" and "'circle/0000.png' (train) = 'circle/zz_copy.jpg' (test, near)" in dup.summary
    assert "test score is inflated" in dup.summary
    (pair,) = dup.evidence["across_splits"]
    assert (pair["a"], pair["b"], pair["kind"], pair["splits"]) == ("circle/0000.png", "circle/zz_copy.jpg", "near",
                                                                    ["train", "test"])
    assert 0.95 < pair["similarity"] < 1  # the full-resolution correlation (half resolution confirmed it)
    empty = _verdict(audit, "nearly empty classes")
    assert empty.status == "warn" and "'rare' (2)" in empty.summary and empty.evidence["classes"] == {"rare": 2}
    assert empty.fix == "add images to those classes, or merge each into a related class or remove its folder"

    healthy = read_images(_write(tmp_path, "healthy", False), cache_dir=tmp_path / "cache")
    twin = audit_images(healthy, _splits(healthy.files, []), seed=0)
    for name in ("unreadable images", "channels", "duplicate images", "nearly empty classes", "label distribution",
                 "image sizes", "pixel statistics"):
        assert _verdict(twin, name).status == "pass", (name, _verdict(twin, name).summary)
    assert _verdict(twin, "duplicate images").evidence["near_pairs"] == 0


def test_exact_copies_with_conflicting_labels_and_a_small_share_within_a_split(tmp_path):
    pixels, labels = shape_images(60, 24, seed=2)
    folder = write_image_folder(tmp_path / "set", pixels, labels)
    Image.fromarray(pixels[4]).save(folder / "square" / "again.png")  # circle/0004.png under another label
    images = read_images(folder, cache_dir=tmp_path / "cache")
    n = len(images.files)
    dup = _verdict(audit_images(images, {"train": np.arange(n)}, seed=0), "duplicate images")
    assert dup.status == "warn" and "1 pair carries different labels" in dup.summary
    assert dup.evidence["conflicting_labels"][0]["labels"] == ["circle", "square"]
    assert dup.evidence["exact_pairs"] == 1 and dup.evidence["within_count"] == 1
    pixels[8] = pixels[6]  # a copy under the same label, within one split: 1 of 60, below 5%
    same = read_images(write_image_folder(tmp_path / "same", pixels, labels), cache_dir=tmp_path / "cache")
    quiet = _verdict(audit_images(same, None, seed=0), "duplicate images")
    assert quiet.status == "pass"
    assert quiet.summary.startswith("1 of 60 images repeat another: 'circle/0006.png' (all) = 'circle/0008.png' "
                                    "(all, exact)")


def test_distinct_digits_are_not_near_duplicates_and_brightened_copies_are(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.random.default_rng(0).choice(len(digits.images), 300, replace=False)
    pixels = np.rint(digits.images[keep] * (255 / 16)).astype(np.uint8)
    folder = write_image_folder(tmp_path / "digits", pixels, [str(digits.target[i]) for i in keep])
    healthy = read_images(folder, cache_dir=tmp_path / "cache")
    dup = _verdict(audit_images(healthy, None, seed=0), "duplicate images")
    assert dup.status == "pass" and dup.evidence["near_pairs"] == dup.evidence["exact_pairs"] == 0
    first = healthy.files[0]
    brighter = ImageEnhance.Brightness(Image.open(folder / first)).enhance(1.1)
    brighter.save(folder / first.replace(".png", "_bright.png"))
    planted = read_images(folder, cache_dir=tmp_path / "cache")
    found = _verdict(audit_images(planted, None, seed=0), "duplicate images").evidence["within"]
    assert [(p["a"], p["b"], p["kind"]) for p in found] == [(first, first.replace(".png", "_bright.png"), "near")]


def test_sizes_warn_on_crops_and_upscaling_and_blank_images_are_named(tmp_path):
    folder = tmp_path / "sizes"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    g = np.random.default_rng(0)
    for i in range(8):  # 16 squares, 2 wide images (40 x 100), 2 tiny ones (10 x 10): 2 of 20 is 10%, not more
        Image.fromarray(g.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "a" / f"sq{i}.png")
        Image.fromarray(g.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "b" / f"sq{i}.png")
    for name in ("a/wide.png", "b/wide.png"):
        Image.fromarray(g.integers(0, 256, (40, 100, 3), dtype=np.uint8)).save(folder / name)
    Image.fromarray(g.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(folder / "a" / "tiny.png")
    Image.fromarray(np.full((10, 10, 3), 30, dtype=np.uint8)).save(folder / "b" / "tiny.png")
    assert _verdict(audit_images(read_images(folder, cache_dir=tmp_path / "cache"), None), "image sizes").status == "pass"
    Image.fromarray(g.integers(0, 256, (40, 100, 3), dtype=np.uint8)).save(folder / "b" / "wide2.png")
    Image.fromarray(g.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / "b" / "tiny2.png")
    images = read_images(folder, cache_dir=tmp_path / "cache")
    audit = audit_images(images, None, seed=0)
    sizes = _verdict(audit, "image sizes")
    assert sizes.status == "warn" and sizes.id == "D2" and images.size == 40
    assert "lose more than a quarter of their area to the centre crop" in sizes.summary
    assert "'a/wide.png', 'b/wide.png', 'b/wide2.png'" in sizes.summary
    assert "enlarged more than 2x ('a/tiny.png', 'b/tiny.png', 'b/tiny2.png')" in sizes.summary
    assert sizes.evidence["width"] == {"min": 10, "median": 40.0, "max": 100} and sizes.evidence["side"] == 40
    pix = _verdict(audit, "pixel statistics")
    assert pix.status == "warn" and "'b/tiny.png'" in pix.summary and pix.evidence["blank_files"] == ["b/tiny.png"]
    x = images.pixels.double() / 255
    assert pix.evidence["mean"] == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-4)
    assert pix.evidence["std"] == pytest.approx(x.permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False).tolist(), abs=1e-4)


def test_save_writes_the_findings_the_label_plot_and_the_sample_grid(tmp_path):
    images = read_images(_write(tmp_path, "set", False), cache_dir=tmp_path / "cache")
    audit = audit_images(images, _splits(images.files, []), seed=0)
    audit.save(tmp_path / "run")
    record = json.loads((tmp_path / "run" / "audit.json").read_text())
    assert (record["images"], record["size"], record["classes"], record["samples"]) == (90, 32, 3, "samples.png")
    assert {f["name"] for f in record["findings"]} >= {"unreadable images", "duplicate images", "label distribution"}
    with Image.open(tmp_path / "run" / "samples.png") as grid:
        assert grid.width > 200 and grid.height > 150
    with Image.open(tmp_path / "run" / "label_distribution.png") as plot:
        assert plot.width > 100
    save_sample_grid(images, tmp_path / "again.png", seed=0)
    save_sample_grid(images, tmp_path / "twice.png", seed=0)
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "twice.png").read_bytes()  # seeded
    assert torch.equal(images.pixels, read_images(tmp_path / "set", cache_dir=tmp_path / "cache").pixels)
