"""TabM for tables (models/tabm.py, models/tables.py): k members sharing weights, trained on the mean of
their own losses, predicting with their mean prediction; piecewise-linear embeddings of the numeric
features; saved and loaded by name like every registered model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nnrecipe import ConfigError, ModelConfig
from nnrecipe.models import MLP, build_model, load_model, save_model
from nnrecipe.models.ensemble import mean_prediction
from nnrecipe.models.tables import init_table_model, make_table_model
from nnrecipe.models.tabm import TabM, fit_bins
from nnrecipe.steps import Step, as_batch
from nnrecipe.tasks import create_task


def _features(n=64, f=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, f, generator=g)
    x[:, 1] = (x[:, 1] > 0).float()  # a one-hot-like 0/1 column
    x[:, 2] = 3.0  # constant on these rows
    return x


def _tabm(task="multiclass", k=4, out=3, seed=0):
    torch.manual_seed(seed)
    x = _features()
    activation = create_task(task, n_classes=out).activation
    model = make_table_model(ModelConfig(hidden=(16, 16), members=k), task, x, out, len(x), activation=activation)
    return model, x


def test_auto_builds_tabm_and_mlp_on_request():
    x = _features()
    assert isinstance(make_table_model(ModelConfig(), "binary", x, 1, len(x), activation="sigmoid"), TabM)
    assert isinstance(make_table_model(ModelConfig(model="mlp"), "binary", x, 1, len(x)), MLP)


def test_bins_cover_every_column_even_a_constant_one():
    x = _features()
    bins = fit_bins(x)
    assert len(bins) == x.shape[1]
    assert bins[2] == [3.0, 4.0]  # one bin, the constant value at its start
    assert len(bins[1]) == 2  # a 0/1 column: one bin
    assert len(bins[0]) == 4 + 1 and all(a < b for a, b in zip(bins[0], bins[0][1:]))  # 64 rows: the minimum, 4 bins
    wide = fit_bins(torch.randn(10_000, 2, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in wide] == [48 + 1] * 2  # 32 rows a bin or more: the papers' 48
    assert [len(b) for b in fit_bins(torch.randn(640, 1, generator=torch.Generator().manual_seed(0)))] == [20 + 1]


def test_members_outputs_and_forward_is_their_mean_prediction():
    model, x = _tabm()
    model.eval()
    outs = model.member_outputs(x)
    assert outs.shape == (len(x), 4, 3)
    out = model(x)
    assert out.shape == (len(x), 3)
    probs = torch.softmax(outs, -1).mean(1)
    torch.testing.assert_close(torch.softmax(out, -1), probs)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax", "none"])
def test_mean_prediction_matches_the_mean_of_probabilities(activation):
    outs = torch.randn(6, 3, 2)
    got = mean_prediction(outs, activation, dim=1)
    if activation == "sigmoid":
        torch.testing.assert_close(torch.sigmoid(got), torch.sigmoid(outs).mean(1))
    elif activation == "softmax":
        torch.testing.assert_close(torch.softmax(got, -1), torch.softmax(outs, -1).mean(1))
    else:
        torch.testing.assert_close(got, outs.mean(1))


def test_the_step_trains_each_member_on_its_own_loss():
    model, x = _tabm()
    model.eval()  # no dropout: the two computations see the same outputs
    y = torch.randint(0, 3, (len(x),), generator=torch.Generator().manual_seed(1))
    step = Step(nn.CrossEntropyLoss())
    loss, outputs = step.loss(model, as_batch((x, y)))
    outs = model.member_outputs(x)
    members = torch.stack([nn.functional.cross_entropy(outs[:, i], y) for i in range(4)])
    torch.testing.assert_close(loss, members.mean())
    # not the loss of the mean prediction, which would let the members co-adapt
    assert not math.isclose(loss.item(), nn.functional.cross_entropy(model(x), y).item(), rel_tol=1e-4)
    torch.testing.assert_close(outputs, model(x))


def test_init_starts_every_member_at_the_prior():
    model, x = _tabm(task="binary", out=1)
    init_table_model(model, torch.tensor([math.log(0.2 / 0.8)]))
    model.eval()
    p = torch.sigmoid(model(x))
    assert torch.allclose(p, torch.full_like(p, 0.2), atol=0.03)


def test_unequal_widths_are_refused_with_the_fix():
    x = _features()
    with pytest.raises(ConfigError, match="equal widths.*--model mlp"):
        make_table_model(ModelConfig(hidden=(32, 16)), "binary", x, 1, len(x), activation="sigmoid")


def test_a_saved_tabm_is_built_again_by_name(tmp_path):
    model, x = _tabm()
    model.eval()
    save_model(tmp_path, model, {"task": "multiclass"})
    again, meta = load_model(tmp_path)
    again.eval()
    assert isinstance(again, TabM) and again.spec == model.spec
    torch.testing.assert_close(again(x), model(x))
    assert repr(build_model(model.spec)) == repr(model)


def test_the_rule_trains_tabm_at_its_authors_rate_and_batch_and_the_flags_override():
    from nnrecipe import TrainConfig
    from nnrecipe.recipes.pipeline import model_rules

    model, x = _tabm()
    assert (model_rules(TrainConfig(), model, 1_000).lr, model_rules(TrainConfig(), model, 1_000).batch_size) == (2e-3, 64)
    assert model_rules(TrainConfig(), model, 10_000).batch_size == 256
    # values (regression) train at half the rate (models/tabm.py: VALUES_LR, measured on the panel), same batches
    values, _ = _tabm("regression", out=1)
    assert (model_rules(TrainConfig(), values, 1_000).lr, model_rules(TrainConfig(), values, 10_000).batch_size) == \
        (1e-3, 256)
    assert model_rules(TrainConfig(lr=2e-3), values, 1_000).lr == 2e-3  # --lr still overrides
    binary, _ = _tabm("binary", out=1)
    assert model_rules(TrainConfig(), binary, 1_000).lr == 2e-3
    given = model_rules(TrainConfig(lr=1e-4, batch_size=16), model, 10_000)
    assert (given.lr, given.batch_size) == (1e-4, 16)
    mlp = make_table_model(ModelConfig(model="mlp"), "binary", x, 1, len(x))
    assert (model_rules(TrainConfig(), mlp, 1_000).lr, model_rules(TrainConfig(), mlp, 1_000).batch_size) == (3e-4, None)
