"""T7 early stopping on scripted metric sequences (the callback driven directly), Prechelt's GL and PQ
criteria, and, through the Trainer, that fit() ends with the best epoch's weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from nnrecipe import Callback, ConfigError, EarlyStopping, Trainer
from nnrecipe.train.checkpoint import load_state


def drive(cb: EarlyStopping, values: list[float], key: str = "val_loss",
          train: list[float] | None = None) -> tuple[int | None, list[dict]]:
    """Feed one logs dict per epoch until the callback sets the flag; the stop epoch and the logs seen."""
    trainer = SimpleNamespace(stop_training=False)
    rows = []
    for epoch, value in enumerate(values, start=1):
        logs = {"epoch": epoch, key: value, **({"train_loss": train[epoch - 1]} if train else {})}
        cb.on_epoch_end(trainer, logs)
        rows.append(logs)
        if trainer.stop_training:
            return epoch, rows
    return None, rows


# ---------------------------------------------------------------- patience
@pytest.mark.parametrize("values, patience, best", [
    ([1.0, 0.8, 0.9, 0.85, 0.95, 0.7], 3, 2),  # 0.7 comes too late
    ([1.0, 0.9, 0.8, 0.7, 0.75, 0.76], 2, 4),
    ([1.0, 1.0, 1.0, 1.0], 2, 1),  # equal is no improvement
    ([1.0, 0.5, 0.6, 0.4, 0.45, 0.46, 0.47, 0.48], 4, 4),  # the count restarts at each new best
])
def test_stops_at_best_plus_patience(values, patience, best):
    cb = EarlyStopping("val_loss", "min", patience=patience)
    stop, _ = drive(cb, values)
    assert stop == best + patience
    assert cb.stopped_epoch == stop
    assert cb.best == values[best - 1]


def test_does_not_stop_while_improving():
    cb = EarlyStopping("val_loss", "min", patience=1)
    assert drive(cb, [1.0, 0.9, 0.8, 0.7, 0.6])[0] is None
    assert cb.stopped_epoch is None and cb.wait == 0 and cb.best == 0.6


def test_min_delta_ignores_small_improvements():
    values = [1.0, 0.95, 0.92, 0.91, 0.85, 0.8]
    assert drive(EarlyStopping("val_loss", "min", patience=3), values)[0] is None
    # with min_delta 0.1 only a drop below 0.9 counts: none comes within 3 epochs of epoch 1
    cb = EarlyStopping("val_loss", "min", patience=3, min_delta=0.1)
    assert drive(cb, values)[0] == 4
    assert cb.best == 1.0
    # a drop of more than min_delta restarts the count; the sign of min_delta does not matter
    cb = EarlyStopping("val_loss", "min", patience=3, min_delta=-0.1)
    assert drive(cb, [1.0, 0.95, 0.85, 0.8, 0.79, 0.78, 0.77])[0] == 6


def test_mode_max():
    values = [0.5, 0.7, 0.9, 0.85, 0.9, 0.88]
    cb = EarlyStopping("val_acc", "max", patience=3)
    assert drive(cb, values, key="val_acc")[0] == 6
    assert cb.best == 0.9
    cb = EarlyStopping("val_acc", "max", patience=2, min_delta=0.05)
    assert drive(cb, [0.5, 0.54, 0.56, 0.58, 0.6], key="val_acc")[0] == 5  # only 0.56 beat best + 0.05
    assert cb.best == 0.56


def test_patience_zero_stops_at_the_first_epoch_without_improvement():
    assert drive(EarlyStopping("val_loss", "min", patience=0), [1.0, 0.9, 0.8, 0.85])[0] == 4


def test_state_dict_resumes_the_count():
    values = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7]
    first = EarlyStopping("val_loss", "min", patience=3)
    drive(first, values[:3])
    second = EarlyStopping("val_loss", "min", patience=3)
    second.load_state_dict(first.state_dict())
    trainer = SimpleNamespace(stop_training=False)
    for epoch in (4, 5):
        second.on_epoch_end(trainer, {"epoch": epoch, "val_loss": values[epoch - 1]})
    assert trainer.stop_training and second.stopped_epoch == 5


def test_missing_monitor_is_a_config_error():
    cb = EarlyStopping("val_acc", "max", patience=3)
    with pytest.raises(ConfigError) as e:
        cb.on_epoch_end(SimpleNamespace(stop_training=False), {"epoch": 1, "train_loss": 0.3, "val_loss": 0.4})
    assert str(e.value) == "early stopping monitors 'val_acc', which is not logged; logged: train_loss, val_loss"


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError) as e:
        EarlyStopping(mode="maximum")
    assert str(e.value) == "mode='maximum' is not allowed (did you mean 'max'?); choose one of: min, max"
    with pytest.raises(ConfigError) as e:
        EarlyStopping("val_acc", mode="max", criterion="gl")
    assert str(e.value) == "criterion='gl' needs a monitored loss (mode='min'), got mode='max'"


# ---------------------------------------------------------------- Prechelt (1998), "Early Stopping - But When?"
def prechelt_gl(val: list[float]) -> list[float]:
    """GL(t) = 100 * (E_va(t) / E_opt(t) - 1), E_opt(t) the lowest validation error up to epoch t."""
    return [100.0 * (v / min(val[: t + 1]) - 1.0) for t, v in enumerate(val)]


def prechelt_pk(train: list[float], t: int, k: int) -> float:
    """P_k(t) = 1000 * (sum of E_tr over the strip t-k+1..t / (k * its minimum) - 1)."""
    strip = train[t - k + 1: t + 1]
    return 1000.0 * (sum(strip) / (k * min(strip)) - 1.0)


def test_gl_stops_at_the_first_epoch_whose_generalization_loss_exceeds_alpha():
    val = [1.0, 0.8, 0.7, 0.72, 0.69, 0.71, 0.73, 0.74, 0.76]
    gl = prechelt_gl(val)  # 0, 0, 0, 2.86, 0, 2.90, 5.80, ...
    cb = EarlyStopping("val_loss", "min", criterion="gl", alpha=5.0)
    stop, rows = drive(cb, val)
    assert stop == 7 == next(t + 1 for t, g in enumerate(gl) if g > 5.0)
    assert [r["gl"] for r in rows] == pytest.approx(gl[:stop])
    # GL is measured against the best so far, not against the previous epoch
    assert rows[3]["gl"] == pytest.approx(100 * (0.72 / 0.7 - 1))


def test_gl_does_not_stop_below_alpha():
    cb = EarlyStopping("val_loss", "min", criterion="gl", alpha=10.0)
    assert drive(cb, [1.0, 0.8, 0.7, 0.72, 0.69, 0.71, 0.73, 0.74, 0.75])[0] is None


# strips of k = 5 epochs; the quotient GL / P_k is evaluated at the end of each strip (epochs 5, 10, ...)
PQ_TRAIN = [1.0, 0.8, 0.7, 0.65, 0.6, 0.58, 0.57, 0.565, 0.56, 0.558, 0.557, 0.5565, 0.556, 0.5558, 0.5557]
PQ_VAL = [1.0, 0.8, 0.7, 0.65, 0.6, 0.59, 0.6, 0.6, 0.605, 0.61, 0.612, 0.615, 0.62, 0.625, 0.63]


def test_pq_quotient_matches_prechelt():
    cb = EarlyStopping("val_loss", "min", criterion="pq", alpha=1e9, strip=5)  # never stops: log every epoch
    _, rows = drive(cb, PQ_VAL, train=PQ_TRAIN)
    gl = prechelt_gl(PQ_VAL)
    for t in range(4, len(PQ_VAL)):  # once a whole strip is there
        assert rows[t]["gl"] == pytest.approx(gl[t])
        assert rows[t]["pq"] == pytest.approx(gl[t] / prechelt_pk(PQ_TRAIN, t, 5)), t + 1


def test_pq_stops_at_the_end_of_the_first_strip_where_the_quotient_exceeds_alpha():
    gl = prechelt_gl(PQ_VAL)
    pq = {t + 1: gl[t] / prechelt_pk(PQ_TRAIN, t, 5) for t in range(4, len(PQ_VAL))}
    assert pq[5] == 0 and pq[10] > 0.2 and max(pq[e] for e in range(5, 10)) < 0.2  # 0.22 at epoch 10
    cb = EarlyStopping("val_loss", "min", criterion="pq", alpha=0.2, strip=5)
    assert drive(cb, PQ_VAL, train=PQ_TRAIN)[0] == 10


def test_pq_is_only_checked_at_the_end_of_a_strip():
    gl = prechelt_gl(PQ_VAL)
    pq = {t + 1: gl[t] / prechelt_pk(PQ_TRAIN, t, 5) for t in range(4, len(PQ_VAL))}
    # the quotient first passes 0.3 at epoch 11, in the middle of the third strip (0.42), and is still
    # above it at the strip's end, epoch 15 (7.5)
    assert pq[11] > 0.3 and pq[15] > 0.3 and max(pq[e] for e in range(5, 11)) < 0.3
    cb = EarlyStopping("val_loss", "min", criterion="pq", alpha=0.3, strip=5)
    assert drive(cb, PQ_VAL, train=PQ_TRAIN)[0] == 15


# ---------------------------------------------------------------- through the Trainer
SCRIPT = [5.0, 3.0, 4.0, 3.5, 3.2, 1.0]  # a validation score: best at epoch 2, then 3 worse epochs


def scripted_score():
    values = iter(SCRIPT)
    return lambda out, y: next(values)  # evaluate() runs once per epoch on the validation data


class Snapshot(Callback):
    """Keeps a copy of the weights at each epoch's end."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(self, trainer, logs):
        self.weights[logs["epoch"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_trainer_stops_at_best_plus_patience_and_restores_the_best_weights(
        make_mlp, train_config, blob_data, blob_val, tmp_path, same_state):
    snap = Snapshot()
    per_epoch = snap.weights
    cfg = train_config(epochs=10, patience=3, monitor="val_score", mode="min")
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, val_data=blob_val, config=cfg, run_dir=tmp_path,
                metrics={"score": scripted_score()}, callbacks=[snap])
    history = t.fit()
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]  # best 2 + patience 3
    assert [r["val_score"] for r in history] == SCRIPT[:5]
    assert (t.best_epoch, t.best_value) == (2, 3.0)

    best = load_state(tmp_path / "checkpoints" / "best.safetensors")
    last = load_state(tmp_path / "checkpoints" / "last.safetensors")
    assert (best["epoch"], best["value"], best["monitor"]) == (2, 3.0, "val_score")
    assert same_state(t.model.state_dict(), best["model"])  # the model ends with the best epoch's weights
    assert same_state(best["model"], per_epoch[2])
    assert same_state(last["model"], per_epoch[5])  # the last epoch's stay in the checkpoint
    assert not same_state(last["model"], best["model"])
    assert last["history"] == history


def test_restore_best_off_keeps_the_last_weights(make_mlp, train_config, blob_data, blob_val, same_state):
    cfg = train_config(epochs=10, patience=3, monitor="val_score", mode="min", restore_best=False)
    snap = Snapshot()
    t = Trainer(make_mlp(), nn.CrossEntropyLoss(), blob_data, val_data=blob_val, config=cfg,
                metrics={"score": scripted_score()}, callbacks=[snap])
    t.fit()
    assert len(t.history) == 5 and t.best_epoch == 2
    assert same_state(t.model.state_dict(), snap.weights[5])
    assert not same_state(t.model.state_dict(), snap.weights[2])
