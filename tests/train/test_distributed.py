"""T10: data-parallel training under torchrun (gloo on the CPU). Two processes train the weights one process
trains with the same global batches, within float32 rounding (the gradient of a batch is summed in another
order: two half-batch means averaged instead of one mean); a run killed mid-epoch resumes under two processes
or under one and ends the same; only rank 0 writes, one run folder; TabM's members train through DDP.

Tolerance: ATOL = 1e-5 on weights of magnitude ~1. Measured here (torch 2.13 CPU, 4-6 epochs of 9 steps):
6e-8 for the MLP, 1e-7 for TabM; dividing the batches unevenly without weighting the shards (a real bug)
moves the weights by 1e-3 or more, so the bound still tells the two apart."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nnrecipe.cli import main
from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.testing import small_table

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch build has no torch.distributed with gloo: T10 cannot run here", allow_module_level=True)

ATOL = 1e-5
# 210 training rows in batches of 25: 9 steps an epoch, shards of 13 and 12 rows (unequal: the weighting is tested),
# the last batch of 10; a checkpoint every 4 steps, so a kill lands mid-epoch
SETTINGS = dict(epochs=5, batch_size=25, refit="off", checkpoint_every=4, patience=None)

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from nnrecipe.config import ModelConfig, TrainConfig
    from nnrecipe.recipes import train_table
    from nnrecipe.train.callbacks import Callback

    class Kill(Callback):  # SIGKILL rank 0 in epoch 4 after its 6th batch (a checkpoint was written at step 28)
        def on_batch_end(self, trainer, logs):
            if os.environ["RANK"] == "0" and trainer.epoch == 3 and logs["batch"] == 6:
                os.kill(os.getpid(), signal.SIGKILL)

    data, out, model, kill = sys.argv[1:5]
    train_table(data, "y", out=out, model_config=ModelConfig(model=model, dropout=0.0),
                train_config=TrainConfig(**{settings!r}), checks=(), audit=False, report=False,
                callbacks=[Kill()] if kill == "kill" else [])
""").format(settings=SETTINGS)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2] / "src")}


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # python -m torch.distributed.run is torchrun; --standalone picks a free port (tests may run side by side)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
                          cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240)


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=ATOL), f"{k}: {(a[k] - b[k]).abs().max():.2e} apart"


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("t10")
    small_table(300).to_csv(folder / "t.csv", index=False)
    (folder / "run.py").write_text(SCRIPT)
    return folder


def _one_process(table: Path, model: str) -> Path:
    return train_table(table / "t.csv", "y", out=table / f"one-{model}", checks=(), audit=False, report=False,
                       model_config=ModelConfig(model=model, dropout=0.0), train_config=TrainConfig(**SETTINGS)).run_dir


def _curves(run: Path) -> list[float]:
    """Each epoch's training and validation loss and accuracy (the training ones summed over the processes)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r[k] for r in rows for k in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy")]


def test_two_processes_train_resume_and_write_one_folder(table):
    one = _one_process(table, "mlp")
    reference = _weights(one)

    # killed mid-epoch under two processes: SIGKILL of rank 0; torchrun stops rank 1
    killed = _torchrun("run.py", "t.csv", "two", "mlp", "kill", cwd=table)
    assert killed.returncode != 0
    (run,) = _runs(table / "two")  # one run folder: rank 1 wrote none
    assert not (run / "model.safetensors").exists()
    shutil.copytree(run, table / "copy" / run.name)

    # resumed by the command line under torchrun, unchanged: rank 0 alone prints
    done = _torchrun("-m", "nnrecipe", "train", "t.csv", "--target", "y", "--resume", str(run), cwd=table)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("nnrecipe run ") == 1 and done.stdout.strip().endswith(str(run))
    assert _runs(table / "two") == [run]
    _close(_weights(run), reference)
    # epoch 4's training loss spans the kill: the checkpoint's running totals, summed over both processes
    assert _curves(run) == pytest.approx(_curves(one), abs=ATOL) and len(_curves(run)) == 5 * SETTINGS["epochs"]

    # the same killed run resumed in one process (another process count)
    assert main(["train", str(table / "t.csv"), "--target", "y", "--resume", str(table / "copy" / run.name)]) == 0
    _close(_weights(table / "copy" / run.name), reference)


def test_tabm_members_train_through_ddp(table):
    """The members' pass goes through DDP's forward (distributed.MembersParallel): the processes end with the
    same weights (Trainer.fit checks it, bit for bit, and fails otherwise), those of one process within ATOL."""
    pytest.importorskip("tabm")
    done = _torchrun("run.py", "t.csv", "two-tabm", "tabm", "-", cwd=table)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = _runs(table / "two-tabm")
    _close(_weights(run), _weights(_one_process(table, "tabm")))


def test_accumulated_gradients_under_two_processes_match_one(table):
    """--accumulate 2: each process's share of a batch is weighted before the accumulation divides it (the
    two scalings compose), so two processes end where one does."""
    flags = ["train", "t.csv", "--target", "y", "--model", "mlp", "--dropout", "0", "--epochs", "3", "--batch-size",
             "25", "--refit", "off", "--patience", "none", "--accumulate", "2", "--no-report"]
    done = _torchrun("-m", "nnrecipe", *flags, "--out", "two-acc", cwd=table)
    assert done.returncode == 0, done.stderr[-3000:]
    cwd = os.getcwd()
    try:
        os.chdir(table)
        assert main([*flags, "--out", "one-acc"]) in (0, 1)  # 1: a verdict failed; the weights are compared
    finally:
        os.chdir(cwd)
    (two,), (one,) = _runs(table / "two-acc"), _runs(table / "one-acc")
    _close(_weights(two), _weights(one))
