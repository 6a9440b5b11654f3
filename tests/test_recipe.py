"""The recipe end to end: `nnrecipe train` on a real table learns, its checks pass, and it leaves the run
folder the README describes; `nnrecipe predict` reloads the model from safetensors + JSON alone and
reproduces the recorded test metric."""

from __future__ import annotations

import contextlib
import io
import json
import math
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from nnrecipe.cli import main
from nnrecipe.config import TrainConfig
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.testing import breast_cancer_csv, small_table
from nnrecipe.train.callbacks import Callback

RUN_FILES = ("config.json", "metrics.jsonl", "checks.json", "splits.json", "model.safetensors", "model.json",
             "results.json", "summary.txt", "checkpoints/last.safetensors", "checkpoints/best.safetensors",
             "audit.json", "journal.json", "report.html", "val_predictions.csv", "watch.json", "samples.json")


def read_json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def bc(tmp_path_factory) -> SimpleNamespace:
    """One `nnrecipe train` on breast cancer (default settings, seed 0), shared by the module's tests."""
    folder = tmp_path_factory.mktemp("bc")
    csv = breast_cancer_csv(folder / "breast_cancer.csv")
    before = csv.read_bytes()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", str(csv), "--target", "diagnosis", "--out", str(folder / "runs"), "--seed", "0"])
    out = stdout.getvalue()
    run_dir = Path(out.splitlines()[-1])
    return SimpleNamespace(csv=csv, before=before, code=code, stdout=out, runs=folder / "runs", run_dir=run_dir,
                           results=read_json(run_dir / "results.json"))


# ---------------------------------------------------------------- train


def test_train_exits_zero_and_prints_the_run_folder_last(bc):
    assert bc.code == 0
    assert bc.run_dir.is_dir()
    assert list(bc.runs.iterdir()) == [bc.run_dir]
    assert bc.run_dir.name.endswith("-breast_cancer-diagnosis")


def test_train_reaches_test_accuracy(bc):
    accuracy = bc.results["test"]["accuracy"]
    assert accuracy >= 0.95
    assert f"\ntest accuracy: {accuracy:.4f}\n" in bc.stdout


def test_every_check_passes(bc):
    checks = read_json(bc.run_dir / "checks.json")
    ids = [c["id"] for c in checks]
    assert {"lint", "C1", "C2", "C3", "C4", "C6", "C7", "C8", "T16"} <= set(ids)
    findings = read_json(bc.run_dir / "audit.json")["findings"]  # the data checks: the audit's, on every row
    assert {"D1", "D3", "D4", "D8", "leakage"} <= {f["id"] for f in findings}
    assert [f["status"] for f in findings] == ["pass"] * len(findings)
    assert ids.index("C2") < ids.index("C1")
    # C5 trusts nnrecipe's own models (TabM's layers are torch operations): skipped; every other check passes
    assert [c["status"] for c in checks if c["id"] != "C5"] == ["pass"] * (len(checks) - 1)
    assert [c["status"] for c in checks if c["id"] == "C5"] == ["skipped"]
    for c in checks:
        assert set(c) == {"id", "name", "status", "summary", "evidence", "fix", "source", "fault", "consistent_with"}
        assert c["fix"] == "" and c["summary"] and c["source"]
    c2 = checks[ids.index("C2")]["evidence"]
    assert c2["rows"] == bc.results["rows"]["train"]  # every training row, as there are fewer than 1,024
    assert abs(c2["loss_at_init"] - c2["expected"]) <= 0.1 * c2["expected"]


def test_c4_passes_on_breast_cancer(bc):
    [v] = [c for c in read_json(bc.run_dir / "checks.json") if c["id"] == "C4"][-1:]
    assert (v["name"], v["status"], v["fault"], v["fix"]) == ("simple baselines (test)", "pass", "", "")
    assert v["summary"].startswith("no simple model beats the network by more than the noise of the 86 test rows")
    ev = v["evidence"]
    assert ev["metric"] == "accuracy" and ev["test_rows"] == 86
    assert all(ev["leads"][m] <= max(ev["two_se"][m], 1 / 86) for m in ev["leads"])


