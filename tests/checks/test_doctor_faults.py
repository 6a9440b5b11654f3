"""The doctor names the fault (issue 17): every warn/fail verdict carries a fault family (checks/faults.py).

1. Each rule that reads the setup as written (checks/reading.py), the data (checks/drift.py, the
   val-is-train overlap), the caller's train_step (lint._returned_loss), the exploding gradients (C7: the
   init or the learning rate) and the capacity check (C8: overfitting) fires on a fault planted the way
   users write it, with its fault slug and the numbers behind it, and stays quiet on the healthy twin.
2. The differential (checks/differential.py) on hand-built diagnoses: a symptom takes the cause another
   verdict found, with its fix; a symptom nothing explains is 'unknown', with the families it is
   consistent with and those ruled out.
3. Diagnosis.faults() and Verdict.line().
4. The whole doctor on the 23 public cases of /work/shared/doctor-cases.md: the planted family is named.

Every test is seeded; the doctor runs only the checks a test needs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, StepLR

from nnrecipe.checks import drift, reading
from nnrecipe.checks.differential import differentiate
from nnrecipe.checks.doctor import doctor
from nnrecipe.checks.faults import FAULTS
from nnrecipe.checks.verdict import Diagnosis, Verdict

from .cases import SmallCNN, breast_cancer_raw, breast_cancer_scaled, diabetes_mlp, digits_cnn, digits_mlp, \
    imbalanced_binary, mlp, moons_mlp

LOUD = ("warn", "fail")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """The data checks fit scikit-learn models: on a shared 2-core machine OpenBLAS's second thread only
    contends (tests/conftest.py does the same for torch's intra-op threads). The limit reaches only the
    libraries loaded when it is set: the checks import scipy and scikit-learn lazily, so load them first."""
    import scipy.stats  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.neighbors  # noqa: F401

    with threadpool_limits(limits=1):
        yield


def run(case, checks, **over):
    """doctor() on the case with only `checks`; `over` replaces the case's arguments."""
    return doctor(**{**case.kwargs(), **over}, checks=checks)


def fired(diagnosis, name):
    """The one warn/fail verdict called `name`."""
    found = [v for v in diagnosis if v.name == name and v.status in LOUD]
    assert len(found) == 1, diagnosis.table()
    return found[0]


def assert_quiet(diagnosis, name):
    """The rule `name` says nothing: no warn/fail verdict of that name (and the doctor did not crash)."""
    assert not [v for v in diagnosis if v.name == name and v.status in LOUD], diagnosis.table()
    assert not [v for v in diagnosis if v.status == "error"], diagnosis.table()


def sgd(lr):
    return lambda params: torch.optim.SGD(params, lr=lr)


# ================================================================ 1. reading.py: the setup as written
def test_constant_init_fails_and_the_default_init_is_quiet():
    case = digits_mlp()
    with torch.no_grad():
        for m in case.model.modules():
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.1)  # every Linear weight filled with 0.1
    v = fired(run(case, ["lint"]), "identical units")
    assert (v.status, v.fault) == ("fail", "constant-init")
    assert v.evidence["layers"] == ["0", "2"]
    assert_quiet(run(digits_mlp(), ["lint"]), "identical units")


class TwoLinear(nn.Module):
    """Two nn.Linear in a custom module; `act` between them in forward (functional style), or nothing."""

    def __init__(self, act=None) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 128), nn.Linear(128, 10)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(self.act(h) if self.act is not None else h)


def test_no_nonlinearity_in_a_functional_forward_warns_and_relu_is_quiet():
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = TwoLinear()
    v = fired(run(case, ["lint"]), "nonlinearity")
    assert (v.status, v.fault) == ("warn", "no-nonlinearity")
    assert v.evidence == {"pairs": ["fc1 -> fc2"], "seen_by": "forward hooks"}
    twin = digits_mlp()
    torch.manual_seed(0)
    twin.model = TwoLinear(F.relu)
    assert_quiet(run(twin, ["lint"]), "nonlinearity")


