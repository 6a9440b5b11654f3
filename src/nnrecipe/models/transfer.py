"""M11 and M12: a network you have, reused for new images (issue 20).

`cut(model, at=LAYER)` is the model up to a layer: its output (pooled over the map when it is one) is an
embedding of each image, usable as features (M12: "Choose a sufficient layer and cut everything
afterwards, and use the output as the embedding"). `Transfer` puts a new head (dropout, then linear) on a
cut backbone and trains it in one of three modes (M11), after the articles' advice by data size ("Transfer
Learning with a small / medium / large training size", after Stanford's CS231n notes):

- "features": feature extraction: the whole backbone frozen, only the new head trains (a small set);
- "last": the last block of the backbone fine-tuned with the head, the earlier ones frozen ("freeze the
  first couple of layers since they were trained to recognize basic features": a medium set);
- "full": every block fine-tuned (a large set), with discriminative learning rates and gradual unfreezing
  (Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification", ULMFiT, sections
  3.2 and 3.3): each block's rate is the next one's / 2.6 going toward the input, and the blocks thaw one
  per epoch from the top, the head alone first, so the gradients of a random head do not wreck the features
  below it before it has learnt anything (fastai's `fine_tune` trains the head alone for its first epoch for
  the same reason). "last" thaws its block at epoch 2 for that reason too.

Frozen means frozen: a frozen block has requires_grad off and stays in eval mode whatever `train()` is
called with, so its BatchNorm running statistics are never updated (a frozen base whose BatchNorm layers
still track the new data's statistics is a known trap: Keras sets `trainable=False` BatchNorm to inference
mode for this reason since 2.1.3; fastai's `freeze` leaves BN trainable on purpose, which is a different
choice). The blocks are the backbone's top-level children that run before the cut, in the order they run
(a ModuleList is opened into its items), at most MAX_GROUPS of them (the first ones merged)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, did_you_mean
from .registry import build_model, register_model

log = logging.getLogger("nnrecipe")

MODES = ("features", "last", "full")
LR_FACTOR = 2.6  # ULMFiT's discriminative fine-tuning: lr of block l-1 = lr of block l / 2.6 (section 3.2)
MAX_GROUPS = 5  # blocks thawed one per epoch: more would leave the lower ones frozen most of a short run
DEFAULT_DROPOUT = 0.2  # the CNN's: dropout before the classifier (M8)
# ImageNet's per-channel statistics, which torchvision's and timm's pretrained models expect
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: RGB to grey for a 1-channel backbone


class _Stop(Exception):
    """Raised by the hook at the cut: nothing after the cut layer runs. It carries its Cut: a cut of a
    transfer model, whose backbone is a Cut itself, stops inside the inner one's forward, which must let
    the outer one's stop pass (it took it for its own and said its layer had not run)."""


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) images with `channels` channels: grey repeated into RGB, RGB to grey by ITU-R BT.601 luma
    (what Pillow's convert('L') uses); unchanged when C is `channels` already."""
    if x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if channels == 1 and x.shape[1] == 3:
        return (x * torch.tensor(LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ConfigError(f"images of {x.shape[1]} channels cannot be made {channels}: only grey (1) and colour (3) "
                      "are converted into each other")


def default_cut(model: nn.Module) -> str | None:
    """The layer a model is cut at by default: a model's own `cut_at` (the CNN's: 'pool', its pooled
    embedding), else None: the input of its last Linear layer (the features its classifier reads)."""
    at = getattr(model, "cut_at", None)
    if at is None and type(model).__name__ == "CNN":
        at = "pool"
    return at


class Cut(nn.Module):
    """`model` up to layer `at` (a name from model.named_modules(); None: the input of the last Linear
    layer): (N, ...) inputs -> (N, D) embeddings. A (N, C, H, W) output is averaged over H and W, any other
    flattened. The layers after the cut never run."""

    def __init__(self, model: nn.Module, at: str | None = None):
        super().__init__()
        self.model = model
        modules = dict(model.named_modules())
        if at is not None and at not in modules:
            shown = ", ".join(n for n in list(modules)[1:30] if n)
            raise ConfigError(f"cut(at={at!r}): the {type(model).__name__} has no layer of that name"
                              f"{did_you_mean(at, [n for n in modules if n])}; its layers: {shown}")
        if at is None:
            linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ConfigError(f"cut(at=None): the {type(model).__name__} has no Linear layer whose input to take; "
                                  "name the layer to cut at, cut(model, at='layer4')")
            self.at, self.before = linears[-1], True
        else:
            self.at, self.before = at, False

    @property
    def layer(self) -> nn.Module:
        """The cut layer, looked up by name (an attribute would register it twice: its weights saved twice)."""
        return self.model.get_submodule(self.at)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def grab(module: nn.Module, args: Any, output: Any = None) -> None:
            value = args[0] if self.before else output
            captured.append(value[0] if isinstance(value, (tuple, list)) else value)
            raise _Stop(self)

        hook = (self.layer.register_forward_pre_hook(grab) if self.before
                else self.layer.register_forward_hook(grab))
        try:
            self.model(*inputs)
        except _Stop as stop:
            if stop.args[0] is not self:  # an outer cut's
                raise
        finally:
            hook.remove()
        if not captured:
            raise ConfigError(f"cut: layer {self.at!r} did not run in the {type(self.model).__name__}'s forward; "
                              "cut at a layer its forward uses")
        h = captured[0]
        return h.mean(dim=(2, 3)) if h.ndim == 4 else h.flatten(1)


def cut(model: nn.Module, at: str | None = None) -> Cut:
    """M12: `model` cut at layer `at` (default: the CNN's pooled embedding, or the input of the last Linear
    layer), a module giving (N, D) embeddings. See `embed_images` for a table of them."""
    return Cut(model, at if at is not None else default_cut(model))


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level children, a ModuleList or ModuleDict opened into its items (they are never
    called themselves); a model whose only unit is one container is opened into that container's."""
    units: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            units += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            units.append((name, child))
    with_params = [u for u in units if any(True for _ in u[1].parameters())]
    if len(with_params) == 1 and len(list(with_params[0][1].children())) > 1:
        inner = _units(with_params[0][1])
        return [(f"{with_params[0][0]}.{n}", m) for n, m in inner]
    return units


def blocks(backbone: Cut, example: torch.Tensor) -> list[list[str]]:
    """The blocks of a cut backbone, input to output: the units of which a layer with parameters finished
    before the cut (found by running `example`: the classifier a cut leaves out, whose input is taken, never
    finishes), as lists of module names (under backbone.model); a lone unit (a network wrapped in another:
    a transfer run used as a backbone) is opened into its own units; at most MAX_GROUPS, the first merged."""
    order, prefix, root = [], "", backbone.model
    for _ in range(4):  # nested wrappers, a few deep at most
        order = _ran_units(backbone, root, prefix, example)
        if len(order) != 1:
            break
        name, inner = order[0], backbone.model.get_submodule(order[0])
        while len(children := list(inner.named_children())) == 1:  # a wrapper of one module (a Cut)
            name, inner = f"{name}.{children[0][0]}", children[0][1]
        if len(children) < 2:
            break
        root, prefix = inner, name + "."
    if not order:
        raise ConfigError(f"the backbone ({type(backbone.model).__name__}) has no layer with parameters before its cut "
                          f"at {backbone.at!r}: nothing to transfer; cut it at a later layer")
    groups = [[n] for n in order]
    while len(groups) > MAX_GROUPS:
        groups[0:2] = [groups[0] + groups[1]]
    return groups


def _ran_units(backbone: Cut, root: nn.Module, prefix: str, example: torch.Tensor) -> list[str]:
    """The units of `root` (names prefixed for backbone.model) in which a layer with parameters finished when
    the cut backbone ran `example`, in the order they finished."""
    order: list[str] = []
    hooks = []
    for name, unit in _units(root):
        for leaf in unit.modules():
            if any(True for _ in leaf.parameters(recurse=False)):
                hooks.append(leaf.register_forward_hook(lambda m, a, o, name=prefix + name: order.append(name)
                                                        if name not in order else None))
    was = backbone.training
    try:
        backbone.eval()
        with torch.no_grad():
            backbone(example)
    finally:
        backbone.train(was)
        for h in hooks:
            h.remove()
    return order


def backbone_channels(model: nn.Module) -> int:
    """The channels a backbone takes: its `in_channels`, else its first convolution's."""
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int):
        return channels
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ConfigError(f"the backbone ({type(model).__name__}) has no Conv2d layer and no `in_channels`: set "
                          "model.in_channels to the channels it takes")
    return int(conv.in_channels)


class Transfer(nn.Module):
    """A backbone cut at `at` + a new head (dropout, linear), trained in `mode` (features, last, full: the
    module's docstring). Takes (N, in_channels, H, W) images in [0, 1] (uint8 divided by 255); a grey image
    is repeated into a 3-channel backbone's channels, a colour one turned grey for a 1-channel backbone;
    `resolution`, `mean` and `std`: the size and statistics the backbone expects (None: it sees the images
    as they come; an nnrecipe CNN resizes and standardises them itself). `thaw(epoch)` sets which blocks
    train in that epoch (the GradualUnfreezing callback calls it); `param_groups(lr)` are the optimizer's
    groups, the head's first."""

    def __init__(self, backbone: nn.Module, out_features: int, in_channels: int, mode: str = "features",
                 at: str | None = None, resolution: int | None = None, mean: list[float] | None = None,
                 std: list[float] | None = None, dropout: float = DEFAULT_DROPOUT, activation: str = "none"):
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"transfer mode {mode!r}{did_you_mean(mode, MODES)}; choose one of: {', '.join(MODES)}")
        spec = getattr(backbone, "spec", None)
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"the backbone, a {type(backbone).__name__}, has no registry spec, so the run's "
                              "model.json could not rebuild it: register its class with "
                              "nnrecipe.models.register_model and create it with create_model (torchvision and timm "
                              "models: nnrecipe.models.transfer.torchvision_backbone / timm_backbone)")
        self.in_channels, self.mode, self.activation = int(in_channels), mode, activation
        self.channels = backbone_channels(backbone)
        if self.in_channels not in (1, 3) or self.channels not in (1, 3) and self.channels != self.in_channels:
            raise ConfigError(f"the images have {self.in_channels} channel(s) and the backbone takes {self.channels}: "
                              "only grey (1) and colour (3) are converted into each other; give images the backbone "
                              "takes")
        mean = mean if mean is not None else getattr(backbone, "input_mean", None)
        std = std if std is not None else getattr(backbone, "input_std", None)
        resolution = resolution if resolution is not None else getattr(backbone, "input_size", None)
        self.resolution = None if resolution is None else int(resolution)
        self.register_buffer("mean", None if mean is None else torch.tensor([float(v) for v in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", None if std is None else torch.tensor([float(v) for v in std]).view(1, -1, 1, 1))
        self.backbone = cut(backbone, at)
        side = self.resolution or 32
        example = torch.zeros(2, self.channels, side, side)
        try:
            with torch.no_grad():
                width = int(self.backbone.eval()(example).shape[1])
        except RuntimeError as e:  # a backbone of a fixed input size (a Flatten before a Linear, say)
            raise ConfigError(f"the backbone ({type(backbone).__name__}) does not take {side}x{side} images ({e}); "
                              "set its `input_size` attribute to the side it takes") from None
        self.groups = blocks(self.backbone, example)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, out_features))
        self.spec = {"name": "transfer", "backbone": copy.deepcopy(spec), "out_features": int(out_features),
                     "in_channels": self.in_channels, "mode": mode, "at": self.backbone.at if not self.backbone.before
                     else at, "resolution": self.resolution, "mean": None if mean is None else [float(v) for v in mean],
                     "std": None if std is None else [float(v) for v in std], "dropout": float(dropout),
                     "activation": activation}
        self.thawed = 0  # blocks trainable, counted from the top
        self.thaw(1)

    # ------------------------------------------------------------ which blocks train
    def thawed_at(self, epoch: int) -> int:
        """How many blocks (from the top) train in `epoch` (1-based): none for features; the last from
        epoch 2 for last; one more each epoch from epoch 2 for full (the head alone in epoch 1)."""
        if self.mode == "features":
            return 0
        top = 1 if self.mode == "last" else len(self.groups)
        return max(0, min(top, epoch - 1))

    def thaw(self, epoch: int) -> None:
        """Blocks trainable in `epoch` get requires_grad; the others none, and stay in eval mode."""
        self.thawed = self.thawed_at(epoch)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        for names in self._trainable():
            for name in names:
                for p in self.backbone.model.get_submodule(name).parameters():
                    p.requires_grad_(True)
        self.train(self.training)

    def _trainable(self) -> list[list[str]]:
        return self.groups[len(self.groups) - self.thawed:] if self.thawed else []

    def train(self, mode: bool = True) -> Transfer:
        """As nn.Module.train, but the backbone's frozen blocks (and the layers outside every block) stay in
        eval mode: their BatchNorm statistics do not move, their dropout stays off."""
        super().train(mode)
        if mode:
            self.backbone.eval()
            for names in self._trainable():
                for name in names:
                    self.backbone.model.get_submodule(name).train(True)
        return self

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's groups: the head at `lr`, then each block the mode ever trains, top down, at
        lr / 2.6^k for the k-th block below the head (ULMFiT's discriminative rates); frozen-for-good
        blocks are left out."""
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters()), "lr": lr}]
        top = {"features": 0, "last": 1, "full": len(self.groups)}[self.mode]
        for k, names in enumerate(reversed(self.groups[len(self.groups) - top:]), start=1):
            params = [p for n in names for p in self.backbone.model.get_submodule(n).parameters()]
            groups.append({"params": params, "lr": lr / LR_FACTOR ** k})
        return groups

    # ------------------------------------------------------------ forward
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"the model takes (N, {self.in_channels}, H, W) images; got shape {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        x = to_channels(x, self.channels)
        r = self.resolution
        if r is not None and tuple(x.shape[-2:]) != (r, r):
            h, w = x.shape[-2:]
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=h > r or w > r)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]  # type: ignore[return-value]

    @staticmethod
    def train_defaults(n_rows: int) -> dict[str, float | int]:
        from .cnn import CNN

        return CNN.train_defaults(n_rows)


@register_model("transfer")
def _transfer(backbone: dict[str, Any] | nn.Module, **kwargs: Any) -> Transfer:
    """A Transfer from model.json: the backbone built from its spec (its weights come with the model's)."""
    return Transfer(build_model(backbone) if isinstance(backbone, dict) else backbone, **kwargs)


def first_member(model: nn.Module) -> nn.Module:
    """A saved run's network: the first member of an ensemble (the R2 pair's early-stopped one, T14's first
    fold), or the model itself."""
    members = getattr(model, "members", None)
    return members[0] if isinstance(members, nn.ModuleList) else model


@register_model("torchvision")
def torchvision_backbone(arch: str, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """torchvision's `arch` (torchvision.models.get_model), with `weights` ("DEFAULT": its pretrained ones,
    downloaded by torchvision) when creating a backbone; a saved run rebuilds it without weights (its own
    are in model.safetensors). Needs a torchvision that loads with your torch."""
    try:
        import torchvision
    except Exception as e:  # ImportError, or the RuntimeError of a torchvision built for another torch
        raise ConfigError(f"torchvision does not load here ({type(e).__name__}: {e}); install the torchvision built "
                          "for your torch, or use a backbone of nnrecipe's (a run folder)") from None
    model = torchvision.models.get_model(arch, weights=weights, **kwargs)
    return _pretrained_spec(model, "torchvision", arch, kwargs)


@register_model("timm")
def timm_backbone(arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's `arch` (timm.create_model), pretrained when asked; a saved run rebuilds it without download."""
    try:
        import timm
    except Exception as e:
        raise ConfigError(f"timm does not load here ({type(e).__name__}: {e}); install a timm that works with your "
                          "torch, or use a backbone of nnrecipe's (a run folder)") from None
    model = timm.create_model(arch, pretrained=pretrained, **kwargs)
    return _pretrained_spec(model, "timm", arch, kwargs)


def _pretrained_spec(model: nn.Module, name: str, arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """A library's model made a registry model: its spec rebuilds it without downloading weights, and it
    expects ImageNet's statistics at 224 px (the inputs torchvision's and timm's classifiers were trained on)."""
    model.spec = {"name": name, "arch": arch, **kwargs}  # type: ignore[assignment]
    model.input_mean, model.input_std, model.input_size = IMAGENET_MEAN, IMAGENET_STD, 224  # type: ignore[assignment]
    return model

