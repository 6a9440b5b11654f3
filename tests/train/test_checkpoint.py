"""T8 checkpoint files: the state tree round-trips bit for bit, damaged or foreign files raise
CheckpointError with a message that says what to do, and writes are atomic."""

from __future__ import annotations

import math
import os
import re

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from nnrecipe import CheckpointError, Trainer
from nnrecipe.train import checkpoint as ckpt
from nnrecipe.train.checkpoint import atomic_write, load_state, save_state


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    f32 = base.clone()
    f32[0, :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    return {
        "f32": f32,
        "f64": base.double() / 3,
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "i64": torch.tensor([-(2**62), 0, 2**62 + 1]),
        "i32": torch.arange(-3, 3, dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.0),  # an optimizer's 'step'
        "empty": torch.zeros(0, 5),
        "view": base.t()[1:3],  # not contiguous, shares the storage of base
        "grad": torch.ones(2, requires_grad=True),
    }


def _state() -> dict:
    t = _tensors()
    return {
        "model": {"0.weight": t["f32"], "0.bias": t["f64"], "tied": t["f32"]},  # one tensor twice
        "optimizer": {"state": {0: {"step": t["scalar"], "exp_avg": t["bf16"]}, 3: {"buf": t["f16"]}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 3], "foreach": None}]},
        "ints": {1: {2: {3: t["i64"]}}, -1: t["i32"], 10**12: t["i16"]},
        "tuple": (1, 2.5, "x", None, True, (t["i8"], [t["u8"]])),
        "floats": [math.inf, -math.inf, -0.0, 0.1, 1e-310, 1.7976931348623157e308, 2**63 + 1],
        "misc": {"bool": t["bool"], "empty": t["empty"], "view": t["view"], "grad": t["grad"],
                 "text": "naïve – ünicode", "": "empty key", "flag": False},
    }


def test_round_trip_is_bit_for_bit(tmp_path, identical):
    state = _state()
    save_state(tmp_path / "c.safetensors", state)
    loaded = load_state(tmp_path / "c.safetensors")
    identical(state, loaded)
    assert not loaded["misc"]["grad"].requires_grad
    assert loaded["model"]["tied"] is not loaded["model"]["0.weight"]  # stored twice, loaded apart


def test_nan_float_survives(tmp_path):
    save_state(tmp_path / "c", {"x": [math.nan]})
    assert math.isnan(load_state(tmp_path / "c")["x"][0])


def test_an_optimizer_and_scheduler_state_round_trip(tmp_path, identical):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    for _ in range(3):
        model(torch.ones(4, 3)).sum().backward()
        opt.step()
        sched.step()
    state = {"opt": opt.state_dict(), "sched": sched.state_dict()}
    save_state(tmp_path / "c", state)
    loaded = load_state(tmp_path / "c")
    identical(state, loaded)
    opt.load_state_dict(loaded["opt"])  # torch accepts what comes back
    sched.load_state_dict(loaded["sched"])


def test_a_value_that_is_not_data_is_refused_with_its_path(tmp_path):
    with pytest.raises(TypeError) as e:
        save_state(tmp_path / "c", {"a": [1, {"b": {1, 2}}]})
    assert str(e.value) == ("cannot store set at 'state.a[1].b' in a checkpoint: only tensors, numbers, "
                            "strings, lists, tuples and dicts are stored (no pickles)")
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------- damaged and foreign files
DAMAGED = re.compile(r"checkpoint '(?P<path>.+)' cannot be read \((?P<why>.+)\); it is not an nnrecipe "
                     r"checkpoint or it is damaged: resume from another checkpoint or start afresh")


@pytest.mark.parametrize("keep", [0, 5, 8, 40, 0.5, -1])
def test_a_truncated_file_raises_checkpoint_error(keep, tmp_path):
    path = tmp_path / "c.safetensors"
    save_state(path, _state())
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError) as e:
        load_state(path)
    m = DAMAGED.fullmatch(str(e.value))
    assert m is not None, str(e.value)
    assert m["path"] == str(path)
    assert isinstance(e.value, OSError)


def test_garbage_raises_checkpoint_error(tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"\x00" * 7 + b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError) as e:
        load_state(path)
    assert DAMAGED.fullmatch(str(e.value))


