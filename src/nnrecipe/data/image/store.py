"""D13 for images: the decoded, resized pixels cached as one safetensors file, keyed by content, so a
second read of an unchanged folder decodes nothing. The key is the SHA-256 over every file's bytes (each
file's own SHA-256, streamed by the table cache's helper), its path relative to the source and its label,
the size asked for, READ_VERSION and Pillow's version (another Pillow may decode or resample differently).
The entry holds the pixels as a tensor and the rest of the ImageSet as JSON in the safetensors metadata,
with a CRC-32 of the pixels (safetensors has none: damaged bits are a miss, not wrong images; prepare.py
does the same). The file is written atomically (nnrecipe.io.atomic_write) and counts against the cache's
size limit (cache.trim); a damaged or unreadable entry is a miss, never an error. Inputs are only read."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch

from .. import cache as table_cache
from ...io import atomic_write, tensors_bytes

log = logging.getLogger("nnrecipe")

# Bump when reading changes what a file decodes to (the resize rule, mode conversions), so old entries miss.
# 2: 16-bit PNGs scaled by their depth, not by their values; 3: an .npz by a fixed rule, its NaN labels left
# out; 4: an .npz's whole-number float labels written as integers (5.0 is class '5')
READ_VERSION = 4
META = "nnrecipe"
# Hashing runs in threads (hashlib releases the GIL on buffers over 2 KiB, and the reads wait on the disk)
HASH_THREADS = 8


def file_digests(paths: Sequence[str | None]) -> list[str]:
    """Each file's SHA-256 ('missing' for a path that is None or names no file)."""

    def one(path: str | None) -> str:
        if path is None:
            return "missing"
        try:
            return table_cache._sha256(Path(path))
        except OSError:
            return "missing"

    if len(paths) < 64:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(min(HASH_THREADS, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, paths, chunksize=64))


def content_key(items: Sequence[tuple[str, str | None, str]], size: int | None) -> str:
    """The SHA-256 of the content: each (relative path, label, file digest), the size asked for (None: the
    rule), READ_VERSION and Pillow's version."""
    digest = hashlib.sha256(json.dumps({"version": READ_VERSION, "pillow": PIL.__version__, "size": size},
                                       sort_keys=True).encode())
    for rel, label, sha in items:
        digest.update(f"{rel}\0{'' if label is None else label}\0{label is None}\0{sha}\n".encode())
    return digest.hexdigest()


def data_digest(items: Sequence[tuple[str, str | None, str]]) -> str:
    """The SHA-256 of the data alone, each (relative path, label, file digest): what a run's journal keeps to
    know its data again (--resume), the same whatever READ_VERSION, Pillow or the size."""
    digest = hashlib.sha256()
    for rel, label, sha in items:
        digest.update(f"{rel}\0{'' if label is None else label}\0{label is None}\0{sha}\n".encode())
    return digest.hexdigest()


def entry(key: str, cache_dir: str | os.PathLike | None) -> Path:
    return table_cache.cache_folder(cache_dir, kind="images") / f"{key}.safetensors"


def load(file: Path) -> tuple[torch.Tensor, dict[str, Any]] | None:
    """The cached pixels and the rest of the ImageSet, or None on a miss or a damaged entry."""
    if not file.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            meta = json.loads(f.metadata()[META])
            pixels = f.get_tensor("pixels")
        if zlib.crc32(pixels.numpy()) != meta["crc32"]:
            raise ValueError("its checksum does not match: damaged on disk")
        if meta.get("version") != READ_VERSION or len(meta["files"]) != len(pixels):
            raise ValueError("written by another version")
    except Exception as e:  # any damage is a miss: the cache only saves time
        log.warning("cached images %s cannot be read (%s): decoding the images again", file,
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return None
    table_cache.touch(file)
    return pixels, meta


def store(file: Path, pixels: torch.Tensor, meta: dict[str, Any]) -> None:
    """Write the entry atomically and trim the cache; a failure (a full disk, a read-only home) is logged."""
    try:
        pixels = pixels.contiguous()
        body = {**meta, "version": READ_VERSION, "crc32": zlib.crc32(np.ascontiguousarray(pixels.numpy()))}
        atomic_write(file, tensors_bytes({"pixels": pixels}, {META: json.dumps(body)}))
        table_cache.trim(keep=file)
    except Exception as e:
        log.warning("could not cache the decoded images in %s (%s); the next read decodes them again",
                    file.parent, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
