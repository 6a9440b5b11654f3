"""The Lightning Doctor on modules written in other common styles: one Doctor reused for a second fit, a
forward that takes the dict batch whole, a dict batch whose mask the forward names first, a training_step
that skips batches by their index, a training loss logged per step (Lightning's default). Each once made
the doctor blame a healthy setup or judge the wrong numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

pl = pytest.importorskip("lightning.pytorch")

from nnrecipe.integrations.lightning import Doctor  # noqa: E402

from .test_lightning_doctor import Net, fit, raised, rows  # noqa: E402


def test_one_doctor_in_a_second_fit_judges_that_run_alone():
    doctor = Doctor(checks=["C7", "C8"])
    torch.manual_seed(0)
    fit(Net(lr=0.05), doctor, epochs=4)
    first = len(doctor.diagnosis)
    torch.manual_seed(0)
    fit(Net(lr=0.0), doctor, epochs=4)  # the fault of the second run: nothing moves
    c8 = doctor.diagnosis.by_id("C8")
    assert len(c8) == 1 and c8[0].evidence["epochs"] == 4  # not the two runs' 8 epochs as one curve
    assert c8[0].fault != "lr-too-high"  # the jump from the first run's end to the second's start
    during = [v for v in doctor.diagnosis if v.name.endswith("(in training)")]
    assert during and len(doctor.diagnosis) <= first + 2  # C7 judged the second run's steps, once
    assert any(v.status == "fail" for v in during)  # lr 0: the parameters never change


class Rows(Dataset):
    """Dict rows: the features, a mask of ones (named first by the forward below) and the label."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return {"features": x, "mask": torch.ones(8), "labels": y}


class WholeBatch(Net):
    """forward(batch): the dict batch goes in whole, a common Lightning style."""

    def forward(self, batch):
        return self.net(batch["features"])

    def training_step(self, batch, batch_idx):
        loss = self.loss_fn(self(batch), batch["labels"])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss_fn(self(batch), batch["labels"]))


class MaskFirst(Net):
    """forward(mask, features): the keys are read in the forward's order, the mask first."""

    def forward(self, mask, features):
        return self.net(features * mask)

    def training_step(self, batch, batch_idx):
        loss = self.loss_fn(self(batch["mask"], batch["features"]), batch["labels"])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.loss_fn(self(batch["mask"], batch["features"]), batch["labels"]))


def fit_dicts(module: Net, doctor: Doctor, epochs: int = 2) -> pl.Trainer:
    train, val = rows()
    torch.manual_seed(0)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[doctor], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader(Rows(train), batch_size=32, shuffle=True), DataLoader(Rows(val), batch_size=128))
    return trainer


def test_a_forward_taking_the_dict_batch_whole_is_skipped_with_the_fix_not_failed():
    doctor = Doctor(checks=["data", "lint", "C2"], stop_on_fail=True)
    trainer = fit_dicts(WholeBatch(), doctor)  # stop_on_fail: a failure would raise before training
    assert trainer.current_epoch == 2 and raised(doctor) == {}
    skipped = [v for v in doctor.diagnosis if v.id == "doctor" and v.status == "skipped"]
    assert skipped and "Doctor(forward=lambda module, inputs: module(inputs))" in skipped[0].summary
    assert "'features'" in skipped[0].summary


def test_the_fix_it_names_runs_the_checks():
    doctor = Doctor(checks=["lint", "C2"], forward=lambda module, inputs: module(inputs))
    fit_dicts(WholeBatch(), doctor)
    assert raised(doctor) == {}
    assert {v.id for v in doctor.diagnosis if v.status == "pass"} >= {"lint", "C2"}


def test_the_labels_are_related_to_every_input_not_only_the_first():
    doctor = Doctor(checks=["data"])
    fit_dicts(MaskFirst(), doctor)
    # the mask alone (all ones) says nothing of the labels: read alone, D4 warned "labels against inputs"
    assert raised(doctor) == {}
    assert any(v.id == "D4" and v.status == "pass" for v in doctor.diagnosis)  # the data checks ran


class SkipsEveryTenth(Net):
    """A training_step that skips every tenth batch by its index (Lightning skips a None)."""

    def training_step(self, batch, batch_idx):
        if batch_idx % 10 == 0:
            return None
        return super().training_step(batch, batch_idx)


def test_a_step_that_skips_batches_by_index_is_not_read_as_one_that_never_steps():
    torch.manual_seed(0)
    doctor = Doctor(checks=["lint", "C1", "C7"])
    fit(SkipsEveryTenth(), doctor, epochs=2)
    assert raised(doctor) == {}
    assert doctor.diagnosis.by_id("C1")[0].status == "pass"


class PerStepLog(Net):
    """The training loss logged per step (self.log's default in training_step); the epoch's returned losses
    kept to compare with the doctor's curve."""

    def __init__(self) -> None:
        super().__init__()
        self.returned: dict[int, list[float]] = {}

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        self.returned.setdefault(self.current_epoch, []).append(float(loss))
        return loss


def test_the_training_curve_is_each_epochs_mean_not_a_per_step_logged_value():
    torch.manual_seed(0)
    doctor = Doctor(checks=["C8"])
    module = PerStepLog()
    fit(module, doctor, epochs=3)
    assert doctor.found["curves"].startswith("the mean of the losses training_step returned")
    means = [sum(v) / len(v) for _, v in sorted(module.returned.items())]
    assert [r["train_loss"] for r in doctor.core.history] == pytest.approx(means, rel=1e-6)


def test_gradient_accumulation_does_not_shrink_the_training_curve():
    # Lightning hands on_train_batch_end the loss divided by accumulate_grad_batches: read as it came, the
    # curve sat at a quarter of the validation loss and C8 called the healthy run diverging
    torch.manual_seed(0)
    doctor = Doctor(checks=["C8"])
    train, val = rows()
    trainer = pl.Trainer(max_epochs=4, callbacks=[doctor], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         accumulate_grad_batches=4)
    module = PerStepLog()
    trainer.fit(module, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    means = [sum(v) / len(v) for _, v in sorted(module.returned.items())]
    assert [r["train_loss"] for r in doctor.core.history] == pytest.approx(means, rel=1e-5)
    assert raised(doctor) == {}


def test_a_forward_naming_some_keys_is_told_which_keys_it_lacks():
    from nnrecipe.integrations.core import keyword_misfit

    def forward(input_ids, attention_mask=None):
        return input_ids

    why = keyword_misfit(forward, ["input_ids", "attention_mask", "idx"])
    assert "takes no argument named 'idx'" in why and "module(inputs)" not in why
    assert "if k not in ['idx']" in why