class TanhMLP(nn.Module):
    """30-64-1 with torch.tanh in forward (no activation module); first-layer weights N(0, std) if given."""

    def __init__(self, std: float | None = None) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(30, 64), nn.Linear(64, 1)
        if std is not None:
            with torch.no_grad():
                self.fc1.weight.normal_(0.0, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def test_saturated_functional_tanh_fails_and_the_default_init_is_quiet():
    case = breast_cancer_scaled()
    torch.manual_seed(0)
    case.model = TanhMLP(std=5.0)
    v = fired(run(case, ["lint"]), "saturated units")
    assert (v.status, v.fault) == ("fail", "saturated-units")
    assert v.evidence["z"] == reading.SAT_Z and v.evidence["seen_by"].startswith("torch function mode")
    share = v.evidence["saturated_share"]["tanh call 1"]
    assert reading.SAT_SHARE < share <= 1.0  # measured 0.81
    twin = breast_cancer_scaled()
    torch.manual_seed(0)
    twin.model = TanhMLP()
    assert_quiet(run(twin, ["lint"]), "saturated units")


def test_a_negated_loss_fails_on_its_sign():
    v = fired(run(digits_mlp(), ["lint"], loss_fn=lambda out, y: -F.cross_entropy(out, y)), "loss sign")
    assert (v.status, v.fault) == ("fail", "flipped-loss-sign")
    assert v.evidence["loss_wrong"] < v.evidence["loss_right"] <= 0  # measured -8.0 and -0.003
    assert_quiet(run(digits_mlp(), ["lint"]), "loss sign")


def test_a_summed_loss_warns_with_sgd_only():
    case = digits_mlp()
    case.make_optimizer = sgd(0.01)
    summed = nn.CrossEntropyLoss(reduction="sum")
    v = fired(run(case, ["lint"], loss_fn=summed), "loss reduction")
    assert (v.status, v.fault) == ("warn", "loss-sum-not-mean")
    ev = v.evidence
    assert ev["rows"] == 64 and ev["loss_rows_twice"] / ev["loss_rows"] == pytest.approx(2.0, abs=0.1)
    assert "SGD" in v.summary
    assert_quiet(run(digits_mlp(), ["lint"], loss_fn=summed), "loss reduction")  # Adam normalizes its step
    twin = digits_mlp()
    twin.make_optimizer = sgd(0.01)
    assert_quiet(run(twin, ["lint"]), "loss reduction")  # SGD with the mean


def test_weight_decay_that_outweighs_the_loss_warns():
    case = digits_mlp()
    case.make_optimizer = lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1.0)
    v = fired(run(case, ["lint"]), "weight decay")
    assert (v.status, v.fault) == ("warn", "over-regularization")
    ev = v.evidence
    assert ev["weight_decay"] == 1.0 and ev["decay_term"] > 5 * ev["data_loss"]  # measured 23.2 against 2.32
    assert ev["data_loss"] == pytest.approx(2.3, abs=0.1)
    for wd in (0.0, 1e-4):
        twin = digits_mlp()
        twin.make_optimizer = lambda p, wd=wd: torch.optim.Adam(p, lr=1e-3, weight_decay=wd)
        assert_quiet(run(twin, ["lint"]), "weight decay")


def class_indices_as_floats():
    """A (digits) with one output, MSELoss and the class index as a float target."""
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = mlp([64, 128, 1])
    case.y, case.val_y = case.y.float()[:, None], case.val_y.float()[:, None]
    case.loss_fn = nn.MSELoss()
    case.task = None  # the doctor reads the task from the loss and the targets
    return case


def test_class_indices_as_float_targets_of_mse_warn():
    diagnosis = run(class_indices_as_floats(), ["lint"])
    v = fired(diagnosis, "class labels in a regression loss")
    assert (v.status, v.fault) == ("warn", "regression-loss-for-classes")
    assert v.evidence == {"distinct_targets": 10, "output_width": 1}
    assert_quiet(run(digits_mlp(), ["lint"]), "class labels in a regression loss")  # 10 outputs, CE
    assert_quiet(run(diabetes_mlp(), ["lint"]), "class labels in a regression loss")  # a real regression


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=1, gamma=0.1)], ids=["StepLR(1, 0.1)"])
def test_a_schedule_that_collapses_in_a_few_steps_warns(make):
    case = digits_mlp()
    v = fired(run(case, ["lint"], scheduler=make(case.optimizer)), "learning-rate schedule")
    assert (v.status, v.fault) == ("warn", "scheduler-misuse")
    ev = v.evidence
    assert ev["scheduler"] == "StepLR" and ev["lr_start"] == 1e-3
    assert len(ev["lr_after_steps"]) == reading.SCHEDULE_STEPS
    assert ev["lr_after_steps"][0] == pytest.approx(1e-4) and ev["lr_after_steps"][-1] == pytest.approx(1e-11)