def test_the_report_shows_the_baselines_the_metric_and_the_recall_beside_d1(bc):
    html = (bc.run_dir / "report.html").read_text()
    assert "<dt>optimises</dt><dd>accuracy: no --metric: early stopping on the validation loss" in html
    assert "The answer: the network on the test rows, beside simple models (C4)" in html
    assert "<td>HistGradientBoosting</td>" in html and "<td>LogisticRegression</td>" in html
    assert "(after training, recall per class on the test rows: &#39;benign&#39; " in html  # beside the D1 finding
    assert "<th>test recall</th>" in html  # and in the label distribution's table


def test_run_folder_holds_every_file(bc):
    for name in RUN_FILES:
        assert (bc.run_dir / name).is_file(), name


def test_metrics_one_json_line_per_epoch(bc):
    rows = [json.loads(line) for line in (bc.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, bc.results["epochs_run"] + 1))
    assert bc.results["epochs_run"] < 200  # early stopping ended it
    for r in rows:
        assert {"epoch", "lr", "grad_norm", "train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(r)
        others = set(r) - {"epoch", "lr", "grad_norm"}
        assert all(k.startswith(("train_", "val_")) for k in others), others
        assert all(math.isfinite(v) for v in r.values())
        assert r["lr"] == 2e-3  # TabM's own rate: TrainConfig().lr is None, the rule
    # the best epoch is the one with the lowest val_loss, and the results record it
    best = min(rows, key=lambda r: r["val_loss"])
    assert (bc.results["best_epoch"], bc.results["best_value"]) == (best["epoch"], best["val_loss"])
    assert rows[-1]["train_loss"] < 0.5 * rows[0]["train_loss"]


def test_splits_partition_the_data_rows(bc):
    splits = read_json(bc.run_dir / "splits.json")
    n = len(pd.read_csv(bc.csv))
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == list(range(n))
    assert {k: len(v) for k, v in splits.items()} == bc.results["rows"]
    assert bc.results["rows"] == {"train": 397, "val": 86, "test": 86}  # 70/15/15 of 569


def test_config_and_model_record(bc):
    config = read_json(bc.run_dir / "config.json")
    assert (config["task"], config["source"], config["data"]["target"]) == ("binary", str(bc.csv), "diagnosis")
    assert config["train"]["seed"] == 0 and config["train"]["batch_size"] == 64  # TabM's rule below 4,000 rows
    model = read_json(bc.run_dir / "model.json")
    assert (model["format"], model["task"], model["target"]) == ("nnrecipe-model", "binary", "diagnosis")
    assert model["classes"] == ["benign", "malignant"]
    # the early-stopped network and its refit on train+validation, averaged (R2, TrainConfig.refit)
    assert model["architecture"]["name"] == "ensemble" and len(model["architecture"]["members"]) == 2
    assert len(model["feature_names"]) == model["architecture"]["members"][0]["in_features"] == 30
    assert config["train"]["refit"] == "on"
    assert model["output_activation"] == "sigmoid"


def test_the_short_screen_comes_before_the_metric_and_folder(bc):
    summary = (bc.run_dir / "summary.txt").read_text()
    assert summary.startswith(f"nnrecipe run {bc.run_dir.name}\n")
    accuracy = bc.results["test"]["accuracy"]
    assert bc.stdout.endswith(f"test accuracy: {accuracy:.4f}\n{bc.run_dir}\n")
    # the screen is summary.txt's headline (up to the per-class recall), then what needs attention, then a count
    head = summary.split("\ncolumns")[0]
    assert bc.stdout.startswith(head) and "[PASS]" not in bc.stdout and "checks passed" in bc.stdout
    shown = [line for line in bc.stdout.splitlines() if line.startswith(("[WARN]", "[FAIL]"))]
    assert shown == [line.strip() for line in summary.splitlines() if line.strip().startswith("[WARN]")]


def test_train_leaves_the_input_file_unchanged(bc):
    assert bc.csv.read_bytes() == bc.before


# ---------------------------------------------------------------- predict


@pytest.fixture
def held_out_csv(bc, tmp_path) -> Path:
    """The run's test rows, picked from the source file with splits.json (0-based data rows)."""
    splits = read_json(bc.run_dir / "splits.json")
    path = tmp_path / "held_out_csv.csv"
    pd.read_csv(bc.csv).iloc[splits["test"]].to_csv(path, index=False)
    return path


def no_unpickling(*args, **kwargs):
    raise AssertionError("predict must not unpickle")


def test_predict_reproduces_test_accuracy_without_pickle_or_checkpoints(bc, held_out_csv, tmp_path, cli,
                                                                        monkeypatch):
    # a copy of the run without checkpoints/: model.json + model.safetensors must be all predict reads
    run = tmp_path / "run"
    shutil.copytree(bc.run_dir, run)
    shutil.rmtree(run / "checkpoints")
    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, no_unpickling)
    before = held_out_csv.read_bytes()
    code, out, err = cli("predict", run, held_out_csv, "--out", tmp_path / "preds.csv")
    assert (code, err) == (0, "")
    preds = pd.read_csv(tmp_path / "preds.csv")
    n = bc.results["rows"]["test"]
    accuracy = bc.results["test"]["accuracy"]
    assert out == f"wrote {n} predictions to {tmp_path / 'preds.csv'}\naccuracy against the target column: " \
                  f"{accuracy:.4f}\n"
    assert list(preds.columns) == ["prediction", "p_benign", "p_malignant"]
    assert len(preds) == n
    truth = pd.read_csv(held_out_csv)["diagnosis"]
    assert float(np.mean(preds["prediction"] == truth)) == pytest.approx(accuracy, abs=1e-6)
    np.testing.assert_allclose(preds["p_benign"] + preds["p_malignant"], 1.0, atol=1e-6)
    assert ((preds["p_malignant"] > 0.5) == (preds["prediction"] == "malignant")).all()
    assert held_out_csv.read_bytes() == before


