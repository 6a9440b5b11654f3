"""T3/T8: the optimizer as a name, as parameter groups or as a torch optimizer the caller built (its groups'
rates honoured, checkpointed and resumed exactly); the resume policy (a used run_dir is refused unless asked,
a changed model or setting is refused with the differences named, a longer budget is allowed and said); and a
bare Trainer's run folder as `nnrecipe report`, `runs` and `compare` read it."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from nnrecipe import Callback, CheckpointError, ConfigError, Trainer
from nnrecipe.cli import main
from nnrecipe.train.checkpoint import load_state


class Crash(Exception):
    """Stands in for the process dying mid-epoch."""


class Probe(Callback):
    """Counts batches and raises Crash after `crash_after`; records whether the fit resumed."""

    def __init__(self, crash_after: int | None = None):
        self.crash_after, self.count, self.resumed = crash_after, 0, None

    def on_fit_start(self, trainer, logs):
        self.resumed = logs["resumed"]

    def on_batch_end(self, trainer, logs):
        self.count += 1
        if self.count == self.crash_after:
            raise Crash


def fit(model, data, val, cfg, run_dir, crash_after=None, **kw) -> tuple[Trainer, Probe]:
    probe = Probe(crash_after)
    t = Trainer(model, nn.CrossEntropyLoss(), data, val_data=val, config=cfg, run_dir=run_dir, callbacks=[probe],
                **kw)
    try:
        t.fit()
    except Crash:
        pass
    return t, probe


def two_groups(model: nn.Module) -> torch.optim.Optimizer:
    """The first layer at 0.1, the rest at 0.01."""
    return torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1}, {"params": model[3].parameters(), "lr": 0.01}],
                           momentum=0.9)


# ---------------------------------------------------------------- optimizers
def test_an_optimizer_with_two_groups_is_honoured(make_mlp, train_config, blob_data, blob_val, tmp_path):
    model = make_mlp()
    t, _ = fit(model, blob_data, blob_val, train_config(), tmp_path, optimizer=two_groups(model))
    assert [row["lr"] for row in t.history] == [0.1, 0.1, 0.1]  # the history's lr is group 0's
    groups = load_state(tmp_path / "checkpoints" / "last.safetensors")["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.1, 0.01]
    assert [g["momentum"] for g in groups] == [0.9, 0.9]


def test_each_group_steps_at_its_own_rate(make_mlp, train_config, blob_data):
    """One step of SGD (the first, where momentum is the gradient itself): each layer moves by its group's
    rate times the gradient, against a run with both groups at rate 1."""
    def one_step(lrs: tuple[float, float]) -> dict[str, torch.Tensor]:
        model = make_mlp()
        start = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": lrs[0]},
                               {"params": model[3].parameters(), "lr": lrs[1]}], momentum=0.9)
        t = Trainer(model, nn.CrossEntropyLoss(), blob_data, config=train_config(epochs=1, batch_size=256),
                    optimizer=opt)
        t.fit()
        assert t.global_step == 1
        return {k: model.state_dict()[k] - start[k] for k in start}

    grouped, unit = one_step((0.1, 0.01)), one_step((1.0, 1.0))
    for k in unit:
        rate = 0.1 if k.startswith("0.") else 0.01
        assert unit[k].abs().max() > 0
        torch.testing.assert_close(grouped[k], rate * unit[k], rtol=1e-4, atol=1e-7)


def test_an_optimizer_with_two_groups_resumes_bit_for_bit(make_mlp, train_config, blob_data, blob_val, tmp_path,
                                                          identical, same_state):
    cfg = train_config(checkpoint_every=3)

    def run(run_dir: Path, crash_after: int | None = None, resume: bool = False) -> tuple[Trainer, Probe]:
        model = make_mlp(dropout=0.3)
        return fit(model, blob_data, blob_val, cfg, run_dir, crash_after, optimizer=two_groups(model), resume=resume)

    straight, _ = run(tmp_path / "straight")
    run(tmp_path / "resumed", crash_after=13)  # 8 batches an epoch: the checkpoint at step 12
    assert load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")["position"]["global_step"] == 12
    resumed, probe = run(tmp_path / "resumed", resume=True)
    assert probe.resumed is True and probe.count == 24 - 12
    assert resumed.history == straight.history
    assert same_state(resumed.model.state_dict(), straight.model.state_dict())
    identical(load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors"),
              load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors"))
    assert (tmp_path / "resumed" / "metrics.jsonl").read_bytes() == (tmp_path / "straight" / "metrics.jsonl").read_bytes()


def test_parameter_groups_as_dicts_use_the_configs_optimizer(make_mlp, train_config, blob_data):
    model = make_mlp()
    groups = [{"params": model[0].parameters(), "lr": 0.05}, {"params": model[3].parameters()}]
    t = Trainer(model, nn.CrossEntropyLoss(), blob_data, config=train_config(optimizer="sgd", lr=0.01),
                optimizer=groups)
    assert type(t.optimizer) is torch.optim.SGD
    assert [(g["lr"], g["momentum"], len(g["params"])) for g in t.optimizer.param_groups] == [(0.05, 0.9, 2),
                                                                                              (0.01, 0.9, 2)]
    t.fit()
    assert t.history[-1]["lr"] == 0.05
    # with weight decay each group is split: its weights decay, its bias does not, both keep the group's rate
    model = make_mlp()
    groups = [{"params": model[0].parameters(), "lr": 0.05}, {"params": model[3].parameters()}]
    t = Trainer(model, nn.CrossEntropyLoss(), blob_data, config=train_config(optimizer="sgd", lr=0.01,
                                                                              weight_decay=0.1), optimizer=groups)
    assert [(g["lr"], g["weight_decay"], [p.ndim for p in g["params"]]) for g in t.optimizer.param_groups] == [
        (0.05, 0.1, [2]), (0.05, 0.0, [1]), (0.01, 0.1, [2]), (0.01, 0.0, [1])]


def test_an_optimizer_over_other_parameters_is_refused(make_mlp, train_config, blob_data):
    other = make_mlp()
    message = ("the optimizer holds 4 of 4 parameters that are not the model's (was it built on another model, or "
               "before the model was copied?); build it on model.parameters() of the model given to the Trainer")
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(),
                optimizer=torch.optim.SGD(other.parameters(), lr=0.1))


def test_an_optimizer_by_name_equals_the_configs(make_mlp, train_config, blob_data, same_state):
    by_name = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(lr=0.05), optimizer="sgd")
    by_config = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, config=train_config(lr=0.05, optimizer="sgd"))
    assert by_name.config == by_config.config and type(by_name.optimizer) is torch.optim.SGD
    assert by_name.fit() == by_config.fit()
    assert same_state(by_name.model.state_dict(), by_config.model.state_dict())


# ---------------------------------------------------------------- the resume policy
def test_a_used_run_dir_is_refused_without_resume(make_mlp, train_config, blob_data, tmp_path):
    fit(make_mlp(), blob_data, None, train_config(epochs=1), tmp_path)
    message = (f"run folder '{tmp_path}' already holds a run (checkpoints/last.safetensors, metrics.jsonl, "
               f"results.json); to go on with it, pass resume=True (CLI: --resume {tmp_path}); to start a new run, "
               "give a new run_dir")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        fit(make_mlp(), blob_data, None, train_config(epochs=1), tmp_path)


def test_auto_starts_an_empty_run_dir_and_true_refuses_it(make_mlp, train_config, blob_data, tmp_path):
    t, probe = fit(make_mlp(), blob_data, None, train_config(), tmp_path / "auto", resume="auto")
    assert probe.resumed is False and len(t.history) == 3
    empty = tmp_path / "empty"
    message = (f"resume=True, but run folder '{empty}' holds no checkpoint to resume; give the folder of the "
               "interrupted run, or resume='auto' (resume when there is one, else start)")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        fit(make_mlp(), blob_data, None, train_config(), empty, resume=True)


def refused(run_dir: Path, problems: str) -> str:
    return re.escape(f"cannot resume the run in '{run_dir}': the model or settings differ from the recorded ones: "
                     f"{problems}. Resume with the recorded model and settings, or start a new run_dir")


@pytest.fixture
def crashed(make_mlp, train_config, blob_data, blob_val, tmp_path) -> Path:
    """A run (8-16-3, lr 3e-3) killed in its second epoch, with a checkpoint."""
    fit(make_mlp(), blob_data, blob_val, train_config(lr=3e-3, checkpoint_every=3), tmp_path, crash_after=13)
    return tmp_path


def test_a_wider_model_is_refused_naming_the_shapes(crashed, make_mlp, train_config, blob_data, blob_val):
    problems = ("0.bias: [16] in the checkpoint, [32] now; 0.weight: [16, 8] in the checkpoint, [32, 8] now; "
                "3.weight: [3, 16] in the checkpoint, [3, 32] now")
    with pytest.raises(ConfigError, match=f"^{refused(crashed, problems)}$"):
        fit(make_mlp(hidden=32), blob_data, blob_val, train_config(lr=3e-3, checkpoint_every=3), crashed, resume=True)


def test_another_activation_is_refused_naming_the_architecture(crashed, train_config, blob_data, blob_val):
    torch.manual_seed(0)
    tanh = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(0.0), nn.Linear(16, 3))  # the same shapes
    problems = "the architecture differs: -  (1): ReLU(); +  (1): Tanh()"
    with pytest.raises(ConfigError, match=f"^{refused(crashed, problems)}$"):
        fit(tanh, blob_data, blob_val, train_config(lr=3e-3, checkpoint_every=3), crashed, resume=True)


def test_another_learning_rate_is_refused_naming_it(crashed, make_mlp, train_config, blob_data, blob_val):
    with pytest.raises(ConfigError, match=f"^{refused(crashed, 'lr: 0.003 in the checkpoint, 0.01 now')}$"):
        fit(make_mlp(), blob_data, blob_val, train_config(lr=1e-2, checkpoint_every=3), crashed, resume=True)


def test_more_epochs_are_allowed_and_said(make_mlp, train_config, blob_data, blob_val, tmp_path, caplog, same_state):
    fit(make_mlp(), blob_data, blob_val, train_config(epochs=2), tmp_path / "longer")
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        longer, probe = fit(make_mlp(), blob_data, blob_val, train_config(epochs=4), tmp_path / "longer",
                            resume=True)
    assert probe.resumed is True and probe.count == 2 * 8 and len(longer.history) == 4
    warnings = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "nnrecipe"]
    assert (logging.WARNING, "resuming with epochs=4 (the run was started with 2)") in warnings
    assert (logging.WARNING, f"resuming the run in {tmp_path / 'longer'} from its checkpoint at epoch 3, "
                             "batch 0") in warnings
    # a constant rate: two epochs, then two more, are four straight
    straight, _ = fit(make_mlp(), blob_data, blob_val, train_config(epochs=4), tmp_path / "straight")
    assert longer.history == straight.history
    assert same_state(longer.model.state_dict(), straight.model.state_dict())


def test_a_mid_epoch_resume_is_logged_as_a_warning(crashed, make_mlp, train_config, blob_data, blob_val, caplog):
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        fit(make_mlp(), blob_data, blob_val, train_config(lr=3e-3, checkpoint_every=3), crashed, resume=True)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "nnrecipe"] == [
        (logging.WARNING, f"resuming the run in {crashed} from its checkpoint at epoch 2, batch 4")]


# ---------------------------------------------------------------- a bare Trainer's run folder
@pytest.fixture
def two_runs(make_mlp, train_config, blob_data, blob_val, tmp_path) -> tuple[Trainer, Trainer]:
    """Two Trainer runs under tmp_path/runs that differ only in lr."""
    out = []
    for name, lr in (("a", 0.01), ("b", 0.02)):
        t, _ = fit(make_mlp(), blob_data, blob_val, train_config(epochs=2, lr=lr), tmp_path / "runs" / name)
        out.append(t)
    return out[0], out[1]


def test_a_trainer_run_folder_is_a_run(two_runs, tmp_path, capsys):
    run = tmp_path / "runs" / "a"
    assert {"config.json", "results.json", "metrics.jsonl", "report.html"} <= {p.name for p in run.iterdir()}
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").stat().st_size > 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("a "))
    assert row.split()[-3:] == ["val_loss", f"{two_runs[0].best_value:.4g}", "-"]  # a bare Trainer: no test rows
    assert "tensors" in row.split()


def test_compare_names_the_one_changed_setting(two_runs, tmp_path, capsys):
    out = tmp_path / "compare.html"
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert out.is_file() and "train.lr" in out.read_text()
    # the runs differ in lr alone: nothing else of the record (the optimizer's among it) may differ with it
    assert printed[0] == "one setting changed: train.lr" and printed[-1] == str(out)
    assert printed[1].split()[-3:] == ["lr", "best", "test"] and len(printed) == 5  # a line per run between
