"""The open engine's edges: a step's loss is resolved without changing the caller's step, the LR range test
starts from the optimizer as it was built (not as a schedule moved it) and leaves a stateful step alone, a
caller's own optimizer is recorded and compared on resume as it is, a whole-step callable gets its batch as
the data holds it and has its state checkpointed, metric names fail at once, sample weights keep the loss's
own weighting, and what a step returns is checked with a message naming the fix."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from nnrecipe import ConfigError, Reconstruction, Step, TrainConfig, Trainer, doctor
from nnrecipe.io import read_json
from nnrecipe.train import checkpoint as ckpt


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_a_shared_step_is_never_changed_and_each_trainer_trains_with_its_own_loss(make_mlp, train_config, blob_data):
    step = Step()
    a = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), step=step)
    b = Trainer(make_mlp(classes=1), nn.MSELoss(), (blob_data[0], blob_data[1].float()[:, None]),
                config=train_config(), step=step)
    assert step.loss_fn is None
    assert isinstance(a.step.loss_fn, nn.CrossEntropyLoss) and isinstance(b.step.loss_fn, nn.MSELoss)


def test_a_step_with_its_own_loss_and_another_loss_fn_is_refused(make_mlp, train_config, blob_data):
    with pytest.raises(ConfigError, match=exact("the step brings its own loss (MSELoss) and loss_fn=CrossEntropyLoss "
                                                "was given too: give the loss to one of them")):
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), step=Step(nn.MSELoss()))
    # the same loss twice is one loss
    Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), step=Step(nn.CrossEntropyLoss()))


def test_reconstruction_takes_the_trainers_loss_and_records_it(train_config, blob_data, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 8))
    t = Trainer(model, nn.L1Loss(), blob_data[0], config=train_config(epochs=1), step=Reconstruction(),
                run_dir=tmp_path, report=False)
    t.fit()
    assert isinstance(t.step.loss_fn, nn.L1Loss) and read_json(tmp_path / "config.json")["loss"] == "L1Loss"
    assert isinstance(Trainer(model, None, blob_data[0], config=train_config(), step=Reconstruction()).step.loss_fn,
                      nn.MSELoss)


def test_the_doctor_fills_in_the_loss_of_a_step_without_one(make_mlp, blob_data):
    [c1] = doctor(make_mlp(), blob_data, train_step=Step(), loss_fn=nn.CrossEntropyLoss(), checks=["C1"])
    assert c1.status == "pass", c1


def test_the_lr_range_test_starts_from_the_optimizer_as_built_not_as_a_schedule_moved_it(make_mlp, train_config,
                                                                                       blob_data, blob_val):
    """OneCycleLR sets Adam's beta1 to 0.95 and the rate to a 25th when it is built; the sweep starts from the
    optimizer's own settings, as with no schedule."""
    found = {}
    for schedule in ("constant", "onecycle"):
        t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, blob_val, config=train_config(schedule=schedule))
        found[schedule] = t.lr_find(steps=30)
    assert found["onecycle"].raw_losses == found["constant"].raw_losses
    assert found["onecycle"].suggestion == found["constant"].suggestion


class Counting(Step):
    def __init__(self):
        super().__init__()
        self.seen = 0

    def loss(self, model, batch):
        self.seen += 1
        return super().loss(model, batch)


def test_the_lr_range_test_leaves_a_stateful_step_alone(make_mlp, train_config, blob_data, blob_val):
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, blob_val, config=train_config(), step=Counting())
    t.lr_find(steps=20, confirm=True)
    assert t.step.seen == 0


def test_a_callers_optimizer_is_recorded_as_it_is(make_mlp, train_config, blob_data, tmp_path):
    model = make_mlp()
    t = Trainer(model, nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=1), run_dir=tmp_path,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1e-4), report=False)
    t.fit()
    recorded = read_json(tmp_path / "config.json")["train"]
    assert (recorded["optimizer"], recorded["lr"], recorded["weight_decay"]) == ("sgd", 0.1, 1e-4)


def test_a_resume_with_another_optimizer_is_refused_naming_it(make_mlp, train_config, blob_data, tmp_path):
    Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=1), run_dir=tmp_path,
            report=False).fit()
    model = make_mlp()
    t = Trainer(model, nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=2), run_dir=tmp_path,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1), resume=True)
    with pytest.raises(ConfigError, match=exact(
            f"cannot resume the run in '{tmp_path}': the model or settings differ from the recorded ones: lr: 0.0003 "
            "in the checkpoint, 0.1 now; optimizer: 'adam' in the checkpoint, 'sgd' now. Resume with the recorded "
            "model and settings, or start a new run_dir")):
        t.fit()