@pytest.mark.parametrize("missing", ["model.safetensors", "model.json"])
def test_predict_needs_the_model_files(bc, held_out_csv, tmp_path, cli, missing):
    run = tmp_path / "run"
    shutil.copytree(bc.run_dir, run)
    (run / missing).unlink()  # checkpoints/ still hold the weights: predict must not fall back on them
    code, out, err = cli("predict", run, held_out_csv)
    assert (code, out) == (2, "")
    assert err == (f"nnrecipe: error: run folder '{run}' holds no model (model.json and model.safetensors); "
                   "the run may not have finished: train it again\n")


def test_predict_table_report_matches_the_recorded_test(bc, held_out_csv):
    preds, report = predict_table(bc.run_dir, held_out_csv)
    n = bc.results["rows"]["test"]
    assert report == {"rows": n, "unseen_cells": {}, "scored_rows": n, "unscored_rows": 0,
                      "accuracy": pytest.approx(bc.results["test"]["accuracy"], abs=1e-6)}


# ---------------------------------------------------------------- other tasks


def split_rows(run_dir: Path, frame: pd.DataFrame, name: str = "test") -> pd.DataFrame:
    return frame.iloc[read_json(run_dir / "splits.json")[name]]


def test_regression_learns_and_predict_unscales(tmp_path):
    frame = small_table(task="regression")
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=48))
    assert run.task == "regression"
    assert {v.status for v in run.verdicts if v.id != "T16"} <= {"pass", "skipped"}
    assert {"C1", "C2"} <= {v.id for v in run.verdicts}
    # 48 epochs cut it short (at the values' rate, 1e-3, TabM's best epoch is 99 of 119), the validation loss
    # still falling: T16 says so
    # (breast cancer's run, which early stopping ends, passes it: test_every_check_passes)
    longer, = run.verdicts.by_id("T16")
    assert (longer.status, longer.fix) == ("warn", "train longer: --epochs 240 (early stopping ends it when it stops "
                                                   "improving)")
    assert longer.evidence["epochs_run"] == 48 and longer.evidence["best_epoch"] >= 42
    name, rmse = run.metric
    assert name == "rmse"
    assert rmse < 0.15 * frame["y"].std()  # std 3.5: predicting the mean would score about 3.5
    assert run.history[-1]["train_loss"] < 0.05 * run.history[0]["train_loss"]
    # predictions come back in the target's units: predict's RMSE on the test rows is the recorded one
    test = split_rows(run.run_dir, frame)
    preds, report = predict_table(run.run_dir, test)
    assert list(preds.columns) == ["prediction"]
    assert report["rmse"] == pytest.approx(rmse, rel=1e-5)
    assert abs(preds["prediction"].mean() - test["y"].mean()) < 0.2 * test["y"].std()


