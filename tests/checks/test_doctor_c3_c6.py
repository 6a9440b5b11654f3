"""C3 (zeroed-input baseline), C4 (simple baselines), C5 (gradient check) and C6 (sample independence): each
fires on its planted fault (labels permuted, a wrong custom backward, batch mixing) with its evidence and
fix, and stays quiet on the healthy twins and the 7 healthy setups. The checks run through doctor(), which
also asserts that the caller's model and optimizer come back bit for bit."""

from __future__ import annotations

import math
import weakref

import pytest
import torch
from torch import nn

from nnrecipe.checks import baselines
from nnrecipe.checks.baselines import UNUSED_INPUTS_FIX, check_baselines
from nnrecipe.checks.doctor import doctor
from nnrecipe.checks.gradcheck import FINE, WRONG
from nnrecipe.checks.independence import FIX as MIXING_FIX
from nnrecipe.checks.setup import make_setup

from .cases import HEALTHY, SmallCNN, digits_cnn, digits_mlp

C3_C6 = ["C3", "C4", "C5", "C6"]


def verdicts(case, checks=C3_C6, **over):
    """doctor() on the case with only these checks: {id: verdict}."""
    d = doctor(**(case.kwargs() | over), checks=checks)
    return {v.id: v for v in d}


# ---------------------------------------------------------------- C3/C4: labels permuted


def permuted_labels(seed: int = 0):
    case = digits_mlp(seed)
    # a generator of its own: torch's global one and numpy's MT19937 share seeds and can undo a shuffle
    case.y = case.y[torch.randperm(len(case.y), generator=torch.Generator().manual_seed(2024))]
    return case


def test_c3_warns_when_labels_are_not_paired_with_inputs_and_the_doctor_names_them():
    v = verdicts(permuted_labels(), checks=C3_C6[:2])
    c3, c4 = v["C3"], v["C4"]
    ev = c3.evidence
    # the linear model cannot learn misaligned labels either: alone, C3 and C4 cannot tell them from inputs that
    # say little of the target (a healthy table of weak signal), so they warn
    assert (c3.status, c3.fix) == ("warn", baselines.WEAK_FIX)
    assert ev["steps"] == baselines.STEPS and ev["evaluated_on"] == "val_data" and ev["metric"] == "accuracy"
    assert ev["gain_of_room"] < baselines.MIN_GAIN and ev["loss_gain"] < baselines.MIN_LOSS_GAIN
    assert ev["metric_real_inputs"] < 0.2 and ev["loss_real_inputs"] > 2.2  # chance: 10 classes, ln 10 = 2.30
    # it still fits its own training rows: the sign of labels that do not belong to their inputs
    assert ev["metric_train_rows_real_inputs"] > ev["metric_train_rows_zero_inputs"] + 0.1
    assert c4.status == "warn" and "no better than the majority baseline" in c4.summary
    assert c4.evidence["metric_linear"] < 0.2
    # with the data checks the out-of-fold test names the fault, and C3 takes it
    d = doctor(**permuted_labels().kwargs(), checks=["data", "C3", "C4"])
    assert d.faults()[0] == "labels-misaligned" and d.by_id("C3")[0].fault == "labels-misaligned"


def test_c3_does_not_call_half_shuffled_labels_a_weak_signal():
    case = digits_mlp()
    shuffled = permuted_labels()
    half = len(case.y) // 2  # half the rows keep their labels: a linear model still learns, the network memorizes
    case.y = torch.cat([case.y[:half], shuffled.y[half:]])
    c3 = verdicts(case, checks=["C3", "C4"])
    assert c3["C4"].evidence["metric_linear"] > 0.3  # the linear model learns from the half that kept its labels
    assert c3["C3"].fix != baselines.WEAK_FIX and "say little of the target" not in c3["C3"].summary


