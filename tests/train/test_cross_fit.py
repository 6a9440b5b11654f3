"""T14: the cross-validation ensemble. The number of folds (one model by default, an explicit
cv_folds, the errors), the folds themselves, the Ensemble module's averaging, the members a run trains and
records (what predict and the saved model give back), a resume bit for bit mid-member, the runs that
train one model (a refit, a tune trial), the CLI flag, C8 over the members' curves, and each member's
rows when the run oversamples."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from nnrecipe.checks.curves import diagnose_curves
from nnrecipe.config import DataConfig, ModelConfig, TrainConfig
from nnrecipe.data import TablePreprocessor
from nnrecipe.data.split import fold_indices
from nnrecipe.errors import ConfigError
from nnrecipe.models import Ensemble, build_model
from nnrecipe.models.mlp import MLP
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.recipes.tabular import TableRecipe
from nnrecipe.testing import small_table
from nnrecipe.train.callbacks import Callback
from nnrecipe.recipes.cross_fit import MIN_HELD_OUT, CrossFit, member_curves, resolve_folds

# the doctor, the report and the audit: not T14; the plain MLP: T14's mechanics, at a fraction of TabM's time
QUICK = {"checks": (), "report": False, "audit": False, "model_config": ModelConfig(model="mlp")}


def read_json(path: Path):
    return json.loads(path.read_text())


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# ---------------------------------------------------------------- resolve_folds


def test_the_default_is_one_model(binary_frame, tmp_path):
    assert TrainConfig().cv_folds == 1
    run = train_table(binary_frame, "y", out=tmp_path, train_config=TrainConfig(epochs=2, seed=0), **QUICK)
    # one model stopping on the validation split (with its R2 refit beside it: tests/train/test_refit_pair.py)
    assert "cv" not in read_json(run.run_dir / "results.json")
    assert sorted(p.name for p in (run.run_dir / "members").iterdir()) == ["1", "2"]
    arch = read_json(run.run_dir / "model.json")["architecture"]
    assert [m["name"] for m in arch["members"]] == ["mlp", "mlp"]


def test_an_explicit_number_of_folds_is_honoured():
    assert MIN_HELD_OUT == 5
    assert resolve_folds(3, 15) == 3  # 5 rows a fold: just enough
    assert resolve_folds(5, 100_000) == 5
    assert resolve_folds(1, 3) == 1  # one model never needs folds


def test_too_many_folds_for_the_rows_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        resolve_folds(1000, 170)
    assert str(e.value) == ("cv_folds=1000: the 170 training and validation rows leave each of 1000 folds fewer "
                            "than 5 rows to stop early on; choose at most 34 folds, or 1 for one model")
    with pytest.raises(ConfigError) as e:
        resolve_folds(3, 14)
    assert str(e.value) == ("cv_folds=3: the 14 training and validation rows leave each of 3 folds fewer than 5 "
                            "rows to stop early on; choose at most 2 folds, or 1 for one model")
    with pytest.raises(ConfigError) as e:
        resolve_folds(2, 4)
    assert str(e.value) == ("cv_folds=2: the 4 training and validation rows leave each of 2 folds fewer than 5 "
                            "rows to stop early on; choose at most 1 folds, or 1 for one model")


@pytest.mark.parametrize("folds", [0, -3])
def test_cv_folds_below_1_is_not_allowed(folds):
    with pytest.raises(ConfigError) as e:
        TrainConfig(cv_folds=folds)
    assert str(e.value) == f"cv_folds={folds} is not allowed; choose 1 (one model) or more (an ensemble)"
    assert TrainConfig(cv_folds=1).cv_folds == 1


# ---------------------------------------------------------------- fold_indices


def imbalanced_codes(n: int = 103, seed: int = 0) -> np.ndarray:
    codes = np.array([0] * 60 + [1] * 30 + [2] * (n - 90))
    return np.random.default_rng(seed).permutation(codes)


def assert_partition(folds: list[np.ndarray], n: int) -> None:
    every = np.concatenate(folds)
    assert len(every) == n and np.array_equal(np.sort(every), np.arange(n))  # each row held out exactly once
    assert all(np.array_equal(f, np.sort(f)) and len(f) for f in folds)


def test_folds_hold_every_row_out_once_stratified_by_class():
    codes = imbalanced_codes()
    folds = fold_indices(codes, len(codes), 5, seed=0)
    assert len(folds) == 5
    assert_partition(folds, len(codes))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    per_fold = np.array([np.bincount(codes[f], minlength=3) for f in folds])  # (folds, classes)
    assert per_fold.sum(axis=0).tolist() == [60, 30, 13]
    assert (per_fold.max(axis=0) - per_fold.min(axis=0)).max() <= 1  # 12 each of class 0, 6 of 1, 2-3 of 2


def test_unstratified_folds_would_not_pass_the_class_check():
    # the check above can fail: plain K-fold on the same codes spreads a class unevenly
    codes = imbalanced_codes()
    plain = fold_indices(None, len(codes), 5, seed=0)
    assert_partition(plain, len(codes))
    per_fold = np.array([np.bincount(codes[f], minlength=3) for f in plain])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0)).max() > 1


def test_folds_without_labels_for_regression():
    folds = fold_indices(None, 47, 5, seed=3)
    assert len(folds) == 5
    assert_partition(folds, 47)
    assert sorted(map(len, folds)) == [9, 9, 9, 10, 10]


def test_folds_with_a_class_smaller_than_the_folds():
    codes = np.array([0] * 40 + [1] * 3)  # class 1 cannot be in each of 5 folds
    folds = fold_indices(codes, len(codes), 5, seed=0)
    assert_partition(folds, len(codes))
    assert sorted(int((codes[f] == 1).sum()) for f in folds) == [0, 0, 1, 1, 1]


def test_folds_are_seeded():
    codes = imbalanced_codes()
    for labels in (codes, None):
        a, b = fold_indices(labels, len(codes), 5, seed=0), fold_indices(labels, len(codes), 5, seed=0)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        other = fold_indices(labels, len(codes), 5, seed=1)
        assert not all(np.array_equal(x, y) for x, y in zip(a, other))


# ---------------------------------------------------------------- Ensemble


def members(out_features: int, k: int = 3, embeddings=()) -> list[MLP]:
    made = []
    for i in range(k):
        torch.manual_seed(i)
        m = MLP(4, (8,), out_features, "relu", 0.0, False, list(embeddings))
        with torch.no_grad():  # spread the members' outputs apart, so that the mean of logits differs
            m.layers[-1].weight.mul_(3.0 * (i + 1))
            m.layers[-1].bias.add_(float(i) - 1.0)
        made.append(m.eval())
    return made


def test_a_binary_ensemble_returns_the_log_odds_of_the_mean_probability():
    ms, x = members(1), torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    ens = Ensemble(ms, "sigmoid").eval()
    with torch.no_grad():
        out, each = ens(x), torch.stack([m(x) for m in ms])
    p = torch.sigmoid(each).mean(0)
    assert out.shape == (32, 1)
    assert torch.allclose(out, torch.log(p) - torch.log1p(-p), atol=1e-5)
    assert torch.allclose(torch.sigmoid(out), p, atol=1e-6)
    assert not torch.allclose(out, each.mean(0), atol=1e-3)  # not the mean of the logits


def test_a_multiclass_ensemble_returns_logits_of_the_mean_softmax():
    ms, x = members(4), torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    ens = Ensemble(ms, "softmax").eval()
    with torch.no_grad():
        out, each = ens(x), torch.stack([m(x) for m in ms])
    mean = torch.softmax(each, dim=-1).mean(0)
    assert out.shape == (32, 4)
    assert torch.allclose(torch.softmax(out, dim=-1), mean, atol=1e-6)
    assert torch.allclose(out.exp().sum(-1), torch.ones(32), atol=1e-5)  # log-probabilities
    assert not torch.allclose(torch.softmax(each.mean(0), dim=-1), mean, atol=1e-3)


def test_a_regression_ensemble_averages_the_values():
    ms, x = members(1), torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    ens = Ensemble(ms, "none").eval()
    with torch.no_grad():
        assert torch.allclose(ens(x), torch.stack([m(x) for m in ms]).mean(0), atol=1e-6)


def test_an_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation='relu'; allowed: sigmoid, softmax, none"):
        Ensemble(members(1), "relu")


@pytest.mark.parametrize("activation,out_features", [("sigmoid", 1), ("softmax", 3), ("none", 1)])
def test_build_model_rebuilds_an_ensemble_from_its_spec(activation, out_features):
    ms = members(out_features, embeddings=[(5, 2)])
    ens = Ensemble(ms, activation).eval()
    assert ens.spec == {"name": "ensemble", "activation": activation, "members": [m.spec for m in ms]}
    spec = json.loads(json.dumps(ens.spec))  # as model.json holds it
    rebuilt = build_model(spec)
    assert isinstance(rebuilt, Ensemble) and rebuilt.spec == ens.spec
    rebuilt.load_state_dict(ens.state_dict())
    rebuilt.eval()
    g = torch.Generator().manual_seed(3)
    x, codes = torch.randn(20, 4, generator=g), torch.randint(0, 5, (20, 1), generator=g)
    with torch.no_grad():
        assert torch.equal(rebuilt(x, codes), ens(x, codes))
    assert isinstance(build_model(ms[0].spec), MLP)  # a single model's spec builds an MLP


# ---------------------------------------------------------------- a run of 10 members


@pytest.fixture(scope="module")
def binary_frame() -> pd.DataFrame:
    return small_table(200)


def test_a_10_member_ensemble_on_a_small_table(binary_frame, tmp_path):
    frame = binary_frame
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=4, seed=0, cv_folds=10), **QUICK)
    d = run.run_dir
    results, config, meta = read_json(d / "results.json"), read_json(d / "config.json"), read_json(d / "model.json")
    pooled = results["rows"]["train"] + results["rows"]["val"]

    for k in range(10):
        assert (d / "members" / str(k + 1) / "member.json").is_file(), k
        assert (d / "members" / str(k + 1) / "model.safetensors").is_file(), k
        assert read_json(d / "members" / str(k + 1) / "member.json")["number"] == k + 1
    assert sorted(p.name for p in (d / "members").iterdir()) == sorted(str(k) for k in range(1, 11))
    assert not (d / "members" / "1" / "checkpoints").exists()  # member 1 trains in the run folder itself
    assert (d / "checkpoints" / "last.safetensors").is_file()
    assert (d / "members" / "2" / "checkpoints" / "last.safetensors").is_file()
    assert results["cv"]["folds"] == 10
    assert [m["member"] for m in results["cv"]["members"]] == list(range(1, 11))
    assert {"loss", "accuracy"} <= set(results["cv"]["out_of_fold"])
    assert config["train"]["cv_folds"] == 10
    arch = meta["architecture"]
    assert arch["name"] == "ensemble" and arch["activation"] == "sigmoid" and len(arch["members"]) == 10
    assert all(m["name"] == "mlp" for m in arch["members"])

    # predict reloads the ensemble and scores the test rows as the run did
    splits = read_json(d / "splits.json")
    test_rows = frame.iloc[splits["test"]]
    _, report = predict_table(d, test_rows)
    assert report["accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)

    # val_predictions.csv: every pooled row once, each predicted out of fold
    val = pd.read_csv(d / "val_predictions.csv")
    assert len(val) == pooled
    assert sorted(val["row"]) == sorted(splits["train"] + splits["val"])
    oof = float((val["prediction"].astype(str) == val["target"].astype(str)).mean())
    assert oof == pytest.approx(results["cv"]["out_of_fold"]["accuracy"], abs=1e-6)

    # the test accuracy is the 10 members' averaged probabilities, loaded from their own files
    pre = TablePreprocessor.from_dict(meta["preprocessing"])
    features, codes, _ = pre.transform(test_rows.reset_index(drop=True))
    inputs = (torch.from_numpy(features),) + ((torch.from_numpy(codes),) if codes is not None else ())
    probs = []
    for k, spec in enumerate(arch["members"]):
        member = build_model(spec)
        member.load_state_dict(load_file(str(d / "members" / str(k + 1) / "model.safetensors")))
        with torch.no_grad():
            probs.append(torch.sigmoid(member.eval()(*inputs)).view(-1))
    p = torch.stack(probs).mean(0).numpy()
    assert len({tuple(q.numpy().round(6)) for q in probs}) == 10  # ten different members
    predicted = np.asarray(meta["classes"], dtype=object)[(p > 0.5).astype(int)]
    mine = float(np.mean(predicted == test_rows["y"].astype(str).to_numpy(dtype=object)))
    assert mine == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    assert run.test == results["test"]
    # the ensemble's weights are the members' weights
    ens = load_file(str(d / "model.safetensors"))
    for k in (0, 9):
        own = load_file(str(d / "members" / str(k + 1) / "model.safetensors"))
        assert all(torch.equal(ens[f"members.{k}.{name}"], t) for name, t in own.items())


def test_a_regression_ensemble_run(tmp_path):
    frame = small_table(150, task="regression")
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=4, seed=0, cv_folds=3), **QUICK)
    d = run.run_dir
    results, meta = read_json(d / "results.json"), read_json(d / "model.json")
    assert results["cv"]["folds"] == 3 and "rmse" in results["cv"]["out_of_fold"]
    assert meta["architecture"]["name"] == "ensemble" and meta["architecture"]["activation"] == "none"
    assert sorted(p.name for p in (d / "members").iterdir()) == ["1", "2", "3"]
    test_rows = frame.iloc[read_json(d / "splits.json")["test"]]
    _, report = predict_table(d, test_rows)
    assert report["rmse"] == pytest.approx(results["test"]["rmse"], rel=1e-5)
    assert len(pd.read_csv(d / "val_predictions.csv")) == results["rows"]["train"] + results["rows"]["val"]


# ---------------------------------------------------------------- resume


class InterruptMember(Callback):
    """Ctrl-C at the start of epoch `epoch` of the training of the member of fold `member` (0-based: the
    member numbered member + 1, which trains in the run folder itself for fold 0, else in
    members/<member + 1>)."""

    def __init__(self, member: int, epoch: int):
        self.member, self.epoch, self.fired = member, epoch, False

    def on_epoch_start(self, trainer, logs):
        where = trainer.run_dir
        k = int(where.name) - 1 if where.parent.name == "members" else 0
        if k == self.member and logs["epoch"] == self.epoch:
            self.fired = True
            raise KeyboardInterrupt


RESUME_CFG = TrainConfig(epochs=6, patience=None, seed=0, cv_folds=3)


def interrupt_and_resume(frame: pd.DataFrame, tmp_path: Path, member: int):
    """A run straight through, and one interrupted in `member`'s 4th epoch then resumed: (straight, the
    interrupted run's folder, the resumed run)."""
    straight = train_table(frame, "y", out=tmp_path / "a", train_config=RESUME_CFG, **QUICK)
    interrupt = InterruptMember(member, epoch=4)
    with pytest.raises(KeyboardInterrupt):
        train_table(frame, "y", out=tmp_path / "b", train_config=RESUME_CFG, callbacks=[interrupt], **QUICK)
    assert interrupt.fired
    b = only_run(tmp_path / "b")
    assert all((b / "members" / str(k + 1) / "member.json").is_file() for k in range(member))
    assert not any((b / "members" / str(k + 1) / "member.json").exists() for k in range(member, 3))
    where = b if member == 0 else b / "members" / str(member + 1)
    assert len((where / "metrics.jsonl").read_text().splitlines()) == 3  # 3 epochs checkpointed
    assert (where / "checkpoints" / "last.safetensors").is_file()
    assert not (b / "results.json").exists()
    resumed = train_table(frame, "y", resume=b, **QUICK)
    return straight, b, resumed


