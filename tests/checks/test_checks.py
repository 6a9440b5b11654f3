"""The recipe's checks before training: each fires on its planted fault, with its message and fix, and
stays quiet on a healthy twin built the same way; neither changes the caller's model.
C2 (loss at init) and C1 (overfit one batch)."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from nnrecipe.checks import check_init_loss, check_overfit_batch
from nnrecipe.config import DEFAULT_LR, ModelConfig, TrainConfig
from nnrecipe.models import init_weights, make_mlp
from nnrecipe.tasks import Task, create_task
from nnrecipe.models.mlp import MLP
from nnrecipe.testing import blobs
from nnrecipe.train.optim import make_optimizer

CLASS_PRIOR_FIX = ("initialise the output bias from the class priors (log p_c; log(pos/neg) for binary, M6) and "
                   "scale the output layer's weights down so the logits start near zero")
REGRESSION_FIX = ("initialise the output bias to the target's mean and scale the output layer's weights down (M6); "
                  "standardize the target")
C1_FIX = ("check that the learning rate is > 0 and every layer is trainable and in the optimizer, that the loss "
          "matches the task and the targets; if all hold, add capacity")


def recipe_model(head: Task, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> MLP:
    """The model train_table builds: the sizing rule's MLP, the recipe's init, the output bias from y."""
    torch.manual_seed(seed)
    model = make_mlp(x.shape[1], head.out_features, len(x), ModelConfig(dropout=0.0))  # layer names below assume no dropout layers
    init_weights(model, head.output_bias(y), generator=torch.Generator().manual_seed(seed))
    return model


def standardized_blobs(n: int = 512, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Blobs with standardized features, as train_table feeds the checks (D8); raw blob features have a
    std near 2.2, which alone puts the fresh model's loss 17% above the prior's."""
    x, y = blobs(n=n, features=8, classes=classes, seed=seed)
    return (x - x.mean(0)) / x.std(0), y


def multiclass_setup(seed: int = 0) -> tuple[MLP, Task, torch.Tensor, torch.Tensor]:
    x, y = standardized_blobs(seed=seed)
    head = create_task("multiclass", n_classes=3)
    return recipe_model(head, x, y, seed), head, x, y


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k


# ---------------------------------------------------------------- C2: loss at init


def c2(model: MLP, head: Task, x: torch.Tensor, y: torch.Tensor):
    return check_init_loss(model, head.loss(), x, y, head, y)


def test_c2_passes_on_the_recipe_init_multiclass():
    model, head, x, y = multiclass_setup()
    before = state(model)
    v = c2(model, head, x, y)
    ev = v.evidence
    assert (v.id, v.status, v.fix) == ("C2", "pass", "")
    assert v.summary == f"the loss at init {ev['loss_at_init']:.4f} is close to the expected {ev['expected']:.4f}"
    assert ev["uniform_loss_ln_C"] == round(math.log(3), 4)
    assert ev["expected"] == pytest.approx(math.log(3), abs=0.02)  # blobs' classes are near balanced
    assert ev["rows"] == 512
    assert_same_state(model, before)
    assert model.training  # the check ran in eval mode and put the model back


def test_c2_fails_on_output_bias_plus_10_with_the_class_prior_fix():
    model, head, x, y = multiclass_setup()  # the healthy twin of the test above, then the fault
    with torch.no_grad():
        model.output_layer.bias[1] += 10.0
    before = state(model)
    v = c2(model, head, x, y)
    ev = v.evidence
    assert (v.id, v.name, v.status) == ("C2", "loss at init", "fail")
    assert v.fix == CLASS_PRIOR_FIX
    assert "class priors" in v.fix
    m = re.fullmatch(r"the loss at init (\d+\.\d{4}) is (\d+)% above the expected (\d+\.\d{4})", v.summary)
    assert m is not None, v.summary
    loss, expected = float(m[1]), float(m[3])
    assert (loss, expected) == (ev["loss_at_init"], ev["expected"])
    assert abs(int(m[2]) - 100 * (loss / expected - 1)) <= 1  # the share above, from the unrounded losses
    # two thirds of the rows put ~10 nats on the wrong class
    assert loss == pytest.approx(10 * (1 - float((y == 1).float().mean())), rel=0.1)
    assert "fix: " + CLASS_PRIOR_FIX in v.line()
    assert_same_state(model, before)


