"""prepare_table caches a file's preparation (D13): a second run on the same bytes, data config and seed
loads exactly what the first one prepared and tells the same notices; any other seed, config or content
misses; a damaged or unwritable cache never stops a run; the input file is never touched; and training
from the cache gives the same model, split and review file bit for bit."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from nnrecipe.config import DataConfig, TrainConfig
from nnrecipe.data import cache as table_cache
from nnrecipe.data import prepare as prepare_module
from nnrecipe.data.prepare import PreparedTable, prepare_table
from nnrecipe.data.split import split_indices
from nnrecipe.errors import DataError
from nnrecipe.recipes import train_table
from nnrecipe.testing import small_table

HIT = "prepared from the cache"
UNSURE_ROWS = [5, 17, 42, 99, 150]  # data rows labelled 'unsure' in the neutral-label table
EMPTY_ROW = 3  # the data row whose target cell is left empty
COLUMNS = ["color", "y", "b", "city", "a"]


def mixed_table(n: int = 200, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """small_table with a 40-category text column, so that the preparation has embedding codes; columns
    out of alphabetical order and the target among them, so that a change of column order shows."""
    df = small_table(n, seed, task)
    city = np.random.default_rng(seed + 1).integers(0, 40, size=n)
    df["city"] = [f"c{i:02d}" for i in city]
    return df[COLUMNS]


def write_csv(folder: Path, df: pd.DataFrame, name: str = "table.csv") -> Path:
    path = folder / name
    df.to_csv(path, index=False)
    return path


def neutral_csv(folder: Path) -> Path:
    """A binary table with 'unsure' targets in UNSURE_ROWS and an empty target cell in EMPTY_ROW."""
    df = mixed_table()
    df.loc[UNSURE_ROWS, "y"] = "unsure"
    df.loc[EMPTY_ROW, "y"] = np.nan
    return write_csv(folder, df)


def prepared_files() -> list[Path]:
    folder = table_cache.cache_folder(kind="prepared")
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def messages(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("nnrecipe") and (level is None or r.levelno == level)]


def hits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in messages(caplog, logging.INFO) if HIT in m]


def assert_same(a: PreparedTable, b: PreparedTable) -> None:
    """Every part of two preparations is equal: the arrays bit for bit, with their dtypes and shapes."""
    assert (a.task, a.task_reason) == (b.task, b.task_reason)
    assert a.schema.to_dict() == b.schema.to_dict()
    assert a.pre.to_dict() == b.pre.to_dict()
    # and in the same order: the columns' order is the order of the features
    assert list(a.schema.kinds) == list(b.schema.kinds)
    assert list(a.pre.columns) == list(b.pre.columns)
    assert a.pre.feature_names == b.pre.feature_names
    assert a.classes == b.classes
    assert a.target_scale == b.target_scale
    assert a.counts == b.counts
    assert a.neutral_rows == b.neutral_rows
    assert a.rows.dtype == b.rows.dtype
    np.testing.assert_array_equal(a.rows, b.rows)
    for name in ("features", "y"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x.dtype, x.shape) == (y.dtype, y.shape), name
        assert torch.equal(x, y), name
    assert (a.codes is None) == (b.codes is None)
    if a.codes is not None:
        assert (a.codes.dtype, a.codes.shape) == (b.codes.dtype, b.codes.shape)
        assert torch.equal(a.codes, b.codes)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The nnrecipe log at INFO: the notices a preparation records include its INFO lines."""
    caplog.set_level(logging.INFO, logger="nnrecipe")
    return caplog


@pytest.fixture(autouse=True)
def _no_write_left_behind() -> Iterator[None]:
    """No background cache write outlives its test (the next test has another cache folder)."""
    yield
    table_cache.wait()


