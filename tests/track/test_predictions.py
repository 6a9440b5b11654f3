"""C10, C9, D14: the prediction watch records fixed rows every epoch without changing training and
survives a resume; the validation predictions are written worst first; samples as the network gets them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from torch import nn

from nnrecipe import Trainer, TrainConfig
from nnrecipe.testing import blobs
from nnrecipe.track.predictions import record_predictions, record_samples
from nnrecipe.train.callbacks.watch import PredictionWatch, watch_rows


def setup(seed: int = 0):
    X, y = blobs(192, 4, 3, seed=0)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    return model, (X[:128], y[:128]), (X[128:], y[128:])


def config(epochs: int) -> TrainConfig:
    return TrainConfig(device="cpu", batch_size=32, epochs=epochs, patience=None, seed=0)


def make_watch(val):
    rows = watch_rows(val[1], "multiclass", 6)
    return PredictionWatch([val[0][rows]], val[1][rows], [128 + r for r in rows], "multiclass", ["a", "b", "c"])


def test_watch_rows_take_the_classes_in_turn_and_regression_rows_across_the_range():
    y = torch.tensor([0, 0, 0, 0, 1, 2, 2])
    assert watch_rows(y, "multiclass", 4) == [0, 1, 4, 5]
    assert watch_rows(torch.tensor([[0.0], [0.0], [1.0]]), "binary", 2) == [0, 2]
    values = torch.tensor([[5.0], [1.0], [3.0], [2.0], [4.0]])
    assert watch_rows(values, "regression", 3) == [0, 1, 2]  # the rows holding 5 (max), 1 (min) and 3 (median)


def test_the_watch_records_every_epoch_and_leaves_training_bit_identical(tmp_path):
    model, train, val = setup()
    plain = Trainer(model, nn.CrossEntropyLoss(), train, val, config(4)).fit()
    model, train, val = setup()
    watch = make_watch(val)
    watched = Trainer(model, nn.CrossEntropyLoss(), train, val, config(4), callbacks=[watch], run_dir=tmp_path).fit()
    assert watched == plain  # dropout draws the same numbers: the watch used none
    saved = json.loads((tmp_path / "watch.json").read_text())
    assert saved["epochs"] == [1, 2, 3, 4] and saved["classes"] == ["a", "b", "c"]
    assert len(saved["rows"]) == 6 and saved["targets"] == val[1][watch_rows(val[1], "multiclass", 6)].tolist()
    probs = np.asarray(saved["predictions"])
    assert probs.shape == (4, 6, 3) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    # it learns: the probability of the true class rises from the first epoch to the last
    true = probs[:, np.arange(6), saved["targets"]]
    assert true[-1].mean() > true[0].mean()


def test_a_resumed_run_keeps_the_epochs_watched_before_the_stop(tmp_path):
    model, train, val = setup()
    Trainer(model, nn.CrossEntropyLoss(), train, val, config(2), callbacks=[make_watch(val)], run_dir=tmp_path).fit()
    model, train, val = setup()
    Trainer(model, nn.CrossEntropyLoss(), train, val, config(4), callbacks=[make_watch(val)], run_dir=tmp_path,
            resume=True).fit()
    assert json.loads((tmp_path / "watch.json").read_text())["epochs"] == [1, 2, 3, 4]


def test_record_predictions_classification_worst_first(tmp_path):
    logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]]))
    frame = record_predictions(tmp_path, logits, torch.tensor([0, 0, 1]), [10, 11, 12], "multiclass",
                               ["a", "b", "c"])
    assert frame["row"].tolist() == [11, 12, 10]  # row 11: true 'a' given 0.1, the highest loss
    on_disk = pd.read_csv(tmp_path / "val_predictions.csv")
    assert on_disk.columns.tolist() == ["row", "target", "prediction", "confidence", "loss", "p_a", "p_b", "p_c"]
    assert on_disk["prediction"].tolist() == ["c", "b", "a"]
    assert np.allclose(on_disk["loss"], [-np.log(0.1), -np.log(0.7), -np.log(0.8)], atol=1e-5)
    assert np.allclose(on_disk["confidence"], [0.8, 0.7, 0.8], atol=1e-5)


def test_record_predictions_binary_and_regression_in_the_targets_units(tmp_path):
    frame = record_predictions(tmp_path, torch.tensor([[2.0], [-2.0]]), torch.tensor([[1.0], [1.0]]), [0, 1],
                               "binary", ["no", "yes"])
    assert frame["prediction"].tolist() == ["no", "yes"] and frame["target"].tolist() == ["yes", "yes"]
    reg = record_predictions(tmp_path, torch.tensor([[0.5], [0.0]]), torch.tensor([[0.0], [0.0]]), [3, 4],
                             "regression", target_scale={"mean": 10.0, "std": 2.0})
    assert reg.to_dict("list") == {"row": [3, 4], "target": [10.0, 10.0], "prediction": [11.0, 10.0],
                                   "error": [1.0, 0.0], "loss": [1.0, 0.0]}


def test_record_samples_writes_the_features_the_network_gets(tmp_path):
    features = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [2.0, 1.0]])
    codes = torch.tensor([[1], [0], [2]])
    sample = record_samples(tmp_path, (features, codes), torch.tensor([0, 1, 1]), [7, 8, 9], ["a", "c=red"],
                            ["city"], n=2)
    assert json.loads((tmp_path / "samples.json").read_text()) == sample
    assert sample == {"rows": [7, 8], "feature_names": ["a", "c=red"], "features": [[0.5, 1.0], [-1.0, 0.0]],
                      "targets": [0.0, 1.0], "embedding_names": ["city"], "codes": [[1], [0]]}
