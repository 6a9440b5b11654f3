"""What a review of the Trainer in users' own styles found accepted and ignored, or failing deep in the loop:
parameter groups of another model, settings only the recipe reads, an optimizer named twice, a callback with
no hook, a whole step that never steps the optimizer, empty or NaN validation data, an IterableDataset, a list
of (x, y) items, a metric function returning a tensor, a metric to monitor without validation data; and the
doctor on a summed loss (C2 expected the mean's loss) and on a model with every parameter frozen."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from nnrecipe import TrainConfig, Trainer, doctor
from nnrecipe.errors import ConfigError, DataError

CFG = TrainConfig(epochs=2, lr=1e-2, device="cpu")
CE = nn.CrossEntropyLoss()


@pytest.fixture(scope="module")
def rows():
    g = torch.Generator().manual_seed(0)
    x, xv = torch.randn(300, 5, generator=g), torch.randn(60, 5, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long(), xv, (xv[:, 0] > 0).long() + (xv[:, 1] > 0).long()


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))


class Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x, self.y))


def test_settings_the_trainer_would_ignore_are_refused(rows):
    x, y, _, _ = rows
    with pytest.raises(ConfigError, match="the optimizer holds 4 of 4 parameters that are not the model's"):
        Trainer(mlp(), CE, (x, y), optimizer=[{"params": mlp(3).parameters()}], config=CFG)
    for setting in ({"cv_folds": 3}, {"refit": "on"}, {"adversarial": "fgm"}, {"robustness": True}):
        with pytest.raises(ConfigError, match="read by `nnrecipe train`"):
            Trainer(mlp(), CE, (x, y), config=TrainConfig(epochs=2, **setting))
    with pytest.raises(ConfigError, match="optimizer='sgd' and config's optimizer='adamw' are two optimizers"):
        Trainer(mlp(), CE, (x, y), optimizer="sgd", config=TrainConfig(epochs=2, optimizer="adamw"))
    with pytest.raises(ConfigError, match="has none of the hooks"):
        Trainer(mlp(), CE, (x, y), callbacks=[object()], config=CFG)
    with pytest.raises(ConfigError, match="logged with train_metrics=True only; pass val_data"):
        Trainer(mlp(), CE, (x, y), config=TrainConfig(epochs=2, metric="accuracy"))


def test_a_whole_step_that_never_steps_the_optimizer_is_named(rows):
    x, y, _, _ = rows

    def step(model, opt, batch):
        opt.zero_grad()
        loss = CE(model(batch[0]), batch[1])
        loss.backward()  # and no opt.step(): the weights never move
        return loss

    with pytest.raises(ConfigError, match="the step took no optimizer step in epochs 1-2: the weights never moved"):
        Trainer(mlp(), CE, (x, y), step=step, config=CFG).fit()


def test_data_with_no_rows_nan_or_a_stream_is_refused_before_training(rows):
    x, y, xv, yv = rows
    with pytest.raises(DataError, match="train_data holds no rows"):
        Trainer(mlp(), CE, (x[:0], y[:0]), (xv, yv), config=CFG)
    with pytest.raises(DataError, match="val_data holds no rows"):
        Trainer(mlp(), CE, (x, y), (xv[:0], yv[:0]), config=CFG)
    bad = xv.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(DataError, match=r"val_data.s tensor 0 holds 1 NaN values \(the first in row 3\)"):
        Trainer(mlp(), CE, (x, y), (bad, yv), config=CFG)
    for stream in (Stream(x, y), DataLoader(Stream(x, y), batch_size=32)):
        with pytest.raises(ConfigError, match="train_data is an IterableDataset"):
            Trainer(mlp(), CE, stream, config=CFG)
    norm = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.raises(DataError, match="train_data holds one row, and BatchNorm"):
        Trainer(norm, CE, (x[:1], y[:1]), config=CFG)


def test_a_list_of_items_trains_as_the_tensors_do_and_a_tensor_metric_is_logged(rows):
    x, y, xv, yv = rows
    items = Trainer(mlp(), CE, list(zip(x, y)), config=CFG)
    assert items.batch_size == Trainer(mlp(), CE, (x, y), config=CFG).batch_size  # rows counted, not 2
    assert len(items.fit()) == 2
    acc = Trainer(mlp(), CE, (x, y), (xv, yv), config=CFG, train_metrics=True,
                  metrics={"acc": lambda o, t: (o.argmax(1) == t).float().mean()})  # a tensor, not a float
    assert isinstance(acc.fit()[-1]["train_acc"], float)


def test_the_doctor_on_a_summed_loss_and_on_a_frozen_model(rows):
    x, y, xv, yv = rows
    model = mlp()
    d = doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(reduction="sum"),
               optimizer=torch.optim.Adam(model.parameters(), 1e-2), val_data=(xv, yv), checks=["C2", "C1"])
    c2 = next(v for v in d if v.id == "C2")
    assert c2.status == "pass" and c2.evidence["expected"] > 100  # the prior's loss of every row, added up
    frozen = mlp()
    for p in frozen.parameters():
        p.requires_grad_(False)
    d = doctor(frozen, (x, y), loss_fn=CE, val_data=(xv, yv))
    raised = {(v.id, v.status, v.fault) for v in d if v.status in ("warn", "fail", "error")}
    assert raised == {("C1", "fail", "frozen-layer"), ("C7", "fail", "frozen-layer")}  # C3, C4, C8 skipped


def test_what_the_refusals_leave_alone(rows):
    """The review of the refusals above: a step whose first epoch skips every update (a GradScaler backing off)
    and a fused optimizer train on; a stream is read as validation data; -inf in validation inputs (an additive
    mask) is a value; a learnable loss's parameters may sit in the groups; refit='off' is no recipe setting."""
    x, y, xv, yv = rows
    calls = {"n": 0}

    def late(model, opt, batch):  # the first epoch's steps skipped, as a GradScaler skips them on overflow
        opt.zero_grad()
        loss = CE(model(batch[0]), batch[1])
        loss.backward()
        calls["n"] += 1
        if calls["n"] > 10:
            opt.step()
        return loss

    Trainer(mlp(), CE, (x, y), step=late, config=TrainConfig(epochs=3, batch_size=32, device="cpu")).fit()
    model = mlp()
    fused = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)  # moves the weights without a version bump

    def step(m, opt, batch):
        opt.zero_grad()
        loss = CE(m(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return loss

    Trainer(model, CE, (x, y), step=step, optimizer=fused, config=TrainConfig(epochs=2, device="cpu")).fit()
    t = Trainer(mlp(), CE, (x, y), DataLoader(Stream(xv, yv), batch_size=32), config=CFG)
    assert t.fit()[-1]["val_loss"] > 0
    masked = {"x": xv.clone(), "target": yv}
    masked["x"][0, 0] = float("-inf")
    Trainer(mlp(), CE, {"x": x, "target": y}, masked, config=CFG)  # refused only for NaN
    class Tempered(nn.Module):
        def __init__(self):
            super().__init__()
            self.t = nn.Parameter(torch.ones(()))

        def forward(self, out, target):
            return CE(out / self.t, target)

    loss = Tempered()
    model = mlp()
    Trainer(model, loss, (x, y), optimizer=[{"params": model.parameters()}, {"params": loss.parameters()}], config=CFG)
    Trainer(mlp(), CE, (x, y), config=TrainConfig(epochs=1, refit="off", device="cpu"))