# ---------------------------------------------------------------- a hit is the same preparation


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_second_preparation_is_a_hit_with_identical_content(tmp_path, logs, monkeypatch, task):
    csv = write_csv(tmp_path, mixed_table(task=task))
    cfg = DataConfig(target="y")
    first, neutral = prepare_table(csv, cfg, seed=0)
    assert neutral is None
    assert hits(logs) == []
    assert first.codes is not None and first.codes.shape == (200, 1)  # 'city' is embedded
    assert first.task == task
    table_cache.wait()
    [file] = prepared_files()
    assert file.parent == Path(os.environ["NNRECIPE_CACHE"]) / "prepared"

    # a hit neither parses the file nor prepares it again
    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit prepared the table again")

    monkeypatch.setattr(prepare_module, "_prepare", refuse)
    monkeypatch.setattr(prepare_module, "read_table", refuse)
    logs.clear()
    second, neutral = prepare_table(csv, cfg, seed=0)
    assert neutral is None
    assert hits(logs) == [f"file '{csv}' prepared from the cache ({file})"]
    assert_same(second, first)
    for split in ("train", "val", "test"):
        assert second.data_rows(split) == first.data_rows(split)
        assert all(torch.equal(x, y) for x, y in zip(second.inputs(split), first.inputs(split), strict=True))
        assert torch.equal(second.target(split), first.target(split))
    assert second.source == csv


# ---------------------------------------------------------------- what misses


@pytest.mark.parametrize("change", ["seed", "val_fraction", "scaling"])
def test_another_seed_or_data_config_misses(tmp_path, logs, change):
    csv = write_csv(tmp_path, mixed_table())
    base = DataConfig(target="y")
    cfg, seed = {"seed": (base, 1),
                 "val_fraction": (dataclasses.replace(base, val_fraction=0.25), 0),
                 "scaling": (dataclasses.replace(base, scaling="minmax"), 0)}[change]
    first, _ = prepare_table(csv, base, seed=0)
    table_cache.wait()
    logs.clear()
    other, _ = prepare_table(csv, cfg, seed=seed)
    assert hits(logs) == []
    assert_same(other, prepare_table(csv, cfg, seed, cache=False)[0])
    if change == "seed":
        assert not np.array_equal(other.rows, first.rows)
    elif change == "val_fraction":
        assert other.counts["val"] > first.counts["val"]
    else:
        assert not torch.equal(other.features, first.features)
    table_cache.wait()
    assert len(prepared_files()) == 2
    # both preparations stay cached side by side
    for c, s, expected in ((base, 0, first), (cfg, seed, other)):
        logs.clear()
        again, _ = prepare_table(csv, c, seed=s)
        assert len(hits(logs)) == 1
        assert_same(again, expected)


@pytest.mark.parametrize("memoized", [False, True], ids=["fresh-file", "hash-memoized"])
def test_a_changed_file_misses_and_its_preparation_shows_the_change(tmp_path, logs, monkeypatch, memoized):
    if memoized:  # let content_key record the first hash as if the file had been left alone for a while
        monkeypatch.setattr(table_cache, "RACY_SECONDS", -60.0)
    df = mixed_table()
    csv = write_csv(tmp_path, df)
    cfg = DataConfig(target="y")
    first, _ = prepare_table(csv, cfg, seed=0)
    table_cache.wait()
    memos = Path(os.environ["NNRECIPE_CACHE"]) / "tables" / "stat"
    assert (memos.is_dir() and any(memos.iterdir())) == memoized
    inode = csv.stat().st_ino

    original = float(df.loc[7, "a"])
    df.loc[7, "a"] = 1234.5  # one cell, rewritten in place (same inode)
    df.to_csv(csv, index=False)
    assert csv.stat().st_ino == inode
    logs.clear()
    second, _ = prepare_table(csv, cfg, seed=0)
    assert hits(logs) == []
    assert_same(second, prepare_table(csv, cfg, 0, cache=False)[0])

    def a_of_row_7(prep: PreparedTable) -> float:
        col = prep.pre.to_dict()["columns"]["a"]
        pos = int(np.flatnonzero(prep.rows == 7)[0])
        return float(prep.features[pos, prep.pre.feature_names.index("a")]) * col["scale"] + col["center"]

    assert a_of_row_7(first) == pytest.approx(original, rel=1e-5)
    assert a_of_row_7(second) == pytest.approx(1234.5, rel=1e-5)
    table_cache.wait()
    assert len(prepared_files()) == 2


# ---------------------------------------------------------------- a damaged cache file


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _garbage_header(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[:16] = b"\xde\xad\xbe\xef" * 4
    file.write_bytes(bytes(data))


def _foreign(file: Path) -> None:  # a valid safetensors file, but not a preparation
    save_file({"x": torch.zeros(3)}, file)


def _flipped_data(file: Path) -> None:  # the header intact, the last tensor's bytes damaged: only a checksum sees it
    data = bytearray(file.read_bytes())
    data[-8:] = b"\xff" * 8
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _garbage_header, _foreign, _flipped_data],
                         ids=["truncated", "garbage", "foreign", "flipped-data"])