def test_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_state(tmp_path / "nope.safetensors")
    assert str(e.value) == f"checkpoint '{tmp_path / 'nope.safetensors'}' does not exist"


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_file({"w": torch.ones(2)}, tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_state(tmp_path / "weights.safetensors")
    assert str(e.value) == f"'{tmp_path / 'weights.safetensors'}' is a safetensors file but not an nnrecipe checkpoint"


def test_a_newer_format_asks_for_an_upgrade(tmp_path):
    save_file({"t0": torch.ones(2)}, tmp_path / "c",
              metadata={"format": ckpt.FORMAT, "version": str(ckpt.FORMAT_VERSION + 1), "tree": "{}"})
    with pytest.raises(CheckpointError) as e:
        load_state(tmp_path / "c")
    assert str(e.value) == (f"checkpoint '{tmp_path / 'c'}' has format version {ckpt.FORMAT_VERSION + 1}, newer "
                            f"than this nnrecipe reads ({ckpt.FORMAT_VERSION}): upgrade nnrecipe")


def test_trainer_refuses_to_resume_from_a_damaged_checkpoint(make_mlp, train_config, blob_data, tmp_path):
    Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=1), run_dir=tmp_path).fit()
    last = tmp_path / "checkpoints" / "last.safetensors"
    last.write_bytes(last.read_bytes()[:-100])
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=2), run_dir=tmp_path,
                resume=True)
    with pytest.raises(CheckpointError) as e:
        t.fit()
    assert DAMAGED.fullmatch(str(e.value)) and DAMAGED.fullmatch(str(e.value))["path"] == str(last)


# ---------------------------------------------------------------- atomic writes
def test_atomic_write_writes_bytes_and_text_and_makes_folders(tmp_path):
    atomic_write(tmp_path / "a" / "b" / "f.bin", b"\x00\x01")
    atomic_write(tmp_path / "a" / "t.txt", "héllo")
    assert (tmp_path / "a" / "b" / "f.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write(tmp_path / "a" / "t.txt", "replaced")
    assert (tmp_path / "a" / "t.txt").read_text() == "replaced"


class Interrupted(Exception):
    pass


def _raise(*args, **kwargs):
    raise Interrupted


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_an_interrupted_write_leaves_the_old_file(where, tmp_path, monkeypatch, identical):
    path = tmp_path / "c.safetensors"
    old = {"step": 1, "w": torch.arange(5.0)}
    save_state(path, old)
    before = path.read_bytes()
    # the rename (os.replace) or the flush to disk (os.fsync) fails: the new bytes never become the file
    monkeypatch.setattr(ckpt.os, where, _raise)
    with pytest.raises(Interrupted):
        save_state(path, {"step": 2, "w": torch.zeros(1000)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    identical(load_state(path), old)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "c.safetensors"]
    assert all(name.startswith(".c.safetensors.tmp-") for name in leftovers)  # only the temp file, never the target


def test_an_interrupted_first_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt.os, "replace", _raise)
    with pytest.raises(Interrupted):
        save_state(tmp_path / "c.safetensors", {"step": 1})
    monkeypatch.undo()
    assert not (tmp_path / "c.safetensors").exists()


def test_a_scratch_folder_skips_the_disk_syncs_and_only_there(tmp_path, monkeypatch):
    """A scikit-learn fit without out= trains in a temporary folder (io.scratch): its files are written
    atomically but never synced; every other file still is, also while a scratch block is open."""
    from nnrecipe import io as nio

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(nio.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    (tmp_path / "temp").mkdir()
    with nio.scratch(tmp_path / "temp"):
        nio.atomic_write(tmp_path / "temp" / "sub" / "a.json", "{}")
        assert synced == [] and (tmp_path / "temp" / "sub" / "a.json").read_text() == "{}"
        nio.atomic_write(tmp_path / "kept.json", "{}")  # outside the scratch folder: file and folder synced
        assert len(synced) == 2
    nio.atomic_write(tmp_path / "temp" / "b.json", "{}")  # the block ended: synced again
    assert len(synced) == 4


def test_a_fit_without_out_syncs_nothing(monkeypatch):
    import numpy as np

    from nnrecipe import io as nio
    from nnrecipe.sklearn import NNRecipeClassifier

    synced: list[int] = []
    monkeypatch.setattr(nio.os, "fsync", lambda fd: synced.append(fd))
    g = np.random.default_rng(0)
    X = g.normal(size=(60, 3))
    NNRecipeClassifier(epochs=2, refit="off", checks=False, model="mlp").fit(X, (X[:, 0] > 0).astype(int))
    assert synced == []
