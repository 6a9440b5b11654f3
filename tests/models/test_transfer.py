"""M11/M12 (issue 20): a backbone cut at a layer, frozen for real (BatchNorm statistics included), thawed
block by block with discriminative rates, saved and read back as safetensors + JSON, from a model the user
built (the path torchvision and timm models take where they load)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from nnrecipe import TrainConfig, Trainer
from nnrecipe.errors import ConfigError
from nnrecipe.models import create_model, register_model
from nnrecipe.models.cnn import CNN
from nnrecipe.models.registry import build_model
from nnrecipe.models.transfer import LR_FACTOR, Transfer, cut, torchvision_backbone
from nnrecipe.recipes.transfer import load_backbone, save_backbone
from nnrecipe.train.callbacks import GradualUnfreezing


def _cnn(channels: int = 1) -> CNN:
    torch.manual_seed(0)
    return CNN(channels, 3, [1, 1, 1], [8, 16, 16], 16)


def _data(n: int = 48, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.rand(n, channels, 16, 16, generator=g) * 0.3
    x[:, :, 4:12, 4:12] += y.view(-1, 1, 1, 1).float() * 0.3  # a class-dependent square: learnable
    return x.clamp(0, 1), y


def _fit(model: Transfer, epochs: int) -> Trainer:
    x, y = _data()
    trainer = Trainer(model, nn.CrossEntropyLoss(), (x, y), (x[:12], y[:12]),
                      TrainConfig(epochs=epochs, batch_size=16, lr=1e-2, patience=None, seed=0),
                      callbacks=[GradualUnfreezing()], record=False)
    trainer.fit()
    return trainer


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_features_mode_leaves_the_backbone_and_its_batchnorm_statistics_unchanged() -> None:
    model = Transfer(_cnn(), 3, 1, "features")
    before, head = _state(model.backbone), _state(model.head)
    _fit(model, 3)
    after = model.backbone.state_dict()
    assert any("running_mean" in k for k in before)  # the statistics are among what is compared
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen layer moved"
    assert any(not torch.equal(head[k], v) for k, v in model.head.state_dict().items())  # the head learnt
    model.train()
    assert not any(m.training for m in model.backbone.modules())  # frozen blocks stay in eval mode


def test_last_mode_thaws_the_last_block_at_epoch_2_and_keeps_the_others() -> None:
    model = Transfer(_cnn(), 3, 1, "last")
    assert model.groups == [["stem"], ["stages.0"], ["stages.1"], ["stages.2"]]
    before = _state(model.backbone.model)
    _fit(model, 1)  # epoch 1: the head alone
    assert all(torch.equal(before[k], v) for k, v in model.backbone.model.state_dict().items())
    _fit(model, 2)
    after = model.backbone.model.state_dict()
    moved = {k.split(".")[0] + "." + k.split(".")[1] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"stages.2"}, moved


def test_full_mode_thaws_one_block_an_epoch_with_discriminative_rates() -> None:
    model = Transfer(_cnn(), 3, 1, "full")
    assert [model.thawed_at(e) for e in range(1, 7)] == [0, 1, 2, 3, 4, 4]
    groups = model.param_groups(0.01)
    assert [round(g["lr"], 8) for g in groups] == [round(0.01 / LR_FACTOR ** k, 8) for k in range(5)]
    model.thaw(3)
    trainable = {".".join(n.split(".")[1:3]) if "stages" in n else n.split(".")[1]
                 for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"stages.1", "stages.2"}
    model.train()
    assert model.backbone.model.stages[2].training and not model.backbone.model.stem.training


def test_cut_gives_embeddings_from_any_layer_and_names_a_wrong_one() -> None:
    model = _cnn().eval()
    x, _ = _data(4)
    assert cut(model)(x).shape == (4, 16)  # the CNN's pooled embedding
    assert cut(model, at="stages.0")(x).shape == (4, 8)  # a map, averaged over its pixels
    with pytest.raises(ConfigError, match="no layer of that name.*stages.1"):
        cut(model, at="stages.l")


class Tiny(nn.Module):
    """A user's own network: a Sequential body and a classifier, no `in_channels` attribute."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(x)).flatten(1))


register_model("test_tiny")(Tiny)


def test_a_users_registered_model_is_a_backbone_through_a_safetensors_file(tmp_path) -> None:
    torch.manual_seed(0)
    mine = create_model("test_tiny", classes=4)
    path = save_backbone(mine, tmp_path / "tiny.safetensors")
    read = load_backbone(path)
    assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), read.state_dict().values()))
    model = Transfer(read, 2, 1, "full")  # grey images into a colour backbone: repeated into its channels
    assert cut(read).at == "fc"  # the input of its classifier
    x = torch.rand(5, 1, 12, 12)
    out = model.eval()(x)
    again = build_model(model.spec)  # what load_model does with model.json
    again.load_state_dict(model.state_dict())
    assert out.shape == (5, 2) and torch.allclose(again.eval()(x), out)


def test_unreadable_backbones_are_named(tmp_path) -> None:
    (tmp_path / "m.pt").write_bytes(b"not a pickle we load")
    with pytest.raises(ConfigError, match="pickle"):
        load_backbone(tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="no such file"):
        load_backbone(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ConfigError, match="does not name its architecture"):
        load_backbone(tmp_path / "bare.safetensors")
    with pytest.raises(ConfigError, match="no registry spec"):
        Transfer(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(2)), 2, 1)


def test_torchvision_models_take_the_registry_path(monkeypatch) -> None:
    """torchvision does not load with this CPU torch: a stand-in module with its get_model takes the path."""
    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=lambda arch, weights=None, **kw: Tiny(**kw))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    model = torchvision_backbone("tiny", weights="DEFAULT", classes=3)
    assert model.spec == {"name": "torchvision", "arch": "tiny", "classes": 3}  # rebuilt without downloading
    transfer = Transfer(model, 2, 3, "features")
    assert transfer.resolution == 224 and transfer.spec["mean"] == [0.485, 0.456, 0.406]
    assert build_model(transfer.spec).spec["backbone"]["name"] == "torchvision"


def test_a_cut_classifier_is_no_block_and_a_transfer_model_opens_into_its_backbones_blocks() -> None:
    """The classifier a default cut leaves out never finishes a forward: it is not the 'last block' (which
    `last` would thaw for nothing), and it is saved once; a transfer model used as a backbone has the blocks of
    the network inside it."""
    model = Transfer(create_model("test_tiny", classes=4), 2, 3, "last")
    assert model.groups == [["body.0"], ["body.1"], ["body.3"]]  # the body's layers with parameters; no fc
    assert sum(k.endswith("fc.weight") for k in model.state_dict()) == 1
    inner = Transfer(_cnn(), 3, 1, "full")
    outer = Transfer(inner, 2, 1, "full")
    assert outer.groups == [[f"backbone.model.{n}"] for n in ("stem", "stages.0", "stages.1", "stages.2")]
