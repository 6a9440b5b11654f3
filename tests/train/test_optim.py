"""T3/M9 optimizers by name, weight decay and L1; T5 schedules: the logged per-epoch 'lr' against torch's
own scheduler stepped over a dummy optimizer at the cadence each schedule is defined on."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from nnrecipe import Trainer
from nnrecipe.config import OPTIMIZERS

# a rate at which each optimizer moves the 8-16-3 MLP on blobs within three epochs
LR = {"sgd": 0.01, "adam": 1e-2, "adamw": 1e-2, "nadam": 1e-2, "rmsprop": 1e-3, "adamax": 1e-2, "adagrad": 0.05}
TORCH_CLASS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "nadam": torch.optim.NAdam, "rmsprop": torch.optim.RMSprop, "adamax": torch.optim.Adamax,
               "adagrad": torch.optim.Adagrad}


def fit(model: nn.Module, data, config) -> Trainer:
    trainer = Trainer(model, nn.CrossEntropyLoss(), data, config=config)
    trainer.fit()
    return trainer


def test_every_optimizer_is_covered():
    assert set(OPTIMIZERS) == set(LR) == set(TORCH_CLASS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_builds_and_reduces_the_loss(name, make_mlp, train_config, blob_data):
    t = fit(make_mlp(), blob_data, train_config(optimizer=name, lr=LR[name], epochs=3))
    assert type(t.optimizer) is TORCH_CLASS[name]
    assert t.optimizer.param_groups[0]["lr"] == LR[name]
    losses = [r["train_loss"] for r in t.history]
    assert losses[-1] < 0.5 * losses[0]


def test_sgd_takes_momentum_and_nesterov(make_mlp, train_config, blob_data):
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data,
                config=train_config(optimizer="sgd", momentum=0.8, nesterov=True))
    group = t.optimizer.param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (0.8, True)
    # Nesterov needs momentum: with none, it is switched off instead of torch raising
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data,
                config=train_config(optimizer="sgd", momentum=0.0, nesterov=True))
    assert t.optimizer.param_groups[0]["nesterov"] is False


def _one_sgd_step(model: nn.Module, data, train_config, **kw) -> dict[str, torch.Tensor]:
    """The update of one SGD step (lr 1, no momentum) on the whole data as one batch, per parameter."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = train_config(epochs=1, batch_size=len(data[0]), optimizer="sgd", lr=1.0, momentum=0.0, **kw)
    after = fit(model, data, cfg).model.state_dict()
    return {k: before[k] - after[k] for k in before}


def _grad(model: nn.Module, data) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    nn.functional.cross_entropy(model(data[0]), data[1]).backward()
    return {k: p.grad for k, p in model.named_parameters()}


def test_weight_decay_is_an_l2_term_on_weights_not_on_biases(make_mlp, train_config, blob_data):
    """No bias decay (He et al. 2019): the L2 term on the 2-D weights only; decay_all puts it on every one."""
    model = make_mlp()
    g, w = _grad(model, blob_data), {k: v.clone() for k, v in model.state_dict().items()}
    applied = _one_sgd_step(model, blob_data, train_config, weight_decay=0.1)
    for k in g:
        expected = g[k] + 0.1 * w[k] if w[k].ndim >= 2 else g[k]
        assert torch.allclose(applied[k], expected, atol=1e-6), k
    model = make_mlp()
    applied = _one_sgd_step(model, blob_data, train_config, weight_decay=0.1, decay_all=True)
    for k in g:
        assert torch.allclose(applied[k], g[k] + 0.1 * w[k], atol=1e-6), k


def test_l1_adds_its_subgradient_on_weights_only(make_mlp, train_config, blob_data):
    model = make_mlp()
    g, w = _grad(model, blob_data), {k: v.clone() for k, v in model.state_dict().items()}
    applied = _one_sgd_step(model, blob_data, train_config, l1=0.01)
    for k in g:
        expected = g[k] + 0.01 * torch.sign(w[k]) if k.endswith("weight") else g[k]  # biases: no penalty
        assert torch.allclose(applied[k], expected, atol=1e-6), k