@pytest.mark.parametrize("make", [lambda o: StepLR(o, step_size=30), lambda o: CosineAnnealingLR(o, T_max=5)],
                         ids=["StepLR(30)", "CosineAnnealingLR(T_max=5)"])
def test_healthy_schedules_are_quiet(make):
    case = digits_mlp()
    assert_quiet(run(case, ["lint"], scheduler=make(case.optimizer)), "learning-rate schedule")


# ================================================================ 1. lint._returned_loss: the caller's train_step
def step_returning(kind):
    """A train_step with zero_grad, backward and step, whose loss is cross-entropy's mean, its negative
    (minimized: the fault), or its sum over the batch."""

    def step(model, opt, batch):
        opt.zero_grad()
        out, y = model(batch[0]), batch[1]
        loss = {"mean": lambda: F.cross_entropy(out, y), "negative": lambda: -F.cross_entropy(out, y),
                "sum": lambda: F.cross_entropy(out, y, reduction="sum")}[kind]()
        loss.backward()
        opt.step()
        return loss

    return step


def test_a_train_step_returning_the_negative_loss_fails():
    v = fired(run(digits_mlp(), ["lint"], train_step=step_returning("negative")), "loss sign")
    assert (v.status, v.fault) == ("fail", "flipped-loss-sign")
    ev = v.evidence
    assert ev["train_step_returned"] == pytest.approx(-ev["loss_fn_on_batch"]) and ev["loss_fn_on_batch"] > 2
    assert ev["rows"] == 64
    assert_quiet(run(digits_mlp(), ["lint"], train_step=step_returning("mean")), "loss sign")


def test_a_train_step_returning_the_summed_loss_warns_with_sgd():
    case = digits_mlp()
    case.make_optimizer = sgd(0.01)
    v = fired(run(case, ["lint"], train_step=step_returning("sum")), "loss reduction")
    assert (v.status, v.fault) == ("warn", "loss-sum-not-mean")
    ev = v.evidence
    assert ev["rows"] == 64 and ev["train_step_returned"] / ev["loss_fn_on_batch"] == pytest.approx(64, rel=1e-3)
    twin = digits_mlp()
    twin.make_optimizer = sgd(0.01)
    assert_quiet(run(twin, ["lint"], train_step=step_returning("mean")), "loss reduction")
    assert_quiet(run(digits_mlp(), ["lint"], train_step=step_returning("sum")), "loss reduction")  # Adam


# ================================================================ 1. drift.py and the overlap: the data
def test_inputs_divided_twice_warn_as_double_normalization():
    case = digits_mlp()
    case.x, case.val_x = case.x / 255, case.val_x / 255  # digits / 16, then / 255 again
    v = fired(run(case, ["data"], rows=256), "inputs near zero")
    assert (v.id, v.status, v.fault) == ("D8", "warn", "double-normalization")
    assert v.evidence["threshold"] == drift.TINY and v.evidence["max_rms"] < 0.01  # measured 0.0031
    assert_quiet(run(digits_mlp(), ["data"], rows=256), "inputs near zero")


def test_validation_inputs_left_raw_fail_as_preprocessed_differently():
    case = breast_cancer_raw()
    mean, std = case.x.mean(0), case.x.std(0)
    case.x = (case.x - mean) / std  # training inputs standardized, validation inputs left as they were
    v = fired(run(case, ["data"], rows=256), "validation preprocessing")
    assert (v.id, v.status, v.fault) == ("leakage", "fail", "val-preprocessed-differently")
    ev = v.evidence
    assert ev["median_ks_distance"] >= ev["threshold"] >= drift.DRIFT  # measured 0.63
    assert ev["val_mean_abs"] > 10 * ev["train_mean_abs"] and ev["features"] == 30
    assert (ev["train_rows"], ev["val_rows"]) == (256, len(case.val_x))
    assert_quiet(run(breast_cancer_scaled(), ["data"], rows=256), "validation preprocessing")