def test_c3_c4_pass_on_the_healthy_twin():
    v = verdicts(digits_mlp(), checks=C3_C6[:2])
    c3, c4 = v["C3"], v["C4"]
    assert (c3.status, c3.fix, c4.status, c4.fix) == ("pass", "", "pass", "")
    # stopped as soon as both gains were twice their thresholds
    assert c3.evidence["gain_of_room"] > 2 * baselines.MIN_GAIN and c3.evidence["loss_gain"] > 2 * baselines.MIN_LOSS_GAIN
    assert c4.evidence["metric_linear"] > 0.9 and c4.evidence["metric_majority_or_mean"] < 0.15
    assert c3.evidence["steps"] == c4.evidence["steps"] < baselines.STEPS  # one shared run, stopped early


class Unplugged(nn.Module):
    """Inputs that never reach the model: multiplied by zero on the way in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0


def test_c3_names_unused_inputs_when_the_model_fits_nothing_without_val_data():
    case = digits_mlp()
    case.model = nn.Sequential(Unplugged(), *case.model)
    case.val_x = case.val_y = None
    c3 = verdicts(case, checks=C3_C6[:1])["C3"]
    ev = c3.evidence
    assert (c3.status, c3.fix) == ("fail", UNUSED_INPUTS_FIX)
    assert ev["evaluated_on"] == "the last 128 of the sampled rows (held out)"
    assert (ev["train_rows"], ev["eval_rows"]) == (384, 128)
    assert ev["metric_real_inputs"] == ev["metric_zero_inputs"]  # the same function of nothing
    assert ev["metric_train_rows_real_inputs"] == ev["metric_train_rows_zero_inputs"]


def test_c3_c4_with_a_train_step_and_no_loss_fn():
    """Without loss_fn the metric alone judges (accuracy here), through the caller's own step."""

    def step(model, opt, batch):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return loss

    v = verdicts(digits_mlp(), checks=C3_C6[:2], loss_fn=None, train_step=step, task="multiclass")
    assert v["C3"].status == v["C4"].status == "pass"
    assert v["C3"].evidence["loss_gain"] is None and v["C3"].evidence["gain_of_room"] > 0.5
    bad = verdicts(permuted_labels(), checks=C3_C6[:1], loss_fn=None, train_step=step, task="multiclass")["C3"]
    assert (bad.status, bad.fix) == ("warn", baselines.WEAK_FIX)  # the linear model at chance too (above)


def test_c4_warns_when_the_network_plateaus_below_the_linear_model():
    """C4's rule on a scripted run (real training noise belongs to the healthy tests): accuracy 0.30 and
    flat for the last 100 steps, against a linear model at 0.95."""
    case = digits_mlp()
    setup = make_setup(case.model, (case.x, case.y), loss_fn=case.loss_fn, optimizer=case.optimizer)
    run = baselines._Run("accuracy", 0.1, 0.95, "val_data", 512, 450, steps=400, real=0.30, zero=0.1,
                         history=[0.1] + [0.29] * 12 + [0.30] * 4)
    baselines._RUNS[id(setup)] = (weakref.ref(setup), run)
    v = check_baselines(setup)
    assert (v.id, v.status) == ("C4", "warn")
    assert v.summary == ("after 400 steps the network's accuracy 0.300 is clearly below the linear model's 0.950 "
                         "(error more than 2x and 0.1 above it) and no longer rising")
    assert v.fix.startswith("a linear model does better: tune the learning rate (C8)")
    assert v.evidence["rise_last_100_steps"] == pytest.approx(0.0111, abs=1e-4)
    run.history[-5:] = [0.20, 0.22, 0.25, 0.27, 0.30]  # still rising: a slow starter, not a plateau
    assert check_baselines(setup).status == "pass"


# ---------------------------------------------------------------- C5: a wrong custom backward


class CustomReLU(torch.autograd.Function):
    """The healthy twin: a custom ReLU Function with the right backward."""

    SCALE = 1.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @classmethod
    def backward(cls, ctx, grad):
        (x,) = ctx.saved_tensors
        return cls.SCALE * grad * (x > 0)


class HalvedReLU(CustomReLU):
    """ReLU whose backward halves the gradient: the planted fault."""

    SCALE = 0.5


