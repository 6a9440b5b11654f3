"""read_images: the three sources, decoding faults, modes, the resize rule, the content-keyed cache."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nnrecipe.data.image import ImageSet, image_source, read_images, resize_side
from nnrecipe.errors import ConfigError, DataError
from nnrecipe.testing import shape_images, write_image_folder


def _folder(tmp_path: Path, n: int = 12, side: int = 32, seed: int = 0) -> Path:
    pixels, labels = shape_images(n, side, seed)
    return write_image_folder(tmp_path / "images", pixels, labels)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_class_folder_reads_sorted_with_labels_and_ignores_hidden_and_other_files(tmp_path):
    folder = _folder(tmp_path)
    (folder / "circle" / ".hidden.png").write_bytes(b"not read")
    (folder / "circle" / "notes.txt").write_text("not an image")
    (folder / ".git").mkdir()
    images = read_images(folder, cache_dir=tmp_path / "cache")
    assert isinstance(images, ImageSet)
    assert images.files == ([f"circle/{i:04d}.png" for i in range(0, 12, 2)]
                            + [f"square/{i:04d}.png" for i in range(1, 12, 2)])
    assert images.labels == ["circle"] * 6 + ["square"] * 6
    assert images.pixels.shape == (12, 3, 32, 32) and images.pixels.dtype == torch.uint8
    assert (images.size, images.channels, images.unreadable) == (32, 3, [])
    assert images.sizes == [(32, 32)] * 12 and images.modes == ["RGB"] * 12
    original = np.array(Image.open(folder / "square" / "0001.png"))  # already 32 x 32: left untouched
    assert torch.equal(images.pixels[6], torch.from_numpy(original).permute(2, 0, 1))
    assert images.fingerprint == {"source": str(folder), "images": 12, "unreadable": 0, "size": 32, "channels": 3,
                                  "content_key": images.content_key, "sha256": images.fingerprint["sha256"]}
    assert len(images.content_key) == 64 and len(images.fingerprint["sha256"]) == 64
    from nnrecipe.data.image import store

    with pytest.MonkeyPatch.context() as m:  # the data's digest, unlike the cache key, ignores the reader's version
        m.setattr(store, "READ_VERSION", store.READ_VERSION + 1)
        again = read_images(folder, cache=False)
    assert again.fingerprint["sha256"] == images.fingerprint["sha256"] and again.content_key != images.content_key


def test_resize_rule_on_mixed_sizes(tmp_path):
    # the median shorter side, to the nearest multiple of 8 (halves up), within [8, 128]
    assert resize_side([(40, 30), (64, 64), (100, 20)]) == 32  # shorter sides 30, 64, 20: median 30
    assert resize_side([(28, 28)]) == 32 and resize_side([(25, 25)]) == 24 and resize_side([(27, 40)]) == 24
    assert resize_side([(3, 5)]) == 8 and resize_side([(640, 480), (1024, 768)]) == 128
    folder = tmp_path / "mixed"
    (folder / "a").mkdir(parents=True)
    stripes = np.zeros((24, 48), dtype=np.uint8)
    stripes[:, ::2] = 255
    stripes[:, 12:36] = np.arange(24, dtype=np.uint8)[None, :] * 10  # the centre square: a ramp
    Image.fromarray(stripes).save(folder / "a" / "wide.png")  # 48 x 24: shorter side 24, centre cropped
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(folder / "a" / "small.png")
    Image.fromarray(np.full((40, 30), 9, dtype=np.uint8)).save(folder / "a" / "tall.png")
    images = read_images(folder, cache_dir=tmp_path / "cache")
    assert images.sizes == [(16, 16), (30, 40), (48, 24)] and images.size == 24  # shorter sides 16, 30, 24
    assert images.pixels.shape == (3, 1, 24, 24)
    assert torch.equal(images.pixels[2, 0], torch.from_numpy(stripes[:, 12:36]))  # the crop at scale 1
    assert (images.pixels[0] == 7).all() and (images.pixels[1] == 9).all()
    assert read_images(folder, 16, cache_dir=tmp_path / "cache").pixels.shape == (3, 1, 16, 16)
    with pytest.raises(ConfigError) as e:
        read_images(folder, 5)
    assert str(e.value) == ("size=5 is not allowed; give a whole number of pixels, 8 or more (the CNN halves the image "
                            "three times), or leave it out for the rule (the median shorter side, a multiple of 8, at "
                            "most 128)")


def test_a_truncated_jpeg_and_a_non_image_are_unreadable_and_left_out(tmp_path):
    folder = _folder(tmp_path)
    buffer = io.BytesIO()
    Image.fromarray(shape_images(1, 64, seed=5)[0][0]).save(buffer, "JPEG", quality=90)
    (folder / "circle" / "broken.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "square" / "fake.png").write_text("this is text")
    images = read_images(folder, cache_dir=tmp_path / "cache")
    assert images.unreadable == [("circle/broken.jpg", "truncated (the file ends before the image does)"),
                                 ("square/fake.png", "not an image Pillow can decode")]
    assert len(images.files) == len(images.pixels) == len(images.labels) == len(images.sizes) == 12
    assert "circle/broken.jpg" not in images.files
    only = tmp_path / "only"
    (only / "a").mkdir(parents=True)
    (only / "a" / "fake.png").write_text("this is text")
    with pytest.raises(DataError) as e:
        read_images(only)
    assert str(e.value) == (f"'{only}': none of its 1 image files could be read (a/fake.png: not an image Pillow can "
                            "decode); re-export each file (open and save it again as PNG or JPEG) or remove it")
    listed = tmp_path / "listed.csv"  # paths that lead nowhere are paths to mend, not files to export again
    listed.write_text("file,label\nimgs\\a.png,x\nimgs\\b.png,y\n")
    with pytest.raises(DataError) as e:
        read_images(listed)
    assert "no such file" in str(e.value) and "check the paths: a CSV's image paths are read relative" in str(e.value)


def test_grey_among_colour_repeats_the_grey_channel_and_modes_are_scaled(tmp_path):
    folder = _folder(tmp_path, n=4)
    grey = np.tile(np.arange(32, dtype=np.uint8) * 8, (32, 1))
    Image.fromarray(grey).save(folder / "circle" / "grey.png")
    deep = (np.tile(np.arange(32, dtype=np.uint16), (32, 1)) * 2000).astype(np.uint16)  # 16-bit grey, 0-62000
    Image.fromarray(deep).save(folder / "square" / "deep.png")
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:16, :, 3] = 255  # top half opaque red, bottom half fully transparent
    Image.fromarray(rgba).save(folder / "square" / "clear.png")
    images = read_images(folder, cache_dir=tmp_path / "cache")
    modes = dict(zip(images.files, images.modes))
    assert modes["circle/grey.png"] == "L" and modes["square/clear.png"] == "RGBA"
    assert modes["square/deep.png"].startswith("I")
    assert images.channels == 3
    g = images.pixels[images.files.index("circle/grey.png")]
    assert torch.equal(g[0], torch.from_numpy(grey)) and torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    d = images.pixels[images.files.index("square/deep.png"), 0]
    assert torch.equal(d[0], torch.from_numpy(np.rint(deep[0] / 257).astype(np.uint8)))  # 65535 -> 255
    c = images.pixels[images.files.index("square/clear.png")]
    assert c[:, :16].tolist() == [[[200] * 32] * 16, [[0] * 32] * 16, [[0] * 32] * 16]
    assert (c[:, 16:] == 255).all()  # transparent: composited on white


def test_all_grey_images_keep_one_channel_and_exif_orientation_is_applied(tmp_path):
    folder = tmp_path / "g"
    (folder / "x").mkdir(parents=True)
    image = np.zeros((16, 32), dtype=np.uint8)  # 32 wide, 16 high; the left half white
    image[:, :16] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored as is, to be shown rotated 90 degrees clockwise
    Image.fromarray(image).save(folder / "x" / "turned.jpg", exif=exif, quality=95)
    Image.fromarray(np.full((16, 16), 100, dtype=np.uint8)).save(folder / "x" / "plain.png")
    images = read_images(folder, 16, cache_dir=tmp_path / "cache")
    assert images.channels == 1 and images.modes == ["L", "L"]
    assert images.sizes == [(16, 16), (16, 32)]  # (width, height) as shown: the rotation swaps them
    turned = images.pixels[1, 0].float()
    assert turned[:4].mean() > 200 and turned[-4:].mean() < 50  # the left (white) half went to the top


def test_a_csv_of_relative_paths_with_missing_files_and_empty_labels(tmp_path):
    folder = _folder(tmp_path, n=6)
    csv = folder / "list.csv"
    csv.write_text("file,kind\ncircle/0000.png,round\nsquare/0001.png,\nsquare/0003.png,box\n"
                   "gone/none.png,box\ncircle/0002.png,round|big\n")
    images = read_images(csv, cache_dir=tmp_path / "cache")
    assert images.files == ["circle/0000.png", "square/0003.png", "circle/0002.png"]
    assert images.labels == ["round", "box", "round|big"]  # multi-label cells kept as written
    assert images.unreadable == [("gone/none.png", "no such file")]
    other = tmp_path / "elsewhere.csv"  # absolute paths are read as they are
    other.write_text(f"path,label\n{folder / 'circle' / '0000.png'},a\n{folder / 'square' / '0001.png'},b\n")
    absolute = read_images(other, cache_dir=tmp_path / "cache")
    assert torch.equal(absolute.pixels[0], images.pixels[0]) and absolute.labels == ["a", "b"]


@pytest.mark.parametrize("text, kwargs, message", [
    ("a,b,y\nx.png,y.jpg,1\nz.png,w.jpg,0\n", {},
     "has several columns of image paths ('a', 'b'): pass --path-column with the column to read"),
    ("a,y\n1,2\n", {},
     "has no column of image paths (cells ending in .png, .jpg, .jpeg, .bmp, .gif, .webp, .tif, .tiff; columns: "
     "'a', 'y'): pass --path-column with the column to read"),
    ("path,y,z\nx.png,1,2\n", {},
     "has 3 columns ('path', 'y', 'z'): pass --target with the column of labels (the images are in 'path')"),
    ("path,y,z\nx.png,1,2\n", {"label_column": "Y"},
     "has no column 'Y' (did you mean 'y'?); its columns: 'path', 'y', 'z'; pass --target with the label column"),
])
def test_csv_errors_name_the_file_the_columns_and_the_flag(tmp_path, text, kwargs, message):
    csv = tmp_path / "images.csv"
    csv.write_text(text)
    with pytest.raises(DataError) as e:
        read_images(csv, **kwargs)
    assert str(e.value) == f"CSV '{csv}' {message}"


def test_an_npz_in_hwc_and_chw_reads_alike_and_floats_are_scaled(tmp_path):
    pixels, labels = shape_images(6, 16, seed=3)
    hwc, chw, flt = tmp_path / "hwc.npz", tmp_path / "chw.npz", tmp_path / "float.npz"
    np.savez(hwc, x=pixels, y=np.array(labels))
    np.savez(chw, x=pixels.transpose(0, 3, 1, 2), y=np.arange(6))
    np.savez(flt, x=pixels.astype(np.float32) / 255, y=np.arange(6))
    a, b, c = (read_images(p, cache_dir=tmp_path / "cache") for p in (hwc, chw, flt))
    assert torch.equal(a.pixels, b.pixels) and torch.equal(a.pixels, c.pixels)
    assert torch.equal(a.pixels, torch.from_numpy(pixels).permute(0, 3, 1, 2))  # 16 x 16: untouched
    assert a.files == [f"x[{i}]" for i in range(6)] and a.labels == labels and b.labels == [str(i) for i in range(6)]
    assert a.modes == ["array"] * 6 and a.sizes == [(16, 16)] * 6 and (a.size, a.channels) == (16, 3)
    grey = tmp_path / "grey.npz"
    np.savez(grey, x=pixels[..., 0])
    g = read_images(grey, labelled=False, cache_dir=tmp_path / "cache")
    assert g.labels is None and g.pixels.shape == (6, 1, 16, 16)


def test_npz_errors_name_the_keys_found_and_what_is_needed(tmp_path):
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((2, 8, 8), dtype=np.uint8), labels=np.arange(2))
    with pytest.raises(DataError) as e:
        read_images(wrong)
    assert str(e.value) == (f"file '{wrong}' holds arrays 'images', 'labels'; it needs 'x' (the images: (N, H, W), "
                            "(N, H, W, C) or (N, C, H, W), C in 1, 3, 4) and 'y' (their labels, (N,)); save them with "
                            "np.savez(file, x=images, y=labels)")
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError) as e:
        read_images(no_y)
    assert str(e.value) == (f"file '{no_y}' holds 'x' but no 'y' (the labels, (N,)); save them with "
                            "np.savez(file, x=images, y=labels)")


def test_a_folder_without_class_subfolders_needs_labelled_false(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, image in enumerate(shape_images(3, 16)[0]):
        Image.fromarray(image).save(flat / f"{i}.png")
    with pytest.raises(DataError) as e:
        read_images(flat)
    assert str(e.value) == (f"folder '{flat}' holds 3 images but no class subfolders: put each class's images in a "
                            "subfolder named after the class, or give a CSV with a path and a label column")
    images = read_images(flat, labelled=False, cache_dir=tmp_path / "cache")
    assert images.labels is None and images.files == ["0.png", "1.png", "2.png"]
    labelled = read_images(_folder(tmp_path, n=4), labelled=False, cache_dir=tmp_path / "cache")
    assert labelled.labels == ["circle", "circle", "square", "square"]  # subfolders still name the classes


def test_the_second_read_loads_the_cache_without_decoding_and_inputs_are_unchanged(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    before = _digests(folder)
    cache = tmp_path / "cache"
    first = read_images(folder, cache_dir=cache)
    assert [p.suffix for p in cache.iterdir()] == [".safetensors"]

    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit must not decode")

    monkeypatch.setattr(Image, "open", refuse)
    second = read_images(folder, cache_dir=cache)
    for name in ("files", "labels", "sizes", "modes", "unreadable", "size", "channels", "content_key", "fingerprint"):
        assert getattr(second, name) == getattr(first, name), name
    assert torch.equal(second.pixels, first.pixels)
    monkeypatch.undo()
    assert _digests(folder) == before  # the inputs are only read
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(folder / "circle" / "0000.png")  # changed content
    changed = read_images(folder, cache_dir=cache)
    assert changed.content_key != first.content_key and (changed.pixels[0] == 0).all()
    assert read_images(folder, 16, cache_dir=cache).content_key != changed.content_key  # the size is in the key


def test_image_source_tells_images_from_tables(tmp_path):
    folder = _folder(tmp_path, n=2)
    table = tmp_path / "table.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    paths = tmp_path / "paths.csv"
    paths.write_text("file,label\nimg/a.PNG,x\nimg/b.jpeg,y\n")
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros((1, 8, 8)))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert [image_source(p) for p in (folder, paths, npz)] == [True, True, True]
    assert [image_source(p) for p in (table, empty, tmp_path / "missing")] == [False, False, False]


def test_the_data_script_writes_a_folder_the_reader_reads(tmp_path, capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "image_data.py"
    spec = importlib.util.spec_from_file_location("image_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["digits", str(tmp_path / "digits"), "--n", "30"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'digits'}: 30 PNG files in ")
    images = read_images(tmp_path / "digits", cache_dir=tmp_path / "cache")
    assert (len(images.files), images.size, images.channels) == (30, 8, 1)
    assert images.pixels.max() == 255  # load_digits' 0-16 scaled to 0-255
    assert all(len(f) == 10 and f[0] == label and f[1] == "/" and f.endswith(".png")  # 0/0003.png
               for f, label in zip(images.files, images.labels))
