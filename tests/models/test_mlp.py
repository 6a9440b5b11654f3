"""M2, M4, M5, M6, M8, M10: the MLP the recipe builds."""

import logging
import math

import pytest
import torch
from torch import nn

from nnrecipe import ModelConfig, TrainConfig, train_table
from nnrecipe.models import init_weights, make_mlp
from nnrecipe.tasks import Task, create_task
from nnrecipe.models.mlp import ACTIVATION_LAYERS, default_dropout, default_hidden, round_width
from nnrecipe.testing import small_table


@pytest.mark.parametrize("w, expected", [(1, 8), (8, 8), (9, 16), (60, 64), (64, 64), (65, 128), (200, 256)])
def test_widths_round_to_multiples_of_8_and_of_64_from_64(w, expected):
    assert round_width(w) == expected


def test_default_hidden_follows_the_sizing_rule():
    # depth: 2 below 10,000 rows, then one more per tenfold, up to 5 from 1,000,000
    assert [len(default_hidden(n, 30)) for n in (10, 999, 1_000, 9_999, 10_000, 100_000, 999_999, 10 ** 6, 10 ** 8)] \
        == [2, 2, 2, 2, 3, 4, 4, 5, 5]
    assert default_hidden(500, 30) == (128, 128)  # 2 x 30 = 60, at least 128
    assert default_hidden(5_000, 100) == (256, 256)  # 2 x 100 = 200 -> 256 (a multiple of 64)
    assert default_hidden(50_000, 1_000) == (512,) * 3  # at most 512


@pytest.mark.parametrize("act, std", [
    ("relu", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),  # He
    ("selu", lambda fan_in, fan_out: math.sqrt(1 / fan_in)),  # LeCun
    ("elu", lambda fan_in, fan_out: math.sqrt(1 / fan_in)),
    ("tanh", lambda fan_in, fan_out: 5 / 3 * math.sqrt(2 / (fan_in + fan_out))),  # Glorot with tanh's gain
    ("sigmoid", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
])
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_init_matches_the_activation(act, std, distribution):
    torch.manual_seed(0)
    model = make_mlp(256, 1, 100_000, ModelConfig(hidden=(256, 256), activation=act, dropout=0.0))
    init_weights(model, distribution=distribution)
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][1]  # 256 -> 256
    assert hidden.weight.std().item() == pytest.approx(std(256, 256), rel=0.03)
    assert torch.count_nonzero(hidden.bias) == 0
    bound = hidden.weight.abs().max().item()
    if distribution == "uniform":  # a uniform on [-a, a] with the same variance: a = sqrt(3) * std
        assert bound == pytest.approx(math.sqrt(3) * std(256, 256), rel=0.01)
    else:
        assert bound > 3 * std(256, 256)


def test_output_layer_starts_small_with_the_prior_as_bias():
    head = create_task("multiclass", n_classes=3)
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    model = make_mlp(8, 3, 100, ModelConfig(dropout=0.0))
    init_weights(model, head.output_bias(y))
    assert torch.allclose(model.output_layer.bias, torch.log(torch.tensor([0.6, 0.3, 0.1])))
    assert model.output_layer.weight.abs().max() < 0.01
    binary = create_task("binary")
    assert binary.output_bias(torch.tensor([[1.0]] * 20 + [[0.0]] * 80)).item() == pytest.approx(math.log(20 / 80))


def test_every_activation_builds_and_selu_takes_alpha_dropout():
    for act, layer in ACTIVATION_LAYERS.items():
        model = make_mlp(4, 2, 1000, ModelConfig(activation=act, dropout=0.3))
        assert any(isinstance(m, layer) for m in model.modules())
        drop = nn.AlphaDropout if act == "selu" else nn.Dropout
        assert sum(isinstance(m, drop) for m in model.modules()) == 2
        assert isinstance(model.layers[-1], nn.Linear)  # never dropout on the output


def test_batchnorm_follows_each_hidden_linear():
    model = make_mlp(4, 2, 1000, ModelConfig(batchnorm=True, dropout=0.0))
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]


def test_default_dropout_is_off_for_regression_because_it_costs_accuracy(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    assert default_dropout("binary") == default_dropout("multiclass") == 0.2
    assert default_dropout("regression") == 0.0
    frame = small_table(task="regression")
    cfg = TrainConfig(epochs=100, patience=None)
    rmse = {d: train_table(frame, "y", out=tmp_path, train_config=cfg, model_config=ModelConfig(model="mlp", dropout=d)).metric[1]
            for d in (0.0, 0.2)}
    assert rmse[0.2] > 1.5 * rmse[0.0]
