"""Models by name: the registry (create_model, list_models, build_model from a spec, register_model) and the
shareable artifact (model.safetensors + model.json) built again by name, with damaged files refused by folder."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load, load_file
from torch import nn

from nnrecipe import CheckpointError, ConfigError, TrainConfig, Trainer
from nnrecipe.models import build_model, create_model, list_models, load_model, register_model, registry, save_model


def test_the_registry_lists_the_recipes_models():
    assert {"mlp", "ensemble"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_a_model_by_name_carries_its_spec_and_is_built_again_from_it():
    torch.manual_seed(0)
    model = create_model("mlp", in_features=4, hidden=[8], out_features=2)
    assert model.spec["name"] == "mlp"
    assert {k: model.spec[k] for k in ("in_features", "hidden", "out_features")} == {
        "in_features": 4, "hidden": [8], "out_features": 2}
    again = build_model(model.spec)
    assert repr(again) == repr(model) and again.spec == model.spec
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    legacy = {("kind" if k == "name" else k): v for k, v in model.spec.items()}  # runs saved before "name"
    assert repr(build_model(legacy)) == repr(model)


def test_an_ensemble_is_built_again_from_its_members_specs():
    members = [create_model("mlp", in_features=4, hidden=[8], out_features=3) for _ in range(2)]
    ensemble = create_model("ensemble", members=members, activation="softmax")
    again = build_model(ensemble.spec)
    assert again.spec == ensemble.spec and len(again.members) == 2
    assert again(torch.zeros(5, 4)).shape == (5, 3)


def test_an_unknown_model_is_refused_with_a_did_you_mean():
    with pytest.raises(ConfigError) as e:
        create_model("mpl", in_features=4)
    assert str(e.value) == f"model 'mpl' is not registered (did you mean 'mlp'?); registered: {', '.join(list_models())}"
    with pytest.raises(ConfigError) as e:
        build_model({"in_features": 4})
    assert str(e.value) == "the model's spec names no model (no 'name' key)"


@pytest.fixture
def own_registry(monkeypatch):
    """A copy of the registry for one test: what it registers is gone afterwards."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


class Tiny(nn.Module):
    def __init__(self, width: int, classes: int = 3):
        super().__init__()
        self.body = nn.Linear(8, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def test_a_registered_model_round_trips_through_a_run_folder(own_registry, tmp_path):
    assert register_model("tiny")(Tiny) is Tiny
    assert register_model("tiny")(Tiny) is Tiny  # the same factory again: fine
    with pytest.raises(ConfigError) as e:
        register_model("mlp")(Tiny)
    assert str(e.value) == "a model named 'mlp' is registered already; choose another name"
    assert "tiny" in list_models()

    torch.manual_seed(0)
    model = create_model("tiny", width=6)
    assert model.spec == {"name": "tiny", "width": 6}
    X, y = torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), torch.arange(64) % 3
    Trainer(model, nn.CrossEntropyLoss(), (X, y), run_dir=tmp_path,
            config=TrainConfig(device="cpu", epochs=2, batch_size=16, patience=None)).fit()
    save_model(tmp_path, model, {"task": "multiclass", "classes": ["a", "b", "c"]})

    loaded, meta = load_model(tmp_path)
    assert type(loaded) is Tiny and not loaded.training
    assert (meta["model"], meta["architecture"], meta["task"], meta["classes"]) == (
        "tiny", {"name": "tiny", "width": 6}, "multiclass", ["a", "b", "c"])
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert saved.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v) and torch.equal(saved[k], v)
    assert torch.equal(loaded(X), model.eval()(X))


def test_a_model_without_a_spec_is_not_saved(tmp_path):
    with pytest.raises(ConfigError) as e:
        save_model(tmp_path, nn.Sequential(nn.Linear(2, 1)), {})
    assert str(e.value) == ("a Sequential has no registry spec; save_model saves the registry's models "
                            "(nnrecipe.models.create_model), or save its state_dict with safetensors yourself")


def test_a_truncated_model_file_is_refused_naming_the_folder(tmp_path):
    save_model(tmp_path, create_model("mlp", in_features=4, hidden=[8], out_features=2), {})
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    message = (f"'{weights}' is not the weights '{tmp_path / 'model.json'}' describes (their hash differs: a run "
               "killed while saving its model, or files from two runs); train the run again")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_model(tmp_path)
    # a model saved before the hash was recorded: safetensors' own complaint, quoted, not raised raw
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["weights_sha256"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    try:
        load(weights.read_bytes())
    except Exception as e:  # noqa: BLE001 (safetensors' own error type)
        raw = f"{type(e).__name__}: {e}"
    else:
        pytest.fail("safetensors read a truncated file")
    message = (f"the model in '{tmp_path}' cannot be loaded ({raw}); the files are damaged or not nnrecipe's: "
               "train the run again, or restore its folder")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$") as e:
        load_model(tmp_path)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no raw safetensors traceback chained


def test_weights_from_another_run_and_a_description_lacking_an_entry_are_refused(tmp_path):
    for name, width in (("a", 8), ("b", 8)):
        save_model(tmp_path / name, create_model("mlp", in_features=4, hidden=[width], out_features=2),
                   {"preprocessing": {}})
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="hash differs"):
        load_model(tmp_path / "a")
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    del meta["preprocessing"]
    (tmp_path / "b" / "model.json").write_text(json.dumps(meta))
    message = (f"'{tmp_path / 'b' / 'model.json'}' lacks 'preprocessing'; the file is damaged or was edited: restore "
               "the run folder, or train the run again")
    with pytest.raises(CheckpointError, match=f"^{re.escape(message)}$"):
        load_model(tmp_path / "b", required=("preprocessing",))


def test_a_missing_folder_or_model_is_refused(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "nope")
    assert str(e.value) == (f"run folder '{tmp_path / 'nope'}' does not exist; give the folder that `nnrecipe train` "
                            "printed")
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path)
    assert str(e.value) == (f"run folder '{tmp_path}' holds no model (model.json and model.safetensors); the run may "
                            "not have finished: train it again")