def assert_same_run(straight, b: Path, resumed, member: int) -> None:
    a = straight.run_dir
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = read_json(a / "results.json"), read_json(b / "results.json")
    assert rb["test"] == ra["test"] == straight.test == resumed.test
    assert rb["cv"]["out_of_fold"] == ra["cv"]["out_of_fold"]
    assert (rb["best_epoch"], rb["best_value"], rb["epochs_run"]) == (ra["best_epoch"], ra["best_value"], 6)
    for k in range(3):
        ma, mb = read_json(a / "members" / str(k + 1) / "member.json"), read_json(b / "members" / str(k + 1) / "member.json")
        ma.pop("seconds"), mb.pop("seconds")
        assert ma == mb, k
    where = "" if member == 0 else f"members/{member + 1}/"
    assert (a / f"{where}metrics.jsonl").read_bytes() == (b / f"{where}metrics.jsonl").read_bytes()
    assert (a / "val_predictions.csv").read_bytes() == (b / "val_predictions.csv").read_bytes()
    assert resumed.history == straight.history
    assert (b / "summary.txt").read_text().splitlines()[1:] == (a / "summary.txt").read_text().splitlines()[1:]


def test_a_run_interrupted_in_member_0_resumes_bit_for_bit(binary_frame, tmp_path):
    straight, b, resumed = interrupt_and_resume(binary_frame, tmp_path, member=0)
    assert_same_run(straight, b, resumed, member=0)


