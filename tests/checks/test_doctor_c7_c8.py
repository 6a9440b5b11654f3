"""C7 (gradient flow per layer) and C8 (the curves of a short run): each fires on its planted fault with its
evidence and fix, and stays quiet on the healthy setups. The checks run through doctor(), which also asserts
that the caller's model and optimizer come back bit for bit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnrecipe.checks.curves import check_batch_order, check_longer, diagnose_curves
from nnrecipe.checks.doctor import doctor
from nnrecipe.checks.verdict import Verdict

from .cases import HEALTHY, Case, breast_cancer_raw, digits_mlp, mlp

C7_C8 = ["C7", "C8"]

FIX_VANISH = ("use ReLU-family activations in the hidden layers instead of sigmoid/tanh, He (Kaiming) init, and "
              "BatchNorm (or residual connections) so the gradient reaches the first layers")
FIX_EXPLODE = ("initialise with He (Kaiming) init, or Xavier for tanh, so activations keep their scale from layer "
               "to layer, and clip the gradient norm (e.g. clip_norm=1.0); lower the learning rate if it still "
               "diverges")
FIX_DEAD = "use LeakyReLU (or GELU), re-initialise (He init, biases at 0, not negative) and lower the learning rate"
FIX_SATURATED = ("standardize the inputs and use Xavier (Glorot) init, or ReLU-family activations in the hidden "
                 "layers, so the pre-activations stay within |z| < 5")
FIX_FROZEN = "set requires_grad=True on these parameters unless freezing them is on purpose (fine-tuning)"
FIX_DETACHED = ("fix the graph: remove the .detach(), .data, .item() or numpy round trip between these layers and "
                "the loss, or drop the layers forward does not use")
FIX_OPTIMIZER = ("build the optimizer after the model, over model.parameters(), and rebuild it whenever the model "
                 "is re-created or layers are added")
FIX_UNCHANGED = ("check that the training step calls optimizer.step() on an optimizer holding these parameters, "
                 "with a learning rate > 0")
FIX_RATIO_LOW = "raise the learning rate (run the LR range test, T4: nnrecipe's Trainer.lr_find)"
FIX_RATIO_HIGH = "lower the learning rate (run the LR range test, T4: nnrecipe's Trainer.lr_find)"
FIX_HIGH = ("lower the learning rate: run the LR range test (T4, Trainer.lr_find) and take about half the rate "
            "where the loss starts to diverge (Lavanya Shukla); clip the gradient norm")
FIX_LOW = ("raise the learning rate (x10), or pick it with the LR range test (T4, Trainer.lr_find); if C7 reports "
           "missing gradients or dead units, fix those first")
FIX_OVERFIT = ("regularize (weight decay, dropout, augmentation), stop early at the best validation epoch "
               "(EarlyStopping), or get more data")
FIX_UNDERFIT = ("add capacity (wider or deeper layers) and train longer; lower the regularization; check the "
                "features and the learning rate")
FIX_ABOVE_PRIOR = ("the model does worse than predicting the prior: fix the init and the output scale first (C2: "
                   "loss at init; C7: exploding gradients), then tune the learning rate")
FIX_SORTED = "shuffle the training data every epoch (DataLoader(..., shuffle=True))"


def run(case: Case) -> list[Verdict]:
    return list(doctor(**case.kwargs(), checks=C7_C8))


def named(verdicts: list[Verdict], id: str, name: str) -> Verdict:
    found = [v for v in verdicts if v.id == id and v.name == name]
    assert len(found) == 1, [v.line() for v in verdicts]
    return found[0]


def statuses(verdicts: list[Verdict], id: str) -> list[tuple[str, str]]:
    return [(v.name, v.status) for v in verdicts if v.id == id]


def with_optimizer(case: Case, make: object) -> Case:
    case.make_optimizer = make  # type: ignore[assignment]
    return case


# ---------------------------------------------------------------- healthy twins


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_c7_c8_stay_quiet_on_the_healthy_setups(name: str):
    verdicts = run(HEALTHY[name]())
    assert statuses(verdicts, "C7") == [("gradient flow", "pass")]
    assert statuses(verdicts, "C8") == [("learning curves", "pass")]
    c7, c8 = named(verdicts, "C7", "gradient flow"), named(verdicts, "C8", "learning curves")
    assert 0.2 < c7.evidence["grad_ratio"] < 1.0  # measured 0.25-0.84
    assert 1e-3 < c7.evidence["update_ratio"] < 0.1  # measured 9.4e-3 to 5.7e-2
    assert c7.evidence["dead_units_max"] < 0.4  # measured <= 0.375 (B)
    assert c8.evidence["train_loss_last"] < c8.evidence["train_loss_first"]
    assert (c7.fix, c8.fix) == ("", "")


# ---------------------------------------------------------------- C7: gradient flow


def test_c7_vanishing_gradients_in_a_10_layer_sigmoid_mlp():
    case = digits_mlp(hidden=(128,) * 9, act=nn.Sigmoid)
    v = named(run(case), "C7", "vanishing gradients")
    ev = v.evidence
    assert v.status == "fail" and v.fix == FIX_VANISH
    assert ev["layers"] == 10 and (ev["first_layer"], ev["last_layer"]) == ("0", "18")
    assert ev["grad_ratio"] < 1e-6 and ev["grad_first"] < 1e-6  # measured 2.5e-8 and 1.5e-8
    assert ev["grad_last"] > 0.1
    assert v.summary.startswith("the first layer's gradient (1.5e-08) is 2.5e-08 times the last layer's")


def test_c7_dead_relu_units_with_hidden_biases_at_minus_5():
    case = digits_mlp()
    with torch.no_grad():
        case.model[0].bias.fill_(-5.0)
    verdicts = run(case)
    v = named(verdicts, "C7", "dead ReLU units")
    assert v.status == "fail" and v.fix == FIX_DEAD
    assert v.evidence["dead_units_max"] == 1.0 and v.evidence["zero_gradient_share"] == 1.0
    assert v.evidence["dead_layers"] == ["1"]
    assert v.summary == ("100% of the units of ReLU '1' are 0 on every row, and 100% of the hidden layers' "
                         "weight-gradient entries are exactly 0")
    assert statuses(verdicts, "C7") == [("dead ReLU units", "fail")]  # no vanishing: zero is not small


class FunctionalRelu(nn.Module):
    """A model whose ReLU no hook can see: F.relu inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))


