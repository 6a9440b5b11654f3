"""M14: pruning a finished run (nnrecipe.recipes.prune over models/prune.py, `nnrecipe prune`): global magnitude and structured
(shrinking) pruning, iterative with fine-tuning, each step a folder `predict` loads, resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from nnrecipe.config import ModelConfig, TrainConfig
from nnrecipe.errors import CheckpointError, ConfigError
from nnrecipe.models import MLP
from nnrecipe.models.cnn import make_cnn
from nnrecipe.models.prune import make_permanent, mlps, prune_global, shrink_mlp
from nnrecipe.recipes.prune import prune_run
from nnrecipe.recipes import predict_table, train_table
from nnrecipe.testing import small_table

HIDDEN = re.compile(r"members\.(\d+)\.layers\.(\d+)\.weight")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A seeded MLP run (the R2 pair: an ensemble of two MLPs) on a learnable 400-row table, read from a CSV
    as `nnrecipe train` reads it; pruned to 0.5 and 0.8 once for the module's tests."""
    folder = tmp_path_factory.mktemp("prune")
    csv = folder / "table.csv"
    small_table(400, seed=0).to_csv(csv, index=False)
    run = train_table(csv, "y", out=folder / "runs", model_config=ModelConfig(model="mlp"),
                      train_config=TrainConfig(epochs=30, seed=0, refit="on"), checks=(), audit=False, report=False)
    result = prune_run(run.run_dir, (0.5, 0.8), fine_tune_epochs=2)
    return SimpleNamespace(csv=csv, run=run, result=result)