@pytest.mark.parametrize("member", [1, 2])
def test_a_run_interrupted_in_a_later_member_resumes_bit_for_bit(binary_frame, tmp_path, member):
    straight, b, resumed = interrupt_and_resume(binary_frame, tmp_path, member)
    assert_same_run(straight, b, resumed, member)


# ---------------------------------------------------------------- one model: a refit, a tune trial


def test_a_refit_trains_one_model_whatever_cv_folds(binary_frame, tmp_path):
    run = train_table(binary_frame, "y", out=tmp_path, train_config=TrainConfig(epochs=3, seed=0, cv_folds=5),
                      refit={"epochs": 3}, **QUICK)
    d = run.run_dir
    results, config = read_json(d / "results.json"), read_json(d / "config.json")
    assert not (d / "members").exists()
    assert "cv" not in results
    assert read_json(d / "model.json")["architecture"]["name"] == "mlp"
    assert config["train"]["cv_folds"] == 1 and config["refit"]["epochs"] == 3
    assert results["rows"]["val"] == 0 and results["epochs_run"] == 3


def test_a_tune_trial_trains_one_model_whatever_cv_folds(binary_frame, tmp_path, caplog):
    from nnrecipe.tune import tune_table

    csv, space = tmp_path / "small.csv", tmp_path / "space.yaml"
    binary_frame.to_csv(csv, index=False)
    space.write_text("model:\n  layers: 1\n  units: {int: [8, 16], step: 8}\n")
    result = tune_table(csv, "y", trials=1, space=space, pruner="none", out=tmp_path / "studies", study="cv",
                        train_config=TrainConfig(epochs=3, device="cpu", cv_folds=10), refit=False)
    assert result.counts == {"COMPLETE": 1}
    assert "cv_folds=10 is not used by a search: each trial and the retrained best train one model" in caplog.text
    trial = only_run(tmp_path / "studies" / "cv" / "trials")
    results = read_json(trial / "results.json")
    assert not (trial / "members").exists()
    assert "cv" not in results
    assert read_json(trial / "config.json")["train"]["cv_folds"] == 1
    assert read_json(trial / "model.json")["architecture"]["name"] == "tabm"  # the search's space: widths only