def test_c7_dead_units_behind_a_functional_relu_show_in_the_zero_gradients():
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = FunctionalRelu()
    with torch.no_grad():
        case.model.l1.bias.fill_(-5.0)
    v = named(run(case), "C7", "dead ReLU units")
    assert v.status == "fail" and v.fix == FIX_DEAD
    # l2's gradient is all 0; l3 still sees relu(l2's bias): 96.5% over both
    assert v.evidence["zero_gradient_share"] > 0.9 and v.evidence["dead_layers"] == []
    assert v.summary.endswith("% of the hidden layers' weight-gradient entries are exactly 0")


def exploding_case(std: float) -> Case:
    case = digits_mlp(hidden=(128,) * 7)
    with torch.no_grad():
        for m in case.model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, std)
    return case


def test_c7_exploding_init_shows_in_the_gradient_at_the_layer_outputs():
    verdicts = run(exploding_case(10.0))
    v = named(verdicts, "C7", "exploding gradients")
    assert v.status == "fail" and v.fix == FIX_EXPLODE
    # the weight gradients are level across layers (activations grow as fast as the error): AUTOTRAINER's
    # ratio on them misses it; the back-propagated error grows 2e13 times
    assert 0.1 < v.evidence["grad_ratio"] < 70
    assert v.evidence["output_grad_ratio"] > 1e12
    assert v.evidence["grad_first"] > 1e10 and v.evidence["loss_first"] > 1e14
    assert v.summary.startswith("the gradient at the layer outputs grows 2.0e+13 times")
    assert not [x for x in verdicts if x.name == "update/weight ratio"]  # huge weights, not a low rate
    c8 = named(verdicts, "C8", "loss far above the prior")  # its loss falls, from 1e15: no rate fixes that
    assert c8.status == "fail" and c8.fault == "exploding-init" and FIX_EXPLODE in c8.fix  # C7 names the cause
    assert c8.evidence["train_loss_last"] > 1e13 * c8.evidence["baseline_loss"]


