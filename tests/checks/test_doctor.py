"""doctor(): the API, its errors, and the promise that the caller's model and optimizer come back bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nnrecipe.checks.doctor import Diagnosis, doctor
from nnrecipe.checks.setup import make_setup
from nnrecipe.errors import ConfigError

from .cases import HEALTHY, digits_bn_dropout, digits_mlp


def _bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def snapshot(model: nn.Module, opt: torch.optim.Optimizer) -> tuple:
    state = {k: _bits(v) for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else _bits(p.grad) for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    opt_state = copy.deepcopy(opt.state_dict())
    opt_bits = {k: {n: _bits(v) if isinstance(v, torch.Tensor) else v for n, v in s.items()}
                for k, s in opt_state["state"].items()}
    return state, grads, modes, opt_bits, repr(opt_state["param_groups"]), torch.random.get_rng_state()


@pytest.mark.parametrize("build", [digits_mlp, digits_bn_dropout], ids=["mlp", "bn_dropout"])
def test_the_callers_model_optimizer_and_rng_come_back_bit_for_bit(build):
    case = build()
    opt = case.optimizer
    # a model mid-training: Adam moments, a gradient left on the parameters, BatchNorm statistics moved
    loss = case.loss_fn(case.model(case.x[:64]), case.y[:64])
    loss.backward()
    opt.step()
    loss = case.loss_fn(case.model(case.x[64:128]), case.y[64:128])
    loss.backward()
    before = snapshot(case.model, opt)
    diagnosis = doctor(**case.kwargs())
    assert isinstance(diagnosis, Diagnosis) and len(diagnosis) >= 2
    after = snapshot(case.model, opt)
    assert after[:5] == before[:5]
    assert torch.equal(after[5], before[5])  # the caller's RNG stream: where it was


def test_copies_hold_the_callers_optimizer_state_on_the_copy():
    case = digits_mlp()
    opt = case.optimizer
    case.loss_fn(case.model(case.x[:32]), case.y[:32]).backward()
    opt.step()
    setup = make_setup(case.model, (case.x, case.y), loss_fn=case.loss_fn, optimizer=opt)
    model, copy_opt = setup.copies()
    mine = {id(p) for p in model.parameters()}
    assert all(id(p) in mine for g in copy_opt.param_groups for p in g["params"])
    assert not any(p is q for p, q in zip(model.parameters(), case.model.parameters()))
    first = next(iter(model.parameters()))
    theirs = opt.state[next(iter(case.model.parameters()))]
    assert torch.equal(copy_opt.state[first]["exp_avg"], theirs["exp_avg"])
    assert copy_opt.state[first]["exp_avg"].data_ptr() != theirs["exp_avg"].data_ptr()


def test_an_optimizer_on_other_parameters_stays_apart_in_the_copy():
    case = digits_mlp()
    stale = torch.optim.SGD(nn.Linear(64, 10).parameters(), lr=0.1)  # built, then the model re-created
    setup = make_setup(case.model, (case.x, case.y), loss_fn=case.loss_fn, optimizer=stale)
    model, opt = setup.copies()
    mine = {id(p) for p in model.parameters()}
    assert not any(id(p) in mine for g in opt.param_groups for p in g["params"])


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "not a model"}, "model is a str; pass a torch.nn.Module"),
    ({"loss_fn": None}, "pass loss_fn=..."),
    ({"optimizer": "adam"}, "optimizer is a str; pass a torch.optim.Optimizer"),
    ({"data": [1, 2, 3]}, "data is a list; pass (x, y) tensors, a Dataset of (x, y) items or a DataLoader"),
    ({"data": (torch.zeros(5, 2), torch.zeros(4))}, "data: the tensors have 5, 4 rows"),
    ({"task": "ranking"}, "task='ranking'; use one of binary, multiclass, multilabel, regression"),
])
def test_bad_arguments_name_the_argument_and_the_fix(kwargs, message):
    case = digits_mlp()
    args = {"model": case.model, "data": (case.x, case.y), "loss_fn": case.loss_fn, **kwargs}
    with pytest.raises(ConfigError) as e:
        doctor(**args)
    assert message in str(e.value)


def test_a_check_that_crashes_is_an_error_with_where_it_raised_and_the_others_run():
    case = digits_mlp()

    def broken(setup):
        raise RuntimeError("boom")

    diagnosis = doctor(**case.kwargs(), checks=[broken, "C2"])
    assert [v.status for v in diagnosis] == ["error", "pass"]  # a crash is never a silent skip
    assert diagnosis[0].summary.startswith("the check crashed: RuntimeError: boom (your code raised inside the check")
    assert "test_doctor.py" in diagnosis[0].evidence["where"] and "boom" in diagnosis[0].evidence["traceback"]
    assert diagnosis.failed and "1 error" in diagnosis.counts_line()


def test_a_dataloader_and_a_dataset_are_sampled_like_tensors():
    case = digits_mlp()
    ds = torch.utils.data.TensorDataset(case.x, case.y)
    a = make_setup(case.model, (case.x, case.y), loss_fn=case.loss_fn)
    b = make_setup(case.model, ds, loss_fn=case.loss_fn)
    c = make_setup(case.model, torch.utils.data.DataLoader(ds, batch_size=7), loss_fn=case.loss_fn)
    for s in (b, c):
        assert torch.equal(s.x[0], a.x[0]) and torch.equal(s.y, a.y)
    assert a.task == "multiclass" and len(a.y) == 512


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_nothing_warns_or_fails_on_a_healthy_setup(name):
    diagnosis = doctor(**HEALTHY[name]().kwargs())
    loud = [v.line() for v in diagnosis if v.status in ("warn", "fail")]
    assert loud == []


def test_the_doctor_is_reachable_from_the_package():
    import nnrecipe

    assert nnrecipe.doctor is doctor and nnrecipe.Diagnosis is Diagnosis


def _step(lr_scale: float = 1.0, returns_loss: bool = True):
    def train_step(model, optimizer, batch):
        *x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(*x), y)
        loss.backward()
        for g in optimizer.param_groups:
            g["lr"] = g["lr"] * lr_scale
        optimizer.step()
        return loss if returns_loss else None
    return train_step


def test_c1_runs_the_callers_own_training_step():
    case = digits_mlp()
    kwargs = {"model": case.model, "data": (case.x, case.y), "optimizer": case.optimizer}
    [ok] = doctor(**kwargs, train_step=_step(), checks=["C1"])
    assert ok.status == "pass" and ok.evidence["loss_end"] <= 0.01 * ok.evidence["loss_start"]
    [stuck] = doctor(**kwargs, train_step=_step(lr_scale=0.0), checks=["C1"])
    assert stuck.status == "fail" and stuck.evidence["steps"] == stuck.evidence["still_after"] == 100
    [silent] = doctor(**kwargs, train_step=_step(returns_loss=False), checks=["C1"])
    assert (silent.status, silent.summary) == (
        "skipped", "the training step returns no loss, and no loss_fn was given to measure it")
    # a step that returns no loss, with the loss_fn given: C1 measures the loss with it and judges
    measured = {"checks": ["C1"], "loss_fn": nn.CrossEntropyLoss()}
    [ok] = doctor(**kwargs, train_step=_step(returns_loss=False), **measured)
    assert ok.status == "pass" and ok.evidence["loss_end"] <= 0.01 * ok.evidence["loss_start"]
    assert ok.evidence["measured_with"] == "loss_fn (the training step returns no loss)"
    [stuck] = doctor(**kwargs, train_step=_step(lr_scale=0.0, returns_loss=False), **measured)
    assert stuck.status == "fail" and stuck.evidence["steps"] == stuck.evidence["still_after"] == 100
