"""T11 stochastic weight averaging, and on_nonfinite='rollback'."""

import pytest
import torch
from torch import nn

from nnrecipe import TrainConfig, Trainer, TrainingError
from nnrecipe.testing import blobs


def _model(bn: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), *([nn.BatchNorm1d(32)] if bn else []), nn.ReLU(), nn.Linear(32, 3))


def test_swa_ends_with_the_average_of_the_epochs_from_swa_start():
    X, y = blobs(256, 8, 3)
    cfg = TrainConfig(epochs=6, swa_start=3, swa_lr=0.01, optimizer="sgd", lr=0.05, batch_size=32, patience=None)
    # the reference: the weights after each epoch from the 3rd on, averaged by hand
    collected = []

    class Collect:
        def on_fit_start(self, t, logs): pass
        def on_epoch_start(self, t, logs): pass
        def on_batch_end(self, t, logs): pass
        def on_fit_end(self, t, logs): pass
        def on_epoch_end(self, t, logs):
            if logs["epoch"] >= 3:
                collected.append({k: v.clone() for k, v in t.model.state_dict().items()})

    model = _model()
    Trainer(model, nn.CrossEntropyLoss(), (X, y), config=cfg, callbacks=[Collect()]).fit()
    assert len(collected) == 4
    for k, v in model.state_dict().items():
        expected = torch.stack([c[k] for c in collected]).mean(0)
        assert torch.allclose(v, expected, atol=1e-6), k


def test_swa_updates_batchnorm_statistics():
    X, y = blobs(256, 8, 3)
    cfg = TrainConfig(epochs=12, swa_start=6, lr=1e-2, batch_size=32, patience=None)
    model = _model(bn=True)
    t = Trainer(model, nn.CrossEntropyLoss(), (X, y), config=cfg)
    t.fit()
    bn = model[1]
    # after update_bn, the running mean is the mean of the first layer's output over the training data
    with torch.no_grad():
        h = model[0](X)
    assert torch.allclose(bn.running_mean, h.mean(0), atol=1e-4)
    assert t.evaluate((X, y))["loss"] < 0.5


def test_rollback_recovers_from_a_diverging_learning_rate(caplog):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(256, 8, generator=g)
    y = X @ torch.randn(8, 1, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    cfg = TrainConfig(epochs=8, optimizer="sgd", momentum=0.0, lr=5.0, batch_size=32, patience=None,
                      on_nonfinite="rollback")
    t = Trainer(model, nn.MSELoss(), (X, y), config=cfg)
    history = t.fit()
    assert t.rollbacks >= 1
    assert "rolling back" in caplog.text
    assert len(history) == 8 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in history)
    assert history[-1]["lr"] == pytest.approx(5.0 * 0.1 ** t.rollbacks)
    with pytest.raises(TrainingError):  # the same lr without rollback stops
        Trainer(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1)), nn.MSELoss(), (X, y),
                config=TrainConfig(epochs=8, optimizer="sgd", momentum=0.0, lr=5.0, batch_size=32)).fit()


def test_rollback_gives_up_after_three_on_a_deterministic_nan():
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x - 100)  # always NaN

    X, y = blobs(64, 8, 3)
    model = nn.Sequential(nn.Linear(8, 8), Log(), nn.Linear(8, 3))
    t = Trainer(model, nn.CrossEntropyLoss(), (X, y), config=TrainConfig(on_nonfinite="rollback", batch_size=16))
    with pytest.raises(TrainingError, match=r"after 3 rollbacks"):
        t.fit()