@torch.no_grad()
def _weight_norms(model: nn.Module) -> tuple[float, float]:
    weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
    return float(sum(p.pow(2).sum() for p in weights)), float(sum(p.abs().sum() for p in weights))


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_weight_decay_and_l1_change_the_result(name, make_mlp, train_config, blob_data, same_state):
    kw = {"optimizer": name, "lr": LR[name], "epochs": 3}
    plain = fit(make_mlp(), blob_data, train_config(**kw)).model
    decayed = fit(make_mlp(), blob_data, train_config(weight_decay=0.1, **kw)).model
    sparse = fit(make_mlp(), blob_data, train_config(l1=0.01, **kw)).model
    assert not same_state(plain.state_dict(), decayed.state_dict())
    assert not same_state(plain.state_dict(), sparse.state_dict())
    assert _weight_norms(decayed)[0] < _weight_norms(plain)[0]  # smaller squared norm
    assert _weight_norms(sparse)[1] < _weight_norms(plain)[1]  # smaller absolute sum


# ---------------------------------------------------------------- T5 schedules
STEPS = 8  # 256 rows in batches of 32
EPOCHS = 6
LR0 = 0.1


def reference_lrs(make: Callable[[torch.optim.Optimizer], object], cadence: str, steps: int = STEPS,
                  monitored: list[float] | None = None) -> list[float]:
    """The lr at each epoch's end of the train pass (before an epoch-cadence step), from torch's own
    scheduler over a dummy optimizer: 'step' schedules step after each optimizer step, 'epoch' ones after
    each epoch, 'plateau' after each epoch with the monitored value."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR0, momentum=0.9)
    sched = make(opt)
    lrs = []
    for epoch in range(EPOCHS):
        for _ in range(steps):
            opt.step()
            if cadence == "step":
                sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        if cadence == "epoch":
            sched.step()
        elif cadence == "plateau":
            sched.step(monitored[epoch])
    return lrs


def _lrs(train_config, make_mlp, blob_data, **kw) -> tuple[list[float], Trainer]:
    cfg = train_config(epochs=EPOCHS, optimizer="sgd", lr=LR0, momentum=0.9, **kw)
    t = fit(make_mlp(), blob_data, cfg)
    return [r["lr"] for r in t.history], t


def test_constant_schedule(make_mlp, train_config, blob_data):
    lrs, _ = _lrs(train_config, make_mlp, blob_data, schedule="constant")
    assert lrs == [LR0] * EPOCHS


def test_step_schedule_per_epoch(make_mlp, train_config, blob_data):
    lrs, _ = _lrs(train_config, make_mlp, blob_data, schedule="step", step_size=2, gamma=0.5)
    ref = reference_lrs(lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.5), "epoch")
    assert lrs == pytest.approx(ref, rel=1e-12)
    assert lrs == pytest.approx([LR0 * 0.5 ** (e // 2) for e in range(EPOCHS)], rel=1e-12)


def test_exponential_schedule_per_epoch(make_mlp, train_config, blob_data):
    lrs, _ = _lrs(train_config, make_mlp, blob_data, schedule="exponential", gamma=0.7)
    ref = reference_lrs(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.7), "epoch")
    assert lrs == pytest.approx(ref, rel=1e-12)
    assert lrs == pytest.approx([LR0 * 0.7 ** e for e in range(EPOCHS)], rel=1e-12)


def test_plateau_schedule_follows_the_monitored_value(make_mlp, train_config, blob_data):
    # a rising score of one's own watched in mode 'min' never improves: the rate halves every 2nd epoch (a
    # known metric watched against its direction, train_loss in mode 'max', is refused by TrainConfig)
    cfg = train_config(epochs=EPOCHS, optimizer="sgd", lr=LR0, momentum=0.9, schedule="plateau",
                       monitor="train_score", mode="min", gamma=0.5, plateau_patience=1)
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=cfg, train_metrics=True,
                metrics={"score": lambda out, y: float((out.argmax(1) == y).float().mean())})
    t.fit()
    lrs = [r["lr"] for r in t.history]
    monitored = [r["train_score"] for r in t.history]
    ref = reference_lrs(lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1),
                        "plateau", monitored=monitored)
    assert lrs == pytest.approx(ref, rel=1e-12)
    assert len(set(lrs)) > 1  # it did lower the rate


def test_onecycle_schedule_per_optimizer_step(make_mlp, train_config, blob_data):
    lrs, t = _lrs(train_config, make_mlp, blob_data, schedule="onecycle")
    ref = reference_lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=LR0, total_steps=EPOCHS * STEPS), "step")
    assert lrs == pytest.approx(ref, rel=1e-12)
    assert max(lrs) < LR0 and lrs[-1] < LR0 / 100  # up to near max_lr, then annealed far below it


def test_onecycle_counts_optimizer_steps_not_batches_when_accumulating(make_mlp, train_config, blob_data):
    lrs, t = _lrs(train_config, make_mlp, blob_data, schedule="onecycle", accumulate=2)
    assert t.global_step == EPOCHS * STEPS // 2
    ref = reference_lrs(lambda o: lr_scheduler.OneCycleLR(o, max_lr=LR0, total_steps=EPOCHS * STEPS // 2),
                        "step", steps=STEPS // 2)
    assert lrs == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_onecycle_runs_with_every_optimizer(name, make_mlp, train_config, blob_data):
    """cycle_momentum needs a momentum or betas; adagrad has neither."""
    t = fit(make_mlp(), blob_data, train_config(optimizer=name, lr=LR[name], schedule="onecycle", epochs=2))
    assert t.global_step == 2 * STEPS


def test_cosine_schedule_per_optimizer_step(make_mlp, train_config, blob_data):
    lrs, _ = _lrs(train_config, make_mlp, blob_data, schedule="cosine")
    total = EPOCHS * STEPS
    ref = reference_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total), "step")
    assert lrs == pytest.approx(ref, rel=1e-12)
    # the closed form (Loshchilov & Hutter 2017, without restarts) after (e + 1) * STEPS steps
    closed = [LR0 * (1 + math.cos(math.pi * (e + 1) * STEPS / total)) / 2 for e in range(EPOCHS)]
    assert lrs == pytest.approx(closed, rel=1e-9, abs=1e-12)


def test_cosine_schedule_with_warmup(make_mlp, train_config, blob_data):
    lrs, _ = _lrs(train_config, make_mlp, blob_data, schedule="cosine", warmup_epochs=2)
    warm, total = 2 * STEPS, EPOCHS * STEPS

    def make(o):
        linear = lr_scheduler.LinearLR(o, start_factor=1 / warm, total_iters=warm)
        cosine = lr_scheduler.CosineAnnealingLR(o, T_max=total - warm)
        return lr_scheduler.SequentialLR(o, [linear, cosine], milestones=[warm])

    assert lrs == pytest.approx(reference_lrs(make, "step"), rel=1e-12)
    # closed form: linear from lr / warm up to lr over the warmup steps, then the cosine over the rest
    def closed(s: int) -> float:
        if s <= warm:
            return LR0 * (1 / warm + (1 - 1 / warm) * s / warm)
        return LR0 * (1 + math.cos(math.pi * (s - warm) / (total - warm))) / 2

    assert lrs == pytest.approx([closed((e + 1) * STEPS) for e in range(EPOCHS)], rel=1e-9, abs=1e-12)
    assert lrs[1] == pytest.approx(LR0)  # the peak, at the end of the warmup