def test_c7_non_finite_gradients_end_the_run_and_say_where():
    verdicts = run(exploding_case(1e4))  # activations overflow float32 in the first forward
    v = named(verdicts, "C7", "exploding gradients")
    assert v.status == "fail" and v.fix == FIX_EXPLODE
    assert v.summary == "gradients of 0.bias, 0.weight, 10.bias became non-finite at step 1"
    assert v.evidence["step"] == 1 and "0.weight" in v.evidence["nonfinite_gradients"]
    c8 = named(verdicts, "C8", "loss non-finite at init")
    assert c8.status == "fail" and c8.fault == "exploding-init" and c8.fix == FIX_ABOVE_PRIOR


def test_c7_frozen_first_layer():  # requires_grad=False
    case = digits_mlp()
    case.model[0].requires_grad_(False)
    verdicts = run(case)
    v = named(verdicts, "C7", "frozen parameters")
    assert v.status == "warn" and v.fix == FIX_FROZEN
    assert v.evidence == {"frozen": 2, "names": ["0.weight", "0.bias"]}
    assert statuses(verdicts, "C7") == [("frozen parameters", "warn")]


def test_c7_every_parameter_frozen():
    case = digits_mlp()
    case.model.requires_grad_(False)
    verdicts = run(case)
    v = named(verdicts, "C7", "frozen parameters")
    assert (v.status, v.summary) == ("fail", "no parameter requires a gradient: nothing can learn")
    assert v.evidence["frozen"] == 4 and v.fix == FIX_FROZEN
    assert statuses(verdicts, "C8") == [("learning curves", "skipped")]


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.relu(self.l1(x)).detach())  # the planted fault: l1 never learns


def test_c7_a_detach_mid_network_leaves_the_first_layer_without_gradient():  # a .detach()
    case = digits_mlp()
    torch.manual_seed(0)
    case.model = Detached()
    verdicts = run(case)
    v = named(verdicts, "C7", "no gradient")
    assert v.status == "fail" and v.fix == FIX_DETACHED
    assert v.evidence == {"no_gradient": 2, "names": ["l1.weight", "l1.bias"], "steps": 10}
    assert v.summary == "2 of 4 parameters get no gradient: they are cut from the loss (l1.weight, l1.bias)"


def test_c7_an_optimizer_built_on_a_model_since_replaced():
    case = digits_mlp()
    case.optimizer  # built over the first model...
    torch.manual_seed(1)
    case.model = mlp([64, 128, 10])  # ...then the model is re-created
    verdicts = run(case)
    v = named(verdicts, "C7", "not in the optimizer")
    assert v.status == "fail" and v.fix == FIX_OPTIMIZER
    assert (v.evidence["not_in_optimizer"], v.evidence["trainable"], v.evidence["optimizer_holds"]) == (4, 4, 4)
    assert v.summary == ("the optimizer holds 4 tensors and none of the model's 4 trainable parameters: it was "
                         "built on other parameters (a model created before this one?)")
    assert statuses(verdicts, "C8") == [("learning curves", "skipped")]  # a flat curve here says nothing of the rate


def test_c7_a_layer_added_after_the_optimizer():
    case = digits_mlp()
    case.make_optimizer = lambda params: torch.optim.Adam(case.model[0].parameters(), lr=1e-3)
    v = named(run(case), "C7", "not in the optimizer")
    assert v.status == "fail" and v.evidence["names"] == ["2.weight", "2.bias"]
    assert v.summary == "2 of 4 trainable parameters are not in the optimizer and never train (2.weight, 2.bias)"


def test_c7_a_train_step_that_never_steps():
    case = digits_mlp()

    def step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
        loss.backward()  # the planted fault: no opt.step()
        return loss

    verdicts = list(doctor(case.model, (case.x, case.y), train_step=step, optimizer=case.optimizer, checks=C7_C8))
    v = named(verdicts, "C7", "parameters never change")
    assert v.status == "fail" and v.fix == FIX_UNCHANGED
    assert v.evidence == {"steps": 10, "optimizer_steps": 0}
    assert statuses(verdicts, "C8") == [("learning curves", "skipped")]


