"""`nnrecipe export RUN --to onnx` (issue 23): each kind of model the recipe trains (TabM with missing values,
categories, an embedded column and text; the MLP with --text-model transformer; the MLP for regression; a T14
ensemble; a CNN; a transfer model) is
written as RUN/model.onnx, and onnxruntime on `onnx_inputs` of new rows predicts what `nnrecipe predict` does
on the same rows. A graph that cannot be traced, or that computes something else, is refused without a file."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nnrecipe import DataConfig, ModelConfig, TrainConfig, onnx_inputs, predict_images, predict_table, train_images, \
    train_table
from nnrecipe.errors import MissingDependencyError
from nnrecipe.models import save_model
from nnrecipe.models.registry import register_model
from nnrecipe.recipes import onnx as onnx_export
from nnrecipe.testing import shape_images, small_table, write_image_folder

ort = pytest.importorskip("onnxruntime")

FAST = dict(epochs=3, patience=None, seed=0, refit="off")
# float32 in torch and in onnxruntime: the same sums in another order (the module's RTOL/ATOL)
RTOL, ATOL = 1e-4, 1e-5


def _table(n: int, seed: int, task: str = "binary") -> pd.DataFrame:
    """small_table with missing numbers, an embedded column of 40 cities and a text column."""
    df = small_table(n, seed=seed, task=task)
    df.loc[::7, "a"] = np.nan
    df["city"] = [f"c{(i * 7 + seed) % 40}" for i in range(n)]
    df["note"] = [" ".join([f"word{i % 5}"] * (1 + i % 3) + [f"thing{i % 3}", "good" if i % 2 else "bad", f"id{i}"])
                  for i in range(n)]  # each row's own text: a few repeated values would be read as categories
    return df


def _new_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows the model never saw: another seed, a city and words outside training, more missing numbers."""
    rows = df.drop(columns="y").reset_index(drop=True)
    rows.loc[::3, "a"] = np.nan
    rows.loc[1, "city"] = "atlantis"
    rows.loc[2, "note"] = "words never seen before " * 9
    return rows


def _export(cli, run_dir: Path) -> ort.InferenceSession:
    code, out, err = cli("export", run_dir, "--to", "onnx")
    assert (code, out, err) == (0, f"{run_dir / 'model.onnx'}\n", "")
    return ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])


