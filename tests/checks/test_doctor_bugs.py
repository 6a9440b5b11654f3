"""Regression tests for bugs an independent evaluation found in nnrecipe.checks.doctor.doctor: a caller's
LR scheduler stepped inside train_step, an optimizer that once had a scheduler, the evaluate(model, x)
contract, a check that crashes, inputs with lengths, reference models near chance, and C8 false alarms.
Each test is seeded and small, and names the bug it pins."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from nnrecipe.checks.doctor import doctor

from .cases import Case, digits_mlp, mlp

OK = ("pass", "warn", "fail")  # a check that ran (neither skipped nor crashed)
LOUD = ("warn", "fail")


# ---------------------------------------------------------------- helpers
def _same(a: Any, b: Any) -> bool:
    """Bit for bit: tensors by their bytes (NaN included), arrays by value, containers item by item."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a.detach().contiguous().reshape(-1).view(torch.uint8),
                                                       b.detach().contiguous().reshape(-1).view(torch.uint8)))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _snapshot(model: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> dict[str, Any]:
    """Everything the caller owns that the doctor must leave as it was."""
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict()),
            "lrs": [(g["lr"], g.get("initial_lr")) for g in opt.param_groups],
            "scheduler": copy.deepcopy(sched.state_dict()),
            "torch_rng": torch.get_rng_state().clone(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state()}


def _assert_unchanged(before: dict[str, Any], after: dict[str, Any]) -> None:
    for key in before:
        assert _same(before[key], after[key]), f"the doctor changed the caller's {key}"


def _closure_step(sched: Any, loss_fn: nn.Module) -> Any:
    """The classic closure style: the caller's scheduler, built on the caller's optimizer, stepped inside."""
    def train_step(model, optimizer, batch):
        *x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(*x), y)
        loss.backward()
        optimizer.step()
        sched.step()
        return loss

    return train_step


def _one(verdicts: Any, id: str, name: str | None = None) -> Any:
    found = [v for v in verdicts if v.id == id and (name is None or v.name == name)]
    assert len(found) == 1, [v.line() for v in verdicts]
    return found[0]


# ---------------------------------------------------------------- 1, 2: a scheduler stepped inside train_step
SCHEDULERS = {
    "StepLR": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1),
    "LambdaLR": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** min(step, 30)),
    "SequentialLR": lambda opt: torch.optim.lr_scheduler.SequentialLR(
        opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5),
              torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)], milestones=[5]),
    "OneCycleLR": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=100_000),
}


def _mid_training(seed: int, make_sched: Any) -> tuple[Case, torch.optim.Optimizer, Any, Any]:
    """Digits MLP with Adam and the caller's scheduler, 3 steps into training (Adam moments, lr moved)."""
    case = digits_mlp(seed)
    opt = torch.optim.Adam(case.model.parameters(), lr=1e-3)
    sched = make_sched(opt)
    step = _closure_step(sched, case.loss_fn)
    for i in range(3):
        step(case.model, opt, (case.x[32 * i:32 * (i + 1)], case.y[32 * i:32 * (i + 1)]))
    return case, opt, sched, step


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_scheduler_inside_train_step_leaves_the_callers_objects_and_rngs_bit_for_bit(kind):
    """Bug 1: a train_step that steps the caller's own LR scheduler (a closure over the caller's optimizer)
    made doctor() raise AssertionError ('the doctor changed the caller's model or optimizer') and left the
    caller's learning rate changed. Required: no exception; model, optimizer (lr and initial_lr included),
    scheduler state and the torch, Python and numpy RNG states all come back bit for bit."""
    case, opt, sched, step = _mid_training(0, SCHEDULERS[kind])
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = _snapshot(case.model, opt, sched)
    diagnosis = doctor(case.model, (case.x, case.y), train_step=step, optimizer=opt, rows=256)
    assert len(diagnosis) >= 2
    _assert_unchanged(before, _snapshot(case.model, opt, sched))


