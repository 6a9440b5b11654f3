"""Issue 20 end to end: `nnrecipe train FOLDER` on digits written as PNG files (the real reading path), predict
on a folder, evaluation never augmented, resume after a kill mid-epoch bit for bit with augmentation on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nnrecipe import DataConfig, ModelConfig, TrainConfig
from nnrecipe.cli import main
from nnrecipe.data.image.augment import Augment, Augmented, resolve_preset
from nnrecipe.errors import ConfigError
from nnrecipe.recipes.images import predict_images, train_images
from nnrecipe.testing import write_image_folder


def _digits(n_per_class: int, classes: tuple[int, ...] = (0, 1, 2)) -> tuple[np.ndarray, list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[:n_per_class] for c in classes])
    pixels = (d.images[keep] * (255 / 16)).round().astype(np.uint8)
    return pixels, [str(c) for c in d.target[keep]]


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pixels, labels = _digits(40)
    return write_image_folder(tmp_path_factory.mktemp("digits") / "digits", pixels, labels)


FAST = TrainConfig(epochs=6, patience=None, seed=0, refit="off")


def test_train_on_a_folder_learns_and_predict_reads_a_folder(digits_folder: Path, tmp_path: Path) -> None:
    run = train_images(digits_folder, out=tmp_path / "runs", train_config=TrainConfig(epochs=25, seed=0))
    assert run.task == "multiclass"
    assert run.test["accuracy"] > 0.8  # 3 digits, 84 training images: a chance model scores 0.33
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["kind"] == "images" and config["model"]["name"] == "cnn"
    assert config["images"]["augment"] == "glyphs"  # grey 8x8 images: no flips
    splits = json.loads((run.run_dir / "splits.json").read_text())
    assert sum(len(v) for v in splits.values()) == 120 and all(f.endswith(".png") for f in splits["test"])
    val = pd.read_csv(run.run_dir / "val_predictions.csv")
    assert list(val.columns[:3]) == ["row", "file", "target"]
    html = (run.run_dir / "report.html").read_text()  # the pictures: C9's worst images, D14's augmented batch
    assert all(f'alt="{name}"' in html for name in ("worst_images.png", "batch.png", "samples.png",
                                                   "worst_test_images.png", "watched_images.png"))
    preds, report = predict_images(run.run_dir, digits_folder)
    assert len(preds) == 120 and report["accuracy"] > 0.8
    assert set(preds["prediction"].astype(str)) <= {"0", "1", "2"}


def test_cli_train_needs_no_target_for_a_folder_and_predicts(digits_folder: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(digits_folder), "--out", str(tmp_path / "runs"), "--epochs", "3", "--no-report",
                 "--refit", "off"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert (run_dir / "model.safetensors").exists()
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run_dir), str(digits_folder), "--out", str(out)]) == 0
    preds = pd.read_csv(out)
    assert list(preds.columns[:2]) == ["file", "prediction"] and len(preds) == 120


def test_a_table_still_needs_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": range(20), "b": [0, 1] * 10}).to_csv(csv, index=False)
    assert main(["train", str(csv), "--out", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nnrecipe: error: {csv}: a table needs --target, the column to predict (images: give a folder with a "
        "subfolder per class, a CSV of image paths, or an .npz)")


def test_evaluation_is_never_augmented(digits_folder: Path, tmp_path: Path) -> None:
    """Two evaluations of the trained model give identical outputs: the augmentation lives in the training
    step only, and the model's forward has no randomness in eval mode."""
    from nnrecipe.models import load_model

    run = train_images(digits_folder, out=tmp_path / "runs", train_config=FAST, report=False)
    model, _ = load_model(run.run_dir)
    x = torch.rand(16, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    # the step does augment in training: the same batch through it twice gives two different losses
    _, settings = resolve_preset("glyphs", 1, 8)
    step = Augmented(Augment(settings), seed=0, loss_fn=torch.nn.CrossEntropyLoss())
    from nnrecipe.steps.batch import as_batch

    batch = as_batch((x, torch.zeros(16, dtype=torch.long)))
    model.train()
    first, _ = step.loss(model, batch)
    second, _ = step.loss(model, batch)
    assert not torch.equal(first, second)


def test_resume_after_a_kill_mid_epoch_is_bit_for_bit_with_augmentation(digits_folder: Path, tmp_path: Path) -> None:
    """A run killed by a callback inside epoch 3 (a checkpoint every 2 steps) and resumed ends with the
    weights of the run that was never stopped."""
    from nnrecipe.train import Callback

    class Kill(Callback):
        def on_batch_end(self, trainer, logs):  # type: ignore[no-untyped-def]
            if trainer.epoch == 2 and logs["batch"] == 3:
                raise KeyboardInterrupt

    cfg = TrainConfig(epochs=4, patience=None, seed=3, refit="off", checkpoint_every=2, batch_size=16)
    # one memory layout for both runs: auto times the layouts (M10), and on a busy machine the two runs could
    # choose differently, which changes the float results of the convolutions (not what is under test)
    model = ModelConfig(layout="contiguous")
    straight = train_images(digits_folder, out=tmp_path / "a", model_config=model, train_config=cfg, report=False)
    with pytest.raises(KeyboardInterrupt):
        train_images(digits_folder, out=tmp_path / "b", model_config=model, train_config=cfg, report=False,
                     callbacks=[Kill()])
    killed = next((tmp_path / "b").iterdir())
    resumed = train_images(digits_folder, out=tmp_path / "b", model_config=model, train_config=cfg, report=False,
                           resume=killed)
    from safetensors.torch import load_file

    a, b = load_file(straight.run_dir / "model.safetensors"), load_file(resumed.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_images_refuse_table_settings(digits_folder: Path, tmp_path: Path) -> None:
    from nnrecipe.errors import ConfigError

    with pytest.raises(ConfigError, match="images are split auto, random or stratified"):
        train_images(digits_folder, out=tmp_path, data_config=DataConfig(split="group:x"), train_config=FAST)
    with pytest.raises(ConfigError, match="images take --model auto or cnn"):
        train_images(digits_folder, out=tmp_path, model_config=ModelConfig(model="tabm"), train_config=FAST)


def test_settings_images_do_not_use_are_refused_by_name(digits_folder: Path, tmp_path: Path) -> None:
    from nnrecipe.errors import ConfigError, DataError

    with pytest.raises(ConfigError) as e:
        train_images(digits_folder, out=tmp_path, data_config=DataConfig(scaling="robust"),
                     model_config=ModelConfig(hidden=(64,)), train_config=FAST)
    assert str(e.value) == (f"--scaling, --hidden: table settings, and '{digits_folder}' is images; leave them out "
                            "(the CNN's settings: --phi, --dropout, --image-size, --augment; docs/images.md)")
    with pytest.raises(ConfigError) as e:
        train_images(digits_folder, target="foo", out=tmp_path, train_config=FAST)
    assert str(e.value) == (f"--target: names a CSV's columns, and '{digits_folder}' is not a CSV (a folder's "
                            "classes are its subfolders; an .npz holds x and y): leave it out")
    with pytest.raises(DataError) as e:
        train_images(digits_folder, out=tmp_path, data_config=DataConfig(task="binary"), train_config=FAST)
    assert str(e.value) == "--task binary but the images hold 3 classes ('0', '1', '2'); pass --task multiclass or auto"


def test_a_table_refuses_image_settings_in_audit_and_train(tmp_path: Path) -> None:
    from nnrecipe import audit
    from nnrecipe.errors import ConfigError

    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": range(40), "y": [0, 1] * 20}).to_csv(csv, index=False)
    with pytest.raises(ConfigError, match=r"^--augment: image settings, and '.*t\.csv' is a table; leave them out"):
        audit(csv, "y", data_config=DataConfig(augment="photos"))


def test_predict_names_unreadable_files_and_labels_the_model_never_saw(digits_folder: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = train_images(digits_folder, out=tmp_path / "runs", train_config=FAST, report=False)
    pixels, _ = _digits(2, classes=(7,))
    new = write_image_folder(tmp_path / "new", pixels, ["7", "7"])
    (new / "7" / "broken.png").write_bytes(b"\x89PNG\r\n")
    assert main(["predict", str(run.run_dir), str(new), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "1 file(s) could not be read and have no prediction: 7/broken.png" in err
    assert "labels that are not among the model's classes ('7'): those 2 images are not scored" in err


def test_simple_baselines_skip_the_pixels_of_large_images() -> None:
    from nnrecipe.checks.simple_models import fit_simple_models
    from nnrecipe.tasks import create_task

    task = create_task("binary", n_classes=2)
    x, y = torch.rand(40, 3, 64, 64), torch.tensor([0.0, 1.0] * 20).view(-1, 1)
    simple = fit_simple_models(task, x, None, y, x[:10], None, y[:10])
    assert set(simple.skipped) == {"logistic_regression", "hist_gradient_boosting"}
    assert "12,288 inputs, over 4,096" in simple.skipped["logistic_regression"]
    small = fit_simple_models(task, torch.rand(40, 1, 32, 32), None, y, torch.rand(10, 1, 32, 32), None, y[:10])
    assert set(small.skipped) == set()  # 1,024 pixels: both fit


def test_audit_a_folder_without_training(digits_folder: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "audit"
    code = main(["audit", str(digits_folder), "--out", str(out), "--json", str(tmp_path / "a.json")])
    printed = capsys.readouterr().out
    assert code == 0
    assert printed.startswith(f"audit of {digits_folder}: 120 images (0 unreadable), resized to 8x8, 1 channel(s), "
                              "3 classes\n")
    assert "D3 duplicate images" in printed and printed.rstrip().endswith(f"audit.json and the plots: {out}")
    assert {p.name for p in out.iterdir()} >= {"audit.json", "label_distribution.png", "samples.png"}
    found = json.loads((tmp_path / "a.json").read_text())["findings"]
    assert {f["name"] for f in found} >= {"unreadable images", "duplicate images", "nearly empty classes"}
    assert main(["audit", str(digits_folder), "--test", "x.csv"]) == 2


def test_the_layout_is_timed_recorded_and_given_layouts_are_checked(digits_folder: Path, tmp_path: Path) -> None:
    """M10: auto times the layouts on the device and config.json records the timing and the choice, which the
    model's spec carries (a resumed run builds it again untimed); a padded layout for grey images is refused."""
    one = dataclasses.replace(FAST, epochs=1)  # the layout is chosen and recorded before training; no checks
    run = train_images(digits_folder, out=tmp_path, train_config=one, report=False, checks=(), audit=False)
    layout = run.config["layout"]
    assert layout["how"] == "timed on the device" and set(layout["timing"]["ms_per_step"]) == {"contiguous",
                                                                                                "channels_last"}
    assert run.config["model"]["layout"] == layout["layout"] == layout["timing"]["chosen"]
    given = train_images(digits_folder, out=tmp_path, model_config=ModelConfig(layout="channels_last"),
                         train_config=one, report=False, checks=(), audit=False)
    assert given.config["layout"] == {"layout": "channels_last", "how": "--layout channels_last"}
    spec = json.loads((given.run_dir / "model.json").read_text())["architecture"]
    assert spec["members"][0]["channels_last"] if "members" in spec else spec["channels_last"]
    with pytest.raises(ConfigError, match="--layout padded pads RGB images to 4 channels"):
        train_images(digits_folder, out=tmp_path, model_config=ModelConfig(layout="padded"), train_config=FAST)