class Act(nn.Module):
    def __init__(self, fn: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn.apply(x)


def with_activation(fn: type[torch.autograd.Function]):
    case = digits_mlp()
    case.model[1] = Act(fn)  # 64-128-10 with the custom ReLU in the middle
    return case


def test_c5_fails_on_a_halved_custom_backward():
    v = verdicts(with_activation(HalvedReLU), checks=C3_C6[2:3])["C5"]
    ev = v.evidence
    assert (v.id, v.status) == ("C5", "fail")
    # |g - g/2| / (|g| + |g/2|) = 1/3 for every tensor before the Function: the first layer and the input
    assert ev["max_relative_error"] == pytest.approx(1 / 3, abs=1e-3) and ev["max_relative_error"] > WRONG
    assert set(ev["worst_tensors"]) >= {"0.weight", "0.bias", "input[0]"}
    assert ev["worst_tensors"]["2.weight"] < FINE  # after the Function: right
    assert ev["custom"] == ["HalvedReLU", "Act"] and ev["dtype"] == "float64"
    assert v.fix.startswith("fix the backward of HalvedReLU: its gradient disagrees with finite differences")
    assert "relative error 3.3e-01 in 0.weight" in v.summary


def test_c5_passes_on_the_correct_custom_backward_and_skips_standard_layers():
    v = verdicts(with_activation(CustomReLU), checks=C3_C6[2:3])["C5"]
    assert (v.status, v.fix) == ("pass", "")
    assert v.evidence["max_relative_error"] <= FINE and v.evidence["coordinates"] == 40  # 5 tensors x 8
    plain = verdicts(digits_mlp(), checks=C3_C6[2:3])["C5"]
    assert (plain.status, plain.summary) == ("skipped", "only standard torch layers and loss (or nnrecipe's models, "
                                                        "made of them): autograd's gradients are trusted")


def test_c5_trusts_nnrecipes_tabm_and_the_packages_it_is_built_from():
    # TabM's piecewise-linear embeddings put kinks in the forward: checked as custom parts, healthy runs warned
    from nnrecipe import doctor_table
    from nnrecipe.testing import small_table

    v = next(v for v in doctor_table(small_table(200), "y") if v.id == "C5")
    assert v.status == "skipped" and "nnrecipe's models" in v.summary


def test_c5_without_a_loss_checks_a_random_projection_of_the_outputs():
    def step(model, opt, batch):
        opt.zero_grad()
        nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
        opt.step()

    v = verdicts(with_activation(HalvedReLU), checks=C3_C6[2:3], loss_fn=None, train_step=step,
                 task="multiclass")["C5"]
    assert v.status == "fail" and v.evidence["max_relative_error"] == pytest.approx(1 / 3, abs=1e-3)


class Kinked(nn.Module):
    """relu(x - 0.5) on inputs that are all 0.5: every input coordinate sits on the kink."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(x - 0.5) + x)


def test_c5_leaves_out_coordinates_on_a_relu_kink():
    torch.manual_seed(0)
    x, y = torch.full((16, 4), 0.5), torch.randn(16, 1)
    d = doctor(Kinked(), (x, y), loss_fn=nn.MSELoss(), checks=C3_C6[2:3])
    v = d.by_id("C5")[0]
    assert v.status == "pass" and v.evidence["kinks_left_out"] > 0


# ---------------------------------------------------------------- C6: batch mixing


class MixedCNN(SmallCNN):
    """Setup D with the classic bug: reshape (N, C, H, W) to (C, N, H*W) instead of permuting, so each
    pooled "row" blends samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (N, 16, 8, 8)
        n, c = h.shape[:2]
        return self.head(h.reshape(c, n, -1).mean(2).t())  # right: h.reshape(n, c, -1).mean(2)


def test_c6_fails_when_a_reshape_mixes_the_batch():
    case = digits_cnn()
    torch.manual_seed(0)
    case.model = MixedCNN()
    v = verdicts(case, checks=C3_C6[3:])["C6"]
    ev = v.evidence
    assert (v.id, v.status, v.fix) == ("C6", "fail", MIXING_FIX)
    assert ev["method"] == "input gradients" and ev["rows"] == 8
    assert ev["dependencies"]["output 0"] == [1, 2, 3, 4, 5, 6, 7]
    assert ev["max_cross_dependence"] > 0.1
    assert v.summary.startswith("output 0 depends on input rows [1, 2, 3, 4, 5, 6, 7] besides its own (8 of 8")


def test_c6_passes_on_the_healthy_cnn():
    v = verdicts(digits_cnn(), checks=C3_C6[3:])["C6"]
    assert (v.status, v.fix) == ("pass", "")
    assert v.evidence["max_cross_dependence"] == 0.0 and v.evidence["dependencies"] == {}


class Tokens(nn.Module):
    """Token ids -> embedding -> mean over the sequence; `mix` averages over the batch as well (a bug)."""

    def __init__(self, mix: bool) -> None:
        super().__init__()
        self.emb, self.out, self.mix = nn.Embedding(20, 8), nn.Linear(8, 3), mix

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids).mean(1)  # (N, 8)
        return self.out(h - h.mean(0) if self.mix else h)


