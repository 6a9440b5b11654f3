"""A table made ready for the network: target and task, column kinds, the seeded split, preprocessing
fitted on the training rows (D8-D10), every row's features and target as arrays; and its cache (D13).

Preparing is a function of the file's bytes, the data config and the seed alone, so its result is cached
under the SHA-256 of the file (cache.content_key) with those: a second run on the same file skips the
parse, the schema inference and the preprocessing, and loads the arrays (safetensors: tensors, mapped
from disk) and the fitted preprocessing (JSON). What was logged while preparing is logged again on a hit,
so a user sees the same notices either way. Rows are stored train, then validation, then test, so each
split is a slice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import DataConfig, to_dict
from ..errors import ConfigError, DataError, shorten
from ..io import temp_path
from . import cache as table_cache
from .load import _check_file, read_table
from .schema import Schema, check_labels, check_numeric_target, check_target, infer_columns, infer_task
from .split import make_split
from .text.encoder import encoder_key, fit_encoders
from .transforms import TablePreprocessor, _scale, _scaled, label_strings, to_numbers, written_as

log = logging.getLogger("nnrecipe")

SPLITS = ("train", "val", "test")
# Bump when preparing changes what a file prepares to (schema rules, transforms, split, target encoding)
PREPARED_VERSION = 9  # 5: text columns (term ids and weights); 6: day-first dates read day first; 7: repeated
# multi-word answers read as categories; 8: amounts with the sign after the currency sign ('$-18.54') as numbers,
# whole numbers beside lettered ones ('001', '136A') as codes; 9: dates with a few stray cells, times in several
# zones, and the number formats of issue 18's later review (units, '−', '(12)', grouping dots)


TEXT_SHOWN = 200  # characters of a text cell shown among the worst rows (C9)


def shown_texts(frame: pd.DataFrame | None, columns: Sequence[str]) -> pd.DataFrame | None:
    """The text columns of a table as read, each cell cut to TEXT_SHOWN characters ('...' marks a cut),
    indexed by data row; None without text columns or a table."""
    if frame is None or not columns:
        return None

    def cut(v: Any) -> str:  # whitespace runs collapsed first, so errors.shorten cuts one line
        return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else shorten(" ".join(str(v).split()),
                                                                                       TEXT_SHOWN)

    return pd.DataFrame({c: [cut(v) for v in frame[c]] for c in columns}, index=frame.index)


@dataclass
class PreparedTable:
    task: str
    task_reason: str
    schema: Schema
    pre: TablePreprocessor
    classes: list[str]
    target_scale: dict[str, float]
    rows: np.ndarray  # (N,) each row's 0-based data row in the input, in split order
    counts: dict[str, int]  # rows of train, val, test, in that order
    features: torch.Tensor  # (N, F) float32
    codes: torch.Tensor | None  # (N, E) int64 category codes of the embedded columns
    y: torch.Tensor  # shaped for the head's loss
    neutral_rows: list[int] = field(default_factory=list)  # D7: data rows holding the neutral label
    source: Path | None = None
    content_key: str | None = None  # the file's SHA-256 (cache.content_key), for the run's record
    # a group split (--split group:COL): each row's group code, in split order; T14's folds keep groups whole
    groups: np.ndarray | None = None
    split: str = "auto"  # DataConfig.split, as asked for
    # the table as read (every row), when this preparation read it (not from the cache): train's audit
    # takes it instead of reading and hashing the file again; never stored
    frame: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    # the text columns' bags (data/text/bag.py): (N, L) int64 term ids and float32 weights; None without text
    terms: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    # --text-model transformer: the text columns' word ids (N, L) and [ids, the longest row], which the recipe
    # adds from the table as read (never stored: the bags keep no word order)
    sequences: torch.Tensor | None = field(default=None, compare=False)
    words: list[int] | None = field(default=None, compare=False)
    # C9 on text: the text columns as read (each cell cut to TEXT_SHOWN characters), kept by the recipe when the
    # table is dropped, so that the worst rows show what a person reads beside the terms the model read
    texts: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def _slice(self, split: str) -> slice:
        start = sum(self.counts[s] for s in SPLITS[:SPLITS.index(split)])
        return slice(start, start + self.counts[split])

    def inputs(self, split: str) -> tuple[torch.Tensor, ...]:
        """The model's inputs for a split: (features,) or (features, codes); with text columns always
        (features, codes, term ids, term weights), codes (N, 0) when no column is embedded."""
        sl = self._slice(split)
        inputs = model_inputs(self.features[sl], self.codes[sl] if self.codes is not None else None,
                              self.terms[sl] if self.terms is not None else None,
                              self.weights[sl] if self.weights is not None else None)
        return inputs + ((self.sequences[sl],) if self.sequences is not None else ())

    def target(self, split: str) -> torch.Tensor:
        return self.y[self._slice(split)]

    def data_rows(self, split: str) -> list[int]:
        """The 0-based data rows of the input in a split (splits.json)."""
        return self.rows[self._slice(split)].tolist()


def model_inputs(features: torch.Tensor, codes: torch.Tensor | None, terms: torch.Tensor | None = None,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The positional inputs of a table model's forward(x, codes=None, terms=None, weights=None)."""
    if terms is None:
        return (features,) + ((codes,) if codes is not None else ())
    codes = codes if codes is not None else torch.zeros((len(features), 0), dtype=torch.long)
    return features, codes, terms, weights  # type: ignore[return-value]