@pytest.mark.parametrize("kind", ["StepLR", "LambdaLR"])
def test_scheduler_passed_explicitly_leaves_the_callers_objects_and_rngs_bit_for_bit(kind):
    """Bug 1, the explicit form: doctor(..., train_step=step, optimizer=opt, scheduler=sched) with the
    scheduler also stepped inside train_step. Required: the keyword is accepted, nothing raises, and the
    caller's model, optimizer, scheduler and RNG states come back bit for bit."""
    case, opt, sched, step = _mid_training(1, SCHEDULERS[kind])
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    before = _snapshot(case.model, opt, sched)
    diagnosis = doctor(case.model, (case.x, case.y), train_step=step, optimizer=opt, scheduler=sched, rows=256)
    assert len(diagnosis) >= 2
    _assert_unchanged(before, _snapshot(case.model, opt, sched))


def test_the_copies_follow_a_schedule_that_drops_the_lr_to_zero():
    """Bug 2: the doctor's copies must follow the caller's schedule. With LambdaLR(lambda step: 0.0 if
    step >= 1 else 1.0) stepped inside train_step, the learning rate is 0 after the first step, so the loss
    of one batch cannot fall and C1 must not pass (today the copies train at a constant rate while the
    caller's own optimizer is the one scheduled)."""
    case = digits_mlp(0)
    opt = torch.optim.Adam(case.model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0 if step >= 1 else 1.0)
    step = _closure_step(sched, case.loss_fn)
    diagnosis = doctor(case.model, (case.x, case.y), train_step=step, optimizer=opt, rows=256, checks=["C1"])
    v = _one(diagnosis, "C1")
    assert v.status in LOUD, v.line()
    assert opt.param_groups[0]["lr"] == 1e-2 and sched.last_epoch == 0  # the caller's: not stepped


def test_a_harmless_schedule_inside_train_step_lets_c1_pass():
    """Bug 2, the healthy twin: a StepLR(step_size=10_000) stepped inside train_step on the healthy digits
    setup changes nothing within the doctor's runs: C1 passes."""
    case = digits_mlp(0)
    opt = torch.optim.Adam(case.model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10_000, gamma=0.1)
    step = _closure_step(sched, case.loss_fn)
    diagnosis = doctor(case.model, (case.x, case.y), train_step=step, optimizer=opt, rows=256, checks=["C1"])
    assert _one(diagnosis, "C1").status == "pass", diagnosis.table()


# ---------------------------------------------------------------- 3: an optimizer that once had a scheduler
@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.Adam(p, 1e-3),
                                      lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)], ids=["Adam", "SGD"])
def test_an_optimizer_that_had_a_scheduler_still_runs_c1(make_opt):
    """Bug 3: a scheduler adds 'initial_lr' to the optimizer's param_groups; the evaluation saw C1 build its
    optimizer with those keys and get skipped ("unexpected keyword argument 'initial_lr'"). Required: C1
    runs and passes on the healthy digits setup, at the caller's learning rate."""
    case = digits_mlp(0)
    opt = make_opt(case.model.parameters())
    torch.optim.lr_scheduler.StepLR(opt, 10)
    assert "initial_lr" in opt.param_groups[0]
    diagnosis = doctor(case.model, (case.x, case.y), loss_fn=case.loss_fn, optimizer=opt, rows=256, checks=["C1"])
    v = _one(diagnosis, "C1")
    assert v.status == "pass", diagnosis.table()
    assert v.evidence["lr"] == opt.param_groups[0]["lr"]


# ---------------------------------------------------------------- 4: evaluate(model, x) gets one tensor
def _dropout_case() -> Case:
    case = digits_mlp(0)
    torch.manual_seed(0)
    case.model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    case.extra.pop("optimizer", None)
    return case


SEEN: list[Any] = []  # what my_eval was called with


def my_eval(model, x):
    """The README's evaluate: one tensor in, for a model that takes one input."""
    SEEN.append(x)
    model.eval()
    with torch.no_grad():
        return model(x)


def eval_forgets_eval_mode(model, x):
    with torch.no_grad():
        return model(x)


def _evaluation_verdicts(diagnosis: Any) -> list[Any]:
    return [v for v in diagnosis if v.id == "lint" and "evaluat" in (v.name + " " + v.summary).lower()]


