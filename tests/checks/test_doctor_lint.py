"""The setup lint (nnrecipe.checks.lint): the "lint" rules, with D3 (non-finite data) and D8 (feature
scales) of nnrecipe.checks.data_checks, each on a planted fault (unnormalized inputs, NaN cells, a softmax
or sigmoid before the loss, an optimizer on a replaced model, a missing zero_grad, evaluation in training
mode) or a fault of its own, with its evidence and fix, and quiet on the healthy twin.
All run through doctor(), which also holds the caller's model and optimizer bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnrecipe.checks.doctor import Diagnosis, doctor
from nnrecipe.checks.lint import check_evaluate, check_lint
from nnrecipe.checks.setup import make_setup

from .cases import HEALTHY, breast_cancer_raw, breast_cancer_scaled, diabetes_mlp, digits_bn_dropout, digits_mlp, \
    moons_mlp

IDS = ("D3", "D8", "lint")
SOFTMAX_FIX = "remove the softmax: CrossEntropyLoss takes raw logits and applies log_softmax itself"
SIGMOID_FIX = "feed raw outputs: remove the final sigmoid (BCEWithLogitsLoss takes logits)"
ZERO_GRAD_FIX = "call optimizer.zero_grad() before backward, once per step"
EVAL_FIX = "call model.eval() (and torch.no_grad()) before evaluating, model.train() before training"
SCALE_FIX = ("standardize each feature with the training split's mean and std (or scale it to [-1, 1]) and apply "
             "the same transform to validation and test data")


def lint(case, **kwargs):
    """The lint's verdicts on a case through doctor(); kwargs override the case's arguments."""
    diagnosis = doctor(**{**case.kwargs(), **kwargs}, checks=["data", "lint"])
    return Diagnosis(v for v in diagnosis if v.id in IDS)  # D4 and leakage: tests/checks/test_doctor_data.py


def loud(diagnosis):
    return [v for v in diagnosis if v.status in ("warn", "fail")]


def one(diagnosis, name):
    found = [v for v in diagnosis if v.name == name]
    assert len(found) == 1, diagnosis.table()
    return found[0]


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_setups_pass_with_one_verdict_per_family(name):
    diagnosis = lint(HEALTHY[name]())
    assert [v.id for v in diagnosis] == list(IDS)
    assert [v.status for v in diagnosis] == ["pass"] * 3, diagnosis.table()


# ---------------------------------------------------------------- D8: unnormalized inputs
def test_raw_feature_scales_fail_and_the_standardized_twin_passes():
    d8 = lint(breast_cancer_raw()).by_id("D8")[0]
    assert d8.status == "fail" and d8.fix == SCALE_FIX
    ev = d8.evidence
    assert ev["span"] > 1e5  # 0.0298 (fractal dimension error) to 4254 (worst area)
    assert (ev["smallest"]["feature"], ev["largest"]["feature"]) == (19, 23)
    assert ev["largest"]["max_abs"] == pytest.approx(4254.0)
    twin = lint(breast_cancer_scaled()).by_id("D8")[0]
    assert twin.status == "pass" and twin.evidence["span"] < 10


def test_pixels_left_in_0_to_255_warn_on_their_magnitude():
    case = digits_mlp()
    case.x = case.x * 255  # A's pixels before the division: one scale, far outside [-1, 1]
    d8 = lint(case).by_id("D8")[0]
    assert d8.status == "warn" and d8.fix == SCALE_FIX
    assert d8.evidence["span"] == 16.0 and d8.evidence["max_rms"] > 200


# ---------------------------------------------------------------- D3: NaN / inf in the data
def test_nan_cells_fail_with_their_count_columns_and_rows():
    case = digits_mlp()
    x = case.x.clone()
    cells = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.01  # 1% of cells
    x[cells] = float("nan")
    case.x = x
    diagnosis = lint(case, rows=len(x))  # every row sampled: the counts are the planted ones
    d3 = diagnosis.by_id("D3")[0]
    assert d3.status == "fail"
    assert d3.fix.startswith("clean or impute the non-finite values before step 1")
    ev = d3.evidence
    assert ev["nan"] == int(cells.sum()) and ev["inf"] == 0
    assert ev["counts"] == {"data x": int(cells.sum())}
    assert ev["rows_affected"] == int(cells.any(1).sum()) and ev["rows_sampled"] == len(x)
    assert ev["n_columns"] == int(cells.any(0).sum()) and len(ev["sample_rows"]) == 10
    # the lint still judges the setup on the finite rows: no false finding from the NaN rows
    assert not loud(diagnosis.by_id("lint")) and diagnosis.by_id("D8")[0].status == "pass"


def test_inf_in_a_validation_target_is_found_too():
    case = diabetes_mlp()
    case.val_y = case.val_y.clone()
    case.val_y[3, 0] = float("inf")
    d3 = lint(case, rows=10_000).by_id("D3")[0]
    assert d3.status == "fail" and d3.evidence["counts"] == {"val_data y": 1} and d3.evidence["inf"] == 1
    assert d3.evidence["first_tensor"] == "val_data y" and len(d3.evidence["sample_rows"]) == 1
    # rows are positions in the doctor's seeded sample (Setup keeps no index back to the caller's rows)
    setup = make_setup(**{k: v for k, v in case.kwargs().items()}, rows=10_000)
    assert torch.isinf(setup.val_y[d3.evidence["sample_rows"][0], 0])


# ---------------------------------------------------------------- outputs against the loss
def test_softmax_before_cross_entropy_fails():
    case = digits_mlp()
    case.model = nn.Sequential(*case.model, nn.Softmax(dim=1))
    v = one(lint(case), "softmax before the loss")
    assert v.status == "fail" and v.fix == SOFTMAX_FIX
    assert v.summary.startswith("the model ends with nn.Softmax: every row lies in [0, 1] and sums to 1")
    assert abs(v.evidence["row_sum_min"] - 1) < 1e-4 and abs(v.evidence["row_sum_max"] - 1) < 1e-4


class FunctionalHead(nn.Module):
    """A model whose output activation is a call in forward, not a module: only the outputs show it."""

    def __init__(self, body: nn.Module, act) -> None:
        super().__init__()
        self.body, self.act = body, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x))


def test_a_softmax_inside_forward_is_found_from_the_outputs():
    case = digits_mlp()
    case.model = FunctionalHead(case.model, lambda z: z.softmax(1))
    v = one(lint(case), "softmax before the loss")
    assert v.status == "fail" and v.summary.startswith("the outputs are probabilities")


def test_log_softmax_before_cross_entropy_is_harmless_and_passes():
    # CrossEntropyLoss(log_softmax(z)) == CrossEntropyLoss(z): log_softmax is idempotent, so no fault
    case = digits_mlp()
    case.model = nn.Sequential(*case.model, nn.LogSoftmax(dim=1))
    v = lint(case).by_id("lint")[0]
    assert v.status == "pass" and "harmless" in v.evidence["output"]


def test_nll_loss_wants_log_probabilities():
    case = digits_mlp()
    v = one(lint(case, loss_fn=nn.NLLLoss()), "logits into NLLLoss")
    assert v.status == "fail"
    assert v.fix == "end the model with LogSoftmax, or use CrossEntropyLoss on the raw logits"
    case.model = nn.Sequential(*case.model, nn.LogSoftmax(dim=1))
    assert not loud(lint(case, loss_fn=nn.NLLLoss()))


def test_sigmoid_before_bce_with_logits_fails():
    case = moons_mlp()
    case.model = nn.Sequential(*case.model, nn.Sigmoid())
    v = one(lint(case), "sigmoid before the loss")
    assert v.status == "fail" and v.fix == SIGMOID_FIX
    assert v.summary.startswith("the model ends with nn.Sigmoid")
    assert 0 <= v.evidence["output_min"] and v.evidence["output_max"] <= 1
    case = moons_mlp()
    case.model = FunctionalHead(case.model, torch.sigmoid)
    v = one(lint(case), "sigmoid before the loss")
    assert v.summary.startswith("the outputs are confined to [0, 1]")


def test_bce_loss_wants_probabilities():
    case = moons_mlp()
    v = one(lint(case, loss_fn=nn.BCELoss()), "logits into BCELoss")
    assert v.status == "fail"
    assert v.fix == "use BCEWithLogitsLoss on the raw outputs (or end the model with a sigmoid)"
    case.model = nn.Sequential(*case.model, nn.Sigmoid())
    assert not loud(lint(case, loss_fn=nn.BCELoss()))


# ---------------------------------------------------------------- labels
def test_class_labels_out_of_range_fail():
    case = digits_mlp()
    case.y = case.y + 1  # classes 1..10 for 10 outputs
    v = one(lint(case, rows=10_000), "labels")
    assert v.status == "fail" and v.fix == "encode the classes as 0..9, or give the model one output per class"
    assert (v.evidence["y_min"], v.evidence["y_max"], v.evidence["output_width"]) == (1, 10, 10)
    assert v.evidence["out_of_range"] == int((case.y == 10).sum())  # the former 9s


def test_ignore_index_labels_are_not_out_of_range():
    case = digits_mlp()
    case.y = case.y.clone()
    case.y[::10] = -100  # CrossEntropyLoss's default ignore_index
    assert not loud(lint(case))


def test_binary_labels_in_minus_one_one_fail():
    case = moons_mlp()
    case.y = case.y * 2 - 1
    v = one(lint(case), "labels")
    assert v.status == "fail" and (v.evidence["y_min"], v.evidence["y_max"]) == (-1.0, 1.0)
    assert v.fix == "map the labels to 0 and 1 (e.g. y = (y + 1) / 2 for labels in {-1, 1})"


# ---------------------------------------------------------------- regression losses
def test_class_indices_in_a_regression_loss_fail():
    case = digits_mlp()
    v = one(lint(case, loss_fn=nn.MSELoss(), task=None), "class labels in a regression loss")
    assert v.status == "fail"
    assert v.fix == "use CrossEntropyLoss for class labels (one output per class, y as int64 indices)"
    assert v.evidence == {"output_shape": [512, 10], "y_shape": [512], "y_distinct": 10}


def test_integer_targets_with_one_output_warn():
    case = diabetes_mlp()
    case.y = (case.y > 0).long()  # two classes as int64, one output, MSE
    v = one(lint(case), "class labels in a regression loss")
    assert v.status == "warn"
    assert v.fix == "use CrossEntropyLoss for class labels; for a count or a score, cast y to float"


def test_a_target_shape_that_broadcasts_fails():
    case = diabetes_mlp()
    case.y = case.y[:, 0]  # (N,) against outputs (N, 1): MSELoss broadcasts to (N, N)
    v = one(lint(case), "target shape")
    assert v.status == "fail" and v.fix == "reshape y to [331, 1] (y[:, None] for one output)"


@pytest.mark.parametrize("act, bound", [(nn.Sigmoid, "[0, 1]"), (nn.Tanh, "[-1, 1]"), (nn.ReLU, "[0, inf)")])
def test_an_output_activation_that_cannot_reach_the_target_fails(act, bound):
    case = diabetes_mlp()  # standardized target in [-1.6, 2.5]
    case.model = nn.Sequential(*case.model, act())
    v = one(lint(case), "output activation")
    assert v.status == "fail" and v.evidence["output_range"] == bound
    assert v.fix == f"remove the final {act.__name__} (a linear output), or rescale the target into {bound}"
    assert v.summary.startswith(f"the model ends with nn.{act.__name__} but the targets span [-1.573, 2.518]")


def test_a_sigmoid_output_on_a_target_in_0_1_passes():
    case = diabetes_mlp()
    case.y = (case.y - case.y.min()) / (case.y.max() - case.y.min())
    case.model = nn.Sequential(*case.model, nn.Sigmoid())
    assert not loud(lint(case))


# ---------------------------------------------------------------- structure
def test_two_linear_layers_in_a_row_warn_through_nesting_and_passthrough_layers():
    case = digits_mlp()
    case.model = nn.Sequential(nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128)), nn.Dropout(0.2),
                               nn.Linear(128, 10))
    v = one(lint(case), "nonlinearity")
    assert v.status == "warn" and v.evidence["pairs"] == ["0.0 -> 2"]
    assert v.fix == "two linear layers in a row compose to one linear map: add an activation (ReLU) between them"


def test_optimizer_on_other_parameters_fails_and_a_partial_one_warns():
    case = digits_mlp()
    stale = torch.optim.Adam(nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).parameters())
    v = one(lint(case, optimizer=stale), "optimizer parameters")  # the model re-created after
    assert v.status == "fail" and v.fix == "rebuild the optimizer on model.parameters() after the model is (re-)created"
    assert (v.evidence["trainable_parameters"], v.evidence["in_optimizer"]) == (4, 0)
    partial = torch.optim.Adam(case.model[2].parameters())
    v = one(lint(case, optimizer=partial), "optimizer parameters")
    assert v.status == "warn" and v.evidence["missing"] == ["0.weight", "0.bias"]
    for p in case.model[0].parameters():
        p.requires_grad_(False)  # frozen on purpose: not missing
    assert not loud(lint(case, optimizer=partial))


def test_a_forward_that_raises_is_reported():
    case = digits_mlp()
    case.model = nn.Sequential(nn.Linear(32, 10))
    v = one(lint(case), "forward")
    assert v.status == "fail" and v.fix == "make the model's expected input match the data's shape and dtype"


# ---------------------------------------------------------------- the caller's train_step: a missing zero_grad
def steps(kind: str):
    loss_fn = nn.CrossEntropyLoss()

    def step(model, opt, batch):
        *x, y = batch
        if kind in ("healthy", "early"):
            opt.zero_grad()
        if kind == "accumulate":  # two micro-batches, one step: a second backward on purpose
            opt.zero_grad()
            half = len(y) // 2
            loss_fn(model(x[0][:half]), y[:half]).backward()
            loss = loss_fn(model(x[0][half:]), y[half:])
        else:
            loss = loss_fn(model(*x), y)
        if kind == "early":
            opt.step()
        loss.backward()
        if kind != "early":
            opt.step()
        return loss

    return step


def test_a_train_step_that_never_zeroes_gradients_fails_with_the_growing_norm():
    case = digits_mlp()
    v = one(lint(case, train_step=steps("no_zero_grad"), loss_fn=None), "train_step")
    assert v.status == "fail" and v.fix == ZERO_GRAD_FIX
    before, after = v.evidence["grad_norm_before_backward"], v.evidence["grad_norm_after_step"]
    assert before[0] == 0 and before[1] > 0 and before[2] > before[1]
    assert after[0] < after[1] < after[2]
    assert v.summary.startswith("gradients already stepped with are still there when backward runs (calls [1, 2])")


def test_a_train_step_that_steps_before_backward_fails():
    case = digits_mlp()
    v = one(lint(case, train_step=steps("early"), loss_fn=None), "train_step")
    assert v.status == "fail"
    assert v.fix == "call loss.backward() before optimizer.step(): zero_grad, forward, loss, backward, step"
    assert v.evidence["max_parameter_change"] == 0.0  # Adam never saw a gradient: the model never moved


@pytest.mark.parametrize("kind", ["healthy", "accumulate"])
def test_a_correct_train_step_passes(kind):
    case = digits_mlp()
    case.model.zero_grad()
    case.loss_fn(case.model(case.x[:8]), case.y[:8]).backward()  # handed over mid-training, a gradient left
    diagnosis = lint(case, train_step=steps(kind), loss_fn=None)
    assert [v.status for v in diagnosis] == ["pass"] * 3, diagnosis.table()


def test_a_train_step_that_ignores_the_optimizer_it_is_given_warns():
    case = digits_mlp()
    own = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)  # an outside optimizer, not the copy's

    def step(model, opt, batch):
        own.zero_grad()
        model.zero_grad()
        loss = case.loss_fn(model(batch[0]), batch[1])
        loss.backward()
        own.step()
        return loss

    v = one(lint(case, train_step=step, loss_fn=None), "train_step")
    assert v.status == "warn" and v.evidence["optimizer_steps"] == 0


# ---------------------------------------------------------------- evaluation mode
def case_21():
    """A with Dropout(0.5) and BatchNorm."""
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.5),
                               nn.Linear(128, 10))
    return case


def evaluate_without_eval(model, x):
    with torch.no_grad():
        return model(x)


def evaluate_properly(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def test_evaluation_without_eval_fails_and_with_eval_passes():
    case = case_21()
    setup = make_setup(**{k: v for k, v in case.kwargs().items()})
    v = check_evaluate(setup, evaluate_without_eval)
    assert v.status == "fail" and v.fix == EVAL_FIX
    assert v.evidence["two_passes_max_diff"] > 0.1 and v.evidence["eval_mode_max_diff"] == 0
    assert check_evaluate(setup, evaluate_properly).status == "pass"
    # wired through the setup as doctor(evaluate=...) would: the lint then reports it
    setup.evaluate = evaluate_without_eval  # type: ignore[attr-defined]
    assert one(check_lint(setup), "evaluation mode").status == "fail"
    setup.evaluate = evaluate_properly  # type: ignore[attr-defined]
    assert not loud(check_lint(setup))


def test_without_an_evaluate_function_the_lint_shows_what_training_mode_does():
    # the doctor does not see the caller's evaluation; a model handed over in training mode is normal
    for case in (case_21(), digits_bn_dropout()):
        v = lint(case).by_id("lint")[0]
        assert v.status == "pass" and v.evidence["handed_over_in"] == "training mode"
        assert v.evidence["train_mode_max_diff"] > 0.1 and v.evidence["eval_mode_max_diff"] == 0
        assert "evaluate it after model.eval(), under torch.no_grad()" in v.summary
    assert "train_mode_max_diff" not in lint(digits_mlp()).by_id("lint")[0].evidence


def test_an_lbfgs_step_whose_closure_runs_backward_inside_step_passes():
    case = digits_mlp()

    def step(model, opt, batch):
        def closure():
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
            loss.backward()
            return loss

        return opt.step(closure)

    lbfgs = torch.optim.LBFGS(case.model.parameters(), max_iter=2)
    diagnosis = lint(case, train_step=step, loss_fn=nn.functional.cross_entropy, optimizer=lbfgs)
    assert [v.status for v in diagnosis] == ["pass"] * 3, diagnosis.table()
    assert diagnosis.by_id("lint")[0].evidence["loss"] == "ce"  # the functional loss is known too


def test_labels_are_judged_with_a_train_step_and_no_loss_fn():
    case = digits_mlp()
    case.y = case.y + 1
    diagnosis = lint(case, train_step=steps("healthy"), loss_fn=None, task="multiclass")
    v = one(diagnosis, "labels")
    assert v.status == "fail" and v.evidence["output_width"] == 10
    v = one(diagnosis, "train_step")  # the caller's step fails on those labels: reported, the lint goes on
    assert v.status == "fail" and v.summary.startswith("train_step raised on a batch of 64 rows: IndexError")


def test_batchnorm_alone_in_training_mode_is_caught_by_its_moving_statistics():
    # no dropout: two training-mode passes over the same rows agree, but BatchNorm normalizes by the batch
    case = digits_mlp()
    case.model = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    setup = make_setup(**{k: v for k, v in case.kwargs().items()})
    v = check_evaluate(setup, evaluate_without_eval)
    assert v.status == "fail" and v.fix == EVAL_FIX
    assert v.evidence["two_passes_max_diff"] == 0 and v.evidence["batchnorm_updates"] == 2
    assert v.summary.startswith("two evaluation passes updated BatchNorm's running statistics 2 times")
    assert check_evaluate(setup, evaluate_properly).status == "pass"


def test_doctor_evaluate_argument_catches_case_21_and_leaves_the_model_as_it_was():
    case = case_21()
    bad = doctor(**case.kwargs(), evaluate=evaluate_without_eval, checks=["lint"])
    [v] = [v for v in bad if v.name == "evaluation mode"]
    assert v.status == "fail" and v.fix == EVAL_FIX
    assert case.model.training  # the caller's model: still in the mode it was handed over in
    good = doctor(**case.kwargs(), evaluate=evaluate_properly, checks=["lint"])
    assert not loud(good)


def test_d3_names_the_callers_rows():
    case = digits_mlp()
    x = case.x.clone()
    x[[7, 300, 1000], 5] = float("nan")
    [v] = [v for v in doctor(**{**case.kwargs(), "data": (x, case.y)}, rows=len(x),
                             checks=["data"]) if v.id == "D3"]
    assert v.status == "fail" and v.evidence["rows"] == [7, 300, 1000]
    assert "3 of 1347 sampled rows (rows 7, 300, 1000), columns 5" in v.summary