def test_outlier_rows_warn_with_their_row_numbers():
    case = breast_cancer_scaled()
    rows = torch.randperm(len(case.x), generator=torch.Generator().manual_seed(0))[: len(case.x) // 100]
    case.x = case.x.clone()
    case.x[rows] *= 1e3  # 1% of the standardized training rows
    v = fired(run(case, ["data"], rows=len(case.x)), "outlier rows")  # every row sampled
    assert (v.id, v.status, v.fault) == ("D8", "warn", "outliers")
    ev = v.evidence
    assert ev["outlier_rows"] == len(rows) == 4 and sorted(ev["rows"]) == sorted(rows.tolist())
    assert ev["max_distance_in_ranges"] > 10 * drift.OUTLIER  # measured 477 (healthy columns: 1-6)
    twin = breast_cancer_scaled()
    assert_quiet(run(twin, ["data"], rows=len(twin.x)), "outlier rows")


def test_a_1_to_50_class_imbalance_warns():
    v = fired(run(imbalanced_binary(weights=(0.98, 0.02)), ["data"]), "class imbalance")
    assert (v.id, v.status, v.fault) == ("D4", "warn", "class-imbalance")
    ev = v.evidence
    assert ev["ratio"] >= drift.IMBALANCE and ev["smallest_share"] < 0.05 and ev["classes"] == 2  # 41.7, 0.023
    assert_quiet(run(imbalanced_binary(), ["data"]), "class imbalance")  # 1:9


def test_a_1_to_50_class_imbalance_is_not_called_misaligned_labels():
    """Every label is paired with its input: the signal check must see it although a model predicting the
    98% majority everywhere scores chance on balanced accuracy (a false alarm before drift.py scored AUC)."""
    assert_quiet(run(imbalanced_binary(weights=(0.98, 0.02)), ["data"]), "labels against inputs")


def permuted_labels():
    case = digits_mlp()
    case.y = case.y[torch.randperm(len(case.y), generator=torch.Generator().manual_seed(2024))]
    return case


def test_labels_permuted_apart_from_the_inputs_warn():
    v = fired(run(permuted_labels(), ["data"], rows=256), "labels against inputs")
    assert (v.id, v.status, v.fault) == ("D4", "warn", "labels-misaligned")
    scores = v.evidence["scores"]
    assert set(scores) == {"logistic regression", "15-nn"} and max(scores.values()) < drift.SIGNAL
    assert v.evidence["rows"] == 256
    assert_quiet(run(digits_mlp(), ["data"], rows=256), "labels against inputs")


def test_validation_data_that_is_the_training_data_fails():
    case = digits_mlp()
    v = fired(run(case, ["data"], rows=256, val_data=(case.x, case.y)), "train/validation overlap")
    assert (v.id, v.status, v.fault) == ("leakage", "fail", "val-is-train")
    ev = v.evidence
    assert ev["overlap_ratio"] == 1.0 and ev["shared_rows"] == ev["val_rows"] == 256
    assert_quiet(run(digits_mlp(), ["data"], rows=256), "train/validation overlap")


# ================================================================ 1. C7/C8: the init or the learning rate
def exploding_init():
    """An 8-layer ReLU MLP on digits with every weight N(0, 10)."""
    case = digits_mlp(hidden=(128,) * 7)
    with torch.no_grad():
        for m in case.model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 10.0)
    return case


def test_gradients_that_explode_from_the_init_name_the_init():
    diagnosis = run(exploding_init(), ["C7"], rows=128)
    v = fired(diagnosis, "exploding gradients")
    assert (v.id, v.status, v.fault) == ("C7", "fail", "exploding-init")
    assert v.evidence["output_grad_ratio"] > 1e12 and v.evidence["loss_first"] > 1e12  # 2e13 and 1.3e15
    assert "the updates made it grow" not in v.summary
    assert "lr-too-high" not in diagnosis.faults()
    twin = digits_mlp(hidden=(128,) * 7)  # the same 8 layers, default init
    assert_quiet(run(twin, ["C7"], rows=128), "exploding gradients")


def test_a_learning_rate_too_high_is_not_blamed_on_the_init():
    """Public case 18: the healthy MLP with SGD at 10. C7's 'exploding gradients' does not fire there
    (measured: dead ReLU units and an update/weight ratio of 0.7); whatever fires names the rate."""
    case = digits_mlp()
    case.make_optimizer = sgd(10.0)
    diagnosis = run(case, ["C7", "C8"], rows=256)
    assert "lr-too-high" in diagnosis.faults() and "exploding-init" not in diagnosis.faults()
    assert all(v.fault == "lr-too-high" for v in diagnosis if v.name == "exploding gradients" and v.status in LOUD)
    c8 = fired(diagnosis, "learning rate too high")
    assert c8.fault == "lr-too-high" and c8.evidence["peak_vs_first"] > 3  # measured 13