def test_c7_saturated_tanh_units_on_raw_features():
    case = breast_cancer_raw()
    torch.manual_seed(0)
    case.model = mlp([30, 64, 1], nn.Tanh)
    v = named(run(case), "C7", "saturated units")
    assert v.status == "fail" and v.fix == FIX_SATURATED
    assert v.evidence["saturated_share"]["1"] > 0.9  # measured 0.97
    assert v.summary.endswith("of the inputs to '1' (Tanh) have |z| >= 5, where its gradient is near 0")


def test_c7_and_c8_learning_rate_too_low():
    verdicts = run(with_optimizer(digits_mlp(), lambda p: torch.optim.Adam(p, lr=1e-7)))
    c7 = named(verdicts, "C7", "update/weight ratio")
    assert c7.status == "fail" and c7.fix == FIX_RATIO_LOW
    assert c7.evidence["update_ratio"] < 1e-5 and c7.evidence["lr"] == 1e-7  # measured 1.1e-6
    assert c7.evidence["bounds"] == [1e-5, 0.3]
    c8 = named(verdicts, "C8", "learning rate too low")
    assert c8.status == "warn" and c8.fix == FIX_LOW
    assert c8.evidence["largest_move"] < 1e-3  # measured 7e-5: the loss stays at 2.3079
    assert statuses(verdicts, "C7") == [("update/weight ratio", "fail")]


def test_c7_and_c8_learning_rate_too_high():
    verdicts = run(with_optimizer(digits_mlp(), lambda p: torch.optim.SGD(p, lr=10.0)))
    c8 = named(verdicts, "C8", "learning rate too high")
    assert c8.status == "fail" and c8.fix == FIX_HIGH
    assert c8.evidence["peak_vs_first"] > 3  # measured 11.7: epoch 1 averages 27.0
    assert c8.summary.startswith("the loss diverged: it reached 26.97")
    c7 = named(verdicts, "C7", "update/weight ratio")
    assert c7.status == "warn" and c7.fix == FIX_RATIO_HIGH and c7.evidence["update_ratio"] > 0.3  # 0.67
    assert named(verdicts, "C7", "dead ReLU units").evidence["dead_units_max"] > 0.9  # the steps killed them


# ---------------------------------------------------------------- C8: diagnose_curves on scripted histories


def history(train: list[float], val: list[float] | None = None, acc: list[float] | None = None) -> list[dict]:
    """Rows as the Trainer writes them to metrics.jsonl."""
    rows = []
    for i, t in enumerate(train):
        row = {"epoch": i + 1, "train_loss": t, "lr": 1e-3, "grad_norm": 1.0}
        if val is not None:
            row["val_loss"] = val[i]
        if acc is not None:
            row["val_accuracy"] = acc[i]
        rows.append(row)
    return rows


DOWN = [2.3 * 0.8 ** i for i in range(10)]  # a steady fall, 2.30 -> 0.31

SCRIPTED = {
    "healthy": (history(DOWN, [d * 1.1 for d in DOWN], [0.5 + 0.04 * i for i in range(10)]),
                [("learning curves", "pass")]),
    "overfitting": (history(DOWN, [1.0, 0.8, 0.65, 0.55, 0.5, 0.52, 0.56, 0.6, 0.62, 0.65]),
                    [("overfitting", "warn")]),
    "diverged": (history([2.3, 1.9, 1.7, 8.0, 3.0, 2.5]), [("learning rate too high", "fail")]),
    "non-finite": (history([2.3, 1.9, float("nan")]), [("learning rate too high", "fail")]),
    "no progress": (history([2.3, 2.1, 2.6, 2.2, 2.5, 2.35]), [("learning rate too high", "fail")]),
    "oscillating accuracy": (history([2.3, 1.5, 1.2, 1.1, 1.0, 0.95, 0.9, 0.88, 0.86, 0.85, 0.84],
                                     [2.3, 1.4, 1.6, 1.2, 1.45, 1.1, 1.3, 1.0, 1.25, 0.95, 1.2],
                                     [0.1, 0.6, 0.5, 0.7, 0.6, 0.75, 0.65, 0.8, 0.7, 0.82, 0.72]),
                             [("learning rate too high", "warn")]),
    "oscillating loss": (history([1.0, 0.7, 0.9, 0.6, 0.8, 0.55, 0.75, 0.5, 0.7, 0.5]),
                         [("learning rate too high", "warn")]),
    "flat": (history([2.3026, 2.3025, 2.3024, 2.3024, 2.3023]), [("learning rate too low", "warn")]),
    "underfitting": (history([1.0, 0.9, 0.85, 0.84, 0.84, 0.845, 0.842, 0.843, 0.841]),
                     [("underfitting", "warn")]),
    "too short": (history([2.3, 1.0]), [("learning curves", "skipped")]),
}