def hidden_weights(file: Path) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The hidden layers' weights of a saved ensemble of MLPs, and its output layers' (each member's last)."""
    tensors = load_file(str(file))
    layers: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for key, t in tensors.items():
        if m := HIDDEN.fullmatch(key):
            layers.setdefault(m[1], []).append((int(m[2]), t))
    hidden = [t for found in layers.values() for _, t in sorted(found, key=lambda p: p[0])[:-1]]
    outputs = [max(found, key=lambda p: p[0])[1] for found in layers.values()]
    return hidden, outputs


def test_global_pruning_to_half_keeps_the_test_accuracy_within_one_point(table_run) -> None:
    result, run = table_run.result, table_run.run
    # the run's data prepared again gives the run's own test score: the same split and preprocessing
    assert result.unpruned["test"]["accuracy"] == pytest.approx(run.test["accuracy"])
    assert run.test["accuracy"] > 0.9  # the table is learnable: a bound worth keeping
    half = result.steps[0]
    assert half["sparsity"] == 0.5 and half["reached"] == pytest.approx(0.5, abs=1e-4)
    assert half["test"]["accuracy"] >= run.test["accuracy"] - 0.01  # held over seeds 0-5 (60 test rows)
    assert [s["nonzero"] < result.unpruned["nonzero"] for s in result.steps] == [True, True]


def test_the_saved_weights_hold_exactly_the_asked_share_of_zeros(table_run) -> None:
    for step in table_run.result.steps:
        folder = table_run.run.run_dir / step["folder"]
        tensors = load_file(str(folder / "model.safetensors"))
        assert not [k for k in tensors if k.endswith(("_orig", "_mask"))]  # the masks made permanent: plain weights
        hidden, outputs = hidden_weights(folder / "model.safetensors")
        n = sum(t.numel() for t in hidden)
        assert sum(int((t == 0).sum()) for t in hidden) == round(step["sparsity"] * n)
        assert all(bool((t != 0).all()) for t in outputs)  # the output layer is never pruned
        assert [t.shape for t in hidden] == [torch.Size([128, 5]), torch.Size([128, 128])] * 2  # shapes kept


def test_predict_loads_a_pruned_folder_and_scores_its_test_rows(table_run, tmp_path: Path, cli) -> None:
    run_dir, step = table_run.run.run_dir, table_run.result.steps[1]
    folder = run_dir / step["folder"]
    frame = pd.read_csv(table_run.csv)
    test_rows = frame.iloc[json.loads((run_dir / "splits.json").read_text())["test"]]
    preds, report = predict_table(folder, test_rows)
    assert len(preds) == len(test_rows) and report["accuracy"] == pytest.approx(step["test"]["accuracy"])
    code, out, _ = cli("predict", folder, table_run.csv, "--out", tmp_path / "preds.csv")
    assert code == 0 and len(pd.read_csv(tmp_path / "preds.csv")) == len(frame)
    code, out, _ = cli("runs", run_dir / "pruned")
    assert code == 0 and "global-0.5" in out and "global-0.8" in out


def test_the_table_and_its_plot_are_in_the_run_folder(table_run) -> None:
    run_dir = table_run.run.run_dir
    doc = json.loads((run_dir / "prune.json").read_text())
    steps = doc["methods"]["global"]["steps"]
    assert doc["metric"] == "accuracy" and [s["sparsity"] for s in steps] == [0.5, 0.8]
    assert [s["folder"] for s in steps] == ["pruned/global-0.5", "pruned/global-0.8"]
    assert {"parameters", "nonzero", "test", "fine_tune", "seconds", "predict_ms"} <= set(steps[0])
    assert steps[0]["fine_tune"]["epochs"] == 2 and doc["unpruned"]["test"] == table_run.result.unpruned["test"]
    assert (run_dir / "prune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the run's report (made again by `nnrecipe report`) has the pruning line
    from nnrecipe.report import write_report

    page = write_report(run_dir).read_text()
    accuracy = [f"{s['test']['accuracy']:.4f}".rstrip("0") for s in steps]
    assert "pruning (M14)</dt>" in page and f"global: 0.5 {accuracy[0]}" in page


def test_structured_pruning_gives_a_smaller_model_that_predict_loads(table_run, tmp_path: Path) -> None:
    result = prune_run(table_run.run.run_dir, (0.5, 0.75), method="structured", fine_tune_epochs=3, out=tmp_path)
    half, quarter = result.steps
    assert half["hidden"] == [[64, 64], [64, 64]] and quarter["hidden"] == [[32, 32], [32, 32]]
    assert result.unpruned["parameters"] > half["parameters"] > quarter["parameters"]
    assert half["reached"] == 0.5 and half["test"]["accuracy"] > 0.8
    architecture = json.loads((tmp_path / "structured-0.5" / "model.json").read_text())["architecture"]
    assert [m["hidden"] for m in architecture["members"]] == [[64, 64], [64, 64]]
    preds, report = predict_table(tmp_path / "structured-0.75", pd.read_csv(table_run.csv))
    assert len(preds) == 400 and report["accuracy"] > 0.8


@pytest.mark.parametrize("settings", [dict(activation="relu", batchnorm=True, dropout=0.2),
                                      dict(activation="sigmoid", batchnorm=False, dropout=0.0)])
def test_shrinking_an_mlp_keeps_its_function(settings) -> None:
    torch.manual_seed(0)
    mlp = MLP(6, (16, 12), 3, **settings)
    linears = [m for m in mlp.layers if isinstance(m, nn.Linear)]
    with torch.no_grad():  # a trained-looking BatchNorm, and dead rows (their biases still pass a constant on)
        for m in mlp.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.bias.uniform_(-1, 1)
        linears[0].weight[[1, 4, 5, 9]] = 0
        linears[1].weight[[0, 11]] = 0
    mlp.eval()
    x = torch.randn(32, 6)
    smaller = shrink_mlp(mlp)
    assert smaller.spec["hidden"] == [12, 10] and type(smaller) is MLP
    torch.testing.assert_close(smaller(x), mlp(x), rtol=1e-5, atol=1e-6)


def test_global_pruning_of_a_cnn_in_channels_last_keeps_its_layout() -> None:
    torch.manual_seed(0)
    cnn = make_cnn(1, 3, 100, 8, phi=0, channels_last=True)
    prune_global(cnn, 0.6)
    make_permanent(cnn)
    convs = [m.weight for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    n = sum(w.numel() for w in convs)
    assert sum(int((w == 0).sum()) for w in convs) == round(0.6 * n)  # the head is left whole: no Linear counted
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs if w.shape[-1] > 1)
    assert bool((cnn.output_layer.weight != 0).all())


def test_structured_pruning_refuses_a_model_that_cannot_shrink() -> None:
    with pytest.raises(ConfigError) as e:
        mlps(make_cnn(1, 3, 100, 8, phi=0))
    assert str(e.value) == (
        "method='structured' removes hidden neurons of an MLP, and this run's model is a CNN, whose layers cannot "
        "lose units one at a time; prune it with method='global' (CLI: --method global), or train the run with "
        "--model mlp to shrink it")


def test_a_stopped_prune_goes_on_from_the_finished_sparsities(table_run, tmp_path: Path, monkeypatch) -> None:
    import nnrecipe.recipes.prune as module

    run_dir = table_run.run.run_dir
    straight = prune_run(run_dir, (0.5, 0.8), fine_tune_epochs=1, out=tmp_path / "straight")
    real, calls = module.fine_tune, []

    def stopped_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill during the second step's fine-tuning
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "fine_tune", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        prune_run(run_dir, (0.5, 0.8), fine_tune_epochs=1, out=tmp_path / "stopped")
    monkeypatch.setattr(module, "fine_tune", real)
    first = (tmp_path / "stopped" / "global-0.5" / "model.safetensors").read_bytes()
    resumed = prune_run(run_dir, (0.5, 0.8), fine_tune_epochs=1, out=tmp_path / "stopped")
    assert resumed.resumed == [0.5]
    assert (tmp_path / "stopped" / "global-0.5" / "model.safetensors").read_bytes() == first  # not redone
    for name in ("global-0.5", "global-0.8"):  # and the end is the straight run's, bit for bit
        assert ((tmp_path / "stopped" / name / "model.safetensors").read_bytes()
                == (tmp_path / "straight" / name / "model.safetensors").read_bytes())
    assert [s["test"] for s in resumed.steps] == [s["test"] for s in straight.steps]
    # other settings: nothing is taken from the folders made with the old ones
    assert prune_run(run_dir, (0.5,), fine_tune_epochs=0, out=tmp_path / "stopped").resumed == []


def test_bad_arguments_are_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        prune_run(tmp_path / "nothing", (0.9, 0.5, 1.0), method="globl", fine_tune_epochs=-1)
    assert str(e.value) == (
        f"run_dir '{tmp_path / 'nothing'}' is not a finished run folder (no config.json and model.json there); give "
        "a folder `nnrecipe train` printed (`nnrecipe runs DIR` lists them); sparsities=(0.9, 0.5, 1.0): 1.0 is "
        "outside [0, 1) (1 would remove every weight); give the fractions to remove, in [0, 1) and increasing, such "
        "as (0.5, 0.8, 0.9); method='globl' is not a pruning method (did you mean 'global'?); choose one of: global "
        "(magnitude, every hidden weight at once), structured (whole neurons, the MLP shrinks); fine_tune_epochs=-1 "
        "is not allowed; give 0 (no fine-tuning) or more")


def test_sparsities_out_of_order_are_refused(table_run) -> None:
    with pytest.raises(ConfigError) as e:
        prune_run(table_run.run.run_dir, (0.8, 0.5))
    assert str(e.value) == (
        "sparsities=(0.8, 0.5): not in increasing order (each sparsity is pruned from the model of the one before); "
        "give the fractions to remove, in [0, 1) and increasing, such as (0.5, 0.8, 0.9)")


def test_cli_prints_the_table_and_exits_two_on_bad_input(table_run, tmp_path: Path, cli) -> None:
    run_dir = table_run.run.run_dir
    code, out, _ = cli("prune", run_dir, "--sparsity", "0.5", "--fine-tune-epochs", "1", "--out", tmp_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["sparsity", "reached", "nonzero/parameters", "test"]
    assert lines[3].split()[:2] == ["0.5", "0.500"] and lines[3].endswith(str(tmp_path / "global-0.5"))
    assert (tmp_path / "global-0.5" / "model.safetensors").is_file()
    code, _, err = cli("prune", run_dir, "--sparsity", "0.5,x", "--method", "structure")
    assert code == 2
    assert err.strip() == (
        "nnrecipe: error: --sparsity 0.5,x: 'x' is not a number; give the fractions to remove, in [0, 1) and "
        "increasing, such as 0.5,0.8,0.9; --method structure is not a pruning method (did you mean 'structured'?); "
        "choose one of: global (magnitude, every hidden weight at once), structured (whole neurons, the MLP shrinks)")
    assert cli("prune", "--help")[0] == 0


def test_other_data_than_the_run_was_trained_on_is_refused(table_run) -> None:
    other = small_table(400, seed=1)
    with pytest.raises(CheckpointError) as e:
        prune_run(table_run.run.run_dir, (0.5,), data=other)
    assert str(e.value) == (
        f"the DataFrame is not the data run '{table_run.run.run_dir}' was trained on (preprocessing, the split "
        "differ from its model.json and splits.json); give the run's own data (data=, CLI: --data PATH)")


def test_an_image_run_prunes_globally_and_predict_reads_the_folder(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    from nnrecipe.recipes.images import predict_images, train_images
    from nnrecipe.testing import write_image_folder

    digits = load_digits()
    keep = [i for c in (0, 1, 2) for i in (digits.target == c).nonzero()[0][:30]]
    pixels = (digits.images[keep] * (255 / 16)).round().astype("uint8")
    folder = write_image_folder(tmp_path / "digits", pixels, [str(c) for c in digits.target[keep]])
    run = train_images(folder, out=tmp_path / "runs", train_config=TrainConfig(epochs=3, seed=0, refit="off"),
                       checks=(), audit=False, report=False)
    result = prune_run(run.run_dir, (0.5,), fine_tune_epochs=1)
    assert result.unpruned["test"]["accuracy"] == pytest.approx(run.test["accuracy"])
    assert result.steps[0]["reached"] == pytest.approx(0.5, abs=1e-4)
    preds, report = predict_images(run.run_dir / result.steps[0]["folder"], folder)
    assert len(preds) == 90 and 0 <= report["accuracy"] <= 1