def test_a_damaged_cache_file_is_a_miss_that_is_prepared_and_written_again(tmp_path, logs, damage):
    csv = write_csv(tmp_path, mixed_table())
    cfg = DataConfig(target="y")
    first, _ = prepare_table(csv, cfg, seed=0)
    table_cache.wait()
    [file] = prepared_files()
    damage(file)

    logs.clear()
    second, _ = prepare_table(csv, cfg, seed=0)
    warnings = messages(logs, logging.WARNING)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"cached preparation {file} cannot be read (")
    assert warnings[0].endswith("): preparing the table again")
    assert hits(logs) == []
    assert_same(second, first)

    table_cache.wait()
    assert prepared_files() == [file]
    logs.clear()
    third, _ = prepare_table(csv, cfg, seed=0)
    assert messages(logs, logging.WARNING) == []
    assert len(hits(logs)) == 1
    assert_same(third, first)


# ---------------------------------------------------------------- notices


def test_notices_are_recorded_whatever_the_level_of_the_first_run(tmp_path, caplog):
    """A first run at WARNING (train_table from Python, no logging set up) stores the INFO notices too,
    without showing them; a later run at INFO (the CLI) shows them from the cache."""
    csv = write_csv(tmp_path, mixed_table())
    cfg = DataConfig(target="y")
    caplog.set_level(logging.WARNING, logger="nnrecipe")
    prepare_table(csv, cfg, seed=0)
    table_cache.wait()
    assert messages(caplog, logging.INFO) == []  # the first run's level was respected
    caplog.clear()
    caplog.set_level(logging.INFO, logger="nnrecipe")
    prepare_table(csv, cfg, seed=0)
    shown = messages(caplog, logging.INFO)
    assert len(hits(caplog)) == 1
    assert "column city: embedding" in shown and "column a: numeric" in shown


def test_the_same_bytes_under_another_name_tell_notices_about_that_name(tmp_path, logs):
    first = tmp_path / "de.csv"
    first.write_text("a;b;y\n" + "".join(f"{i},5;{i % 3};{'yes' if i % 2 else 'no'}\n" for i in range(60)))
    prepare_table(first, DataConfig(target="y"), seed=0)
    table_cache.wait()
    other = tmp_path / "other.csv"
    other.write_bytes(first.read_bytes())
    logs.clear()
    prepare_table(other, DataConfig(target="y"), seed=0)
    assert len(hits(logs)) == 1
    told = [m for m in messages(logs) if "decimal comma" in m]
    assert told and all(str(other) in m and str(first) not in m for m in told)


def test_the_notices_of_the_preparation_are_told_again_on_a_hit(tmp_path, logs):
    df = mixed_table()
    df.loc[EMPTY_ROW, "y"] = np.nan
    csv = write_csv(tmp_path, df)
    cfg = DataConfig(target="y")
    warning = "1 rows have no value in target 'y' and are left out"

    first, _ = prepare_table(csv, cfg, seed=0)
    assert messages(logs, logging.WARNING) == [warning]
    assert EMPTY_ROW not in first.rows and len(first.rows) == len(df) - 1
    told = [(r.levelno, r.getMessage()) for r in logs.records if r.name.startswith("nnrecipe")]
    assert (logging.INFO, "column city: embedding") in told
    table_cache.wait()

    logs.clear()
    second, _ = prepare_table(csv, cfg, seed=0)
    assert messages(logs, logging.WARNING) == [warning]
    again = [(r.levelno, r.getMessage()) for r in logs.records if r.name.startswith("nnrecipe")]
    assert again[-1][1].startswith(f"file '{csv}' {HIT}")
    assert again[:-1] == told  # the same notices, at the same levels, in the same order
    assert_same(second, first)


# ---------------------------------------------------------------- neutral label (D7)