def test_c2_binary_balanced_expects_ln_2():
    x, _ = standardized_blobs(classes=2, seed=1)
    y = (torch.arange(512) % 2).float()[:, None]  # exactly balanced
    head = create_task("binary", n_classes=2)
    assert head.prior_loss(y, y) == pytest.approx(math.log(2), abs=1e-6)
    assert head.uniform_loss() == pytest.approx(math.log(2))
    v = c2(recipe_model(head, x, y), head, x, y)
    assert v.status == "pass"
    assert (v.evidence["expected"], v.evidence["uniform_loss_ln_C"]) == (0.6931, 0.6931)
    assert v.evidence["loss_at_init"] == pytest.approx(math.log(2), abs=0.05)


def test_c2_binary_imbalanced_expects_the_prior_entropy():
    x, _ = standardized_blobs(n=400, classes=2, seed=1)
    y = (torch.arange(400) % 10 == 0).float()[:, None]  # 10% positive
    head = create_task("binary", n_classes=2)
    entropy = -(0.1 * math.log(0.1) + 0.9 * math.log(0.9))  # 0.3251, below ln 2
    assert head.prior_loss(y, y) == pytest.approx(entropy, abs=1e-6)
    healthy = recipe_model(head, x, y)
    assert c2(healthy, head, x, y).status == "pass"
    # the fault: a zero output bias starts at ln 2 instead, 113% above: a warning, not yet a failure
    with torch.no_grad():
        healthy.output_layer.bias.zero_()
    v = c2(healthy, head, x, y)
    assert (v.status, v.fix) == ("warn", CLASS_PRIOR_FIX)
    with torch.no_grad():
        healthy.output_layer.bias.fill_(10.0)
    assert (c2(healthy, head, x, y).status, c2(healthy, head, x, y).fix) == ("fail", CLASS_PRIOR_FIX)


def test_c2_regression_expects_the_target_variance():
    x, _ = standardized_blobs(seed=2)
    y = 5.0 + 2.0 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0))  # not standardized
    head = create_task("regression")
    variance = float(y.var(unbiased=False))
    assert head.prior_loss(y, y) == pytest.approx(variance, rel=1e-5)
    v = c2(recipe_model(head, x, y), head, x, y)
    assert (v.status, v.fix) == ("pass", "")
    assert v.evidence["expected"] == round(variance, 4)
    assert "uniform_loss_ln_C" not in v.evidence


def test_c2_regression_fails_without_the_mean_as_output_bias():
    x, _ = standardized_blobs(seed=2)
    y = 5.0 + 2.0 * torch.randn(512, 1, generator=torch.Generator().manual_seed(0))
    head = create_task("regression")
    model = recipe_model(head, x, y)
    with torch.no_grad():
        model.output_layer.bias.zero_()  # starts at 0: the loss is var(y) + mean(y)^2, about 29 against 4
    v = c2(model, head, x, y)
    assert (v.status, v.fix) == ("fail", REGRESSION_FIX)
    assert v.evidence["loss_at_init"] == pytest.approx(float((y ** 2).mean()), rel=0.05)


def test_c2_fails_on_non_finite_outputs():
    model, head, x, y = multiclass_setup()
    with torch.no_grad():
        model.output_layer.bias[0] = float("nan")
    v = c2(model, head, x, y)
    assert (v.status, v.summary) == ("fail", "the loss at init is nan")
    assert v.fix == "the model outputs non-finite values before training: check the inputs and the init"


# ---------------------------------------------------------------- C1: overfit one batch


def c1(model: MLP, head: Task, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, **kwargs):
    return check_overfit_batch(model, head.loss(), x, y, lambda params: make_optimizer(params, cfg), **kwargs)


