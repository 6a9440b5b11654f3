"""The training loop: reproducibility (T1), learning, the data forms it takes, evaluate/predict, gradient
clipping (T6), the planted-NaN diagnosis, gradient accumulation, precision, and the callback hooks."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from nnrecipe import Callback, ConfigError, Trainer, TrainConfig, TrainingError


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(1) == y).float().mean())


class RowDataset(Dataset):
    """A map-style Dataset that is not a TensorDataset: it goes through the DataLoader path."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[i], self.y[i]


def fit(model: nn.Module, data, config, **kw) -> Trainer:
    trainer = Trainer(model, nn.CrossEntropyLoss(), data, config=config, **kw)
    trainer.fit()
    return trainer


# ---------------------------------------------------------------- T1: reproducibility
def test_same_seed_gives_the_same_history_and_weights(make_mlp, train_config, blob_data, blob_val, same_state):
    cfg = train_config(epochs=3, seed=0)
    a = fit(make_mlp(dropout=0.3), blob_data, cfg, val_data=blob_val)
    b = fit(make_mlp(dropout=0.3), blob_data, cfg, val_data=blob_val)
    assert len(a.history) == 3
    assert a.history == b.history
    assert same_state(a.model.state_dict(), b.model.state_dict())


def test_another_seed_gives_another_history(make_mlp, train_config, blob_data, same_state):
    a = fit(make_mlp(dropout=0.3), blob_data, train_config(seed=0))
    b = fit(make_mlp(dropout=0.3), blob_data, train_config(seed=1))
    assert [r["train_loss"] for r in a.history] != [r["train_loss"] for r in b.history]
    assert not same_state(a.model.state_dict(), b.model.state_dict())


# ---------------------------------------------------------------- it learns; evaluate and predict
def test_it_learns_on_blobs(make_mlp, train_config, blob_data, blob_val):
    cfg = train_config(epochs=5, optimizer="sgd", lr=0.01, momentum=0.9)
    t = fit(make_mlp(), blob_data, cfg, val_data=blob_val, metrics={"acc": accuracy})
    losses = [r["train_loss"] for r in t.history]
    assert losses[-1] < 0.5 * losses[0]
    assert t.history[-1]["val_acc"] > 0.95
    assert {"epoch", "train_loss", "lr", "grad_norm", "val_loss", "val_acc"} <= set(t.history[-1])


def test_evaluate_and_predict(make_mlp, train_config, blob_data, blob_val):
    t = fit(make_mlp(dropout=0.5), blob_data, train_config(epochs=2), metrics={"acc": accuracy})
    X, y = blob_val
    res = t.evaluate(blob_val)
    assert set(res) == {"loss", "acc"}
    with torch.no_grad():
        t.model.eval()
        out = t.model(X)
    assert res["loss"] == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-6)
    assert res["acc"] == pytest.approx(accuracy(out, y))
    # predict takes inputs alone, inputs with targets, arrays, or a Dataset; eval mode: dropout is off
    for data in (X, (X, y), X.numpy(), RowDataset(X, y)):
        p = t.predict(data)
        assert p.shape == (128, 3) and p.device.type == "cpu"
        assert torch.allclose(p, out, atol=1e-6)


# ---------------------------------------------------------------- data forms
DATA_FORMS = {
    "tensors": lambda X, y: (X, y),
    "list": lambda X, y: [X, y],
    "numpy": lambda X, y: (X.numpy(), y.numpy()),
    "tensordataset": lambda X, y: TensorDataset(X, y),
    "dataset": lambda X, y: RowDataset(X, y),
    "dataloader": lambda X, y: DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True,
                                          generator=torch.Generator().manual_seed(0)),
}


@pytest.mark.parametrize("form", DATA_FORMS)
def test_every_data_form_trains(form, make_mlp, train_config, blob_data):
    cfg = train_config(epochs=4, optimizer="sgd", lr=0.01, momentum=0.9)
    t = fit(make_mlp(), DATA_FORMS[form](*blob_data), cfg)
    assert t.steps_per_epoch == 8
    losses = [r["train_loss"] for r in t.history]
    assert losses[-1] < 0.5 * losses[0]