def test_multiclass_learns(tmp_path):
    frame = small_table(task="multiclass")
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=30))
    assert run.task == "multiclass"
    # T16 may say "train longer" of 30 epochs; no other check warns
    assert {v.status for v in run.verdicts if v.id != "T16"} <= {"pass", "skipped"}
    assert {"C1", "C2"} <= {v.id for v in run.verdicts}
    chance = frame["y"].value_counts(normalize=True).max()  # always guessing the most common class
    assert chance < 0.35
    assert run.test["accuracy"] >= 0.85
    preds, report = predict_table(run.run_dir, split_rows(run.run_dir, frame))
    assert list(preds.columns) == ["prediction", "p_0", "p_1", "p_2", "p_3"]
    assert report["accuracy"] == pytest.approx(run.test["accuracy"], abs=1e-6)
    np.testing.assert_allclose(preds[["p_0", "p_1", "p_2", "p_3"]].sum(axis=1), 1.0, atol=1e-5)


def test_rows_without_target_keep_their_file_rows_in_splits(tmp_path):
    frame = small_table(n=120)
    frame.loc[[0, 5, 50], "y"] = None  # left out of training, with a notice
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    run = train_table(path, "y", out=tmp_path / "runs", train_config=TrainConfig(epochs=1))
    splits = read_json(run.run_dir / "splits.json")
    kept = [i for i in range(120) if i not in (0, 5, 50)]
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == kept
    # the test rows picked from the file by splits.json are the ones the run was tested on
    _, report = predict_table(run.run_dir, split_rows(run.run_dir, pd.read_csv(path)))
    assert report["accuracy"] == pytest.approx(run.test["accuracy"], abs=1e-6)


def test_same_seed_same_run(tmp_path):
    frame = small_table(n=120)
    a = train_table(frame, "y", out=tmp_path / "a", train_config=TrainConfig(epochs=3, seed=7))
    b = train_table(frame, "y", out=tmp_path / "b", train_config=TrainConfig(epochs=3, seed=7))
    assert a.history == b.history
    assert (a.run_dir / "model.safetensors").read_bytes() == (b.run_dir / "model.safetensors").read_bytes()
    assert read_json(a.run_dir / "splits.json") == read_json(b.run_dir / "splits.json")


class InterruptAtEpoch(Callback):
    """Ctrl-C at the start of epoch `epoch` (1-based): the epochs before it have finished and are checkpointed."""

    def __init__(self, epoch: int):
        self.epoch, self.fired = epoch, False

    def on_epoch_start(self, trainer, logs):
        if logs["epoch"] == self.epoch:
            self.fired = True
            raise KeyboardInterrupt


