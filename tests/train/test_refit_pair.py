"""R2 beside early stopping (TrainConfig.refit): the early-stopped network and a second one trained on the
training and validation rows for its best epoch count, averaged. What a run records (members/, model.json,
results.json, summary.txt), that predictions are the pair's average, when 'auto' turns it on and off, the
errors, and a resume bit for bit when the second network was interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.errors import ConfigError
from nnrecipe.models import build_model
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.recipes import pipeline
from nnrecipe.testing import small_table
from nnrecipe.train.callbacks import Callback

QUICK = {"checks": (), "report": False, "audit": False, "model_config": ModelConfig(model="mlp")}


def read_json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def frame():
    return small_table(200)


def test_the_default_trains_the_pair_and_predicts_with_its_average(frame, tmp_path):
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=8, seed=0), **QUICK)
    d = run.run_dir
    config, results, meta = read_json(d / "config.json"), read_json(d / "results.json"), read_json(d / "model.json")
    assert TrainConfig().refit == "auto" and config["train"]["refit"] == "on"  # 170 rows: auto is on
    first, second = (read_json(d / "members" / str(n) / "member.json") for n in (1, 2))
    # member 1 stopped on the validation rows; member 2 trained its best epoch count, with nothing to stop on
    assert first["best_epoch"] == results["best_epoch"] and first["epochs_run"] == results["epochs_run"] == 8
    assert second["epochs_run"] == results["refit"]["epochs"] == first["best_epoch"]
    assert "val_loss" not in second["history"][0] and "train_loss" in second["history"][0]
    assert results["refit"]["trained_on"] == ["train", "val"]
    assert set(results["refit"]["early_stopped_test"]) >= {"loss", "accuracy"}
    arch = meta["architecture"]
    assert arch["name"] == "ensemble" and [m["name"] for m in arch["members"]] == ["mlp", "mlp"]
    # the saved model's probabilities are the mean of the two members' (each loaded from members/n/)
    weights = load_file(str(d / "model.safetensors"))
    members = []
    for n in (1, 2):
        m = build_model(arch["members"][n - 1])
        m.load_state_dict(load_file(str(d / "members" / str(n) / "model.safetensors")))
        assert all(torch.equal(v, weights[f"members.{n - 1}.{k}"]) for k, v in m.state_dict().items())
        members.append(m.eval())
    preds, _ = predict_table(d, frame.head(20))
    pre = pipeline_preprocess(d, frame.head(20))
    with torch.no_grad():
        p = torch.stack([torch.sigmoid(m(pre)).view(-1) for m in members]).mean(0).numpy()
    assert np.allclose(preds["p_1" if "p_1" in preds else preds.columns[-1]].to_numpy(dtype=float), p, atol=1e-6)
    # the early-stopped network alone on the test rows, beside the pair, in the summary
    line = next(s for s in (d / "summary.txt").read_text().splitlines() if s.startswith("final"))
    alone = results["refit"]["early_stopped_test"]["accuracy"]
    assert f"for {second['epochs_run']} epochs (R2)" in line
    assert f"the early-stopped network alone on the test rows: accuracy {alone:.4g}" in line


def pipeline_preprocess(run_dir: Path, rows):
    """The run's features of `rows`, as predict computes them (model.json's preprocessing)."""
    from nnrecipe.data import TablePreprocessor

    meta = read_json(run_dir / "model.json")
    pre = TablePreprocessor.from_dict(meta["preprocessing"])
    x, _, _ = pre.transform(rows)
    return torch.from_numpy(x)


def test_refit_off_keeps_the_early_stopped_network_alone(frame, tmp_path):
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=3, seed=0, refit="off"), **QUICK)
    d = run.run_dir
    assert not (d / "members").exists() and "refit" not in read_json(d / "results.json")
    assert read_json(d / "model.json")["architecture"]["name"] == "mlp"
    assert read_json(d / "config.json")["train"]["refit"] == "off"
    assert not any(s.startswith("final") for s in (d / "summary.txt").read_text().splitlines())


class Noop(Callback):
    pass


@pytest.mark.parametrize("case", ["cv_folds", "callbacks", "rows", "r2_refit"])
def test_auto_is_off_where_the_pair_does_not_belong(frame, tmp_path, monkeypatch, case):
    cfg, kw = TrainConfig(epochs=2, seed=0), {}
    if case == "cv_folds":  # a T14 ensemble trains on every row already
        cfg = TrainConfig(epochs=2, seed=0, cv_folds=3)
    elif case == "callbacks":  # a search's trials, a user's callbacks: they drive the one training
        kw = {"callbacks": [Noop()]}
    elif case == "rows":
        monkeypatch.setattr(pipeline, "REFIT_MAX_ROWS", 169)  # 170 training and validation rows
    else:  # an R2 refit trains on the validation rows itself
        kw = {"refit": {"epochs": 2}}
    run = train_table(frame, "y", out=tmp_path, train_config=cfg, **kw, **QUICK)
    assert read_json(run.run_dir / "config.json")["train"]["refit"] == "off"
    assert "refit" not in run.results
    monkeypatch.setattr(pipeline, "REFIT_MAX_ROWS", 170)
    if case == "rows":  # at the limit it is on
        run = train_table(frame, "y", out=tmp_path / "at", train_config=cfg, **QUICK)
        assert read_json(run.run_dir / "config.json")["train"]["refit"] == "on"


def test_refit_on_with_an_ensemble_or_a_bad_word_is_refused():
    with pytest.raises(ConfigError) as e:
        TrainConfig(refit="on", cv_folds=5)
    assert str(e.value) == ("refit='on' does not go with cv_folds=5: a T14 ensemble trains on the training and "
                            "validation rows already; pass --refit off (or auto), or --cv-folds 1")
    with pytest.raises(ConfigError, match="refit"):
        TrainConfig(refit="yes")


class InterruptSecond(Callback):
    """Ctrl-C at the start of epoch `epoch` of the second network (it trains in members/2)."""

    def __init__(self, epoch: int):
        self.epoch, self.fired = epoch, False

    def on_epoch_start(self, trainer, logs):
        if trainer.run_dir.name == "2" and logs["epoch"] == self.epoch:
            self.fired = True
            raise KeyboardInterrupt


def test_a_run_interrupted_in_the_second_network_resumes_bit_for_bit(frame, tmp_path):
    cfg = TrainConfig(epochs=8, seed=0, refit="on")
    straight = train_table(frame, "y", out=tmp_path / "a", train_config=cfg, **QUICK)
    assert straight.results["refit"]["epochs"] >= 4  # the interruption below falls inside the second network
    interrupt = InterruptSecond(epoch=3)
    with pytest.raises(KeyboardInterrupt):
        train_table(frame, "y", out=tmp_path / "b", train_config=cfg, callbacks=[interrupt], **QUICK)
    assert interrupt.fired
    b = next(p for p in (tmp_path / "b").iterdir() if p.is_dir())
    assert (b / "members" / "1" / "member.json").is_file() and not (b / "members" / "2" / "member.json").exists()
    assert (b / "members" / "2" / "checkpoints" / "last.safetensors").is_file() and not (b / "results.json").exists()
    resumed = train_table(frame, "y", resume=b, **QUICK)
    a = straight.run_dir
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed.test == straight.test and resumed.results["refit"]["early_stopped_test"] == \
        straight.results["refit"]["early_stopped_test"]
    assert (a / "members/2/metrics.jsonl").read_bytes() == (b / "members/2/metrics.jsonl").read_bytes()
