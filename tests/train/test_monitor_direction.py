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