def test_a_correct_evaluate_taking_one_tensor_is_not_flagged_and_nothing_is_skipped():
    """Bug 4: evaluate(model, x) received a tuple of inputs, so the README's `model(x)` raised inside the
    lint and the whole lint was 'skipped'. Required: a correct evaluate on a model with Dropout gets no warn
    or fail about evaluation, and no verdict is skipped."""
    case = _dropout_case()
    SEEN.clear()
    diagnosis = doctor(**case.kwargs(), evaluate=my_eval, rows=256, checks=["lint"])
    assert not [v for v in diagnosis if v.status not in OK], diagnosis.table()  # nothing skipped, no error
    assert not [v for v in _evaluation_verdicts(diagnosis) if v.status in LOUD], diagnosis.table()
    assert SEEN and all(isinstance(x, torch.Tensor) and x.shape[1:] == (64,) for x in SEEN)  # one tensor


def test_an_evaluate_that_forgets_model_eval_is_flagged_as_eval_in_train_mode():
    """Bug 4, the faulty twin: an evaluate (one tensor in) that forgets model.eval() on a model with
    Dropout(0.5) must give a warn or fail verdict whose fault is 'eval-in-train-mode'."""
    case = _dropout_case()
    diagnosis = doctor(**case.kwargs(), evaluate=eval_forgets_eval_mode, rows=256, checks=["lint"])
    flagged = [v for v in diagnosis if v.status in LOUD and v.fault == "eval-in-train-mode"]
    assert len(flagged) == 1, diagnosis.table()
    assert flagged[0].id == "lint" and flagged[0].name == "evaluation mode"


# ---------------------------------------------------------------- 5: a crash is reported, not skipped
def boom_check(setup):
    raise RuntimeError("boom")


def test_a_check_that_crashes_is_an_error_not_a_silent_skip():
    """Bug 5: an exception inside a check became a plain 'skipped' verdict, hiding the doctor's own bug.
    Required: status 'error', the summary names the exception text, the counts line counts errors, and
    the other checks still run."""
    case = digits_mlp(0)
    diagnosis = doctor(**case.kwargs(), rows=128, checks=[boom_check, "C2"])
    v = _one(diagnosis, "boom_check")
    assert v.status == "error", v.line()
    assert "boom" in v.summary
    assert "error" in diagnosis.counts_line()
    assert _one(diagnosis, "C2").status in OK


def eval_raises(model, x):
    raise TypeError("my evaluation broke")


def test_an_evaluate_that_raises_is_a_warn_or_fail_naming_the_exception():
    """Bug 5, the caller's code: an evaluate that raises TypeError made the lint 'skipped'. It is the
    caller's evaluation failing: a warn or fail verdict naming the exception, visible in the diagnosis."""
    case = _dropout_case()
    diagnosis = doctor(**case.kwargs(), evaluate=eval_raises, rows=256, checks=["lint"])
    assert not [v for v in diagnosis if v.status == "skipped"], diagnosis.table()
    named = [v for v in diagnosis if v.status in LOUD and "TypeError" in v.summary
             and "my evaluation broke" in v.summary]
    assert len(named) == 1, diagnosis.table()
    assert diagnosis.failed or any(v.status == "warn" for v in diagnosis)


# ---------------------------------------------------------------- 6: inputs with lengths
V, T, N, HIDDEN = 20, 12, 256, 16