def prepare_table(data: str | os.PathLike | pd.DataFrame, cfg: DataConfig, seed: int, *,
                  cache: bool = True) -> tuple[PreparedTable, pd.DataFrame | None]:
    """The prepared table, and the neutral rows (D7) as a frame when there are any. A file's preparation
    is cached (see the module's docstring); a DataFrame's is not."""
    if isinstance(data, pd.DataFrame):
        prep = _prepare(data.reset_index(drop=True), cfg, seed, None)
        return prep, _neutral(prep, prep.frame)
    path = Path(data)
    _check_file(path)
    file = content = None
    if cache:
        folder = table_cache.cache_folder(kind="prepared")
        content = table_cache.content_key(path, table_cache.cache_folder())
        if cfg.surrogate_test is not None and not Path(cfg.surrogate_test).is_file():
            raise DataError(f"--surrogate-test {cfg.surrogate_test}: no such file; give a CSV or Parquet file of a "
                            "second sample of the simulator, with the table's columns")
        second = table_cache.content_key(Path(cfg.surrogate_test), table_cache.cache_folder()) \
            if cfg.surrogate_test is not None else None
        settings = json.dumps({"content": content, "data": to_dict(cfg), "seed": seed, "version": PREPARED_VERSION,
                               "second_sample": second,
                               "pandas": pd.__version__, "encoder": encoder_key(cfg.text_encoder)},
                              sort_keys=True, default=str)
        file = folder / f"{hashlib.sha256(settings.encode()).hexdigest()}.safetensors"
        hit = _load(file, path)
        if hit is not None:
            log.info("file '%s' prepared from the cache (%s)", path, file)
            hit.content_key = content
            return hit, _neutral(hit, None)
    with _recorded() as notices:
        prep = _prepare(read_table(path, write_behind=True, key=content), cfg, seed, path)
    prep.content_key = content
    if file is not None:  # written while the caller trains: 0.7 s on 1M x 50, most of it the fsync
        table_cache.write_behind(file, lambda: _store(prep, file, notices))
    return prep, _neutral(prep, prep.frame)


def with_second_sample(df: pd.DataFrame, file: str, path: Path | None) -> pd.DataFrame:
    """The table with the rows of `file` (T15's --surrogate-test: a second sample of the simulator) after its
    own, numbered on from its last row; the file must hold every column of the table."""
    second = read_table(Path(file))
    missing = [c for c in df.columns if c not in second.columns]
    if missing:
        where = f"'{path}'" if path is not None else "the table"
        raise DataError(f"--surrogate-test {file}: columns {', '.join(map(repr, missing[:10]))} of {where} are not "
                        "there; give a sample of the same simulator with the same columns")
    second = second[list(df.columns)]
    second.index = pd.RangeIndex(len(df), len(df) + len(second))
    return pd.concat([df, second])


def _neutral(prep: PreparedTable, df: pd.DataFrame | None) -> pd.DataFrame | None:
    if not prep.neutral_rows:
        return None
    if df is None:  # a cache hit: the neutral rows come from the (cached) table
        df = read_table(prep.source)  # type: ignore[arg-type]
    return df.loc[prep.neutral_rows]