@pytest.mark.parametrize("mix", [False, True])
def test_c6_with_token_ids_runs_each_row_alone(mix):
    torch.manual_seed(0)
    ids, y = torch.randint(0, 20, (32, 5)), torch.randint(0, 3, (32,))
    v = doctor(Tokens(mix), (ids, y), loss_fn=nn.CrossEntropyLoss(), checks=C3_C6[3:]).by_id("C6")[0]
    assert v.evidence["method"] == "each row alone vs in the batch"
    assert v.status == ("fail" if mix else "pass")


# ---------------------------------------------------------------- the healthy setups, and the caller's objects


@pytest.mark.parametrize("name", list(HEALTHY))
def test_c3_to_c6_stay_quiet_on_the_healthy_setups(name):
    v = verdicts(HEALTHY[name]())
    assert set(v) == {"C3", "C4", "C5", "C6"}
    loud = {k: (x.status, x.summary) for k, x in v.items() if x.status in ("warn", "fail")}
    assert not loud
    assert v["C3"].status == v["C4"].status == v["C6"].status == "pass"
    assert v["C5"].status == ("pass" if name == "D" else "skipped")  # D's SmallCNN is a custom class


def test_the_whole_doctor_leaves_the_callers_objects_alone_where_these_checks_run():
    """doctor() asserts the bit-for-bit promise itself; here C3-C6 all run (C5 on the custom Function)."""
    case = with_activation(HalvedReLU)
    d = doctor(**case.kwargs())
    assert {v.id: v.status for v in d if v.id in ("C3", "C4", "C5", "C6")} == {
        "C3": "pass", "C4": "pass", "C5": "fail", "C6": "pass"}
    assert not math.isnan(d.by_id("C3")[0].evidence["loss_real_inputs"])


class Noisy(nn.Module):
    """Noise in the forward even in eval mode: finite differences would measure the noise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * torch.randn_like(x)


def test_c5_skips_a_random_forward_and_c3_c4_skip_too_few_rows():
    case = digits_mlp()
    case.model = nn.Sequential(Noisy(), *case.model)
    v = verdicts(case, checks=C3_C6[2:3])["C5"]
    assert v.status == "skipped" and v.summary == ("could not compare gradients in float64 on 4 rows: the forward "
                                                   "gives a different loss on the same rows twice in eval mode")
    small = digits_mlp()
    small.x, small.y, small.val_x, small.val_y = small.x[:60], small.y[:60], None, None
    v = verdicts(small, checks=C3_C6[:2])
    assert v["C3"].status == v["C4"].status == "skipped"
    assert v["C3"].summary == "too few rows to evaluate on (15, fewer than 20): pass val_data=... or more data"


def test_c6_warns_on_batchnorm_without_running_statistics():
    """Batch statistics at evaluation mix rows by design: a warning, with the setting to change."""
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32, track_running_stats=False), nn.ReLU(),
                               nn.Linear(32, 10))
    v = verdicts(case, checks=C3_C6[3:])["C6"]
    assert v.status == "warn" and v.fix.startswith("set track_running_stats=True")
    assert "BatchNorm1d without running statistics uses batch statistics at evaluation" in v.summary
