"""nnrecipe.integrations.lightning.Doctor in a real Lightning run: each planted fault reported by the check
meant to catch it (softmax before CrossEntropyLoss: lint; a learning rate of 0: C7 on the run's own steps
and C8 on its logged curves), the healthy twin quiet under every check, stop_on_fail stopping before
training with the failed checks and their fixes."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from nnrecipe import TrainingError  # noqa: E402
from nnrecipe.integrations.lightning import Doctor  # noqa: E402

# the checks the fault tests run (C1, C3 and C4 train copies for up to 1,000 steps through training_step:
# seconds each); the healthy twin runs every check, so it is quiet under a superset of these
CHECKS = ["data", "lint", "C2", "C7", "C8"]


def rows(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Seeded 3-class data with a learnable rule (the argmax of a fixed linear map), split 512 / 256."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(768, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return TensorDataset(x[:512], y[:512]), TensorDataset(x[512:], y[512:])


class Net(pl.LightningModule):
    def __init__(self, softmax: bool = False, lr: float = 1e-2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
        self.loss_fn = nn.CrossEntropyLoss()
        self.softmax, self.lr = softmax, lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.softmax(-1) if self.softmax else out  # the planted fault: probabilities into CrossEntropyLoss

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", self.loss_fn(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def fit(module: Net, doctor: Doctor, epochs: int = 4) -> pl.Trainer:
    train, val = rows()
    torch.manual_seed(0)
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[doctor], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         deterministic=True)
    trainer.fit(module, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    return trainer


def raised(doctor: Doctor) -> dict[str, str]:
    return {f"{v.id} {v.name}": v.status for v in doctor.diagnosis if v.status in ("warn", "fail", "error")}


def test_the_healthy_twin_is_quiet_under_every_check():
    torch.manual_seed(0)
    doctor = Doctor()
    fit(Net(), doctor)
    assert raised(doctor) == {}
    ids = {v.id for v in doctor.diagnosis if v.status == "pass"}
    assert {"lint", "C1", "C2", "C7", "C8"} <= ids  # the checks ran, and passed (not skipped)
    assert [v.name for v in doctor.diagnosis if v.id == "C7"] == ["gradient flow", "gradient flow (in training)"]
    assert doctor.found["loss_fn"] == "the model's attribute 'loss_fn' (CrossEntropyLoss)"
    c8 = doctor.diagnosis.by_id("C8")[0]
    assert c8.evidence["epochs"] == 4 and "val_loss_last" in c8.evidence  # the run's own epochs, val included


def test_softmax_before_cross_entropy_is_reported_by_the_lint():
    torch.manual_seed(0)
    doctor = Doctor(CHECKS)
    fit(Net(softmax=True), doctor)
    (lint,) = doctor.diagnosis.by_id("lint")
    assert (lint.name, lint.status, lint.fault) == ("softmax before the loss", "fail", "double-softmax")
    assert lint.fix == "remove the softmax: CrossEntropyLoss takes raw logits and applies log_softmax itself"
    assert doctor.core.counts()["doctor/failed"] >= 1


def test_a_learning_rate_of_zero_is_reported_by_c7_in_the_run_and_by_c8_on_its_curves():
    torch.manual_seed(0)
    doctor = Doctor(CHECKS)
    fit(Net(lr=0.0), doctor)
    during = {v.name: v for v in doctor.diagnosis if v.id == "C7" and v.name.endswith("(in training)")}
    assert during["parameters never change (in training)"].status == "fail"
    assert during["parameters never change (in training)"].fault == "lr-too-low"
    assert during["update/weight ratio (in training)"].evidence["update_ratio"] == 0.0
    assert during["parameters never change (in training)"].evidence["observed_steps"] == [1, 2, 3, 4, 5, 10, 20, 50]
    (c8,) = doctor.diagnosis.by_id("C8")
    assert (c8.name, c8.status) == ("learning rate too low", "warn")
    assert c8.fault == "lr-too-low"  # named, as every warning is (it had none: the curves were not diagnosed)
    assert c8.evidence["epochs"] == 4 and c8.evidence["largest_move"] < 1e-6  # the same rows, reordered


def test_stop_on_fail_stops_before_training_naming_the_checks_and_their_fixes():
    torch.manual_seed(0)
    module = Net(softmax=True)
    before = [p.detach().clone() for p in module.parameters()]
    with pytest.raises(TrainingError) as e:
        fit(module, Doctor(["lint"], stop_on_fail=True))
    assert str(e.value) == (
        "nnrecipe's doctor stopped the run before training: 1 check(s) failed: lint softmax before the loss: the "
        "outputs are probabilities: every row lies in [0, 1] and sums to 1, so the loss cannot fall near 0 (fix: "
        "remove the softmax: CrossEntropyLoss takes raw logits and applies log_softmax itself). Fix them, or pass "
        "Doctor(stop_on_fail=False) to warn and go on")
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))  # no step was taken


def test_counts_go_to_the_trainers_loggers_and_warnings_to_lightnings_log(caplog):
    class Sink(pl.loggers.Logger):
        name, version = "sink", 0
        metrics: list[dict[str, float]] = []

        def log_metrics(self, metrics, step=None):
            self.metrics.append(dict(metrics))

        def log_hyperparams(self, *args, **kwargs):
            pass

        @property
        def experiment(self):
            return None

    sink = Sink()
    train, val = rows()
    torch.manual_seed(0)
    trainer = pl.Trainer(max_epochs=1, callbacks=[Doctor(["lint"])], logger=sink, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with caplog.at_level("WARNING", logger="lightning.pytorch"):
        trainer.fit(Net(softmax=True), DataLoader(train, batch_size=32))
    assert {"doctor/failed": 1.0, "doctor/warned": 0.0, "doctor/passed": 0.0, "doctor/skipped": 0.0} in sink.metrics
    assert any("lint softmax before the loss" in r.getMessage() for r in caplog.records)


def test_an_unknown_check_name_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match=r"checks: 'C77' is not a check \(did you mean 'C7'\?\)"):
        Doctor(["C77"])


class TwoNets(pl.LightningModule):
    """A healthy module with two optimizers and manual optimization (a GAN's shape): C7 in training must
    not take the second optimizer's parameters for untrained ones."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.b = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt, net in zip(self.optimizers(), (self.a, self.b)):
            loss = self.loss_fn(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("train_loss", loss, on_step=False, on_epoch=True)

    def configure_optimizers(self):
        return [torch.optim.Adam(self.a.parameters(), lr=1e-2), torch.optim.Adam(self.b.parameters(), lr=1e-2)]


def test_two_optimizers_skip_c7_in_training_instead_of_failing_it():
    torch.manual_seed(0)
    doctor = Doctor(checks=["C7", "C8"])
    fit(TwoNets(), doctor, epochs=3)
    assert raised(doctor) == {}
    during = [v for v in doctor.diagnosis if v.id == "C7" and v.status == "skipped"]
    assert any("several optimizers" in v.summary for v in during)


class WarmingUp(Net):
    """The healthy twin with a linear warm-up over 2,000 steps: every step C7 watches is inside it."""

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=3e-5)
        warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 2000))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warm, "interval": "step"}}


def test_a_warm_up_is_not_called_a_learning_rate_too_low_by_c7_in_training():
    torch.manual_seed(0)
    doctor = Doctor(checks=["C7"])
    fit(WarmingUp(), doctor, epochs=2)
    ratio = [v for v in doctor.diagnosis if v.name.startswith("update/weight ratio (in training)")]
    assert ratio and all(v.status == "skipped" and "warm-up" in v.summary for v in ratio)
    assert raised(doctor) == {}