@pytest.mark.parametrize("name", list(SCRIPTED))
def test_c8_diagnose_curves_on_scripted_histories(name: str):
    rows, expected = SCRIPTED[name]
    verdicts = diagnose_curves(rows)
    assert [(v.name, v.status) for v in verdicts] == expected
    assert all(v.id == "C8" for v in verdicts)
    fixes = {"learning rate too high": FIX_HIGH, "learning rate too low": FIX_LOW, "overfitting": FIX_OVERFIT,
             "underfitting": FIX_UNDERFIT, "learning curves": ""}
    assert verdicts[0].fix == fixes[verdicts[0].name]


def test_c8_overfitting_evidence():
    v, = diagnose_curves(SCRIPTED["overfitting"][0])
    assert v.evidence["best_epoch"] == 5 and v.evidence["val_rise"] == pytest.approx(0.3)
    assert v.evidence["gap_last"] > v.evidence["gap_at_best"]  # the gap widens
    assert v.summary == "the validation loss rose 30% above its minimum (epoch 5) while the training loss kept falling"


def test_c8_overfitting_needs_a_rise_that_matters_against_the_prior():
    # a nearly perfect model: the validation loss doubles from 0.01 to 0.02 (100%), 1.5% of the prior's 0.66
    rows = history([0.6 * 0.6 ** i for i in range(10)], [0.3, 0.1, 0.03, 0.01, 0.011, 0.013, 0.015, 0.017, 0.019, 0.02])
    assert [(v.name, v.status) for v in diagnose_curves(rows, baseline_loss=0.66)] == [("learning curves", "pass")]
    # the same shape ten times larger rises 15% of the prior: overfitting
    rows = history([0.6 * 0.6 ** i for i in range(10)], [0.9, 0.5, 0.3, 0.1, 0.11, 0.13, 0.15, 0.17, 0.19, 0.2])
    assert [(v.name, v.status) for v in diagnose_curves(rows, baseline_loss=0.66)] == [("overfitting", "warn")]


def test_c8_underfitting_against_the_prior():
    rows = history([0.75, 0.7, 0.69, 0.69, 0.692, 0.691, 0.69])  # binary, stuck at the prior's entropy
    v, = diagnose_curves(rows, baseline_loss=0.6931)
    assert (v.name, v.status, v.fix) == ("underfitting", "warn", FIX_UNDERFIT)
    assert v.evidence["baseline_loss"] == 0.6931
    assert v.summary == "the training loss stopped improving at 0.6900, 100% of the prior's loss (0.6931)"
    assert diagnose_curves(rows, baseline_loss=5.0)[0].status == "pass"  # far below a (hypothetical) prior


def test_c8_non_finite_and_divergence_evidence():
    v, = diagnose_curves(SCRIPTED["non-finite"][0])
    assert v.evidence["nonfinite_at_epoch"] == 3 and v.summary == "the loss became non-finite at epoch 3"
    v, = diagnose_curves(SCRIPTED["diverged"][0])
    assert v.evidence["peak_vs_first"] == pytest.approx(8.0 / 2.3, rel=1e-3)


# ---------------------------------------------------------------- C8: batches sorted by label


def train_in_batches(shuffle: bool, epochs: int = 3, batch: int = 32) -> tuple[list[dict], list[torch.Tensor],
                                                                                 DataLoader]:
    """A plain loop over digits (A) in a DataLoader: sorted by label and not shuffled, or shuffled."""
    case = digits_mlp()
    x, y = case.x, case.y
    if not shuffle:
        order = torch.argsort(y, stable=True)
        x, y = x[order], y[order]
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=shuffle,
                        generator=torch.Generator().manual_seed(0))
    model, opt, loss_fn = case.model, case.optimizer, case.loss_fn
    rows, labels = [], []
    for epoch in range(1, epochs + 1):
        losses = []
        for xb, yb in loader:
            labels += [yb] if epoch == 1 else []
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            out = model(case.val_x)
        rows.append({"epoch": epoch, "train_loss": sum(losses) / len(losses),
                     "val_loss": float(loss_fn(out, case.val_y)),
                     "val_accuracy": float((out.argmax(1) == case.val_y).float().mean())})
    return rows, labels, loader