def test_a_checkpoint_that_recorded_no_batch_size_resumes(make_mlp, train_config, blob_data, tmp_path):
    """Checkpoints made before the resolved batch size was recorded hold None (the sizing rule)."""
    Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=1, batch_size=None),
            run_dir=tmp_path, report=False).fit()
    last = tmp_path / "checkpoints" / "last.safetensors"
    state = ckpt.load_state(last)
    state["config"]["batch_size"] = None
    ckpt.save_state(last, state)
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=2, batch_size=None),
                run_dir=tmp_path, resume=True, report=False)
    assert len(t.fit()) == 2


class CountingCall:
    """A whole step with state: the batches it has stepped on."""

    def __init__(self):
        self.seen = 0

    def __call__(self, model, optimizer, batch):
        self.seen += 1
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(batch["features"]), batch["labels"])
        loss.backward()
        optimizer.step()
        return loss

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def test_a_whole_step_gets_its_batch_as_the_data_holds_it_and_keeps_its_state(make_mlp, train_config, blob_data,
                                                                              tmp_path):
    data = {"features": blob_data[0], "labels": blob_data[1]}
    step = CountingCall()
    Trainer(make_mlp(), nn.CrossEntropyLoss(), data, config=train_config(epochs=1), step=step, run_dir=tmp_path,
            report=False).fit()
    assert step.seen == 8
    assert ckpt.load_state(tmp_path / "checkpoints" / "last.safetensors")["step"] == {"seen": 8}
    again = CountingCall()
    Trainer(make_mlp(), nn.CrossEntropyLoss(), data, config=train_config(epochs=2), step=again, run_dir=tmp_path,
            resume=True, report=False).fit()
    assert again.seen == 16


def test_metric_names_fail_at_once_and_the_task_comes_from_the_steps_loss(make_mlp, train_config, blob_data):
    with pytest.raises(ConfigError, match=exact("metrics: 'acuracy' is not a metric (did you mean 'accuracy'?); choose "
                                                "from: accuracy, balanced_accuracy, macro_f1, roc_auc, log_loss, rmse, "
                                                "mae, r2")):
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), metrics=["acuracy"])
    with pytest.raises(ConfigError, match=exact("metrics=5; give metric names (['accuracy', 'f1']) or a dict "
                                                "{name: fn(outputs, target) -> float}")):
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), metrics=5)
    y = (blob_data[1] == 0).float()[:, None]
    t = Trainer(make_mlp(classes=1), None, (blob_data[0], y), (blob_data[0], y), config=train_config(epochs=1),
                step=Step(nn.BCEWithLogitsLoss()), metrics=["accuracy"])
    assert 0.0 <= t.fit()[0]["val_accuracy"] <= 1.0


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0, 0.5])),
                                  nn.CrossEntropyLoss(ignore_index=2)])
def test_sample_weights_of_one_give_the_losss_own_mean(loss):
    torch.manual_seed(0)
    out, y = torch.randn(12, 3), torch.randint(0, 3, (12,))
    step = Step(loss)
    assert torch.allclose(step.compute_loss(out, y, torch.ones(12)), loss(out, y))


def test_what_a_step_returns_is_checked(make_mlp, train_config, blob_data):
    class LossOnly(Step):
        def loss(self, model, batch):
            return super().loss(model, batch)[0]

    class PerRow(Step):
        def loss(self, model, batch):
            out = model(*batch.inputs)
            return nn.functional.cross_entropy(out, batch.target, reduction="none"), out

    for step, message in ((LossOnly(), "LossOnly.loss returned a Tensor; return (loss, outputs): the batch's loss as "
                                       "one number, and the model's outputs"),
                          (PerRow(), "PerRow.loss returned a loss of shape (32,); reduce it to one number (its mean "
                                     "over the batch)")):
        with pytest.raises(ConfigError, match=exact(message)):
            Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(), step=step).fit()
    with pytest.raises(ConfigError, match=exact("the step returned {'loss': 1.0}; return the batch's loss (a tensor of "
                                                "one number, or a float), or (loss, outputs) for the metrics")):
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(),
                step=lambda model, optimizer, batch: {"loss": 1.0}).fit()


def test_sample_weights_of_the_wrong_length_and_dict_keys_forward_does_not_take_are_named(make_mlp, train_config,
                                                                                         blob_data):
    x, y = blob_data
    with pytest.raises(ConfigError, match=exact("the batch's sample weights hold 3 values for 32 rows; give one "
                                                "weight per row")):
        Step(nn.CrossEntropyLoss()).compute_loss(torch.randn(32, 3), y[:32], torch.ones(3))

    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 3)

        def forward(self, features):
            return self.lin(features)

    with pytest.raises(ConfigError, match=r"^the batch's inputs 'x' do not fit the model's forward\(features\) \(.*"
                                          r"\); name the dict's keys after forward's parameters, the target under "
                                          r"'target' and the sample weights under 'sample_weight'$"):
        Trainer(Named(), nn.CrossEntropyLoss(), {"x": x, "target": y}, config=train_config()).fit()
