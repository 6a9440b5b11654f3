"""Issue 22, T12 and T13 in a run: `--teacher RUN` trains the student on the teacher's softened outputs
and records it beside the teacher and the same model trained alone (results.json, summary, report),
refuses a teacher whose split or preprocessing differs, takes a T14 ensemble as the teacher, and resumes
bit for bit; `--adversarial` and `--robustness` record the test metrics under FGSM and PGD; tables and
images; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from nnrecipe import DataConfig, ModelConfig, TrainConfig, train_table
from nnrecipe.cli import main
from nnrecipe.errors import ConfigError
from nnrecipe.recipes import predict_table
from nnrecipe.recipes.images import train_images
from nnrecipe.testing import small_table, write_image_folder
from nnrecipe.train import Callback

FAST = TrainConfig(epochs=8, patience=None, seed=0, refit="off")
SMALL = ModelConfig(model="mlp", hidden=(16,))


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    frame = small_table(300, seed=1, task="multiclass")
    out = tmp_path_factory.mktemp("teacher")
    run = train_table(frame, "y", out=out, train_config=FAST, report=False, checks=())
    return frame, run.run_dir


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_student_is_recorded_beside_its_teacher_and_beside_itself_alone(teacher, tmp_path: Path) -> None:
    frame, teacher_dir = teacher
    cfg = TrainConfig(epochs=8, patience=None, seed=0, refit="off", teacher=str(teacher_dir))
    run = train_table(frame, "y", out=tmp_path, model_config=SMALL, train_config=cfg)
    record = run.results["distillation"]
    assert record["teacher_run"] == str(teacher_dir.resolve())
    assert record["temperature"] == 4.0 and record["alpha"] == 0.1
    teacher_test = json.loads((teacher_dir / "results.json").read_text())["test"]
    assert record["teacher"] == teacher_test and record["student"] == run.test
    assert set(record["alone"]) == set(run.test) and record["alone"] != run.test  # trained without the teacher
    assert (run.run_dir / "alone" / "checkpoints" / "last.safetensors").is_file()
    assert json.loads((run.run_dir / "config.json").read_text())["train"]["teacher"] == str(teacher_dir)
    summary = (run.run_dir / "summary.txt").read_text()
    assert f"distil   accuracy {run.test['accuracy']:.4f} as the student of {teacher_dir.resolve()}" in summary
    assert "distillation (T12)</dt>" in (run.run_dir / "report.html").read_text()
    # the student's model stands alone: predict reads it without the teacher
    predicted, _ = predict_table(run.run_dir, frame.drop(columns="y").head(5))
    assert len(predicted) == 5


def test_a_teacher_with_another_split_or_preprocessing_is_refused(teacher, tmp_path: Path) -> None:
    frame, teacher_dir = teacher
    with pytest.raises(ConfigError) as e:
        train_table(frame, "y", out=tmp_path, model_config=SMALL,
                    train_config=TrainConfig(epochs=2, seed=5, refit="off", teacher=str(teacher_dir)))
    assert str(e.value) == (
        f"--teacher {teacher_dir}: the teacher does not read this run's data as this run does: its 'preprocessing' "
        "(the data as the model reads it) differs from this run's; its data settings or --seed differ from this "
        "run's (the split must be the same: a teacher must not have trained on this run's test rows); train the "
        "student on the same table with the teacher's data flags and --seed (its config.json lists them)")
    assert not list(tmp_path.iterdir())  # refused before any folder was made
    with pytest.raises(ConfigError, match="its classes is"):
        train_table(frame.assign(y=frame["y"].astype(str) + "x"), "y", out=tmp_path, model_config=SMALL,
                    train_config=TrainConfig(epochs=2, refit="off", teacher=str(teacher_dir)))


class InterruptAtEpoch(Callback):
    def on_epoch_end(self, trainer, logs):  # type: ignore[no-untyped-def]
        if logs["epoch"] == 3:
            raise KeyboardInterrupt


def test_an_ensemble_teaches_and_a_killed_student_resumes_bit_for_bit(tmp_path: Path) -> None:
    frame = small_table(240, seed=2)
    ensemble = train_table(frame, "y", out=tmp_path / "t", train_config=TrainConfig(epochs=5, seed=0, cv_folds=3),
                           report=False, checks=())
    assert ensemble.results["cv"]["folds"] == 3
    cfg = TrainConfig(epochs=6, patience=None, seed=0, refit="off", teacher=str(ensemble.run_dir))
    straight = train_table(frame, "y", out=tmp_path / "a", model_config=SMALL, train_config=cfg, report=False)
    with pytest.raises(KeyboardInterrupt):
        train_table(frame, "y", out=tmp_path / "b", model_config=SMALL, train_config=cfg, report=False,
                    callbacks=[InterruptAtEpoch()])
    killed = next((tmp_path / "b").iterdir())
    resumed = train_table(frame, "y", out=tmp_path / "b", model_config=SMALL, train_config=cfg, report=False,
                          resume=killed)
    assert _same_weights(straight.run_dir, resumed.run_dir)
    assert resumed.results["distillation"] == {**straight.results["distillation"],
                                               "alone_seconds": resumed.results["distillation"]["alone_seconds"]}


def test_adversarial_training_records_the_metrics_under_attack(tmp_path: Path) -> None:
    frame = small_table(300, seed=3)
    run = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(
        epochs=8, patience=None, refit="off", adversarial="pgd", adv_epsilon=0.2, adv_steps=3))
    robust = run.results["robustness"]
    assert robust["method_trained"] == "pgd" and robust["epsilon"] == 0.2 and robust["pgd_steps"] == 10
    assert robust["clean"]["accuracy"] == pytest.approx(run.test["accuracy"])
    assert 0 <= robust["pgd"]["accuracy"] <= robust["clean"]["accuracy"]
    assert robust["fgsm"]["loss"] > robust["clean"]["loss"]  # the attack found a worse point for every model
    assert "robustness (T13)</dt>" in (run.run_dir / "report.html").read_text()
    assert run.verdicts.by_id("C1")  # the doctor's checks still ran on the adversarial step
    # T17 in every run: the verdict on the batch size, and its measurement in results.json
    (batch,) = run.verdicts.by_id("T17")
    measured = run.results["batch_size"]
    assert batch.status in ("pass", "warn") and measured["recommended"] in measured["batch_sizes"]
    assert all(r > 0 for r in measured["samples_per_s"]) and measured["noise_scale"] > 0
    plain = train_table(frame, "y", out=tmp_path, train_config=TrainConfig(epochs=8, patience=None, refit="off",
                                                                           robustness=True), report=False)
    assert plain.results["robustness"]["method_trained"] == "off"
    assert "distillation" not in plain.results


def test_the_cli_trains_adversarially_and_refuses_pgd_without_numeric_inputs(tmp_path: Path, capsys) -> None:
    csv = tmp_path / "t.csv"
    small_table(200, seed=4).to_csv(csv, index=False)
    code = main(["train", str(csv), "--target", "y", "--out", str(tmp_path / "runs"), "--epochs", "3",
                 "--adversarial", "fgm", "--adv-epsilon", "0.1", "--refit", "off", "--device", "cpu"])
    assert code == 0 and "robust   accuracy clean" in capsys.readouterr().out
    g = np.random.default_rng(0)
    words = [" ".join(g.choice(["good", "bad", "film", "plot", "actors", "long"], 6)) for _ in range(120)]
    text = tmp_path / "text.csv"
    pd.DataFrame({"review": words, "y": ["pos" if "good" in w else "neg" for w in words]}).to_csv(text, index=False)
    code = main(["train", str(text), "--target", "y", "--out", str(tmp_path / "runs"), "--epochs", "2",
                 "--adversarial", "pgd"])
    assert code == 2
    assert capsys.readouterr().err == (
        "nnrecipe: error: --adversarial pgd perturbs continuous inputs, and this data has none (no numeric column): "
        "use --adversarial fgm, which perturbs the embeddings of categories and text\n")


def test_images_distil_and_train_adversarially(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.concatenate([np.flatnonzero(digits.target == c)[:30] for c in range(4)])
    folder = write_image_folder(tmp_path / "digits", (digits.images[keep] * 255 / 16).astype(np.uint8),
                                digits.target[keep])
    fast = TrainConfig(epochs=3, patience=None, seed=0, refit="off", batch_size=16)
    teacher = train_images(folder, out=tmp_path / "runs", train_config=fast, report=False, checks=())
    student = train_images(folder, out=tmp_path / "runs", train_config=TrainConfig(
        epochs=3, patience=None, seed=0, refit="off", batch_size=16, teacher=str(teacher.run_dir)),
        data_config=DataConfig(augment="none"), report=False, checks=())
    assert student.results["distillation"]["teacher"] == teacher.test  # augmentation may differ; the split may not
    robust = train_images(folder, out=tmp_path / "runs", train_config=TrainConfig(
        epochs=3, patience=None, seed=0, refit="off", batch_size=16, adversarial="pgd", adv_epsilon=0.05,
        adv_steps=2), report=False, checks=()).results["robustness"]
    assert robust["pgd"]["accuracy"] <= robust["clean"]["accuracy"] and np.isfinite(robust["pgd"]["loss"])


def test_the_adversarial_settings_reach_the_step() -> None:
    from types import SimpleNamespace

    from nnrecipe.recipes.techniques import technique_step

    prepared = SimpleNamespace(step=None, inputs={"train": (torch.randn(8, 3),)})
    step = technique_step(prepared, {}, DataConfig(), TrainConfig(adversarial="pgd", adv_epsilon=0.3, adv_steps=4,
                                                                 adv_step_size=0.05))
    assert (step.method, step.epsilon, step.steps, step.step_size, step.which) == ("pgd", 0.3, 4, 0.05, (0,))
    assert technique_step(prepared, {}, DataConfig(), TrainConfig()) is None  # no technique: the data's own step


def test_a_techniques_setting_without_its_technique_is_refused() -> None:
    from types import SimpleNamespace

    from nnrecipe.recipes.techniques import technique_step

    prepared = SimpleNamespace(step=None, inputs={"train": (torch.randn(8, 3),)})
    with pytest.raises(ConfigError) as e:
        technique_step(prepared, {}, DataConfig(), TrainConfig(distill_alpha=0.5, adversarial="fgm", adv_steps=3))
    assert str(e.value) == ("--distill-alpha is read with --teacher only; --adv-steps is read with --adversarial pgd "
                            "only: add it, or leave the setting out")


def test_a_table_too_small_to_time_batches_skips_t17(tmp_path: Path) -> None:
    run = train_table(small_table(10, seed=0, task="regression"), "y", out=tmp_path, report=False,
                      train_config=TrainConfig(epochs=2))
    (verdict,) = run.verdicts.by_id("T17")
    assert verdict.status == "skipped" and verdict.summary.startswith("6 training rows: too few to time batches")
    assert "batch_size" not in run.results


def test_an_autoencoders_measurements_never_make_two_records_differ() -> None:
    # M13: a cached autoencoder's record says so (and its seconds differ), yet it is the same encoder: a teacher
    # (T12) and the prune command (M14) compare records without them
    from nnrecipe.recipes.prune import _canonical
    from nnrecipe.recipes.techniques import comparable

    fresh = {"pretrain": {"latent": 5, "rows": {"fit": 90}, "seconds": 1.25}}
    cached = {"pretrain": {"latent": 5, "rows": {"fit": 90}, "seconds": 0.01, "cached": True}}
    assert comparable(fresh) == comparable(cached) and _canonical(fresh) == _canonical(cached)
    assert comparable(fresh) != comparable({"pretrain": {"latent": 6, "rows": {"fit": 90}}})