# ---------------------------------------------------------------- CLI


def test_cli_cv_folds_trains_that_many_members(binary_frame, tmp_path, cli):
    csv = tmp_path / "small.csv"
    binary_frame.to_csv(csv, index=False)
    code, out, err = cli("train", csv, "--target", "y", "--cv-folds", 3, "--epochs", 3, "--out", tmp_path / "runs",
                         "--no-report")
    assert code == 0, err[-2000:]
    run_dir = Path(out.splitlines()[-1])
    assert run_dir.parent == tmp_path / "runs"
    assert sorted(p.name for p in (run_dir / "members").iterdir()) == ["1", "2", "3"]
    assert read_json(run_dir / "results.json")["cv"]["folds"] == 3
    assert read_json(run_dir / "config.json")["train"]["cv_folds"] == 3
    assert "ensemble" in (run_dir / "summary.txt").read_text()


def test_cli_too_many_folds_is_a_clear_error(binary_frame, tmp_path, cli):
    csv = tmp_path / "small.csv"
    binary_frame.to_csv(csv, index=False)
    code, out, err = cli("train", csv, "--target", "y", "--cv-folds", 1000, "--epochs", 3, "--out", tmp_path / "runs")
    assert code == 2
    assert err.splitlines()[-1] == ("nnrecipe: error: cv_folds=1000: the 170 training and validation rows leave each "
                                    "of 1000 folds fewer than 5 rows to stop early on; choose at most 34 folds, or 1 "
                                    "for one model")
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run folder left