def _prepare(df: pd.DataFrame, cfg: DataConfig, seed: int, path: Path | None) -> PreparedTable:
    # the index is each row's 0-based data row in the input: splits.json and error lines refer to it
    test_from = None
    if cfg.surrogate_test is not None and not cfg.surrogate:  # checked here: a --config file may set it, a flag undo it
        raise ConfigError(f"--surrogate-test {cfg.surrogate_test} is read by a surrogate run only; add --surrogate "
                          "(every row trains, the error is measured on that file), or leave it out")
    if cfg.surrogate_test is not None:  # T15: the second sample's rows follow the table's, as the test split
        df, test_from = with_second_sample(df, cfg.surrogate_test, path), len(df)
    y_raw = check_target(df, cfg.target, path)
    empty = y_raw.isna().to_numpy() if y_raw.ndim == 1 else y_raw.isna().any(axis=1).to_numpy()
    all_rows = df
    if empty.any():
        log.warning("%d rows have no value in target '%s' and are left out", int(empty.sum()), cfg.target)
        df, y_raw = df[~empty], y_raw[~empty]  # keeps the index: kept rows still carry their row in the input
    neutral: list[int] = []
    if cfg.neutral_label is not None and y_raw.ndim == 2:
        raise ConfigError("--neutral-label works with a single target column, not a multi-label target")
    if cfg.neutral_label is not None:  # D7: 'unsure' rows stay out of training, then go to review.csv
        is_neutral = (label_strings(y_raw) == cfg.neutral_label).to_numpy(dtype=bool)
        if not is_neutral.any():
            values = label_strings(y_raw).drop_duplicates().sort_values().head(10).tolist()
            log.warning("--neutral-label %r: no row of target column '%s'%s holds it, so every row is trained on; "
                        "check its spelling (the column holds: %s)", cfg.neutral_label, cfg.target,
                        f" in file '{path}'" if path is not None else "",
                        ", ".join(shorten(v, 30) for v in values) + (" ..." if y_raw.nunique() > 10 else ""))
        neutral = df.index[is_neutral].tolist()
        df, y_raw = df[~is_neutral], y_raw[~is_neutral]
    y_raw = _written_target(y_raw)
    check_numeric_target(y_raw, cfg.task, path)
    task, task_reason = infer_task(y_raw, cfg.task, path)
    check_labels(y_raw, task, path)
    schema = infer_columns(df, cfg, path)
    for line in schema.lines():
        log.info("column %s", line)
    if "text" not in schema.kinds.values() and (cfg.max_tokens is not None or cfg.text_encoder):
        given = [f for f, v in (("--max-tokens", cfg.max_tokens), ("--text-encoder", cfg.text_encoder)) if v]
        where = f"file '{path}'" if path is not None else "the table"
        raise ConfigError(f"{', '.join(given)}: settings of text columns, and {where} has none (a column of 3 or "
                          "more words a cell is text); leave them out, or name a text column with --text COL")
    labels, classes = None, list(y_raw.columns) if task == "multilabel" else []
    if task in ("binary", "multiclass"):  # codes in the sorted order of the labels' strings
        labels, uniques = pd.factorize(label_strings(y_raw).to_numpy(dtype=object), sort=True)
        classes = [str(c) for c in uniques]
    splits, groups = make_split(df, cfg, task, labels, classes, seed, path, rows=len(all_rows), test_from=test_from)
    order = np.concatenate([splits[s] for s in SPLITS])
    pre = TablePreprocessor.fit(df.iloc[splits["train"]], schema.kinds, cfg.scaling, cfg.max_tokens)
    embedded = None
    if cfg.text_encoder and pre.text_columns:  # the pretrained encoder's layer, probed on the validation rows
        probe_y = labels if labels is not None else (
            y_raw.to_numpy(dtype=np.float64) if task == "regression" else None)
        embedded = fit_encoders(pre.columns, df, splits["train"], splits["val"], probe_y, task, cfg.text_encoder,
                                cfg.max_tokens, seed)
    # the transform works row by row: the whole table at once, then the rows in split order, equals each
    # split on its own, and costs a third less than copying the frame's rows first
    features, codes, _ = pre.transform(df, embedded)
    features, codes = features[order], (codes[order] if codes is not None else None)
    text = pre.text_inputs(df)
    terms, weights = (torch.from_numpy(text[0][order]), torch.from_numpy(text[1][order])) if text else (None, None)
    y_all, target_scale = _encode_target(y_raw, labels, task, splits["train"])
    prep = PreparedTable(
        task, task_reason, schema, pre, classes, target_scale, df.index.to_numpy(dtype=np.int64)[order],
        {s: len(splits[s]) for s in SPLITS}, torch.from_numpy(features),
        torch.from_numpy(codes) if codes is not None else None, y_all[torch.from_numpy(order)], neutral, path,
        groups=groups[order] if groups is not None else None, split=cfg.split, terms=terms, weights=weights)
    prep.frame = all_rows
    return prep


def _written_target(y: pd.Series | pd.DataFrame, say: bool = True) -> pd.Series | pd.DataFrame:
    """A target of numbers written as people write them ('$1,200', '12%': every cell) as numbers, so that
    the task rule sees numbers; anything else as it is. `say`: log that it was read so (once a run)."""
    if isinstance(y, pd.DataFrame) or pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return y
    written = written_as(y.dropna().iloc[:1000])
    values = to_numbers(y)
    if written is None or np.isnan(values[y.notna().to_numpy()]).any():
        return y
    if say:
        log.warning("target '%s' holds numbers written with %s (%r): read as numbers", shorten(str(y.name), 80),
                    written[0], shorten(written[1], 40))
    return pd.Series(values, index=y.index, name=y.name)


