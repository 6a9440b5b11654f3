"""The Trainer as PyTorch users in other code styles meet it (a review's findings): a mistake in the shapes
or dtypes of outputs and targets is an error naming both and the fix, never a broadcast that trains a wrong
model or a raw error from inside torch; settings that would be ignored are refused; plain-object callbacks,
numpy float64 arrays, dict configs and a user's DataLoader with BatchNorm work as the docs say."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nnrecipe import TrainConfig, Trainer
from nnrecipe.errors import ConfigError


def _regression(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])


def _net(out: int = 1, features: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, out))


CFG = TrainConfig(device="cpu", batch_size=32, epochs=2, patience=None)


def test_targets_of_shape_n_beside_outputs_n_by_1_are_refused_not_broadcast():
    # MSELoss broadcasts (N, 1) against (N,) to (N, N): every output trained toward the batch's mean
    x, y = _regression()
    for loss in (nn.MSELoss(), nn.functional.mse_loss, nn.BCEWithLogitsLoss()):
        target = y if loss is not nn.BCEWithLogitsLoss else (y > 0).float()
        with pytest.raises(ConfigError, match=r"outputs have shape \[32, 1\] and the targets \[32\].*broadcast them "
                                              r"to \[32, 32\].*y.reshape\(-1, 1\)"):
            Trainer(_net(), loss, (x, target), config=CFG).fit()
    Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG).fit()  # the shapes agreeing: it trains


def test_a_torch_loss_that_cannot_take_the_targets_names_both_and_the_fix():
    x, y = _regression()
    labels = (y > 0).long()
    with pytest.raises(ConfigError, match=r"BCEWithLogitsLoss cannot take the model's outputs \[32, 1\] \(float32\) "
                                          r"with the targets \[32, 1\] \(int64\).*y.float\(\)"):
        Trainer(_net(), nn.BCEWithLogitsLoss(), (x, labels[:, None]), config=CFG).fit()
    with pytest.raises(ConfigError, match=r"CrossEntropyLoss cannot take.*\(float32\): .*y.long\(\)"):
        Trainer(_net(3), nn.CrossEntropyLoss(), (x, labels.float()), config=CFG).fit()
    with pytest.raises(ConfigError, match=r"encode the classes as 0..2, or give the model one output per class "
                                          r"\(labels span \[0, 5\]\)"):
        Trainer(_net(3), nn.CrossEntropyLoss(), (x, labels * 5), config=CFG).fit()
    # ten outputs for one yes/no label a row: no reshape pairs them (the advice was y.float().reshape((32, 10)))
    with pytest.raises(ConfigError, match=r"10 outputs a row and the targets one: .*out_features=1.*CrossEntropyLoss"):
        Trainer(_net(10), nn.BCEWithLogitsLoss(), (x, labels.float()), config=CFG).fit()


@pytest.mark.parametrize("loss", ["cross_entropy", 3, nn.CrossEntropyLoss])
def test_a_loss_that_is_not_a_loss_is_refused_when_the_trainer_is_made(loss):
    x, y = _regression()
    with pytest.raises(ConfigError, match=r"loss_fn=.* not a loss; pass a torch loss") as e:
        Trainer(_net(), loss, (x, y[:, None]), config=CFG)
    if loss is nn.CrossEntropyLoss:  # the class, not an instance: callable, and refused by name
        assert "nn.CrossEntropyLoss()" in str(e.value)


def test_a_loss_of_the_callers_own_raises_its_own_error():
    x, y = _regression()

    def mine(out, target):
        raise ValueError("my own check failed")

    with pytest.raises(ValueError, match="my own check failed"):
        Trainer(_net(), mine, (x, y[:, None]), config=CFG).fit()


def test_numpy_float64_arrays_train_as_float32_and_predict_the_same():
    x, y = _regression()
    a = Trainer(_net(), nn.MSELoss(), (x.double().numpy(), y[:, None].double().numpy()), config=CFG)
    b = Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG)
    assert [h["train_loss"] for h in a.fit()] == [h["train_loss"] for h in b.fit()]
    assert torch.equal(a.predict(x.double().numpy()), b.predict(x))


def test_a_weight_triple_is_told_to_go_in_a_dict():
    x, y = _regression()
    with pytest.raises(ConfigError, match=r"the batch gives the model 2 inputs.*sample_weight"):
        Trainer(_net(), nn.MSELoss(), (x, y[:, None], torch.ones(len(x))), config=CFG).fit()


def test_plain_callbacks_need_only_their_hooks_and_a_misspelled_hook_is_refused():
    x, y = _regression()
    seen = []

    class Plain:  # no base class: the docs call callbacks plain objects
        def on_epoch_end(self, trainer, logs):
            seen.append(logs["epoch"])

    Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG, callbacks=[Plain()]).fit()
    Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG, callbacks=Plain()).fit()  # one, not in a list
    assert seen == [1, 2, 1, 2]

    class Typo:
        def on_epoch_ends(self, trainer, logs):
            pass

    with pytest.raises(ConfigError, match=r"method on_epoch_ends, which is no hook.*did you mean 'on_epoch_end'"):
        Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG, callbacks=[Typo()])


def test_an_optimizer_given_beside_config_settings_it_would_override_is_refused():
    x, y = _regression()
    model = _net()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match=r"lr=1e-05 \(the optimizer's 0.1\), optimizer='adamw' \(the optimizer is a "
                                          r"SGD\), weight_decay=0.3 \(the optimizer's 0\)"):
        Trainer(model, nn.MSELoss(), (x, y[:, None]), optimizer=sgd,
                config=TrainConfig(lr=1e-5, optimizer="adamw", weight_decay=0.3, device="cpu"))
    # settings that agree with the optimizer, or left to it, are no conflict
    Trainer(model, nn.MSELoss(), (x, y[:, None]), optimizer=sgd, config=TrainConfig(lr=0.1, optimizer="sgd"))
    Trainer(model, nn.MSELoss(), (x, y[:, None]), optimizer=sgd, config=CFG)


def test_a_frozen_model_and_a_train_step_that_never_steps_are_errors():
    x, y = _regression()
    frozen = _net()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match=r"does not depend on any parameter that trains: every parameter .* frozen"):
        Trainer(frozen, nn.MSELoss(), (x, y[:, None]), config=CFG).fit()

    class NoStep(Trainer):
        def train_step(self, batch):
            out = self.model(*batch.inputs)
            loss = self.loss_fn(out, batch.target)
            loss.backward()
            return loss, out

    with pytest.raises(ConfigError, match=r"NoStep.train_step took no optimizer step in epoch 1.*optimizer_step"):
        NoStep(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG).fit()


def test_a_step_function_of_another_signature_is_refused_at_once():
    x, y = _regression()

    def step(model, batch):
        return 0.0

    with pytest.raises(ConfigError, match=r"step=step\(model, batch\) cannot be called as step\(model, optimizer, batch\)"):
        Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=CFG, step=step)


def test_a_config_as_a_dict_is_taken_and_a_wrong_type_named():
    x, y = _regression()
    trainer = Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config={"epochs": 1, "device": "cpu"})
    assert trainer.config.epochs == 1 and len(trainer.fit()) == 1
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config={"epoch": 1})
    with pytest.raises(ConfigError, match="config is a list; give a TrainConfig"):
        Trainer(_net(), nn.MSELoss(), (x, y[:, None]), config=[1])


def test_a_users_dataloader_with_batchnorm_skips_a_last_batch_of_one_row():
    x, y = _regression(33)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    loader = DataLoader(TensorDataset(x, y[:, None]), batch_size=32, shuffle=True)
    trainer = Trainer(model, nn.MSELoss(), loader, config=CFG)
    assert trainer.steps_per_epoch == 1
    assert len(trainer.fit()) == 2


def test_resume_with_another_loss_is_refused_and_a_stopped_run_says_it_trains_no_more(tmp_path, caplog):
    x, y = _regression()
    labels = (y > 0).long()
    run = tmp_path / "run"
    Trainer(_net(2), nn.CrossEntropyLoss(), (x, labels), config=CFG, run_dir=run).fit()
    with pytest.raises(ConfigError, match=r"the loss: CrossEntropyLoss\(.*label_smoothing=0.0.*\) in the checkpoint, "
                                          r"CrossEntropyLoss\(.*label_smoothing=0.3.*\) now"):
        Trainer(_net(2), nn.CrossEntropyLoss(label_smoothing=0.3), (x, labels), config=CFG, run_dir=run,
                resume=True).fit()

    class StopAtOne:
        def on_epoch_end(self, trainer, logs):
            trainer.stop_training = True

    stopped = tmp_path / "stopped"
    Trainer(_net(2), nn.CrossEntropyLoss(), (x, labels), config=CFG, run_dir=stopped, callbacks=[StopAtOne()]).fit()
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        history = Trainer(_net(2), nn.CrossEntropyLoss(), (x, labels), run_dir=stopped, resume=True,
                          config=TrainConfig(device="cpu", batch_size=32, epochs=6, patience=None)).fit()
    assert len(history) == 1
    assert "had stopped after epoch 1" in caplog.text and "nothing more is trained" in caplog.text


def test_a_forward_that_fails_on_the_data_says_what_it_was_given():
    x, y = _regression()
    with pytest.raises(RuntimeError) as e:
        Trainer(_net(features=7), nn.MSELoss(), (x, y[:, None]), config=CFG).fit()
    assert "the model was called on the batch's inputs of shapes [32, 5]" in "".join(getattr(e.value, "__notes__", []))


def test_hidden_widths_as_scikit_learn_and_the_cli_write_them():
    from nnrecipe import ModelConfig

    assert ModelConfig(hidden=64).hidden == (64,)
    assert ModelConfig(hidden="64,32").hidden == (64, 32)
    assert ModelConfig(hidden=np.int64(8)).hidden == (8,)
    with pytest.raises(ConfigError, match=r"hidden=0 is not allowed"):
        ModelConfig(hidden=0)


def test_a_scheduler_of_your_own_steps_each_epoch_or_each_step_and_is_recorded(tmp_path):
    x, y = _regression()
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = Trainer(model, nn.MSELoss(), (x, y[:, None]), config=CFG, optimizer=opt, scheduler=sched,
                      run_dir=tmp_path / "run").fit()
    assert [h["lr"] for h in history] == [0.1, 0.05]  # logged at each epoch's end, before the epoch's step
    import json

    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["schedule"] == "StepLR"
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    per_step = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    Trainer(model, nn.MSELoss(), (x, y[:, None]), config=CFG, optimizer=opt, scheduler=(per_step, "step")).fit()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 6)  # 3 batches x 2 epochs
    other = torch.optim.SGD(_net().parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="built on another optimizer than the Trainer's"):
        Trainer(model, nn.MSELoss(), (x, y[:, None]), config=CFG, optimizer=opt,
                scheduler=torch.optim.lr_scheduler.StepLR(other, 1))
    with pytest.raises(ConfigError, match=r"scheduler= and TrainConfig\(schedule='cosine'\) both schedule"):
        Trainer(model, nn.MSELoss(), (x, y[:, None]), optimizer=opt, scheduler=per_step,
                config=TrainConfig(schedule="cosine", device="cpu"))


def test_a_loss_of_your_own_may_reshape_and_a_double_model_takes_float64_arrays():
    x, y = _regression()

    def squeezed(out, target):  # reshapes what it is given: no broadcast to refuse
        return nn.functional.mse_loss(out.squeeze(-1), target)

    Trainer(_net(), squeezed, (x, y), config=CFG).fit()
    double = _net().double()
    Trainer(double, nn.MSELoss(), (x.double().numpy(), y[:, None].double().numpy()), config=CFG).fit()
    assert next(double.parameters()).dtype == torch.float64


def test_groups_of_their_own_rates_are_no_conflict_and_a_sampler_sets_the_last_batch():
    x, y = _regression(101)
    model = _net()
    opt = torch.optim.Adam([{"params": model[0].parameters(), "lr": 1e-4}, {"params": model[2].parameters()}], lr=1e-3)
    Trainer(model, nn.MSELoss(), (x, y[:, None]), optimizer=opt, config=TrainConfig(lr=1e-3, device="cpu"))
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    from torch.utils.data import SubsetRandomSampler

    loader = DataLoader(TensorDataset(x, y[:, None]), batch_size=50, sampler=SubsetRandomSampler(range(64)))
    assert Trainer(bn, nn.MSELoss(), loader, config=CFG).steps_per_epoch == 2  # 50 and 14 rows: none of one
    loader = DataLoader(TensorDataset(x, y[:, None]), batch_size=50, sampler=SubsetRandomSampler(range(51)))
    assert Trainer(bn, nn.MSELoss(), loader, config=CFG).steps_per_epoch == 1  # 50 and 1: the one row left out


def test_a_device_or_memory_error_of_a_torch_loss_is_not_told_as_shapes():
    from nnrecipe.steps.step import _misfit

    assert not _misfit(RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu"))
    assert not _misfit(RuntimeError("CUDA error: device-side assert triggered"))
    assert _misfit(ValueError("Target size (torch.Size([32])) must be the same as input size (torch.Size([32, 1]))"))
    assert _misfit(IndexError("Target 12 is out of bounds."))