class LengthsLSTM(nn.Module):
    """An LSTM classifier over padded token ids (0 = padding) with each row's length."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, HIDDEN, padding_idx=0)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 2)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])


def _lengths_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (N,), generator=g)
    tokens = torch.randint(1, V, (N, T), generator=g)
    tokens[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    y = (tokens == 3).any(1).long()  # the label depends on the tokens: does id 3 appear?
    return tokens, lengths, y


def test_zeroing_inputs_leaves_the_lengths_alone():
    """Bug 6: C3 zeroed every input, the lengths too, and pack_padded_sequence raises on zero lengths, so C3
    and C4 were 'skipped'. Required: both run (pass, warn or fail), i.e. the zeroing leaves non-feature
    inputs (integer lengths, masks) alone."""
    tokens, lengths, y = _lengths_data(0)
    assert 0.2 < float(y.float().mean()) < 0.8  # both classes well represented
    torch.manual_seed(0)
    model = LengthsLSTM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    diagnosis = doctor(model, (tokens, lengths, y), loss_fn=nn.CrossEntropyLoss(), optimizer=opt, rows=256,
                       checks=["C3", "C4"])
    for id in ("C3", "C4"):
        v = _one(diagnosis, id)
        assert v.status in OK, v.line()


# ---------------------------------------------------------------- 7: reference models near chance abstain
def _binary_case(x: np.ndarray, y: np.ndarray, seed: int) -> Case:
    order = np.random.default_rng(seed).permutation(len(x))
    tr, va = order[:450], order[450:]
    torch.manual_seed(seed)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return Case(mlp([2, 32, 32, 1]), f(x[tr]), f(y[tr])[:, None], nn.BCEWithLogitsLoss(),
                lambda p: torch.optim.Adam(p, lr=1e-2), f(x[va]), f(y[va])[:, None], "binary")


def _circles(seed: int) -> Case:
    """Binary make_circles: a small MLP learns it, a linear model cannot separate the classes."""
    from sklearn.datasets import make_circles

    return _binary_case(*make_circles(600, noise=0.05, factor=0.5, random_state=seed), seed)


def _xor(seed: int) -> Case:
    """Binary XOR of two features (the sign of x0 * x1): the same, a linear model at chance."""
    x = np.random.default_rng(100 + seed).uniform(-1, 1, (600, 2))
    return _binary_case(x, (x[:, 0] * x[:, 1] > 0).astype(np.int64), seed)


def _trains_to(case: Case) -> float:
    """Precondition: plain full-batch training of a copy reaches this validation accuracy."""
    model = copy.deepcopy(case.model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.random.fork_rng(devices=[]):
        for _ in range(300):
            opt.zero_grad()
            case.loss_fn(model(case.x), case.y).backward()
            opt.step()
    with torch.no_grad():
        return float(((model(case.val_x) > 0).float() == case.val_y).float().mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("build", [_circles, _xor], ids=["circles", "xor"])
def test_label_noise_and_c4_abstain_when_a_linear_model_is_near_chance(build, seed):
    """Bug 7: on classes a linear model cannot separate (concentric circles, XOR), D4 label noise took the
    logistic regression's confusion for noisy labels (33-50% of the rows 'mislabeled'), and C4 judges
    against the same kind of reference. On these healthy, well-trainable setups neither D4 label noise nor
    C4 may warn or fail: a reference near chance abstains ('skipped', or 'pass' saying so)."""
    case = build(seed)
    assert _trains_to(case) >= 0.93  # the setup is genuinely healthy
    diagnosis = doctor(**case.kwargs(), checks=["data", "C4"])
    judged = [_one(diagnosis, "D4", "label noise"), _one(diagnosis, "C4")]
    assert not [v.line() for v in judged if v.status in LOUD]
    assert all(v.status in ("pass", "skipped") for v in judged), [v.line() for v in judged]


# ---------------------------------------------------------------- 8: C8 false alarms on healthy runs
OPTIMIZERS = {"SGD-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
              "Adam": lambda p: torch.optim.Adam(p, lr=1e-3)}


def _digits_trains(case: Case, make_opt: Any) -> float:
    """Precondition: a copy trained normally (10 epochs, batches of 32) reaches this validation accuracy."""
    model = copy.deepcopy(case.model)
    opt = make_opt(model.parameters())
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        order = torch.randperm(len(case.y), generator=g)
        for i in range(0, len(order), 32):
            rows = order[i:i + 32]
            opt.zero_grad()
            case.loss_fn(model(case.x[rows]), case.y[rows]).backward()
            opt.step()
    with torch.no_grad():
        return float((model(case.val_x).argmax(1) == case.val_y).float().mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_c8_is_quiet_on_healthy_digits_runs(opt_name, seed):
    """Bug 8: C8 raised false alarms (oscillation, overfitting, ...) on healthy digits MLPs (64-128-10,
    inputs / 16) trained with SGD(lr=0.05, momentum=0.9) or Adam(1e-3). Required: no C8 warn or fail."""
    case = digits_mlp(seed)
    make_opt = OPTIMIZERS[opt_name]
    assert _digits_trains(case, make_opt) >= 0.93  # the setup is genuinely healthy
    case.make_optimizer = make_opt
    diagnosis = doctor(**case.kwargs(), seed=seed, checks=["C8"])
    loud = [v.line() for v in diagnosis.by_id("C8") if v.status in LOUD]
    assert not loud, loud
    assert diagnosis.by_id("C8")


class _DictItems(torch.utils.data.Dataset):
    """Items as the Trainer's dict batches hold them: named inputs (a mask among them) and a target."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 6, generator=g)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"mask": torch.ones(6, dtype=torch.bool), "features": self.x[i], "labels": self.y[i]}


