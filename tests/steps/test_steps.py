"""T2: the batch contract (steps/batch.py) and the open training step (steps/step.py): a Step subclass that adds
a term trains and resumes bit for bit, a stateful step's state rides in the checkpoint, dict batches reach the
model by name (in memory and through a Dataset), sample weights weigh the loss, a target-less batch trains with
Reconstruction, and one step object serves both the Trainer and the doctor."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from nnrecipe import Callback, ConfigError, Step, TrainConfig, Trainer, doctor
from nnrecipe.steps import Batch, Reconstruction, as_batch, main_output
from nnrecipe.testing import assert_identical, blobs, states_equal
from nnrecipe.train.checkpoint import load_state

X, Y = blobs(256, 8, 3, seed=0)


def mlp(seed: int = 0, dropout: float = 0.3) -> nn.Module:
    torch.manual_seed(seed)  # the weights' init; fit() seeds everything else from config.seed
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))


def config(**kw: Any) -> TrainConfig:
    return TrainConfig(**{"device": "cpu", "batch_size": 32, "epochs": 3, "patience": None, "lr": 3e-3, **kw})


same_state, identical = states_equal, assert_identical


# ---------------------------------------------------------------- the batch contract
def test_as_batch_reads_tensors_tuples_and_dicts():
    x, x2, y, w = torch.randn(4, 3), torch.randn(4, 2), torch.arange(4), torch.ones(4)
    b = as_batch(x)
    assert b.inputs[0] is x and len(b.inputs) == 1 and b.target is None and b.weight is None and b.rows == 4
    b = as_batch((x,))
    assert b.inputs[0] is x and len(b.inputs) == 1 and b.target is None
    b = as_batch((x, y))
    assert b.inputs[0] is x and len(b.inputs) == 1 and b.target is y and b.weight is None
    b = as_batch([x, x2, y])
    assert b.inputs[0] is x and b.inputs[1] is x2 and len(b.inputs) == 2 and b.target is y
    b = as_batch({"x": x, "mask": x2, "target": y, "sample_weight": w})
    assert list(b.inputs) == ["x", "mask"] and b.target is y and b.weight is w and b.rows == 4
    b = as_batch({"x": x, "labels": y})
    assert list(b.inputs) == ["x"] and b.target is y and b.weight is None
    b = as_batch({"x": x})
    assert b.target is None and b.rows == 4
    same = Batch((x,), y)
    assert as_batch(same) is same


def test_a_dict_batch_with_two_target_keys_is_refused():
    x, y = torch.randn(4, 3), torch.arange(4)
    with pytest.raises(ConfigError) as e:
        as_batch({"x": x, "target": y, "labels": y})
    assert str(e.value) == ("a dict batch holds 'target', 'labels': keep one target key and one weight key "
                            "(the others are taken as the target or the weights)")


def test_main_output_picks_the_prediction():
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    assert main_output(a) is a
    assert main_output((a, b)) is a
    assert main_output({"hidden": b, "logits": a}) is a
    assert main_output({"only": a, "note": "text"}) is a
    with pytest.raises(ConfigError) as e:
        main_output({"a": a, "b": b})
    assert str(e.value) == ("the model returns a dict with keys 'a', 'b': name its prediction one of logits, output, "
                            "outputs, prediction, predictions, or give a step that reads it (subclass nnrecipe.Step)")


# ---------------------------------------------------------------- a custom step: trains, differs, resumes exactly
class OutputL2(Step):
    """The supervised loss plus an L2 term on the outputs."""

    def loss(self, model, batch):
        loss, out = super().loss(model, batch)
        return loss + 1e-2 * main_output(out).pow(2).mean(), out


class Counting(OutputL2):
    """A step with state across batches: how many training batches it has seen."""

    def __init__(self, loss_fn=None):
        super().__init__(loss_fn)
        self.seen = 0

    def loss(self, model, batch):
        self.seen += 1
        return super().loss(model, batch)

    def state_dict(self) -> dict[str, int]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seen = state["seen"]


class Crash(Exception):
    """Stands in for the process dying mid-epoch."""


class CrashAfter(Callback):
    def __init__(self, n: int | None):
        self.n, self.count = n, 0

    def on_batch_end(self, trainer, logs):
        self.count += 1
        if self.count == self.n:
            raise Crash


def fit(run_dir: Path, step: Step, crash_after: int | None = None, resume: bool | str = False) -> Trainer:
    t = Trainer(mlp(), nn.CrossEntropyLoss(), (X[:192], Y[:192]), val_data=(X[192:], Y[192:]),
                config=config(checkpoint_every=3), run_dir=run_dir, step=step, callbacks=[CrashAfter(crash_after)],
                resume=resume)
    try:
        t.fit()
    except Crash:
        pass
    return t


def test_a_custom_step_trains_and_changes_the_result(tmp_path):
    custom = fit(tmp_path / "custom", OutputL2())
    plain = fit(tmp_path / "plain", Step())
    assert custom.history[-1]["train_loss"] < custom.history[0]["train_loss"]
    assert not same_state(custom.model.state_dict(), plain.model.state_dict())


def check_resume(tmp_path: Path, make_step) -> tuple[Trainer, Trainer]:
    straight = fit(tmp_path / "straight", make_step())
    fit(tmp_path / "resumed", make_step(), crash_after=10)  # 6 batches an epoch: the checkpoint at step 9
    pos = load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")["position"]
    assert (pos["epoch"], pos["batch_in_epoch"], pos["global_step"]) == (1, 3, 9)
    resumed = fit(tmp_path / "resumed", make_step(), resume=True)
    assert resumed.history == straight.history
    assert same_state(resumed.model.state_dict(), straight.model.state_dict())
    metrics = [(tmp_path / d / "metrics.jsonl").read_bytes() for d in ("resumed", "straight")]
    assert metrics[0] == metrics[1]
    identical(load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors"),
              load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors"))
    return straight, resumed


def test_a_custom_step_resumes_bit_for_bit(tmp_path):
    check_resume(tmp_path, OutputL2)


def test_a_stateful_step_has_its_state_restored_on_resume(tmp_path):
    straight, resumed = check_resume(tmp_path, Counting)
    assert straight.step.seen == 3 * 6
    assert resumed.step.seen == straight.step.seen  # 9 from the checkpoint + 9 after the resume
    assert load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")["step"] == {"seen": 18}


# ---------------------------------------------------------------- dict batches, by name
class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not ((mask == 0) | (mask == 1)).all():  # the features came as the mask: passed by position
            raise ValueError("forward got the features as its mask")
        return self.net(x * mask)


class DictRows(Dataset):
    def __init__(self, data: dict[str, torch.Tensor]):
        self.data = data

    def __len__(self) -> int:
        return len(self.data["target"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.data.items()}


@pytest.mark.parametrize("path", ["memory", "dataset"])
def test_a_dict_batch_model_trains(path):
    mask = (torch.arange(8) % 4 != 3).float().expand(len(X), 8).contiguous()
    data = {"target": Y, "mask": mask, "x": X}  # not forward's order: only a call by name fits
    t = Trainer(Masked(), nn.CrossEntropyLoss(), data if path == "memory" else DictRows(data),
                config=config(epochs=4, lr=1e-2))
    before = t.evaluate(data)["loss"]
    history = t.fit()
    assert t.evaluate(data)["loss"] < before / 4
    assert history[-1]["train_loss"] < history[0]["train_loss"]


# ---------------------------------------------------------------- sample weights
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def test_zero_sample_weights_leave_those_rows_out_of_the_gradient():
    half = 64
    weight = torch.cat([torch.ones(half), torch.zeros(half)])
    one_step = config(epochs=1, optimizer="sgd", lr=1.0, momentum=0.0, batch_size=2 * half)
    weighted = Trainer(Net(), nn.CrossEntropyLoss(), {"x": X[:2 * half], "target": Y[:2 * half],
                                                      "sample_weight": weight}, config=one_step)
    weighted.fit()
    only_half = Trainer(Net(), nn.CrossEntropyLoss(), {"x": X[:half], "target": Y[:half]},
                        config=dataclasses.replace(one_step, batch_size=half))
    only_half.fit()
    start = Net().state_dict()
    assert weighted.global_step == only_half.global_step == 1
    for k, v in start.items():  # lr 1, SGD: the step is the gradient
        g_weighted, g_half = v - weighted.model.state_dict()[k], v - only_half.model.state_dict()[k]
        assert g_half.abs().max() > 1e-3
        torch.testing.assert_close(g_weighted, g_half, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- no target: Reconstruction
def autoencoder() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 8))


def test_an_autoencoder_trains_on_inputs_alone_with_reconstruction():
    t = Trainer(autoencoder(), None, X, config=config(epochs=20, lr=1e-2), step=Reconstruction())
    start = t.evaluate(X)["loss"]
    history = t.fit()
    assert history[-1]["train_loss"] <= history[0]["train_loss"] / 2
    assert t.evaluate(X)["loss"] <= start / 2


def test_inputs_alone_without_a_step_name_reconstruction():
    t = Trainer(autoencoder(), nn.MSELoss(), X, config=config(epochs=1))
    message = ("the batch has no target: give (inputs..., target) or a dict with a 'target' key, or a step that "
               "needs none (nnrecipe.steps.Reconstruction for an autoencoder)")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        t.fit()


# ---------------------------------------------------------------- a whole step: the Trainer's and the doctor's
def full_step(model, optimizer, batch):
    *x, y = batch
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(*x), y)
    loss.backward()
    optimizer.step()
    return loss


class CountedStep(Step):
    calls = 0

    def __call__(self, model, optimizer, batch):
        CountedStep.calls += 1
        return super().__call__(model, optimizer, batch)


def counted_full_step(model, optimizer, batch):
    counted_full_step.calls += 1
    return full_step(model, optimizer, batch)


counted_full_step.calls = 0


@pytest.mark.parametrize("kind", ["callable", "Step"])
def test_one_step_serves_the_trainer_and_the_doctor(kind):
    step = counted_full_step if kind == "callable" else CountedStep(nn.CrossEntropyLoss())
    t = Trainer(mlp(dropout=0.0), nn.CrossEntropyLoss(), (X, Y), config=config(epochs=3), step=step)
    history = t.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert t.global_step == 3 * 8
    before = step.calls
    [c1] = doctor(mlp(dropout=0.0), (X, Y), train_step=step, loss_fn=nn.CrossEntropyLoss(), checks=["C1"])
    assert c1.id == "C1" and c1.status == "pass", c1
    assert step.calls > before  # C1 ran the step itself, not a step of its own


def test_a_whole_step_with_clipping_is_refused():
    message = ("clip_norm=1.0 cannot apply to a step that does the optimizer step itself; subclass nnrecipe.Step "
               "and override loss(model, batch) -> (loss, outputs), so that the loop does backward and the step, "
               "or do it inside your step")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        Trainer(mlp(), nn.CrossEntropyLoss(), (X, Y), config=config(clip_norm=1.0), step=full_step)