def test_c8_batches_sorted_by_label():
    rows, labels, loader = train_in_batches(shuffle=False)
    verdicts = diagnose_curves(rows, batch_labels=labels)
    v = named(verdicts, "C8", "batches sorted by label")
    assert v.status == "fail" and v.fix == FIX_SORTED
    assert v.evidence["batches"] == 43 and v.evidence["batch_entropy_share"] < 0.1  # measured 0.039
    assert v.evidence["data_entropy"] == pytest.approx(math.log(10), abs=0.01)
    assert v.summary.startswith("the batches hold 4% of the data's label entropy")
    # the epoch rows alone cannot tell it: the sorted run still learns, slowly
    assert [x.name for x in diagnose_curves(rows)] == ["learning curves"]
    # the DataLoader itself, before any training
    assert check_batch_order(loader) == v


def test_c8_shuffled_batches_are_fine():
    rows, labels, loader = train_in_batches(shuffle=True)
    verdicts = diagnose_curves(rows, batch_labels=labels)
    assert [(x.name, x.status) for x in verdicts] == [("learning curves", "pass")]
    assert verdicts[0].evidence["batch_entropy_share"] > 0.85  # measured 0.92
    order = check_batch_order(loader)
    assert (order.name, order.status) == ("batch order", "pass")


def test_c8_batch_order_needs_class_labels():
    regression = [torch.randn(8) for _ in range(5)]
    assert diagnose_curves(history(DOWN), batch_labels=regression)[0].name == "learning curves"
    assert check_batch_order([(torch.randn(4, 2), torch.randn(4)) for _ in range(3)]).status == "skipped"


def test_doctor_sees_batches_sorted_by_label_in_the_callers_dataloader():
    """Batches sorted by label, through doctor(): a DataLoader over digits sorted by label, without shuffling, fails
    'batches sorted by label'; the same data with shuffle=True passes."""
    from nnrecipe.checks.doctor import doctor

    case = digits_mlp()
    order = torch.argsort(case.y, stable=True)
    ds = torch.utils.data.TensorDataset(case.x[order], case.y[order])
    kwargs = {k: v for k, v in case.kwargs().items() if k != "data"}
    sorted_ = doctor(data=torch.utils.data.DataLoader(ds, batch_size=32), **kwargs, checks=["C8"])
    [v] = [v for v in sorted_ if v.name == "batches sorted by label"]
    assert v.status == "fail" and v.evidence["batch_entropy_share"] < 0.1
    shuffled = doctor(data=torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True,
                                                       generator=torch.Generator().manual_seed(0)),
                      **kwargs, checks=["C8"])
    [w] = [v for v in shuffled if v.name == "batch order"]
    assert w.status == "pass"


# ---------------------------------------------------------------- T16: longer training


def test_t16_warns_when_the_epoch_budget_cut_an_improving_run():
    falling = history(DOWN, [d * 1.1 for d in DOWN])  # 10 epochs, the validation loss falling to the end
    v = check_longer(falling, 10, "val_loss", "min")
    assert (v.id, v.name, v.status) == ("T16", "longer training", "warn")
    assert v.summary == "the run used all 10 epochs and val_loss still improved at epoch 10: it was cut short"
    assert v.fix == "train longer: --epochs 50 (early stopping ends it when it stops improving)"
    # the healthy twins: stopped by early stopping before its budget; or its budget ran on past its best
    assert check_longer(falling, 200, "val_loss", "min").status == "pass"
    overfit = SCRIPTED["overfitting"][0]  # best at epoch 5 of 10
    v = check_longer(overfit, 10, "val_loss", "min")
    assert (v.status, v.evidence["best_epoch"]) == ("pass", 5)
    # a maximized monitor
    rising = history(DOWN, [d * 1.1 for d in DOWN], [0.5 + 0.04 * i for i in range(10)])
    assert check_longer(rising, 10, "val_accuracy", "max").status == "warn"
    assert check_longer(rising, 10, "val_auc", "max").status == "skipped"