class RecordFit(Callback):
    """What a fit trained on and how: whether it resumed, its training rows (the tensors it batches from),
    its validation data, and the epochs it ran."""

    def __init__(self):
        self.resumed, self.inputs, self.val_data, self.epochs = None, None, "unset", []

    def on_fit_start(self, trainer, logs):
        self.resumed, self.val_data = logs["resumed"], trainer.val_data
        self.inputs = tuple(t.detach().clone() for t in trainer.batches.tensors)

    def on_epoch_start(self, trainer, logs):
        self.epochs.append(logs["epoch"])


def test_resuming_a_refit_run_keeps_training_on_train_and_validation(tmp_path):
    # R2: the refit trains on the training and validation rows together; --resume must go on that way,
    # from the record, not rebuild a run on the training rows with a validation split (nor start over):
    # a refit interrupted after 2 of its 4 epochs, resumed, ends bit for bit as one run straight through
    frame = small_table(200)
    cfg = TrainConfig(epochs=3, seed=0, device="cpu")
    quick = {"checks": (), "report": False, "audit": False}
    straight_fit = RecordFit()
    run = train_table(frame, "y", out=tmp_path / "a", train_config=cfg, refit={"epochs": 4},
                      callbacks=[straight_fit], **quick)
    first = json.loads((run.run_dir / "results.json").read_text())
    splits = read_json(run.run_dir / "splits.json")
    n_fit = len(splits["train"]) + len(splits["val"])
    assert len(splits["val"]) > 0 and first["rows"]["train"] == n_fit  # the validation rows trained on
    assert straight_fit.resumed is False and straight_fit.epochs == [1, 2, 3, 4] and straight_fit.val_data is None
    assert len(straight_fit.inputs[-1]) == n_fit

    interrupt = InterruptAtEpoch(3)
    with pytest.raises(KeyboardInterrupt):
        train_table(frame, "y", out=tmp_path / "b", train_config=cfg, refit={"epochs": 4}, callbacks=[interrupt],
                    **quick)
    assert interrupt.fired
    b, = (tmp_path / "b").iterdir()
    assert read_json(b / "config.json")["refit"] == {"trained_on": ["train", "val"], "epochs": 4}
    assert len((b / "metrics.jsonl").read_text().splitlines()) == 2  # 2 epochs checkpointed
    assert (b / "checkpoints" / "last.safetensors").is_file()
    assert not (b / "results.json").exists() and not (b / "model.safetensors").exists()

    resumed_fit = RecordFit()
    again = train_table(frame, "y", resume=b, callbacks=[resumed_fit], **quick)
    second = json.loads((b / "results.json").read_text())
    # the resumed run went on from epoch 3, on the training and validation rows, with no validation split
    assert resumed_fit.resumed is True and resumed_fit.epochs == [3, 4] and resumed_fit.val_data is None
    assert len(resumed_fit.inputs) == len(straight_fit.inputs)
    assert all(torch.equal(r, s) for r, s in zip(resumed_fit.inputs, straight_fit.inputs))
    assert first["rows"]["val"] == second["rows"]["val"] == 0
    assert second["rows"]["train"] == first["rows"]["train"] and second["epochs_run"] == first["epochs_run"] == 4
    assert again.test == run.test
    assert second["test"] == first["test"]
    assert again.history == run.history and [r["epoch"] for r in again.history] == [1, 2, 3, 4]
    assert (b / "metrics.jsonl").read_bytes() == (run.run_dir / "metrics.jsonl").read_bytes()
    wa, wb = load_file(str(run.run_dir / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    # a finished refit run resumed trains nothing more and keeps its record
    finished = RecordFit()
    once_more = train_table(frame, "y", resume=b, callbacks=[finished], **quick)
    third = read_json(b / "results.json")
    assert finished.resumed is True and finished.epochs == []
    assert third["rows"] == second["rows"] and third["epochs_run"] == 4 and once_more.test == again.test
    wc = load_file(str(b / "model.safetensors"))
    assert wc.keys() == wa.keys() and all(torch.equal(wa[k], wc[k]) for k in wa)