class _NamedInputs(nn.Module):
    """forward(features, mask) returning a dict of outputs, its prediction under 'logits'."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.out = nn.Linear(6, 16), nn.Linear(16, 2)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> dict:
        return {"logits": self.out(torch.relu(self.hidden(features * mask))), "aux": features.sum(1)}


def test_dict_items_and_dict_outputs_run_every_check():
    """Robustness (item 3): a Dataset of dict items (inputs named after forward's parameters, the target
    under 'labels') and a model returning a dict: every check runs (none crashes), the mask is left alone
    when C3 zeroes the features, and the healthy setup draws no warning or failure."""
    torch.manual_seed(0)
    model = _NamedInputs()
    diagnosis = doctor(model, _DictItems(), loss_fn=nn.CrossEntropyLoss(),
                       optimizer=torch.optim.Adam(model.parameters(), 1e-2), rows=256,
                       checks=["lint", "C1", "C2", "C3", "C4", "C6", "C7", "C8"])
    assert not [v for v in diagnosis if v.status in ("error", "skipped")], diagnosis.table()
    assert not [v for v in diagnosis if v.status in LOUD], diagnosis.table()


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, torch.randn(64, 3), torch.randint(0, 2, (64,))


def test_a_sequential_schedule_passed_as_scheduler_leaves_the_callers_optimizer_alone():
    """Review of issue 17: SequentialLR passed as scheduler= (no train_step) was simulated with its parts still
    on the caller's optimizer; now its parts follow the copy, and it is judged once."""
    model, x, y = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5)
    then = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.01)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [first, then], milestones=[2])
    lr = opt.param_groups[0]["lr"]
    diagnosis = doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=opt, scheduler=seq, checks=["lint"])
    assert opt.param_groups[0]["lr"] == lr and first.optimizer is opt and then.optimizer is opt
    assert [v.summary.split()[0] for v in diagnosis if v.fault == "scheduler-misuse"] == ["SequentialLR"]


def test_a_scheduler_keeps_its_attributes_objects_and_a_tensor_lr_is_not_shared():
    """Review of issue 17: the scheduler's own attributes come back as the same objects, and a tensor
    learning rate is copied, not stepped in place on the caller's optimizer."""
    model, x, y = _tiny()
    tracker = object()
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    sched.tracker = tracker
    doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=opt, scheduler=sched, checks=["lint", "C1"])
    assert sched.tracker is tracker and float(opt.param_groups[0]["lr"]) == pytest.approx(0.1)


def test_a_scheduler_the_train_step_closes_over_is_followed_without_optimizer_given():
    """Review of issue 17: with train_step and no optimizer=, the scheduler in the step's closure moved the
    caller's real optimizer; it is found in the closure and pointed at the copies."""
    model, x, y = _tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    loss_fn = nn.CrossEntropyLoss()

    def step(model, optimizer, batch):
        optimizer.zero_grad()
        loss = loss_fn(model(batch[0]), batch[1])
        loss.backward()
        optimizer.step()
        sched.step()
        return loss

    doctor(model, (x, y), loss_fn=loss_fn, train_step=step, checks=["lint", "C1"])
    assert opt.param_groups[0]["lr"] == 0.1 and sched.last_epoch == 0


def test_an_nnrecipe_step_with_a_live_scheduler_still_gets_its_loss():
    """Review of issue 17: a Step was wrapped for the schedule before its loss was bound, and C1 crashed."""
    from nnrecipe.steps import Step

    model, x, y = _tiny()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    torch.optim.lr_scheduler.StepLR(opt, 10)
    diagnosis = doctor(model, (x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=opt, train_step=Step(),
                       checks=["C1"])
    assert diagnosis[0].status == "pass", diagnosis.table()