def test_the_neutral_rows_come_back_on_a_miss_and_on_a_hit(tmp_path, logs):
    csv = neutral_csv(tmp_path)
    cfg = DataConfig(target="y", neutral_label="unsure")
    prep, neutral = prepare_table(csv, cfg, seed=0)
    assert neutral is not None
    assert neutral.index.tolist() == UNSURE_ROWS == prep.neutral_rows
    assert (neutral["y"] == "unsure").all()
    assert list(neutral.columns) == COLUMNS
    expected = pd.read_csv(csv).loc[UNSURE_ROWS]
    pd.testing.assert_frame_equal(neutral, expected, check_dtype=False)
    assert not set(UNSURE_ROWS + [EMPTY_ROW]) & set(prep.rows.tolist())
    assert len(prep.rows) == 200 - len(UNSURE_ROWS) - 1
    assert prep.classes == ["no", "yes"]
    table_cache.wait()

    logs.clear()
    hit, neutral_hit = prepare_table(csv, cfg, seed=0)
    assert len(hits(logs)) == 1
    assert_same(hit, prep)
    pd.testing.assert_frame_equal(neutral_hit, neutral)


@contextlib.contextmanager
def _nnrecipe_log() -> Iterator[list[str]]:
    """The nnrecipe log at INFO, collected, for fixtures wider than caplog's."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("nnrecipe")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> SimpleNamespace:
    """train_table twice on one CSV with neutral labels, seed 0, in an empty cache of its own: the first
    run prepares the table, the second loads it from the cache."""
    folder = tmp_path_factory.mktemp("two-runs")
    csv = neutral_csv(folder)
    runs, logs = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNRECIPE_CACHE", str(folder / "cache"))
        for _ in range(2):
            with _nnrecipe_log() as records:
                run = train_table(csv, "y", out=folder / "runs", data_config=DataConfig(neutral_label="unsure"),
                                  train_config=TrainConfig(seed=0, epochs=3))
            table_cache.wait()
            runs.append(run.run_dir)
            logs.append(records)
    return SimpleNamespace(csv=csv, runs=runs, logs=logs)


def test_training_from_the_cache_gives_the_same_model_and_split(two_runs):
    first, second = two_runs.runs
    assert first != second
    assert not any(HIT in m for m in two_runs.logs[0])
    assert any(m.startswith(f"file '{two_runs.csv}' {HIT}") for m in two_runs.logs[1])
    assert (first / "splits.json").read_bytes() == (second / "splits.json").read_bytes()
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()


def test_training_from_the_cache_writes_the_same_review_file(two_runs):
    first, second = two_runs.runs
    review = (first / "review.csv").read_bytes()
    assert review == (second / "review.csv").read_bytes()
    assert sorted(pd.read_csv(first / "review.csv")["row"]) == UNSURE_ROWS


# ---------------------------------------------------------------- the input, DataFrames


def test_the_input_file_is_left_as_it_was(tmp_path, logs):
    csv = neutral_csv(tmp_path)
    before, stat = csv.read_bytes(), csv.stat()
    cfg = DataConfig(target="y", neutral_label="unsure")
    for _ in range(2):  # a miss, then a hit (which reads the file again for its neutral rows)
        prepare_table(csv, cfg, seed=0)
        table_cache.wait()
    assert len(hits(logs)) == 1
    after = csv.stat()
    assert csv.read_bytes() == before
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    assert [p.name for p in tmp_path.iterdir()] == [csv.name]  # nothing written beside it


def test_a_dataframe_is_never_cached(tmp_path, logs):
    df = mixed_table()
    cfg = DataConfig(target="y")
    for _ in range(2):
        prep, _ = prepare_table(df, cfg, seed=0)
        table_cache.wait()
        assert prepared_files() == []
        assert prep.source is None
    assert hits(logs) == []
    cache = Path(os.environ["NNRECIPE_CACHE"])
    assert not cache.exists() or not any(cache.rglob("*.*"))
    # the same table from a file is cached, in the folder looked at above
    prepare_table(write_csv(tmp_path, df), cfg, seed=0)
    table_cache.wait()
    assert len(prepared_files()) == 1


# ---------------------------------------------------------------- split


def test_split_of_codes_equals_split_of_their_labels():
    g = np.random.default_rng(0)
    # classes in an order that is not sorted, of unequal sizes
    labels = g.choice(np.array(["zeta", "alpha", "mid", "beta"], dtype=object), size=120, p=[0.4, 0.3, 0.2, 0.1])
    codes, uniques = pd.factorize(labels, sort=True)
    classes = [str(u) for u in uniques]
    unsorted_codes, unsorted = pd.factorize(labels, sort=False)
    for seed in range(3):
        for val, test in ((0.15, 0.15), (0.2, 0.1)):
            by_label = split_indices(labels, len(labels), val, test, seed)
            by_code = split_indices(codes, len(labels), val, test, seed, classes)
            assert by_label.keys() == by_code.keys() == {"train", "val", "test"}
            for k in by_label:
                np.testing.assert_array_equal(by_label[k], by_code[k])
            assert sorted(np.concatenate(list(by_code.values())).tolist()) == list(range(len(labels)))
            # the test can tell: codes in another order than the sorted labels' give another split
            other = split_indices(unsorted_codes, len(labels), val, test, seed, [str(u) for u in unsorted])
            assert any(not np.array_equal(by_label[k], other[k]) for k in by_label)


def test_split_of_codes_names_rare_classes_like_their_labels():
    labels = np.array(["b", "a"] * 20 + ["c", "c"], dtype=object)
    codes, uniques = pd.factorize(labels, sort=True)
    with pytest.raises(DataError) as by_label:
        split_indices(labels, len(labels), 0.15, 0.15, 0)
    with pytest.raises(DataError) as by_code:
        split_indices(codes, len(labels), 0.15, 0.15, 0, [str(u) for u in uniques])
    assert str(by_code.value) == str(by_label.value)
    assert str(by_code.value).startswith("classes 'c' (2) have fewer than 3 rows")


# ---------------------------------------------------------------- a cache that cannot be written


@pytest.mark.parametrize("where", ["cache-is-a-file", "prepared-is-a-file"])
def test_an_unwritable_cache_only_warns(tmp_path, logs, monkeypatch, where):
    if where == "cache-is-a-file":  # NNRECIPE_CACHE names a regular file: nothing can be cached at all
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        monkeypatch.setenv("NNRECIPE_CACHE", str(blocker))
    else:  # parsed tables can be cached, prepared ones cannot
        blocker = Path(os.environ["NNRECIPE_CACHE"]) / "prepared"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("x")
    csv = write_csv(tmp_path, mixed_table())
    cfg = DataConfig(target="y")
    expected, _ = prepare_table(csv, cfg, 0, cache=False)
    folder = table_cache.cache_folder(kind="prepared")
    for _ in range(2):  # each call a miss that prepares, warns and goes on
        logs.clear()
        prep, _ = prepare_table(csv, cfg, seed=0)
        table_cache.wait()
        assert_same(prep, expected)
        assert hits(logs) == []
        warned = [m for m in messages(logs, logging.WARNING) if "prepared" in m]
        assert len(warned) == 1
        assert warned[0].startswith(f"could not cache the prepared table in {folder} (")
    assert blocker.read_text() == "x"


def test_a_fresh_file_is_hashed_once_per_preparation(tmp_path, monkeypatch):
    """A file written a moment ago is not memoized by its timestamps (cache.RACY_SECONDS): the key
    prepare_table computed is handed to read_table rather than hashed again."""
    hashed = []
    real = table_cache._sha256
    monkeypatch.setattr(table_cache, "_sha256", lambda path: hashed.append(path) or real(path))
    csv = write_csv(tmp_path, mixed_table())
    prepare_table(csv, DataConfig(target="y"), seed=0)
    assert hashed == [csv]


def test_train_reads_and_hashes_a_fresh_file_once(tmp_path, monkeypatch):
    """train_table's audit takes the table its preparation read: no second read (from the parsed-table
    cache) and no second hash of a file written a moment ago."""
    from nnrecipe import TrainConfig, train_table
    from nnrecipe.recipes import tabular as recipe

    hashed, read = [], []
    real_hash, real_read = table_cache._sha256, recipe.read_table
    monkeypatch.setattr(table_cache, "_sha256", lambda path: hashed.append(path) or real_hash(path))
    monkeypatch.setattr(recipe, "read_table", lambda *a, **k: read.append(a) or real_read(*a, **k))
    csv = write_csv(tmp_path, mixed_table())
    run = train_table(csv, "y", out=tmp_path / "runs", train_config=TrainConfig(epochs=1), checks=(), report=False)
    assert hashed == [csv] and read == []
    assert (run.run_dir / "audit.json").is_file()