# ---------------------------------------------------------------- C8 over the members


def history(train: list[float], val: list[float], acc: list[float] | None = None) -> list[dict]:
    """Rows as the Trainer writes them to metrics.jsonl."""
    rows = []
    for i, (t, v) in enumerate(zip(train, val)):
        row = {"epoch": i + 1, "train_loss": t, "val_loss": v, "lr": 1e-3, "grad_norm": 1.0}
        if acc is not None:
            row["val_accuracy"] = acc[i]
        rows.append(row)
    return rows


DOWN = [2.3 * 0.8 ** i for i in range(10)]  # 2.30 -> 0.31
HEALTHY = history(DOWN, [d * 1.1 for d in DOWN], [0.5 + 0.04 * i for i in range(10)])
HEALTHY_2 = history([d * 0.9 for d in DOWN], [d * 1.05 for d in DOWN])
# the validation loss falls to 0.5 at epoch 5, then rises to 0.9 (80% above it) while training falls on
OVERFIT = history(DOWN, [1.2, 0.9, 0.7, 0.6, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9])


def test_scripted_member_curves_are_what_c8_says_of_each():
    # the scripted histories are the cases they stand for
    assert [(v.name, v.status) for v in diagnose_curves(HEALTHY)] == [("learning curves", "pass")]
    assert [(v.name, v.status) for v in diagnose_curves(HEALTHY_2)] == [("learning curves", "pass")]
    assert [(v.name, v.status) for v in diagnose_curves(OVERFIT)] == [("overfitting", "warn")]