def test_tensor_forms_share_one_history(make_mlp, train_config, blob_data, same_state):
    runs = [fit(make_mlp(dropout=0.3), DATA_FORMS[f](*blob_data), train_config(seed=3))
            for f in ("tensors", "numpy", "tensordataset")]
    assert runs[0].history == runs[1].history == runs[2].history
    assert same_state(runs[0].model.state_dict(), runs[2].model.state_dict())


def test_dataset_path_gives_the_tensor_path_history(make_mlp, train_config, blob_data, same_state):
    """Both paths draw each epoch's order from repro.epoch_generator(seed, epoch)."""
    a = fit(make_mlp(), blob_data, train_config(seed=3))
    b = fit(make_mlp(), RowDataset(*blob_data), train_config(seed=3))
    assert a.history == b.history
    assert same_state(a.model.state_dict(), b.model.state_dict())


def test_dataset_path_gives_the_tensor_path_history_with_dropout(make_mlp, train_config, blob_data):
    a = fit(make_mlp(dropout=0.3), blob_data, train_config(seed=3))
    b = fit(make_mlp(dropout=0.3), RowDataset(*blob_data), train_config(seed=3))
    assert a.history == b.history


# ---------------------------------------------------------------- T6: gradient clipping
def _one_step(model: nn.Module, data, train_config, **kw) -> tuple[Trainer, dict[str, torch.Tensor]]:
    """One SGD step (lr 1, no momentum) over the whole data as one batch; returns the trainer and the
    update applied to each parameter, which is then minus the gradient the optimizer was given."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = train_config(epochs=1, batch_size=len(data[0]), optimizer="sgd", lr=1.0, momentum=0.0, **kw)
    t = fit(model, data, cfg)
    return t, {k: before[k] - v for k, v in t.model.state_dict().items()}


def _full_grad(model: nn.Module, data) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    nn.functional.cross_entropy(model(data[0]), data[1]).backward()
    return {k: p.grad for k, p in model.named_parameters()}


def test_clip_norm_rescales_the_gradient_to_the_bound(make_mlp, train_config, blob_data):
    g = _full_grad(make_mlp(), blob_data)
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in g.values()])))
    assert norm > 0.2  # so that a bound of 0.1 clips
    t, applied = _one_step(make_mlp(), blob_data, train_config, clip_norm=0.1)
    for k in g:
        assert torch.allclose(applied[k], g[k] * (0.1 / norm), atol=1e-6), k
    applied_norm = torch.linalg.vector_norm(torch.cat([v.flatten() for v in applied.values()]))
    assert float(applied_norm) == pytest.approx(0.1, rel=1e-4)
    assert t.history[0]["grad_norm"] == pytest.approx(norm, rel=1e-5)  # the logged norm is before clipping


def test_clip_value_clips_each_entry(make_mlp, train_config, blob_data):
    g = _full_grad(make_mlp(), blob_data)
    t, applied = _one_step(make_mlp(), blob_data, train_config, clip_value=0.02)
    for k in g:
        assert torch.allclose(applied[k], g[k].clamp(-0.02, 0.02), atol=1e-6), k
    flat = torch.cat([v.flatten() for v in applied.values()]).abs()
    assert float(flat.max()) == pytest.approx(0.02)
    assert bool((flat < 0.019).any())  # small entries are left alone


def test_clip_norm_bounds_every_step_and_grad_norm_is_logged(make_mlp, train_config, blob_data):
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data,
                config=train_config(epochs=3, optimizer="sgd", lr=0.5, clip_norm=0.25))
    applied = []

    def record(opt, args, kwargs):
        grads = [p.grad.flatten() for g in opt.param_groups for p in g["params"] if p.grad is not None]
        applied.append(float(torch.linalg.vector_norm(torch.cat(grads))))

    t.optimizer.register_step_pre_hook(record)
    t.fit()
    assert len(applied) == 3 * 8
    assert max(applied) <= 0.25 * (1 + 1e-5)
    assert all(np.isfinite(r["grad_norm"]) and r["grad_norm"] > 0 for r in t.history)
    assert t.history[0]["grad_norm"] > 0.25  # the raw gradients were larger: the clip acted


# ---------------------------------------------------------------- non-finite values
class Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x - 100)  # ReLU outputs are far below 100: log of a negative number is NaN


class SqrtOfZero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x * 0)  # finite forward (zeros), infinite derivative: NaN gradients


class Net(nn.Module):
    def __init__(self, planted: nn.Module):
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), planted, nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


FIX = ("Fix: lower the learning rate, clip gradients (clip_norm), or guard the operation named; "
       "the last checkpoint holds the last good weights")


def test_planted_nan_in_the_forward_pass_names_the_layer(train_config, blob_data):
    t = Trainer(Net(Log()), nn.CrossEntropyLoss(), blob_data, config=train_config())
    before = copy.deepcopy(t.model.state_dict())
    with pytest.raises(TrainingError) as e:
        t.fit()
    assert str(e.value) == (
        "non-finite loss at epoch 1, batch 1 (optimizer step 0); the step was skipped and training stopped: "
        f"the first non-finite output comes from layer layers.2 (Log) in the forward pass. {FIX}")
    assert t.global_step == 0
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())


def test_planted_nan_in_the_backward_pass_names_the_layer(train_config, blob_data):
    t = Trainer(Net(SqrtOfZero()), nn.CrossEntropyLoss(), blob_data, config=train_config())
    with pytest.raises(TrainingError) as e:
        t.fit()
    assert str(e.value) == (
        "non-finite gradient at epoch 1, batch 1 (optimizer step 0); the step was skipped and training stopped: "
        f"the first non-finite gradient appears at layer layers.2 (SqrtOfZero) in the backward pass. {FIX}")


def test_nan_in_the_data_is_named_as_the_data(make_mlp, train_config, blob_data):
    X, y = blob_data[0].clone(), blob_data[1]
    X[5, 2] = float("nan")
    with pytest.raises(TrainingError) as e:
        fit(make_mlp(), (X, y), train_config(batch_size=256))
    assert str(e.value) == (
        "non-finite loss at epoch 1, batch 1 (optimizer step 0); the step was skipped and training stopped: "
        f"the input batch itself holds 1 NaN/inf values: clean or impute the data before training. {FIX}")


# ---------------------------------------------------------------- gradient accumulation
def test_accumulation_learns(make_mlp, train_config, blob_data):
    t = fit(make_mlp(), blob_data, train_config(epochs=4, batch_size=16, accumulate=2, optimizer="sgd", lr=0.01))
    assert t.global_step == 4 * 8  # 16 batches per epoch, one step per pair
    losses = [r["train_loss"] for r in t.history]
    assert losses[-1] < 0.5 * losses[0]


def test_accumulating_two_batches_of_16_is_one_batch_of_32(make_mlp, train_config, blob_data):
    """Plain SGD on a mean loss: (grad mean_16a + grad mean_16b) / 2 = grad mean_32, and batch i of 32 is
    batches 2i and 2i+1 of 16 (the same permutation sliced), so the runs agree up to rounding."""
    kw = {"epochs": 3, "optimizer": "sgd", "lr": 0.1, "momentum": 0.0}
    a = fit(make_mlp(), blob_data, train_config(batch_size=16, accumulate=2, **kw))
    b = fit(make_mlp(), blob_data, train_config(batch_size=32, **kw))
    assert a.global_step == b.global_step == 24
    for k, v in a.model.state_dict().items():
        assert torch.allclose(v, b.model.state_dict()[k], atol=1e-5), k
    for ra, rb in zip(a.history, b.history):
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)
        assert ra["grad_norm"] == pytest.approx(rb["grad_norm"], rel=1e-4)


def test_partial_last_accumulation_group_is_not_down_weighted(make_mlp, train_config, blob_data):
    X, y = blob_data[0][:240], blob_data[1][:240]  # 15 batches of 16: the epoch ends on a group of one
    kw = {"epochs": 2, "optimizer": "sgd", "lr": 0.1, "momentum": 0.0}
    a = fit(make_mlp(), (X, y), train_config(batch_size=16, accumulate=2, **kw))
    b = fit(make_mlp(), (X, y), train_config(batch_size=32, **kw))  # 7 batches of 32 and one of 16
    for k, v in a.model.state_dict().items():
        assert torch.allclose(v, b.model.state_dict()[k], atol=1e-5), k


# ---------------------------------------------------------------- precision
def test_bf16_on_the_cpu_trains(make_mlp, train_config, blob_data):
    t = fit(make_mlp(), blob_data, train_config(epochs=4, precision="bf16", optimizer="sgd", lr=0.01))
    losses = [r["train_loss"] for r in t.history]
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]
    assert t.predict(blob_data[0]).dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in t.model.parameters())  # autocast keeps float32 masters


def test_fp16_on_the_cpu_is_a_config_error(make_mlp, train_config, blob_data):
    with pytest.raises(ConfigError) as e:
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(precision="fp16"))
    assert str(e.value) == ("precision='fp16' needs a CUDA device (loss scaling is a GPU technique); "
                            "use precision='bf16' on the CPU")


# ---------------------------------------------------------------- callbacks and logs
class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_fit_start(self, trainer, logs):
        self.calls.append(("fit_start", dict(logs)))

    def on_epoch_start(self, trainer, logs):
        self.calls.append(("epoch_start", logs["epoch"]))

    def on_batch_end(self, trainer, logs):
        assert isinstance(logs["loss"], torch.Tensor) and logs["loss"].ndim == 0
        self.calls.append(("batch_end", logs["batch"]))

    def on_epoch_end(self, trainer, logs):
        logs["extra"] = logs["epoch"] * 10  # a callback may extend the epoch's row
        self.calls.append(("epoch_end", logs["epoch"]))

    def on_fit_end(self, trainer, logs):
        self.calls.append(("fit_end", {k: logs[k] for k in ("best_epoch", "best_value")}))


def test_hooks_run_in_order_and_extend_the_history(make_mlp, train_config, blob_data):
    rec = Recorder()
    t = fit(make_mlp(), blob_data, train_config(epochs=2), callbacks=[rec])

    def per_epoch(e: int) -> list[tuple]:
        return [("epoch_start", e), *[("batch_end", b) for b in range(1, 9)], ("epoch_end", e)]

    best = min(range(2), key=lambda i: t.history[i]["train_loss"]) + 1
    assert rec.calls == [("fit_start", {"resumed": False}), *per_epoch(1), *per_epoch(2),
                         ("fit_end", {"best_epoch": best, "best_value": t.history[best - 1]["train_loss"]})]
    assert [r["extra"] for r in t.history] == [10, 20]


def test_a_callback_stops_training_with_the_flag(make_mlp, train_config, blob_data):
    class StopAt2(Callback):
        def on_epoch_end(self, trainer, logs):
            trainer.stop_training = logs["epoch"] == 2

    t = fit(make_mlp(), blob_data, train_config(epochs=10), callbacks=[StopAt2()])
    assert [r["epoch"] for r in t.history] == [1, 2]


def test_train_metrics_are_logged_when_asked(make_mlp, train_config, blob_data):
    t = fit(make_mlp(), blob_data, train_config(epochs=2), metrics={"acc": accuracy}, train_metrics=True)
    assert 0.0 <= t.history[-1]["train_acc"] <= 1.0
    assert "val_acc" not in t.history[-1]


def test_without_validation_data_the_monitor_falls_back_to_training(make_mlp, train_config, blob_data, caplog):
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(patience=3))
    assert t.monitor == "train_loss"
    assert "no validation data: best epoch and early stopping follow train_loss" in caplog.messages


@pytest.mark.parametrize("form", ["tensors", "dataset"])
def test_batchnorm_model_leaves_out_a_last_batch_of_one_row(form):
    # 65 rows in batches of 16 leave one row over: BatchNorm in training mode raises on a batch of one row
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(65, 4, generator=g), torch.randint(0, 2, (65,), generator=g)
    data = (X, y) if form == "tensors" else RowDataset(X, y)

    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

    trainer = fit(model(), data, TrainConfig(epochs=2, batch_size=16, patience=None))
    assert trainer.steps_per_epoch == 4 and trainer.global_step == 8
    # without BatchNorm every row is used: the last batch of one row stays
    plain = fit(nn.Sequential(nn.Linear(4, 2)), data, TrainConfig(epochs=1, batch_size=16, patience=None))
    assert plain.steps_per_epoch == 5