def test_gradients_that_explode_after_sane_first_steps_name_the_learning_rate():
    """A healthy 4-layer MLP with SGD at 30: the first step's gradients are sane, the run goes non-finite at
    step 7: C7's 'exploding gradients' fires, and names the rate, not the init."""
    case = digits_mlp(hidden=(128,) * 3)
    case.make_optimizer = sgd(30.0)
    diagnosis = run(case, ["C7"], rows=256)
    v = fired(diagnosis, "exploding gradients")
    assert (v.status, v.fault) == ("fail", "lr-too-high")
    assert v.evidence["step"] > 1 and v.evidence["loss_first"] < 3  # ln 10 = 2.30 at step 1
    assert "non-finite at step" in v.summary
    assert "lower the learning rate" in v.fix
    assert "exploding-init" not in diagnosis.faults()


# ================================================================ 1. curves._capacity: overfitting
def test_too_many_parameters_for_the_rows_warn_as_overfitting():
    case = diabetes_mlp()
    torch.manual_seed(0)
    case.model = mlp([10, 1024, 1])  # 12289 parameters...
    case.x, case.y = case.x[:100], case.y[:100]  # ...for 100 training rows
    v = fired(run(case, ["C8"]), "overfitting")
    assert (v.id, v.status, v.fault) == ("C8", "warn", "overfitting")
    ev = v.evidence
    assert (ev["parameters"], ev["training_rows"]) == (12289, 100) and ev["parameters_per_row"] >= 50
    assert ev["gap_of_prior_loss"] >= 0.1 and ev["val_loss_last"] > ev["train_loss_last"]  # measured 0.137
    assert_quiet(run(diabetes_mlp(), ["C8"]), "overfitting")  # 4929 parameters for 331 rows


# ================================================================ 2. the differential, on hand-built diagnoses
D8_FIX = "scale the inputs once (remove the second division or normalization)"
C8_FIX = "raise the learning rate (x10)"


def test_a_flat_curve_takes_the_double_normalization_another_verdict_found():
    d8 = Verdict("D8", "inputs near zero", "warn", "every feature is tiny", {"max_rms": 0.003}, D8_FIX,
                 fault="double-normalization")
    c8 = Verdict("C8", "learning rate too low", "warn", "the curve is flat", {"largest_move": 1e-4}, C8_FIX)
    out = differentiate(Diagnosis([d8, c8]))
    assert [v.id for v in out] == ["D8", "C8"] and out[0] == d8  # the cause is kept as it was
    flat = out[1]
    assert flat.status == "warn" and flat.fault == "double-normalization"
    assert flat.fix.startswith("first fix the cause") and D8_FIX in flat.fix and C8_FIX not in flat.fix
    assert flat.evidence["explained_by"] == "D8 inputs near zero" and flat.evidence["largest_move"] == 1e-4
    assert flat.consistent_with and set(flat.consistent_with) <= set(FAULTS)
    assert "double-normalization" not in flat.consistent_with  # it is the fault, not an alternative
    assert out.faults() == ["double-normalization"]


def test_a_failure_nothing_explains_is_unknown_with_what_it_is_consistent_with():
    c1 = Verdict("C1", "overfit one batch", "fail", "the loss did not fall", {"loss_end": 2.0}, "check the setup")
    lint = Verdict("lint", "setup lint", "pass", "nothing found")
    out = differentiate(Diagnosis([lint, c1]))
    v = out[1]
    assert v.fault == "unknown" and v.fix == "check the setup"
    assert v.consistent_with and set(v.consistent_with) <= set(FAULTS) and "unknown" not in v.consistent_with
    assert "double-softmax" in v.evidence["ruled_out"] and "flipped-loss-sign" in v.evidence["ruled_out"]
    assert not set(v.consistent_with) & set(v.evidence["ruled_out"])  # ruled out: not offered again
    assert "explained_by" not in v.evidence
    # without the lint's pass nothing is ruled out by it
    alone = differentiate(Diagnosis([c1]))[0]
    assert alone.fault == "unknown" and "ruled_out" not in alone.evidence and alone.consistent_with