def _run_onnx(session: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_table(_table(200, seed=0), "y", out=tmp_path_factory.mktemp("binary"),
                       data_config=DataConfig(categorical=("city",)), train_config=TrainConfig(**FAST), checks=(),
                       report=False, audit=False).run_dir


def test_tabm_with_missing_values_categories_and_text_predicts_as_predict(binary_run: Path, cli) -> None:
    meta = json.loads((binary_run / "model.json").read_text())
    assert meta["architecture"]["name"] == "tabm" and meta["architecture"]["embeddings"]  # the city: embedded
    session = _export(cli, binary_run)
    # the names and the dynamic batch (and bag) dimensions the docs promise
    assert [(i.name, i.shape[0]) for i in session.get_inputs()] == [
        ("features", "batch"), ("codes", "batch"), ("terms", "batch"), ("weights", "batch")]
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    rows = _new_rows(_table(60, seed=3))
    inputs = onnx_inputs(binary_run, rows)
    assert {k: v.dtype for k, v in inputs.items()} == {"features": np.float32, "codes": np.int64,
                                                       "terms": np.int64, "weights": np.float32}
    got = _run_onnx(session, inputs)
    preds, _ = predict_table(binary_run, rows)
    np.testing.assert_allclose(got["probabilities"], preds[["p_no", "p_yes"]].to_numpy(), rtol=RTOL, atol=ATOL)
    classes = np.asarray(meta["classes"], dtype=object)
    assert (classes[(got["logits"][:, 0] > 0).astype(int)] == preds["prediction"].to_numpy()).all()
    # another batch size and another bag width go through the same file
    short = rows.iloc[:3].assign(note="good")
    few = onnx_inputs(binary_run, short)
    assert few["terms"].shape == (3, 1) and inputs["terms"].shape[1] > 1
    np.testing.assert_allclose(_run_onnx(session, few)["probabilities"],
                               predict_table(binary_run, short)[0][["p_no", "p_yes"]].to_numpy(), rtol=RTOL, atol=ATOL)


def test_the_word_encoder_of_text_model_transformer_exports(tmp_path: Path, cli) -> None:
    df = _table(200, seed=0)
    run = train_table(df, "y", out=tmp_path, model_config=ModelConfig(model="mlp", text_model="transformer"),
                      train_config=TrainConfig(**FAST), checks=(), report=False, audit=False).run_dir
    session = _export(cli, run)
    assert [i.name for i in session.get_inputs()] == ["features", "codes", "terms", "weights", "words"]
    rows = _new_rows(_table(40, seed=6))
    got = _run_onnx(session, onnx_inputs(run, rows))
    preds, _ = predict_table(run, rows)
    np.testing.assert_allclose(got["probabilities"], preds[["p_no", "p_yes"]].to_numpy(), rtol=RTOL, atol=ATOL)


def test_mlp_regression_predicts_in_the_target_units(tmp_path: Path, cli) -> None:
    df = small_table(200, seed=1, task="regression")
    df.loc[::9, "b"] = np.nan
    run = train_table(df, "y", out=tmp_path, model_config=ModelConfig(model="mlp"), train_config=TrainConfig(**FAST),
                      checks=(), report=False, audit=False).run_dir
    session = _export(cli, run)
    rows = small_table(50, seed=4, task="regression").drop(columns="y")
    got = _run_onnx(session, onnx_inputs(run, rows))
    preds, _ = predict_table(run, rows)
    np.testing.assert_allclose(got["prediction"], preds["prediction"].to_numpy(), rtol=RTOL, atol=ATOL)
    scale = json.loads((run / "model.json").read_text())["target_scale"]  # the raw output, as docs/onnx.md maps it
    np.testing.assert_allclose(got["logits"][:, 0] * scale["std"] + scale["mean"], got["prediction"], rtol=RTOL,
                               atol=ATOL)


def test_a_cross_validation_ensemble_exports_as_one_graph(tmp_path: Path, cli) -> None:
    run = train_table(small_table(200, seed=2, task="multiclass"), "y", out=tmp_path,
                      train_config=TrainConfig(**FAST, cv_folds=2), checks=(), report=False, audit=False).run_dir
    assert json.loads((run / "model.json").read_text())["architecture"]["name"] == "ensemble"
    session = _export(cli, run)
    rows = small_table(50, seed=5, task="multiclass").drop(columns="y")
    got = _run_onnx(session, onnx_inputs(run, rows))
    preds, _ = predict_table(run, rows)
    np.testing.assert_allclose(got["probabilities"], preds.filter(like="p_").to_numpy(), rtol=RTOL, atol=ATOL)


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """A CNN on 24 tiny PNGs, and a transfer model from it (--transfer full) on three other classes."""
    root = tmp_path_factory.mktemp("images")
    shapes = write_image_folder(root / "shapes", *shape_images(24, side=16, seed=0))
    cnn = train_images(shapes, out=root / "runs", train_config=TrainConfig(**FAST), checks=(), report=False,
                       audit=False).run_dir
    three = write_image_folder(root / "three", *shape_images(24, side=16, seed=1,
                                                             classes=("circle", "square", "triangle")))
    transfer = train_images(three, out=root / "runs", model_config=ModelConfig(backbone=str(cnn), transfer="full"),
                            train_config=TrainConfig(**{**FAST, "epochs": 2}), checks=(), report=False,
                            audit=False).run_dir
    return cnn, shapes, transfer, three


@pytest.mark.parametrize("which", ["cnn", "transfer"])
def test_image_models_predict_as_predict_from_a_folder_and_from_files(image_runs, which: str, cli) -> None:
    cnn, shapes, transfer, three = image_runs
    run, folder = (cnn, shapes) if which == "cnn" else (transfer, three)
    assert json.loads((run / "model.json").read_text())["architecture"]["name"] == which
    session = _export(cli, run)
    inputs = onnx_inputs(run, folder)
    assert list(inputs) == ["images"] and inputs["images"].dtype == np.float32
    got = _run_onnx(session, inputs)
    preds, _ = predict_images(run, folder)
    np.testing.assert_allclose(got["probabilities"], preds.filter(like="p_").to_numpy(), rtol=RTOL, atol=ATOL)
    files = [str(folder / f) for f in preds["file"][:5]]  # a list of files reads as predict reads the folder
    np.testing.assert_allclose(_run_onnx(session, onnx_inputs(run, files))["probabilities"],
                               got["probabilities"][:5], rtol=RTOL, atol=ATOL)


@register_model("test-branches-on-data")
class BranchesOnData(nn.Module):
    """A model whose forward takes a Python branch on its input's values: torch.export cannot trace it."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.spec = {"name": "test-branches-on-data", "classes": classes}
        self.linear = nn.Linear(8 * 8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0.5:
            return self.linear(x.flatten(1)) + 1
        return self.linear(x.flatten(1))


@register_model("test-flat-linear")
class FlatLinear(nn.Module):
    """8x8 grey images -> 2 logits: a model that exports."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = {"name": "test-flat-linear"}
        self.linear = nn.Linear(8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _image_run(folder: Path, model: nn.Module) -> Path:
    save_model(folder, model, {"task": "multiclass", "target": "label", "classes": ["a", "b"], "target_scale": None,
                               "kind": "images", "images": {"size": 8, "channels": 1, "augment": "none",
                                                            "classes": ["a", "b"]}})
    return folder


def test_a_model_that_cannot_be_traced_is_refused_with_its_line(tmp_path: Path, cli) -> None:
    run = _image_run(tmp_path / "run", BranchesOnData())
    code, out, err = cli("export", run, "--to", "onnx")
    assert (code, out) == (2, "")
    assert err.startswith(f"nnrecipe: error: run '{run}': its test-branches-on-data model does not export to ONNX: ")
    assert "test_onnx_export.py" in err and "in forward" in err  # the line of the model that fails
    assert err.endswith("The run still predicts with `nnrecipe predict`; to export it, make that part traceable by "
                        "torch.export (no Python branch or int() on tensor values: "
                        "https://pytorch.org/docs/stable/export.html), or report it with the model's name\n")
    assert not (run / "model.onnx").exists() and sorted(p.name for p in run.iterdir()) == ["model.json",
                                                                                           "model.safetensors"]


def test_a_graph_that_computes_something_else_is_refused_and_not_written(tmp_path: Path, cli, monkeypatch) -> None:
    @contextlib.contextmanager
    def off_by_one(graph: nn.Module):  # the traced model adds 1 to its logits: the graph disagrees with the model
        inner = graph.model
        forward = inner.forward
        inner.forward = lambda *inputs: forward(*inputs) + 1.0
        try:
            yield
        finally:
            del inner.forward

    monkeypatch.setattr(onnx_export, "_traceable", off_by_one)
    run = _image_run(tmp_path / "run", FlatLinear())
    code, out, err = cli("export", run, "--to", "onnx")
    assert (code, out) == (2, "")
    assert err.startswith(f"nnrecipe: error: run '{run}': the exported graph is refused, output 'logits' of the ONNX "
                          f"graph differs from the model's on 16 check rows (shape (16, 2) against (16, 2), largest "
                          "difference 1, allowed 1e-05 + 0.0001 x |value|); no file was written.")
    assert not (run / "model.onnx").exists()


def test_export_to_another_file_and_the_messages_of_what_is_missing(binary_run: Path, tmp_path: Path, cli,
                                                                    monkeypatch) -> None:
    code, out, _ = cli("export", binary_run, "--to", "onnx", "--out", tmp_path / "m.onnx")
    assert (code, out) == (0, f"{tmp_path / 'm.onnx'}\n") and (tmp_path / "m.onnx").stat().st_size > 0
    assert cli("export", binary_run, "--to", "tensorboard", "--out", tmp_path / "x")[:3] == (
        2, "", f"nnrecipe: error: --out {tmp_path / 'x'}: only --to onnx writes a file; TensorBoard's goes to "
        "RUN/tensorboard, MLflow's to its tracking store (--tracking-uri)\n")
    assert cli("export", binary_run, "--to", "onnx", "--tracking-uri", "sqlite:///x.db")[:3] == (
        2, "", "nnrecipe: error: --tracking-uri sqlite:///x.db is MLflow's; --to onnx writes a file (--out): leave it "
        "out\n")
    with pytest.raises(Exception, match="lack 1 column") as found:
        onnx_inputs(binary_run, _table(5, seed=0).drop(columns=["note"]))
    assert str(found.value) == "the rows lack 1 column(s) the model needs: 'note'; add them"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError) as missing:
        onnx_export.export_onnx(binary_run, tmp_path / "n.onnx")
    assert str(missing.value).startswith("exporting to ONNX needs onnxruntime, which is not installed (")
    assert str(missing.value).endswith("); install it with pip install 'nnrecipe[onnx]'")
    assert not (tmp_path / "n.onnx").exists()