def test_healthy_members_give_one_pass_verdict():
    v, = member_curves([HEALTHY, HEALTHY_2], None)
    assert (v.id, v.name, v.status) == ("C8", "learning curves", "pass")
    assert v.summary == diagnose_curves(HEALTHY)[0].summary + " (each of the 2 members)"  # the first member's


def test_one_overfitting_member_gives_one_warning_naming_it():
    v, = member_curves([HEALTHY, OVERFIT], None)
    assert (v.id, v.name, v.status) == ("C8", "overfitting", "warn")
    assert v.summary == "member 2 of 2: " + diagnose_curves(OVERFIT)[0].summary
    assert v.evidence["members"] == [2]
    assert v.fix == diagnose_curves(OVERFIT)[0].fix != ""


def test_members_sharing_a_problem_are_named_together():
    v, = member_curves([OVERFIT, HEALTHY, OVERFIT], 2.3)
    assert v.name == "overfitting" and v.summary.startswith("members 1, 3 of 3: ")
    assert v.evidence["members"] == [1, 3]


def test_a_warning_in_fewer_than_half_the_members_is_named_in_the_pass_verdict():
    verdicts = member_curves([HEALTHY, HEALTHY_2, OVERFIT], None)
    assert [(v.name, v.status) for v in verdicts] == [("learning curves", "pass")]
    assert verdicts[0].summary == (diagnose_curves(HEALTHY)[0].summary
                                   + " (each of the 3 members; overfitting (warn) in member 3 of 3 only)")
    assert verdicts[0].evidence["minor"] == {"overfitting (warn)": [3]}