def test_a_passing_verdict_names_no_fault():
    passed = Verdict("C8", "learning curves", "pass", "the loss fell", {"epochs": 11})
    d8 = Verdict("D8", "inputs near zero", "warn", "tiny", {}, D8_FIX, fault="double-normalization")
    out = differentiate(Diagnosis([passed, d8]))
    assert out[0] == passed and out[0].fault == "" and out[0].consistent_with == ()
    assert out.faults() == ["double-normalization"]


# ================================================================ 3. Diagnosis.faults() and Verdict.line()
def test_faults_rank_failures_before_warnings_each_once():
    d = Diagnosis([Verdict("D8", "feature scales", "warn", "s", fault="unnormalized-inputs"),
                   Verdict("C7", "dead ReLU units", "fail", "s", fault="dying-relu"),
                   Verdict("C8", "learning rate too high", "warn", "s", fault="lr-too-high"),
                   Verdict("C2", "loss at init", "fail", "s", fault="wrong-init-loss"),
                   Verdict("C8", "underfitting", "warn", "s", fault="dying-relu"),
                   Verdict("C1", "overfit one batch", "pass", "s"),
                   Verdict("C5", "gradient check", "skipped", "s")])
    assert d.faults() == ["dying-relu", "wrong-init-loss", "unnormalized-inputs", "lr-too-high"]
    assert Diagnosis([Verdict("C1", "overfit one batch", "pass", "s")]).faults() == []


def test_line_prints_the_fault_of_a_warning_or_failure_only():
    warn = Verdict("C8", "learning rate too low", "warn", "flat", fix="raise it", fault="lr-too-low",
                   consistent_with=("double-normalization", "scheduler-misuse"))
    assert warn.line() == ("[WARN] C8 learning rate too low: flat\n"
                           "       fault: lr-too-low; consistent with: double-normalization, scheduler-misuse\n"
                           "       fix: raise it")
    fail = Verdict("lint", "loss sign", "fail", "negated", fix="fix the sign", fault="flipped-loss-sign")
    assert fail.line().splitlines()[1] == "       fault: flipped-loss-sign"
    passed = Verdict("C8", "learning curves", "pass", "fine")
    assert passed.line() == "[PASS] C8 learning curves: fine" and "fault:" not in passed.line()


# ================================================================ 4. the whole doctor on the 23 public cases
def nan_cells():
    case = digits_mlp()
    x = case.x.clone()
    x[torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.01] = float("nan")  # 1% of cells
    case.x = x
    return case, {}


def label_noise():
    case = digits_mlp()
    g = torch.Generator().manual_seed(2024)
    rows = torch.randperm(len(case.y), generator=g)[: int(0.3 * len(case.y))]
    case.y = case.y.clone()
    case.y[rows] = torch.randint(0, 10, (len(rows),), generator=g)  # 30% of the rows given a random class
    return case, {}