def test_c8_one_row_flipping_on_a_small_validation_split_is_no_oscillation():
    # 27 validation rows (wine's): past its best epoch the accuracy flips one row (1/27 = 0.037) back and
    # forth while the validation loss creeps up, on 6 of 11 transitions (the rule's 20% of them)
    one, two = 1 / 27, 2 / 27
    train = [1.1 * 0.8 ** i for i in range(12)]
    val = [1.0, 0.6, 0.4, 0.3, 0.32, 0.31, 0.33, 0.32, 0.34, 0.33, 0.35, 0.34]
    flips = [0.5, 0.8, 0.9, 25 / 27, 24 / 27, 25 / 27, 24 / 27, 25 / 27, 24 / 27, 25 / 27, 24 / 27, 25 / 27]
    rows = history(train, val, flips)
    assert diagnose_curves(rows)[0].name == "learning rate too high"  # the split's size unknown: 0.03 counts
    v, = diagnose_curves(rows, val_rows=27)
    assert (v.name, v.status) == ("learning curves", "pass")
    assert v.evidence["swing_drop"] == pytest.approx(1.5 / 27, abs=1e-4) and v.evidence["swings"] == 0
    # two rows flipping back and forth is a swing on the same split
    wide = [a - (two - one) * (i % 2 == 0 and i > 3) for i, a in enumerate(flips)]
    v, = diagnose_curves(history(train, val, wide), val_rows=27)
    assert (v.name, v.status) == ("learning rate too high", "warn") and v.evidence["swings"] >= 4
    # a split large enough that one row is under 0.03 keeps the 0.03 of the rule
    assert diagnose_curves(rows, val_rows=100)[0].evidence["swing_drop"] == 0.03
    # train's C8 after training passes the split's size on (each member's, for an ensemble)
    from nnrecipe.recipes.cross_fit import member_curves

    assert [v.status for v in member_curves([rows, rows], None, [27, 27])] == ["pass"]
    assert member_curves([rows], None, None)[0].name == "learning rate too high"
    # a member validated on a fold of 80 rows, where one row is 0.0125, keeps 0.03: its one-row flips of 0.037
    # (on 27 rows) would be swings there; the ensemble reports what half its members show
    judged = member_curves([rows, rows], None, [27, 80])
    assert [(v.name, v.status) for v in judged] == [("learning rate too high", "warn")]


class LoRALinear(nn.Module):
    """A linear layer adapted as PEFT's LoRA does (its names too): the base weight frozen, a low-rank update
    lora_B @ lora_A trained, lora_B from zero."""

    def __init__(self, d_in: int, d_out: int, rank: int = 4) -> None:
        super().__init__()
        self.base_layer = nn.Linear(d_in, d_out).requires_grad_(False)
        self.lora_A = nn.ModuleDict({"default": nn.Linear(d_in, rank, bias=False)})
        self.lora_B = nn.ModuleDict({"default": nn.Linear(rank, d_out, bias=False)})
        nn.init.zeros_(self.lora_B["default"].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B["default"](self.lora_A["default"](x))


class SavedHead(nn.Module):
    """PEFT's copy of a head it trains beside the adapters (modules_to_save)."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.modules_to_save = nn.ModuleDict({"default": head})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.modules_to_save["default"](x)


def test_c7_a_lora_model_s_frozen_base_is_on_purpose():
    case = digits_mlp()
    torch.manual_seed(0)
    case.model[0] = LoRALinear(64, case.model[0].out_features)
    case.model[-1] = SavedHead(case.model[-1])
    for n, p in case.model.named_parameters():  # PEFT trains its adapters and the saved head only
        p.requires_grad_("lora_" in n or "modules_to_save" in n)
    case.extra["optimizer"] = torch.optim.Adam([p for p in case.model.parameters() if p.requires_grad], lr=1e-3)
    verdicts = run(case)
    assert "frozen parameters" not in [v.name for v in verdicts if v.id == "C7"]
    assert named(verdicts, "C8", "learning curves").status == "pass"  # and it learns
    # the same base frozen without adapters (the planted fault of test_c7_frozen_first_layer) still warns
    case = digits_mlp()
    case.model[0].requires_grad_(False)
    assert named(run(case), "C7", "frozen parameters").status == "warn"
