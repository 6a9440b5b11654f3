"""What the trainer follows has one direction everywhere: the plateau schedule cuts the rate when the
monitored metric stops improving in its own direction (a rising accuracy is no plateau), and a metric of
the caller's own must say its direction (taken as an error to minimise, a rising hit rate kept its worst
epoch)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nnrecipe import Trainer
from nnrecipe.config import TrainConfig
from nnrecipe.errors import ConfigError


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def test_the_plateau_schedule_follows_the_monitored_direction():
    torch.manual_seed(0)
    trainer = Trainer(nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(120, 0), _data(60, 1),
                      config=TrainConfig(epochs=2, metric="accuracy", schedule="plateau", plateau_patience=0,
                                         gamma=0.5, patience=None))
    assert (trainer.monitor, trainer.mode, trainer.scheduler.mode) == ("val_accuracy", "max", "max")
    loss = Trainer(nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(120, 0), _data(60, 1),
                   config=TrainConfig(epochs=2, schedule="plateau", patience=None))
    assert (loss.monitor, loss.scheduler.mode) == ("val_loss", "min")


def test_a_metric_of_ones_own_must_say_its_direction():
    def hits(out: torch.Tensor, y: torch.Tensor) -> float:
        return float((out.argmax(1) == y).float().mean())

    args = (nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(120, 0), _data(60, 1))
    with pytest.raises(ConfigError, match=r"follow 'val_hits', a metric whose direction nnrecipe does not know: "
                                          r"say it, mode='max' \(higher is better\) or mode='min'"):
        Trainer(*args, config=TrainConfig(epochs=3, metric="hits"), metrics={"hits": hits})
    torch.manual_seed(0)
    trainer = Trainer(*args, config=TrainConfig(epochs=6, metric="hits", mode="max", lr=0.05, patience=None),
                      metrics={"hits": hits})
    trainer.fit()
    values = [row["val_hits"] for row in trainer.history]
    assert trainer.best_value == max(values) and trainer.history[trainer.best_epoch - 1]["val_hits"] == max(values)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_more_epochs_on_resume_are_refused_where_the_schedule_spans_the_run(tmp_path, schedule):
    """A cosine schedule resumed with more epochs came back up from its floor, 1cycle raised torch's error;
    a constant one goes on (resuming with more epochs is allowed, with a warning)."""
    args = (nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(80, 0), _data(40, 1))
    Trainer(*args, config=TrainConfig(epochs=2, schedule=schedule, batch_size=40), run_dir=tmp_path / schedule).fit()
    with pytest.raises(ConfigError, match=rf"epochs: 2 in the checkpoint, 5 now, and the {schedule} schedule spans "
                                          r"the run's epochs \(its rate planned to end at epoch 2\)"):
        Trainer(*args, config=TrainConfig(epochs=5, schedule=schedule, batch_size=40), run_dir=tmp_path / schedule,
                resume=True).fit()
    Trainer(*args, config=TrainConfig(epochs=2, batch_size=40), run_dir=tmp_path / "constant").fit()
    longer = Trainer(*args, config=TrainConfig(epochs=4, batch_size=40), run_dir=tmp_path / "constant", resume=True)
    longer.fit()
    assert len(longer.history) == 4


def test_a_whole_number_setting_refuses_a_fraction_in_the_constructor_too():
    """TrainConfig(accumulate=2.5) was taken (a dict or the CLI refused it): it stepped at odd batches."""
    with pytest.raises(ConfigError, match=r"^accumulate=2\.5 is not allowed; it takes a whole number$"):
        TrainConfig(accumulate=2.5)
    with pytest.raises(ConfigError, match=r"^batch_size=37\.4 is not allowed"):
        TrainConfig(batch_size=37.4)
    cfg = TrainConfig(accumulate=2.0, epochs=4.0)
    assert (cfg.accumulate, cfg.epochs) == (2, 4) and type(cfg.accumulate) is int


def test_an_empty_stream_as_validation_data_is_named():
    """torch.cat(): expected a non-empty list of Tensors, after the first epoch."""

    class Nothing(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(())

    trainer = Trainer(nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(40, 0),
                      torch.utils.data.DataLoader(Nothing(), batch_size=8), config=TrainConfig(epochs=2))
    with pytest.raises(ConfigError, match=r"^val_data gave no rows \(an empty stream"):
        trainer.fit()


def test_aliases_and_keys_naming_a_metric_keep_its_direction():
    """`--metric cross_entropy` (an alias of log_loss) and metrics={"top1": "accuracy"} know their direction."""
    args = (nn.Linear(4, 2), nn.CrossEntropyLoss(), _data(60, 0), _data(30, 1))
    assert Trainer(*args, config=TrainConfig(epochs=1, metric="cross_entropy")).mode == "min"
    assert Trainer(*args, config=TrainConfig(epochs=1, metric="top1"), metrics={"top1": "accuracy"}).mode == "max"