def _encode_target(y_raw: pd.Series | pd.DataFrame, labels: np.ndarray | None, task: str,
                   train_idx: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
    """Targets shaped for the head's loss (`labels`: class codes); a regression target is standardized
    with train statistics."""
    if task == "regression":
        values = y_raw.to_numpy(dtype=np.float64)
        mean, std = _scale(values[train_idx], "standard")  # no overflow on values near 1e308
        return torch.from_numpy(_scaled(values, mean, std).astype(np.float32))[:, None], {"mean": mean, "std": std}
    if task == "multilabel":
        return torch.tensor(y_raw.to_numpy(dtype=np.float32)), {"mean": 0.0, "std": 1.0}
    codes = torch.from_numpy(labels.astype(np.int64))  # type: ignore[union-attr]
    if task == "binary":
        return codes.float()[:, None], {"mean": 0.0, "std": 1.0}
    return codes, {"mean": 0.0, "std": 1.0}


@contextlib.contextmanager
def _recorded() -> Iterator[list[tuple[int, str]]]:
    """The nnrecipe log records of this thread at INFO and above emitted inside the block, as (level,
    message), whatever the logger's level: a first run at WARNING must not store fewer notices than a
    later one at INFO shows. Records below the level the caller set still reach no handler."""
    records: list[tuple[int, str]] = []
    shown, saved, thread = log.getEffectiveLevel(), log.level, threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        if record.thread == thread and record.levelno >= logging.INFO:
            records.append((record.levelno, record.getMessage()))
        return record.levelno >= shown

    log.setLevel(min(shown, logging.INFO))
    log.addFilter(keep)
    try:
        yield records
    finally:
        log.removeFilter(keep)
        log.setLevel(saved)


def _store(prep: PreparedTable, file: Path, notices: list[tuple[int, str]]) -> None:
    """Write the prepared table atomically; a failure is logged and ignored (the cache only saves time)."""
    from safetensors.torch import save_file

    meta = {"task": prep.task, "task_reason": prep.task_reason, "schema": prep.schema.to_dict(),
            "pre": prep.pre.to_dict(), "classes": prep.classes, "target_scale": prep.target_scale,
            "counts": prep.counts, "neutral_rows": prep.neutral_rows, "notices": notices, "split": prep.split,
            "source": str(prep.source)}
    tensors = {"rows": torch.from_numpy(prep.rows), "features": prep.features, "y": prep.y}
    if prep.codes is not None:
        tensors["codes"] = prep.codes
    if prep.groups is not None:
        tensors["groups"] = torch.from_numpy(prep.groups)
    if prep.terms is not None:
        tensors.update(terms=prep.terms, weights=prep.weights)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    # safetensors has no checksums: a CRC-32 per tensor (2 GB/s here, against 0.5-1 GB/s for SHA-256 and
    # BLAKE2b) makes bits damaged on disk a miss instead of wrong features
    meta["crc32"] = {k: zlib.crc32(v.numpy()) for k, v in tensors.items()}
    tmp = temp_path(file)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, tmp, metadata={"nnrecipe": json.dumps(meta)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # on disk before the rename makes it visible: a crash leaves no torn file
        os.replace(tmp, file)
        table_cache.trim(keep=file)
    except Exception as e:
        log.warning("could not cache the prepared table in %s (%s)", file.parent, str(e).strip() or type(e).__name__)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _load(file: Path, path: Path) -> PreparedTable | None:
    """The cached preparation, its notices logged again; None on a miss or a file that cannot be read."""
    table_cache.wait(file)
    if not file.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(file, framework="pt") as f:
            meta = json.loads(f.metadata()["nnrecipe"])
            t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        if {k: zlib.crc32(v.numpy()) for k, v in t.items()} != meta["crc32"]:
            raise ValueError("its checksums do not match: damaged on disk")
        schema = Schema(**meta["schema"])
        prep = PreparedTable(meta["task"], meta["task_reason"], schema, TablePreprocessor.from_dict(meta["pre"]),
                             meta["classes"], meta["target_scale"], t["rows"].numpy(), meta["counts"],
                             t["features"], t.get("codes"), t["y"], meta["neutral_rows"], path,
                             groups=t["groups"].numpy() if "groups" in t else None, split=meta.get("split", "auto"),
                             terms=t.get("terms"), weights=t.get("weights"))
        if len(prep.rows) != sum(prep.counts.values()) or len(prep.features) != len(prep.rows):
            raise ValueError("row counts disagree")
    except Exception as e:  # a damaged cache file is a miss, never an error
        log.warning("cached preparation %s cannot be read (%s): preparing the table again", file,
                    str(e).strip() or type(e).__name__)
        return None
    table_cache.touch(file)
    for level, message in meta["notices"]:  # about this path, if the same bytes were prepared under another
        log.log(level, "%s", message.replace(meta["source"], str(path)))
    return prep