def test_one_member_is_judged_as_one_model():
    assert member_curves([OVERFIT], None) == diagnose_curves(OVERFIT)
    assert member_curves([HEALTHY], 2.3) == diagnose_curves(HEALTHY, baseline_loss=2.3)


def test_the_prior_loss_reaches_each_members_judgement():
    # training losses of 0.31 and 0.28 are >= 3x a prior of 0.09: both members end far above it
    verdicts = member_curves([HEALTHY, HEALTHY_2], 0.09)
    assert [(v.name, v.status) for v in verdicts] == [("loss far above the prior", "fail")]
    assert verdicts[0].summary.startswith("members 1, 2 of 2: ")


# ---------------------------------------------------------------- each member's rows (D6 oversampling)


def imbalanced_frame(n: int = 240, seed: int = 1) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    a, b = g.normal(size=n), g.normal(size=n)
    return pd.DataFrame({"a": a, "b": b, "y": np.where(a + 0.3 * b > 0.9, "rare", "common")})


def row_set(features: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r) for r in features.tolist()}


def test_each_member_oversamples_its_own_training_rows_only(tmp_path):
    frame = imbalanced_frame()
    tcfg = TrainConfig(cv_folds=3, seed=0)
    mcfg = ModelConfig()
    dcfg, recipe = DataConfig(target="y", balance="oversample"), TableRecipe()
    prepared = recipe.prepare(frame, dcfg, mcfg, tcfg)
    assert prepared.head.split(":")[0] == "oversample"
    cross = CrossFit(prepared, lambda seed, y: recipe.build(prepared, mcfg, seed, y), tcfg, dcfg.balance, tmp_path)
    prep = prepared.data
    pooled = prep.counts["train"] + prep.counts["val"]
    codes = cross.codes
    assert len(codes) == pooled == len(cross.data_rows)
    counts = np.bincount(codes)
    assert counts.min() * 2 < counts.max()  # imbalanced: the oversampling has work to do
    all_rows = row_set(cross.rows[0])
    assert len(all_rows) == pooled  # the rows are told apart by their features
    assert_partition(cross.held_out, pooled)
    for k in range(3):
        fit, held = cross.split(k)
        assert len(held[-1]) == len(cross.held_out[k])
        assert torch.equal(held[0], cross.rows[0][torch.from_numpy(cross.held_out[k])])
        # the fold is left as it is: its class counts are the pooled rows' at those positions
        assert np.bincount(held[-1].view(-1).long().numpy(), minlength=2).tolist() == \
            np.bincount(codes[cross.held_out[k]], minlength=2).tolist()
        # the training rows: balanced, drawn from the other folds only, every one of them used
        fit_counts = np.bincount(fit[-1].view(-1).long().numpy(), minlength=2)
        rest = np.setdiff1d(np.arange(pooled), cross.held_out[k])
        assert fit_counts.tolist() == [np.bincount(codes[rest]).max()] * 2
        fit_rows, held_rows = row_set(fit[0]), row_set(held[0])
        assert not fit_rows & held_rows
        assert fit_rows == all_rows - held_rows


# ---------------------------------------------------------------- found in review


def test_an_ensemble_with_an_embedded_column_trains_and_predicts(tmp_path):
    # a 40-category column goes through an embedding (D10): the members' inputs are (features, codes)
    g = np.random.default_rng(0)
    city = g.integers(0, 40, 300)
    x = g.normal(size=300)
    frame = pd.DataFrame({"x": x, "city": [f"c{c}" for c in city],
                          "y": np.where(x + (city % 2) > 0.5, "yes", "no")})
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=3, seed=0, cv_folds=3), **QUICK)
    meta = read_json(run.run_dir / "model.json")
    assert all(m["embeddings"] for m in meta["architecture"]["members"])
    test_rows = frame.iloc[read_json(run.run_dir / "splits.json")["test"]]
    _, report = predict_table(run.run_dir, test_rows)
    assert report["accuracy"] == pytest.approx(run.test["accuracy"], abs=1e-6)
    assert len(pd.read_csv(run.run_dir / "val_predictions.csv")) == sum(
        read_json(run.run_dir / "results.json")["rows"][s] for s in ("train", "val"))


