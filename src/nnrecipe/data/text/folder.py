"""Text files as a table: a folder with one subfolder of .txt files per class (the convention of
scikit-learn's `load_files` and of the ImageFolder layout for images), read as the rows (file, text, label);
for predict, a folder of .txt files with or without class subfolders. Files are UTF-8 (a byte-order mark is
dropped); a file that is not is named with the fix."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ...config import DataConfig
from ...errors import DataError

SUFFIX = ".txt"
COLUMNS = ("file", "text", "label")


def _files(folder: Path) -> list[Path]:
    """The .txt files in `folder` and its subfolders (hidden ones left out), in a stable order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if f.lower().endswith(SUFFIX) and not f.startswith(".")]
    return found


def is_text_folder(path: str | os.PathLike) -> bool:
    """A folder holding .txt files (directly or in subfolders) and no image files."""
    from ..image.read import image_source

    p = Path(path)
    return p.is_dir() and bool(_files(p)) and not image_source(p)


def read_text_folder(path: str | os.PathLike, labelled: bool = True) -> pd.DataFrame:
    """The rows (file: the path relative to the folder, text, label: the class subfolder's name). `labelled`:
    every file must sit in a class subfolder (training); predict reads a flat folder too (no label column)."""
    folder = Path(path)
    files = _files(folder)
    if not files:
        raise DataError(f"folder '{folder}' holds no {SUFFIX} files; give a folder with a subfolder of {SUFFIX} files "
                        "per class (reviews/pos/1.txt, reviews/neg/2.txt, ...)")
    rows = []
    for f in files:
        rel = f.relative_to(folder)
        try:
            text = f.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"file '{f}' is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
        except OSError as e:
            raise DataError(f"file '{f}' cannot be read ({e.strerror}); fix its permissions") from e
        rows.append((rel.as_posix(), text, rel.parts[0] if len(rel.parts) > 1 else None))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    flat = frame["label"].isna()
    if labelled and flat.any():
        raise DataError(f"folder '{folder}': {int(flat.sum())} {SUFFIX} files sit outside a class subfolder (first: "
                        f"'{frame['file'][flat].iloc[0]}'); put each file in the subfolder named after its class")
    if labelled and frame["label"].nunique() < 2:
        raise DataError(f"folder '{folder}' has one class subfolder ('{frame['label'].iloc[0]}'); a classifier needs "
                        "two or more: add a subfolder of files per class")
    return frame if not flat.all() else frame.drop(columns="label")


def text_folder(data: Any, dcfg: DataConfig) -> tuple[Any, DataConfig]:
    """A folder with a subfolder of .txt files per class as the table (file, text, label): the target 'label'
    unless one is named, the text column read as text and the file names left out."""
    if isinstance(data, pd.DataFrame) or not is_text_folder(data):
        return data, dcfg
    frame = read_text_folder(data)
    frame.attrs["name"] = Path(data).name
    text, drop = tuple(dict.fromkeys((*dcfg.text, "text"))), tuple(dict.fromkeys((*dcfg.drop, "file")))
    return frame, dataclasses.replace(dcfg, target=dcfg.target or "label", text=text, drop=drop)
