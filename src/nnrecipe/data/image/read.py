"""Reading images (issue 20): a folder with a subfolder per class (torchvision's ImageFolder convention), a
CSV of image paths and labels, or an .npz of arrays `x` and `y`, into one uint8 tensor (N, C, S, S) with
each image's file, label, original size and mode, and the files that could not be decoded. The decoded,
resized pixels are cached by content (store.py, D13 for images); files are only ever read.

The resize rule (docs/images.md quotes it): S is the median of the images' shorter sides, rounded to the
nearest multiple of 8 (halves up: 28 -> 32, 25 -> 24), at least 8 and at most MAX_SIDE = 128; `size=`
overrides it. Each image's shorter side is resized to S (Pillow's BILINEAR: decode.py says why) and the
centre is cropped to S x S; an image that is S x S already is left untouched. A multiple of 8, because the
CNN halves the image three times; the median, so that most images are resized little and one panorama or
thumbnail does not set the size; 128, because a CPU trains a CNN on 128 x 128 images in minutes per epoch
and few labels need more (CIFAR is 32, ImageNet models train at 224 on accelerators).

Channels: when every readable image is grey (Pillow modes 1, L, LA, I, I;16, F), one channel; else three,
and every image is converted to RGB (a grey one by repeating its channel; transparency composited on
white). Multi-label CSVs: a label cell may hold several labels joined by '|' ('cat|dog'); `labels` keeps
the cell's text as it is, and the recipe splits it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...errors import ConfigError, DataError, did_you_mean_column, shorten
from ..sniff import sniff_csv
from . import decode, store

log = logging.getLogger("nnrecipe")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_SIDE = 128  # a CPU-friendly cap (see the module's docstring)
MIN_SIDE = 8  # the CNN halves the image three times
MULTIPLE = 8
SNIFF_ROWS = 50  # a CSV column is a path column when most of its first 50 cells end in an image extension
DECODE_THREADS = 8  # Pillow releases the GIL while it decodes and resamples
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
SEPARATOR = "|"  # several labels in one CSV cell: a multi-label image (a folder's name is one class, '|' and all)
SOURCES = "a folder with a subfolder per class, a CSV of image paths and labels, or an .npz of x and y"


def label_set(cell: str, separated: bool = True) -> set[str]:
    """The classes a label cell names: its labels joined by SEPARATOR, stripped (`separated`: a CSV's cell),
    else the cell itself, as one class."""
    return {c.strip() for c in (cell.split(SEPARATOR) if separated else [cell]) if c.strip()}


@dataclass
class ImageSet:
    source: str  # the folder, CSV or .npz as given
    pixels: torch.Tensor  # (N, C, S, S) uint8: the readable images, in `files` order
    files: list[str]  # each image's path relative to the source (folder/CSV); "x[i]" for an .npz
    labels: list[str] | None  # each image's label as text (a cell may hold 'a|b': multi-label; None a blank cell, read for predict); None: none given
    sizes: list[tuple[int, int]]  # each readable image's original (width, height), EXIF orientation applied
    modes: list[str]  # each readable image's Pillow mode as read; "array" for an .npz
    unreadable: list[tuple[str, str]]  # (file, reason) for files left out
    size: int  # S
    channels: int  # 1 (every image grey) or 3
    content_key: str  # sha256 hex of the content (store.content_key)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # for journal.json
    lost_classes: list[str] = field(default_factory=list)  # classes listed whose every image was unreadable
    separated: bool = False  # a CSV's labels: a cell may join several with SEPARATOR (multi-label)


def resize_side(sizes: list[tuple[int, int]]) -> int:
    """S, the side every image is resized to: the median shorter side rounded to the nearest multiple of 8
    (halves up), at least 8, at most MAX_SIDE."""
    if not sizes:
        raise DataError("no image sizes to choose a side from: read at least one image")
    median = float(np.median([min(w, h) for w, h in sizes]))
    return int(min(MAX_SIDE, max(MIN_SIDE, np.floor(median / MULTIPLE + 0.5) * MULTIPLE)))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def image_source(path: str | os.PathLike, dropped: Sequence[str] = ()) -> bool:
    """Whether `path` is images: a folder holding image files (directly or in subfolders), an .npz, or a CSV
    with a column whose cells end in an image extension in most of its first 50 rows, unless every such
    column is `dropped` (a table that keeps its images' files beside their features: `nnrecipe embed`'s)."""
    p = Path(path)
    try:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                if any(is_image_name(f) for f in files):
                    return True
            return False
        if p.suffix.lower() == ".npz":
            return p.is_file()
        if p.suffix.lower() in TABLE_SUFFIXES and p.is_file():
            return bool(set(_path_columns(_read_csv(p, SNIFF_ROWS))) - set(dropped))
    except (OSError, DataError):
        return False
    return False


def read_images(source: str | os.PathLike, size: int | None = None, *, path_column: str | None = None,
                label_column: str | None = None, labelled: bool = True, cache_dir: str | os.PathLike | None = None,
                cache: bool = True) -> ImageSet:
    """Read, decode, resize and cache the images of `source` (a class-per-subfolder folder, a CSV or an
    .npz: the module's docstring). `size`: S instead of the rule (8 or more). `labelled=False` (predict):
    a folder without class subfolders, a CSV without a label column, an .npz without y are allowed.
    Raises DataError naming the source and the fix, ConfigError for a bad `size`."""
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIDE):
        raise ConfigError(f"size={size!r} is not allowed; give a whole number of pixels, {MIN_SIDE} or more (the CNN "
                          f"halves the image three times), or leave it out for the rule (the median shorter side, "
                          f"a multiple of 8, at most {MAX_SIDE})")
    size = None if size is None else int(size)
    started = time.perf_counter()
    path = Path(source)
    if not path.exists():
        raise DataError(f"'{source}' does not exist; give {SOURCES}")
    if path_column is not None and (path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES):
        raise ConfigError(f"--path-column names a CSV's column of image paths, and '{source}' is not a CSV (a "
                          "folder's images are its files; an .npz holds x): leave it out")
    if path.is_dir():
        entries = _list_folder(path, labelled)
    elif path.suffix.lower() == ".npz":
        return _read_npz(path, str(source), size, labelled, cache_dir, cache, started)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        entries = _list_csv(path, path_column, label_column, labelled)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:  # one image: its folder is the source (a folder of images)
        raise DataError(f"'{source}' is one image; give {SOURCES}: to predict on it alone, put it in a folder "
                        "of its own and give the folder")
    else:
        raise DataError(f"'{source}' is not a source of images; give {SOURCES}")
    fulls = [full for _, full, _ in entries]
    digests = store.file_digests(fulls)
    items = [(rel, label, d) for (rel, _, label), d in zip(entries, digests)]
    key, data = store.content_key(items, size), store.data_digest(items)
    file = store.entry(key, cache_dir) if cache else None
    if file is not None:
        hit = store.load(file)
        if hit is not None:
            log.info("images of '%s' loaded from the cache (%s)", source, file)
            return _labelled(_image_set(str(source), hit[0], hit[1], key, data), entries, labelled, path.is_file())
    workers = min(DECODE_THREADS, os.cpu_count() or 1) if len(entries) >= 64 else 1
    with ThreadPoolExecutor(workers) as pool:
        heads = list(pool.map(lambda f: decode.open_header(f) if f is not None else "no path", fulls, chunksize=32))
        opened = [i for i, h in enumerate(heads) if not isinstance(h, str)]
        side = size if size is not None else resize_side([heads[i][0] for i in opened]) if opened else MIN_SIDE
        decoded = dict(zip(opened, pool.map(lambda i: decode.decode(fulls[i], side), opened, chunksize=16)))
    arrays, meta = [], {"files": [], "labels": [], "sizes": [], "modes": [], "unreadable": []}
    for i, (rel, _, label) in enumerate(entries):
        got = decoded.get(i, heads[i])
        if isinstance(got, str):
            meta["unreadable"].append((rel, got))
            continue
        arrays.append(got)
        meta["files"].append(rel)
        meta["labels"].append(label)
        meta["sizes"].append(tuple(heads[i][0]))
        meta["modes"].append(heads[i][1])
    if not arrays:
        shown = "; ".join(f"{f}: {why}" for f, why in meta["unreadable"][:3])
        raise DataError(f"'{source}': none of its {len(entries)} image files could be read ({shown}); "
                        f"{decode.unreadable_fix([why for _, why in meta['unreadable']])}")
    pixels = _stack(arrays)
    meta.update(size=side, source=str(source))
    if all(label is None for label in meta["labels"]):
        meta["labels"] = None
    if file is not None:
        store.store(file, pixels, meta)
    images = _labelled(_image_set(str(source), pixels, meta, key, data), entries, labelled, path.is_file())
    log.info("read %d images from '%s' (%d unreadable, left out) at %dx%d, %d channel(s) in %.2f s", len(arrays),
             source, len(meta["unreadable"]), side, side, images.channels, time.perf_counter() - started)
    return images


def _labelled(images: ImageSet, entries: list[tuple[str, str | None, str | None]], labelled: bool,
              csv: bool) -> ImageSet:
    """`images` with what its labels mean: whether they may join several (a CSV's cells), and the classes of
    `entries` (a folder's subfolders, a CSV's labels) none of whose files could be read: the model would not
    know them, and the class counts would not show it (said when labelled)."""
    images.separated = csv

    def classes(cells: Any) -> set[str]:
        return {c for cell in cells if cell for c in label_set(cell, csv)}

    images.lost_classes = sorted(classes(label for _, _, label in entries) - classes(images.labels or []))
    if images.lost_classes and labelled:
        log.warning("'%s': no image of class(es) %s could be read: the model will not know them (the audit's D3 "
                    "names the files)", images.source, ", ".join(repr(shorten(c, 40)) for c in images.lost_classes[:10]))
    return images


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """(N, C, S, S) uint8: grey images alone stay one channel; among colour ones their channel is repeated."""
    if any(a.ndim == 3 for a in arrays):
        arrays = [np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a for a in arrays]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return torch.from_numpy(np.stack(arrays)).unsqueeze(1).contiguous()


def _image_set(source: str, pixels: torch.Tensor, meta: dict[str, Any], key: str, data: str) -> ImageSet:
    n, channels, side = len(pixels), int(pixels.shape[1]), int(pixels.shape[2])
    return ImageSet(source=source, pixels=pixels, files=list(meta["files"]),
                    labels=None if meta["labels"] is None else [None if x is None else str(x) for x in meta["labels"]],
                    sizes=[(int(w), int(h)) for w, h in meta["sizes"]], modes=list(meta["modes"]),
                    unreadable=[(str(f), str(r)) for f, r in meta["unreadable"]], size=side, channels=channels,
                    content_key=key,
                    fingerprint={"source": source, "images": n, "unreadable": len(meta["unreadable"]), "size": side,
                                 "channels": channels, "content_key": key, "sha256": data})


# ---------------------------------------------------------------- a folder
# the names a folder of one split goes by (train/cat, test/cat), not a class's (Tiny ImageNet keeps each class's
# images in its own images/ subfolder: a class layout that shares a subfolder name)
SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"})


def _list_folder(folder: Path, labelled: bool) -> list[tuple[str, str, str | None]]:
    """(path relative to the folder, full path, label) of each image file, sorted: the class subfolders in
    order, the files within each in order (subfolders of a class walked too); hidden files and files of
    other extensions ignored."""
    classes, loose = [], []
    with os.scandir(folder) as found:
        for e in sorted(found, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            if e.is_dir():
                classes.append(e.name)
            elif is_image_name(e.name):
                loose.append(e.name)
    per_class = {c: _walk(folder / c) for c in classes}
    nested = {c: {rel.split("/")[0] for rel in files} for c, files in per_class.items()
              if files and all("/" in rel for rel in files)}
    splits = len(nested) >= 2 and len(nested) == len(classes) and all(c.lower() in SPLIT_NAMES for c in nested)
    shared = set.intersection(*nested.values()) if splits else set()
    if labelled and len(shared) >= 2:  # train/cat, test/cat: the folders are splits, their subfolders the classes
        pick = next((c for c in sorted(nested) if c.lower() in ("train", "training")), sorted(nested)[0])
        raise DataError(f"folder '{folder}' holds {', '.join(sorted(nested))}, each with the same subfolders "
                        f"({', '.join(sorted(shared)[:5])}): a split into folders, not one folder a class; give one "
                        f"folder with a subfolder per class (such as '{folder / pick}'; nnrecipe splits "
                        "the images itself), then `nnrecipe predict RUN` the other folder")
    # a split folder among the classes (train/cat, test/*.png: Kaggle's layout; or train/ alone): its name is
    # no class, and its subfolders are the classes; a folder of split names alone labels nothing
    split_like = [c for c in classes if c.lower() in SPLIT_NAMES and per_class[c]]
    if labelled and split_like and (any(c in nested for c in split_like) or len(split_like) == len(classes)):
        inner = next((c for c in split_like if c in nested and c.lower() in ("train", "training")),
                     next((c for c in split_like if c in nested), None))
        fix = (f"give the folder whose subfolders are the classes ('{folder / inner}', whose subfolders are "
               f"{', '.join(sorted(nested[inner])[:5])}; nnrecipe splits the images itself), then `nnrecipe "
               "predict RUN` the other folder") if inner else (
               "put each class's images in a subfolder named after the class (nnrecipe splits the images itself)")
        raise DataError(f"folder '{folder}' holds {', '.join(repr(c) for c in split_like)}, named as a split of the "
                        f"images (train, test, val), not as a class; {fix}")
    if any(per_class.values()):
        empty = [c for c, files in per_class.items() if not files]
        if empty:
            log.warning("folder '%s': subfolders without image files are no classes and are left out: %s", folder,
                        ", ".join(shorten(c, 40) for c in empty[:10]))
        if loose:
            log.warning("folder '%s': %d image files lie beside the class subfolders, in none of them, and are "
                        "left out (first: %s)", folder, len(loose), loose[0])
        return [(f"{c}/{rel}", str(folder / c / rel), c) for c, files in per_class.items() for rel in files]
    if not loose:
        raise DataError(f"folder '{folder}' holds no image files ({', '.join(IMAGE_EXTENSIONS)}); give {SOURCES}")
    if labelled:
        raise DataError(f"folder '{folder}' holds {len(loose)} images but no class subfolders: put each class's images "
                        "in a subfolder named after the class, or give a CSV with a path and a label column")
    return [(name, str(folder / name), None) for name in loose]


def _walk(folder: Path) -> list[str]:
    """The image files under `folder`, relative to it: linked folders followed, as ImageFolder does (a link
    back to a folder already walked, a loop, is not entered twice)."""
    out, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(folder)
        out += [(rel / f).as_posix() for f in sorted(files) if is_image_name(f)]
    return out


# ---------------------------------------------------------------- a CSV
def csv_columns(source: str | os.PathLike) -> list[str]:
    """The columns of a CSV of image paths (none for a folder or an .npz): predict scores against the run's
    target column when the CSV has it."""
    path = Path(source)
    if path.suffix.lower() not in TABLE_SUFFIXES or not path.is_file():
        return []
    return [str(c) for c in _read_csv(path, rows=0).columns]


def _read_csv(path: Path, rows: int | None = None, missing: bool = False) -> pd.DataFrame:
    """The CSV as text cells ('' for an empty one); `missing`: pandas' missing-value spellings (NA, NaN, null,
    N/A, ...) as NaN, as a table's cells are read (the labels: R's write.csv writes NA)."""
    fmt = sniff_csv(path)  # the table reader's separator and encoding: ';' and cp1252 files are CSVs of paths too
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=missing, nrows=rows, sep=fmt.delimiter,
                           encoding=fmt.encoding)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"file '{path}' cannot be read as a CSV ({str(e).strip() or type(e).__name__}); give "
                        f"{SOURCES}") from e


def _path_columns(df: pd.DataFrame) -> list[str]:
    """The columns whose non-empty cells in the first SNIFF_ROWS rows mostly end in an image extension."""
    out = []
    for col in df.columns:
        cells = df[col].head(SNIFF_ROWS).str.strip()
        cells = cells[cells != ""]
        if len(cells) and cells.str.lower().str.endswith(IMAGE_EXTENSIONS).mean() > 0.5:
            out.append(str(col))
    return out


def _list_csv(csv: Path, path_column: str | None, label_column: str | None,
              labelled: bool) -> list[tuple[str, str | None, str | None]]:
    """(path as written, full path, label) per row: paths relative to the CSV's folder or absolute; a row
    without a label is left out (logged), a row without a path is kept as unreadable."""
    df = _read_csv(csv)
    columns = [str(c) for c in df.columns]
    named = ", ".join(f"'{shorten(c, 40)}'" for c in columns)
    if path_column is None:
        found = _path_columns(df)
        if len(found) != 1:
            what = (f"several columns of image paths ({', '.join(repr(c) for c in found)})" if found else
                    f"no column of image paths (cells ending in {', '.join(IMAGE_EXTENSIONS)}; columns: {named})")
            raise DataError(f"CSV '{csv}' has {what}: pass --path-column with the column to read")
        path_column = found[0]
    elif path_column not in columns:
        raise DataError(f"CSV '{csv}' has no column '{path_column}'{did_you_mean_column(path_column, columns)}; "
                        f"its columns: {named}; pass --path-column with one of them")
    if label_column is None and len(columns) == 2:
        label_column = next(c for c in columns if c != path_column)
    if label_column is not None and label_column not in columns:
        raise DataError(f"CSV '{csv}' has no column '{label_column}'{did_you_mean_column(label_column, columns)}; "
                        f"its columns: {named}; pass --target with the label column")
    if label_column is None and labelled:
        raise DataError(f"CSV '{csv}' has {len(columns)} columns ({named}): pass --target with the column of labels "
                        f"(the images are in '{path_column}')")
    paths = df[path_column].str.strip().tolist()
    labels = df[label_column].str.strip().tolist() if label_column is not None else [None] * len(df)
    if label_column is not None:
        # pandas' missing-value words as a table's cells are read, the word 'None' aside: a class of its own in
        # a column of words (a defect class 'None' beside 'Scratch'), as the table reader keeps it (load.py)
        absent = _read_csv(csv, missing=True)[label_column].isna().tolist()
        labels = ["" if gone and label != "None" else label for label, gone in zip(labels, absent)]
        blank = sum(label == "" for label in labels)
        if blank and labelled:
            log.warning("CSV '%s': %d rows have no label in column '%s' (empty or NA) and are left out", csv, blank,
                        label_column)
        elif blank:  # predict: the rows with a label are scored
            log.info("CSV '%s': %d rows have no label in column '%s': those are not scored", csv, blank, label_column)
            labels = [label or None for label in labels]
    out: list[tuple[str, str | None, str | None]] = []
    for row, (cell, label) in enumerate(zip(paths, labels)):
        if label == "" and labelled:
            continue
        if not cell:
            out.append((f"line {row + 2}", None, label))  # an empty path cell: unreadable, named by its line
            continue
        full = Path(cell) if Path(cell).is_absolute() else csv.parent / cell
        out.append((cell, str(full), label))
    if not out:
        raise DataError(f"CSV '{csv}' has no row with both an image path and a label; fill column "
                        f"'{label_column}'")
    return out


# ---------------------------------------------------------------- an .npz
def _read_npz(path: Path, source: str, size: int | None, labelled: bool, cache_dir: str | os.PathLike | None,
              cache: bool, started: float) -> ImageSet:
    """x: (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4 (a last axis of 1, 3 or 4 is the channel
    axis); uint8, bool, integers or floats (scale_to_uint8). y: (N,) labels, optional when not labelled."""
    items = [("x", None, store.file_digests([str(path)])[0])]
    key, data = store.content_key(items, size), store.data_digest(items)
    file = store.entry(key, cache_dir) if cache else None
    if file is not None:
        hit = store.load(file)
        if hit is not None:
            log.info("images of '%s' loaded from the cache (%s)", source, file)
            return _image_set(source, hit[0], hit[1], key, data)
    need = ("'x' (the images: (N, H, W), (N, H, W, C) or (N, C, H, W), C in 1, 3, 4) and 'y' (their labels, (N,)); "
            "save them with np.savez(file, x=images, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.keys())
            x = npz["x"] if "x" in keys else None
            y = npz["y"] if "y" in keys else None
    except (ValueError, OSError, EOFError) as e:
        # numpy's words for bytes that are not a zip of arrays suggest loading them as a pickle: never that
        said = ("not an .npz of arrays: not a zip file, or arrays of Python objects" if "pickle" in str(e)
                else str(e).strip() or type(e).__name__)
        raise DataError(f"file '{path}' cannot be read as an .npz ({said}); it needs "
                        f"{need}; labels as numbers or strings (np.array(labels, dtype=str)), not objects") from e
    if x is None:
        raise DataError(f"file '{path}' holds arrays {', '.join(repr(k) for k in keys) or '(none)'}; it needs {need}")
    if y is None and labelled:
        raise DataError(f"file '{path}' holds 'x' but no 'y' (the labels, (N,)); save them with "
                        "np.savez(file, x=images, y=labels)")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise DataError(f"file '{path}': 'x' holds {x.dtype} values; give pixels as numbers (uint8 0-255, or floats "
                        "in [0, 1] or [0, 255])")
    x = _channels_last(x, path)
    if y is not None and (y.ndim != 1 or len(y) != len(x)):
        raise DataError(f"file '{path}': 'y' has shape {y.shape}, 'x' holds {len(x)} images; give one label per "
                        f"image, shape ({len(x)},)")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise DataError(f"file '{path}': 'x' holds {int((~np.isfinite(x)).sum())} NaN or infinite values; replace "
                        "them (pixels are numbers in [0, 1] or [0, 255])")
    x = _pixels_of_array(x, path)
    labels = None if y is None else [_label(v) for v in y.tolist()]
    files = [f"x[{i}]" for i in range(len(x))]
    blank = [] if labels is None else [i for i, v in enumerate(labels) if not v.strip() or v.lower() == "nan"]
    if blank and labelled:  # as a CSV's blank label cells: those images are left out
        log.warning("file '%s': %d images have no label in 'y' (NaN or empty) and are left out", path, len(blank))
        keep = np.setdiff1d(np.arange(len(x)), blank)
        if not len(keep):
            raise DataError(f"file '{path}': every label in 'y' is NaN or empty; give each image its label")
        x, labels, files = x[keep], [labels[i] for i in keep], [files[i] for i in keep]  # type: ignore[index]
    elif blank:
        log.info("file '%s': %d images have no label in 'y': the labels are not used", path, len(blank))
        labels = None
    if x.shape[-1] == 4:  # RGBA: composited on white, as a file's transparency is
        alpha = x[..., 3:].astype(np.float32) / 255
        x = np.rint(x[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    x = x[..., 0] if x.shape[-1] == 1 else x
    h, w = x.shape[1], x.shape[2]
    side = size or resize_side([(w, h)])
    arrays = [decode.decode_array(np.ascontiguousarray(img), side) for img in x]
    pixels = _stack(arrays)
    meta = {"files": files, "labels": labels,
            "sizes": [(w, h)] * len(x), "modes": ["array"] * len(x), "unreadable": [], "size": side,
            "source": source}
    if file is not None:
        store.store(file, pixels, meta)
    log.info("read %d images from '%s' at %dx%d in %.2f s", len(x), source, side, side, time.perf_counter() - started)
    return _image_set(source, pixels, meta, key, data)


def _label(v: Any) -> str:
    """An .npz label as text, whole-number floats without their '.0' (a y of 5.0 is class '5', as an integer y's
    and a table's are: a run trained on one predicts on the other)."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 63:
        return str(int(v))
    return str(v)


def _pixels_of_array(x: np.ndarray, path: Path) -> np.ndarray:
    """An .npz's pixels as uint8 by a fixed rule, never from the file's own range: a run trained on one file
    and predicting on another must read a pixel value the same in both. uint8 and integers within 0-255 as
    they are, bool as 0/255, uint16 as 16-bit (divided by 257), floats within [0, 1] times 255 and floats
    within [0, 255] rounded; any other range is refused with the fix."""
    if x.dtype == np.uint16:
        return decode.scale_to_uint8(x, sixteen_bit=True)
    if x.dtype == np.uint8 or x.dtype == bool or not x.size:
        return decode.scale_to_uint8(x)
    lo, hi = float(x.min()), float(x.max())
    if np.issubdtype(x.dtype, np.floating) and lo >= 0 and hi <= 1 or \
            np.issubdtype(x.dtype, np.integer) and lo >= 0 and hi <= 255:
        return decode.scale_to_uint8(x)
    if np.issubdtype(x.dtype, np.floating) and lo >= 0 and hi <= 255:
        log.info("file '%s': 'x' holds floats in [%g, %g]: read as pixel values 0-255", path, lo, hi)
        return np.rint(x).astype(np.uint8)
    raise DataError(f"file '{path}': 'x' ({x.dtype}) holds values in [{lo:g}, {hi:g}], which are not pixels by any rule "
                    "nnrecipe reads the same in every file: give uint8 (or integers) in 0-255, floats in [0, 1] or "
                    "[0, 255], or uint16 for 16-bit images (scaling each file by its own minimum and maximum would "
                    "make a prediction depend on the file's range)")


def _channels_last(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3 and len(x):
        return x[..., None]
    if x.ndim == 4 and len(x):
        if x.shape[-1] in (1, 3, 4):
            return x
        if x.shape[1] in (1, 3, 4):
            return np.moveaxis(x, 1, -1)
    raise DataError(f"file '{path}': 'x' has shape {x.shape}; give images as (N, H, W), (N, H, W, C) or (N, C, H, W) "
                    "with C in 1, 3, 4, and at least one image")