def test_every_member_trains_with_member_1s_batch_size(binary_frame, tmp_path, monkeypatch):
    # a sizing rule under which the members' own row counts (113, 113, 114) would give other sizes
    from nnrecipe.train import checkpoint as ckpt
    from nnrecipe.train import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "default_batch_size", lambda n_rows: 8 if n_rows % 2 else 16)
    run = train_table(binary_frame, "y", out=tmp_path, train_config=TrainConfig(epochs=2, seed=0, cv_folds=3), **QUICK)
    d = run.run_dir
    recorded = read_json(d / "config.json")["train"]["batch_size"]
    sizes = [ckpt.load_state(where / "checkpoints" / "last.safetensors")["config"]["batch_size"]
             for where in (d, d / "members" / "2", d / "members" / "3")]
    assert sizes == [recorded] * 3


def test_a_stateful_callback_starts_afresh_for_every_member(binary_frame, tmp_path):
    from nnrecipe.train.callbacks import EarlyStopping

    cfg = TrainConfig(epochs=30, patience=None, seed=0, cv_folds=3, lr=0.01)  # a rate at which each stops early
    given = EarlyStopping("val_loss", "min", 2)
    run = train_table(binary_frame, "y", out=tmp_path / "a", train_config=cfg, callbacks=[given], **QUICK)
    # the same stopping rule from the config: each member's Trainer builds its own EarlyStopping
    own = train_table(binary_frame, "y", out=tmp_path / "b", train_config=dataclasses.replace(cfg, patience=2), **QUICK)
    epochs = [m["epochs_run"] for m in read_json(own.run_dir / "results.json")["cv"]["members"]]
    assert [m["epochs_run"] for m in read_json(run.run_dir / "results.json")["cv"]["members"]] == epochs
    assert min(epochs) > 2 and max(epochs) < 30  # each member stopped on its own curve


def test_a_warning_and_a_failure_of_the_same_name_are_told_apart():
    oscillating = history([1.0, 0.7, 0.9, 0.6, 0.8, 0.55, 0.75, 0.5, 0.7, 0.5], [1.0, 0.7, 0.9, 0.6, 0.8, 0.55, 0.75, 0.5, 0.7, 0.5])
    diverged = history([2.3, 1.9, 1.7, 8.0, 3.0, 2.5], [2.3, 1.9, 1.7, 8.0, 3.0, 2.5])
    assert [(v.name, v.status) for v in diagnose_curves(oscillating)] == [("learning rate too high", "warn")]
    assert [(v.name, v.status) for v in diagnose_curves(diverged)] == [("learning rate too high", "fail")]
    for order in ([oscillating, diverged, *[HEALTHY] * 8], [diverged, oscillating, *[HEALTHY] * 8]):
        verdicts = member_curves(order, None)
        assert [(v.name, v.status) for v in verdicts] == [("learning rate too high", "fail")]
        assert verdicts[0].evidence["members"] == [order.index(diverged) + 1]
        assert verdicts[0].evidence["minor"] == {"learning rate too high (warn)": [order.index(oscillating) + 1]}


def test_a_member_that_skipped_does_not_hide_the_others():
    short = history([2.3, 1.0], [2.3, 1.1])
    verdicts = member_curves([short, HEALTHY, HEALTHY_2], None)
    assert [(v.name, v.status) for v in verdicts] == [("learning curves", "pass")]
    assert verdicts[0].evidence["minor"] == {"learning curves (skipped)": [1]}
    assert [(v.name, v.status) for v in member_curves([short, short], None)] == [("learning curves", "skipped")]