def test_c1_passes_on_the_healthy_model():
    model, head, x, y = multiclass_setup()
    before = state(model)
    v = c1(model, head, x, y, TrainConfig())
    ev = v.evidence
    assert (v.id, v.name, v.status, v.fix) == ("C1", "overfit one batch", "pass", "")
    assert ev["rows"] == 16 and ev["lr"] == DEFAULT_LR and ev["n_frozen"] == 0
    assert ev["loss_end"] <= ev["target"] == round(0.01 * ev["loss_start"], 6)
    assert ev["steps"] < 1000
    assert re.fullmatch(rf"the loss on 16 rows fell from {ev['loss_start']:.4f} to \d\.\d\de-0\d in "
                        rf"{ev['steps']} steps", v.summary), v.summary
    assert_same_state(model, before)  # it trained a copy


def test_c1_fails_with_learning_rate_zero():
    model, head, x, y = multiclass_setup()
    before = state(model)
    v = c1(model, head, x, y, TrainConfig(lr=0))
    ev = v.evidence
    assert (v.status, v.fault) == ("fail", "lr-too-low") and v.fix.startswith("set a learning rate > 0")
    # no weight moved in the first 100 steps: the other 900 could not move one either
    assert (ev["lr"], ev["steps"], ev["still_after"], ev["n_frozen"]) == (0, 100, 100, 0)
    assert ev["loss_end"] == pytest.approx(ev["loss_start"], abs=1e-5)  # nothing moved
    assert re.fullmatch(r"the loss on 16 rows only went from (\d+\.\d{4}) to \1 in 100 steps "
                        r"\(the learning rate is 0\)", v.summary), v.summary
    assert_same_state(model, before)


def test_c1_fails_with_every_parameter_frozen():
    model, head, x, y = multiclass_setup()
    for p in model.parameters():
        p.requires_grad_(False)
    v = c1(model, head, x, y, TrainConfig())
    assert (v.status, v.summary) == ("fail", "no parameter requires a gradient: nothing can learn")
    assert v.fix == "unfreeze the parameters (requires_grad=True) or pass the right model"
    linears = [i for i, m in enumerate(model.layers) if isinstance(m, torch.nn.Linear)]
    assert len(linears) >= 2 and v.evidence["n_frozen"] == 2 * len(linears)
    assert v.evidence["frozen_parameters"] == [f"layers.{i}.{w}" for i in linears for w in ("weight", "bias")]
    assert not any(p.requires_grad for p in model.parameters())  # the caller's flags are left as they were


def test_c1_names_the_frozen_parameters_when_only_the_output_bias_learns():
    model, head, x, y = multiclass_setup()
    for name, p in model.named_parameters():
        p.requires_grad_(name == "layers.4.bias")  # the bias alone can only learn the batch's class priors
    v = c1(model, head, x, y, TrainConfig(lr=1e-2), steps=300)
    assert (v.status, v.fix) == ("fail", C1_FIX)
    assert v.summary.endswith(" in 300 steps (5 parameters are frozen (layers.0.weight, layers.0.bias, "
                              "layers.2.weight))")
    assert v.evidence["n_frozen"] == 5


def test_c1_turns_dropout_off_in_its_copy():
    x, y = standardized_blobs()
    head = create_task("multiclass", n_classes=3)
    torch.manual_seed(0)
    model = make_mlp(8, 3, 512, ModelConfig(dropout=0.5))
    init_weights(model, head.output_bias(y))
    v = c1(model, head, x, y, TrainConfig())
    assert v.status == "pass"
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_c1_stops_when_no_weight_moves_at_a_rate_above_zero():
    """Gradients of exactly 0 (an output multiplied by 0): no step can move a weight, so C1 stops after 100
    steps (not 1000) and says why; a tiny rate still moves the weights and runs the whole budget."""
    from nnrecipe.checks.overfit_batch import STILL, check_overfit_batch

    class Dead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) * 0.0

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    v = check_overfit_batch(Dead(), nn.CrossEntropyLoss(), x, y, lambda p: torch.optim.Adam(p, 1e-3))
    assert (v.status, v.evidence["steps"], v.evidence["still_after"]) == ("fail", STILL, STILL)
    assert v.summary.endswith(f"in {STILL} steps (no parameter moved in {STILL} steps: the optimizer's updates are all 0)")
    slow = check_overfit_batch(nn.Linear(4, 3), nn.CrossEntropyLoss(), x, y, lambda p: torch.optim.Adam(p, 1e-9))
    assert slow.status == "fail" and slow.evidence["steps"] == 1000 and "still_after" not in slow.evidence