def conflicting_duplicates():
    case = breast_cancer_scaled()
    rows = torch.randperm(len(case.x), generator=torch.Generator().manual_seed(0))[: len(case.x) // 20]
    case.x, case.y = torch.cat([case.x, case.x[rows]]), torch.cat([case.y, 1 - case.y[rows]])
    return case, {}


def overlap():
    case = digits_mlp()
    rows = torch.randperm(len(case.val_x), generator=torch.Generator().manual_seed(0))[: len(case.val_x) // 5]
    case.x, case.y = torch.cat([case.x, case.val_x[rows]]), torch.cat([case.y, case.val_y[rows]])
    return case, {}


def leaked_target():
    case = breast_cancer_raw()
    g = torch.Generator().manual_seed(0)
    case.x = torch.cat([case.x, case.y + 0.1 * torch.randn(case.y.shape, generator=g)], 1)
    case.val_x = torch.cat([case.val_x, case.val_y + 0.1 * torch.randn(case.val_y.shape, generator=g)], 1)
    torch.manual_seed(0)
    case.model = mlp([31, 64, 1])
    return case, {}


def sorted_batches():
    case = digits_mlp()
    order = torch.argsort(case.y, stable=True)
    data = torch.utils.data.TensorDataset(case.x[order], case.y[order])
    return case, {"data": torch.utils.data.DataLoader(data, batch_size=32)}  # shuffle=False


def ends_with(case, act):
    case.model = nn.Sequential(*case.model, act)
    return case, {}


def hidden_bias(value):
    case = digits_mlp()
    with torch.no_grad():
        case.model[0].bias.fill_(value)
    return case, {}


def frozen_first_layer():
    case = digits_mlp()
    case.model[0].requires_grad_(False)
    return case, {}


def optimizer_then_new_model():
    case = digits_mlp()
    case.optimizer  # built over the first model...
    torch.manual_seed(1)
    case.model = mlp([64, 128, 10])  # ...then the model is re-created
    return case, {}


class MixedCNN(SmallCNN):
    """D with a reshape (N, C, H, W) -> (C, N, H*W) where a permute was meant: rows mix."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        n, c = h.shape[:2]
        return self.head(h.reshape(c, n, -1).mean(2).t())


def batch_mixing():
    case = digits_cnn()
    torch.manual_seed(0)
    case.model = MixedCNN()
    return case, {}


def optimizer(make):
    case = digits_mlp()
    case.make_optimizer = make
    return case, {}


def no_zero_grad(model, opt, batch):
    loss = F.cross_entropy(model(batch[0]), batch[1])
    loss.backward()  # the planted fault: no opt.zero_grad()
    opt.step()
    return loss


def evaluate_forgets_eval(model, x):
    with torch.no_grad():  # the planted fault: no model.eval()
        return model(x)


def eval_in_train_mode():
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.5),
                               nn.Linear(128, 10))
    return case, {"evaluate": evaluate_forgets_eval}


class HalvedReLU(torch.autograd.Function):
    """A custom ReLU whose backward halves the gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 0.5 * grad * (x > 0)


class HalvedReLUModule(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return HalvedReLU.apply(x)


def wrong_backward():
    case = digits_mlp()
    case.model[1] = HalvedReLUModule()
    return case, {}


def final_bias():
    case = digits_mlp()
    with torch.no_grad():
        case.model[-1].bias[0] = 10.0  # +10 on one class
    return case, {}


PUBLIC = [  # (number, the planted family's slug, the planting)
    (1, "unnormalized-inputs", lambda: (breast_cancer_raw(), {})),
    (2, "nonfinite-data", nan_cells),
    (3, "labels-misaligned", lambda: (permuted_labels(), {})),
    (4, "label-noise", label_noise),
    (5, "conflicting-duplicates", conflicting_duplicates),
    (6, "train-test-overlap", overlap),
    (7, "target-leakage", leaked_target),
    (8, "class-imbalance", lambda: (imbalanced_binary(weights=(0.98, 0.02)), {})),
    (9, "unshuffled-batches", sorted_batches),
    (10, "double-softmax", lambda: ends_with(digits_mlp(), nn.Softmax(dim=1))),
    (11, "sigmoid-before-logits-loss", lambda: ends_with(moons_mlp(), nn.Sigmoid())),
    (12, "vanishing-gradients", lambda: (digits_mlp(hidden=(128,) * 9, act=nn.Sigmoid), {})),
    (13, "dying-relu", lambda: hidden_bias(-5.0)),
    (14, "exploding-init", lambda: (exploding_init(), {})),
    (15, "frozen-layer", frozen_first_layer),
    (16, "optimizer-wrong-params", optimizer_then_new_model),
    (17, "batch-mixing", batch_mixing),
    (18, "lr-too-high", lambda: optimizer(sgd(10.0))),
    (19, "lr-too-low", lambda: optimizer(lambda p: torch.optim.Adam(p, lr=1e-7))),
    (20, "missing-zero-grad", lambda: (digits_mlp(), {"train_step": no_zero_grad})),
    (21, "eval-in-train-mode", eval_in_train_mode),
    (22, "wrong-custom-backward", wrong_backward),
    (23, "wrong-init-loss", final_bias),
]


@pytest.mark.parametrize("number, slug, plant", PUBLIC, ids=[f"{n}-{s}" for n, s, _ in PUBLIC])
def test_the_whole_doctor_names_the_planted_family_of_each_public_case(number, slug, plant):
    case, over = plant()
    diagnosis = doctor(**{**case.kwargs(), **over}, rows=256)
    assert not [v for v in diagnosis if v.status == "error"], diagnosis.table()
    assert slug in diagnosis.faults(), f"case {number}: {diagnosis.faults()}\n{diagnosis.table()}"
