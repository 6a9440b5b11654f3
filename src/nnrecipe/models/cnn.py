"""The CNN family for images (M10, M15): a small ResNet (He et al., CVPR 2016, "Deep Residual Learning for
Image Recognition") grown by EfficientNet's compound scaling (Tan & Le, ICML 2019, "EfficientNet:
Rethinking Model Scaling for Convolutional Neural Networks").

The base network (phi = 0) is CIFAR-sized: 32x32 inputs, a 3x3 stem, three stages of one BasicBlock each
of 16, 32 and 64 channels (He et al. 2016, section 4.2: their CIFAR-10 ResNets use exactly these three
widths and feature maps of 32, 16 and 8), about 25 MFLOPs per image. Small as it is, it reaches ~99% on
scikit-learn's 8x8 digits upscaled to 32 (the `train_defaults` docstring has the figures), and Karpathy's
recipe ("A Recipe for Training Neural
Networks", 2019) says to start small and grow only when the data asks for it.

Compound scaling: phi multiplies the depths by alpha^phi, the widths by beta^phi and the resolution by
gamma^phi, with alpha = 1.2, beta = 1.1, gamma = 1.15 (EfficientNet's grid-searched values), so that
alpha * beta^2 * gamma^2 ~= 2 and each step of phi doubles the FLOPs. Depths must be integers and widths
multiples of 8 (M10: tensor-core tiles), so `cnn_family` tries the floor and the ceiling of every scaled
depth and width and keeps the network whose measured FLOPs land nearest (in log ratio) to 2^phi x the
base's.

The data-size rule (`choose_phi`): phi = 0 below 2,000 training images, then one step more per doubling
(2,000 -> 1, 4,000 -> 2, 8,000 -> 3, ...), at most 4 on the CPU and 6 with CUDA; and the resolution
(32, 40, 40, 48, 56, 64, 72 for phi 0..6) is never more than 4x the images' native side: phi is lowered
until it holds (never below 0). Why: more images support more capacity before the network memorises them,
and each step doubles the compute, so the budget grows with the data (Karpathy: start small, then
grow); the CPU cap bounds an epoch: 16,000 images at phi 4 are ~19 TFLOPs forward and backward, ~7
minutes on one CPU thread at the rate measured for phi 0 (~44 GFLOP/s); upscaling an image more than 4x
adds pixels but no information.

Two layouts for speed (M10, issue 20), each off unless `models/layout.py`'s timing keeps it, and recorded in
the spec only when on (so a spec without them, from before, still builds the same network): `pad_channels`
adds a zero fourth channel to RGB inputs (NVIDIA's Convolutional Layers User's Guide: cuDNN's NHWC
tensor-core kernels want the input channels a multiple of 4 or 8, and a 3-channel first layer misses them),
and `channels_last` keeps the weights and activations NHWC (PyTorch's "Channels Last Memory Format"
tutorial). Neither changes what the network computes: the fourth channel is zero at the input and the
stem's weights for it start at zero (a zero input gives them no gradient, so they stay zero), and the
memory format changes only the order of the same numbers in memory."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import register_model

log = logging.getLogger("nnrecipe")

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution multipliers per phi (Tan & Le 2019, sections 3.3, 4)
BASE_DEPTHS, BASE_WIDTHS, BASE_RESOLUTION = (1, 1, 1), (16, 32, 64), 32
MAX_PHI = 6
CPU_MAX_PHI = 4  # phi 4 is ~16x the base's compute: ~0.4 GFLOPs a 56 px image, forward
IMAGES_FOR_PHI1 = 2_000  # training images from which phi = 1; each doubling adds one
MAX_UPSCALE = 4  # the resolution is at most 4x the images' native side
# A stride-1 stem up to this side (He et al. 2016, section 4.2: the CIFAR ResNets keep the 32 px map through
# the first stage), so the whole family (up to 72 px) keeps one architecture and its FLOPs follow 2^phi; a
# larger input given directly (a 224 px photo) is halved by a stride-2 stem first, as the ImageNet ResNets do
STEM_STRIDE1_MAX = 96
DEFAULT_DROPOUT = 0.2  # M8: before the classifier, the classification default (models/mlp.py)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut (identity, or a 1x1 conv-BN where the shape changes): He et
    al. 2016's BasicBlock, with the ReLU after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def _stem(in_channels: int, width: int, resolution: int) -> nn.Sequential:
    stride = 1 if resolution <= STEM_STRIDE1_MAX else 2
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                         nn.ReLU(inplace=True))


def _stage(c_in: int, width: int, depth: int, downsample: bool) -> nn.Sequential:
    """`depth` BasicBlocks of `width` channels; the first halves the map when `downsample`."""
    return nn.Sequential(*(BasicBlock(c_in if b == 0 else width, width, 2 if downsample and b == 0 else 1)
                           for b in range(depth)))


@register_model("cnn")
class CNN(nn.Module):
    """stem -> stages of BasicBlocks (each after the first halves the map) -> global average pool ->
    head (dropout, then linear). Takes (N, C, H, W) images in [0, 1] (uint8 is divided by 255), resizes
    them to `resolution` and standardises each channel with `mean` and `std` (the training images'; None:
    0.5 and 0.25) before the network, so a saved model needs only the pixels. Returns raw outputs; the
    task's output `activation` is recorded (as TabM's is), not applied: the losses take raw outputs."""

    def __init__(self, in_channels: int, out_features: int, depths: list[int], widths: list[int],
                 resolution: int, dropout: float = DEFAULT_DROPOUT, activation: str = "none",
                 mean: list[float] | None = None, std: list[float] | None = None, pad_channels: bool = False,
                 channels_last: bool = False):
        super().__init__()
        depths, widths = [int(d) for d in depths], [int(w) for w in widths]
        problems = []
        if len(depths) != len(widths) or not depths:
            problems.append(f"depths={depths} and widths={widths} must name the same stages (one or more)")
        if any(d < 1 for d in depths):
            problems.append(f"depths={depths}: each stage needs one block or more")
        if any(w < 1 for w in widths):
            problems.append(f"widths={widths}: each stage needs one channel or more")
        for name, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != in_channels:
                problems.append(f"{name} holds {len(stats)} values for {in_channels} channel(s); give one per channel")
        if std is not None and any(s <= 0 for s in std):
            problems.append(f"std={list(std)}: every channel's std must be positive")
        if pad_channels and in_channels != 3:
            problems.append(f"pad_channels=True pads RGB images to 4 channels, but in_channels={in_channels}; "
                            "build the CNN with pad_channels=False")
        if problems:
            raise ConfigError("CNN: " + "; ".join(problems))
        mean = None if mean is None else [float(v) for v in mean]
        std = None if std is None else [float(v) for v in std]
        self.spec = {"name": "cnn", "in_channels": int(in_channels), "out_features": int(out_features),
                     "depths": depths, "widths": widths, "resolution": int(resolution), "dropout": float(dropout),
                     "activation": activation, "mean": mean, "std": std}
        # recorded only when on: a spec from before these options, without the keys, means both off
        self.spec.update({k: True for k, on in (("pad_channels", pad_channels), ("channels_last", channels_last))
                          if on})
        self.in_channels, self.resolution, self.activation = int(in_channels), int(resolution), activation
        self.pad_channels, self.channels_last = bool(pad_channels), bool(channels_last)
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.5] * in_channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [0.25] * in_channels).view(1, -1, 1, 1))
        self.stem = _stem(in_channels, widths[0], resolution)
        self.stages = nn.ModuleList(_stage(c_in, width, depth, i > 0)
                                    for i, (c_in, width, depth) in enumerate(zip([widths[0], *widths], widths, depths)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        # M8 / the recipe's rule: dropout before the classifier, never after it
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], out_features))
        self._init_weights()
        if pad_channels:
            # the padded stem is the unpadded one (built, drawn and initialised as it, so every later draw is
            # the same too) with a zero fourth input slice: the same network, seed for seed
            conv = self.stem[0]
            conv.weight = nn.Parameter(F.pad(conv.weight.detach(), (0, 0, 0, 0, 0, 1)))  # (C_out, 4, 3, 3)
            conv.in_channels = 4
        if channels_last:  # every 4-D weight (and the (1, C, 1, 1) statistics, harmlessly) to NHWC strides
            self.to(memory_format=torch.channels_last)

    def _init_weights(self) -> None:
        """M5: He (Kaiming-normal, fan_out) init for the convolutions, which ReLUs follow (He et al. 2015,
        "Delving Deep into Rectifiers"; torchvision's ResNet); BatchNorm at weight 1, bias 0; and the last
        BatchNorm of each residual block at weight 0, so each block starts as the identity (Goyal et al.
        2017, "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour": it eases the start of training).
        The head keeps torch's default; the recipe scales it toward zero and sets its bias to the prior (M6)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) pixels -> (N, C, r, r) standardised floats: uint8 / 255, resized to the resolution
        (bilinear; antialiased when shrinking, which plain bilinear would alias), then (x - mean) / std;
        with `pad_channels`, a zero fourth channel after that (N, 4, r, r); with `channels_last`, NHWC strides."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            got = x.shape[1] if x.ndim == 4 else "?"
            raise ConfigError(f"the CNN takes (N, {self.in_channels}, H, W) images; got shape {tuple(x.shape)}: "
                              f"give {self.in_channels}-channel images, or build the CNN with in_channels={got}")
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        h, w = x.shape[-2:]
        r = self.resolution
        if h != r or w != r:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=h > r or w > r)
        x = (x - self.mean) / self.std
        if self.pad_channels:  # (N, 3, r, r) -> (N, 4, r, r): a zero channel after standardisation adds nothing
            x = F.pad(x, (0, 0, 0, 0, 0, 1))
        if self.channels_last:  # `to`, not `contiguous`: it gives NHWC strides for C == 1 too (the tutorial)
            x = x.to(memory_format=torch.channels_last)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, widths[-1]): the pooled embedding before the head's dropout."""
        h = self.stem(self.prepare(x))
        for stage in self.stages:
            h = stage(h)
        return self.pool(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, out_features) raw outputs

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]  # type: ignore[return-value]

    @staticmethod
    def train_defaults(n_rows: int) -> dict[str, float | int]:
        """lr 2e-3 (Adam/AdamW, TabM's rate too) and batches of 64 images below 4,000 training images, 128
        from 4,000 (a small set still takes ~20 steps an epoch). Measured on scikit-learn's 8x8 digits
        (1,257 training, 270 validation, 270 test images, stratified 70/15/15; phi 0, so 32 px), one CPU
        thread, a plain loop of 30 epochs, the recipe's init (head x 0.01) and its default optimizer (Adam,
        no decay); test accuracy at the best validation epoch, seeds 0-2: 0.989 +- 0.006 (0.993, 0.993,
        0.981); with the glyphs augmentation 0.982 +- 0.004 (30 epochs are few for augmented data); AdamW
        (decay 0.01), last epoch: 0.988 +- 0.012. ~65 s a run (torch 2.13 CPU, a shared 2-core x86-64 VM)."""
        batch = 64 if n_rows < 4_000 else 128
        # a few hundred images: batches of at most a sixteenth of them (a power of 2, at least 16), so that an
        # epoch is still a dozen steps or more and early stopping sees the network move between its checks
        small = max(16, 2 ** int(math.floor(math.log2(max(n_rows, 1) / 16))))
        return {"lr": 2e-3, "batch_size": min(batch, small)}


def family_resolution(phi: int) -> int:
    """The input side of family member phi: 32 * gamma^phi rounded to a multiple of 8 (M10)."""
    return int(round(BASE_RESOLUTION * GAMMA ** phi / 8)) * 8


def measure_flops(model: nn.Module, resolution: int, in_channels: int) -> int:
    """FLOPs (multiply-adds count 2) of one forward pass on a (1, C, r, r) input, counted by
    torch.utils.flop_counter.FlopCounterMode without gradients; the input lives where the model's
    parameters do (a model on the meta device costs no compute). The model is measured in eval mode and
    its mode restored, so its BatchNorm statistics are left as they were."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, in_channels, resolution, resolution, device=device))
    finally:
        model.train(training)
    return int(counter.get_total_flops())


def _flops_of(depths: list[int], widths: list[int], resolution: int, in_channels: int, out_features: int) -> int:
    """The measured FLOPs of the whole network, built on the meta device."""
    with torch.device("meta"):
        model = CNN(in_channels, out_features, depths, widths, resolution)
    return measure_flops(model, resolution, in_channels)


class _Parts:
    """Measured FLOPs of the network's parts (stem, each stage, head) on the meta device, each part once:
    a network's FLOPs are the sum of its parts', and the 64 candidates of a phi share most of theirs, so
    the search measures ~20 parts instead of 64 networks (~8x faster; the chosen one is measured whole)."""

    def __init__(self, in_channels: int, out_features: int, resolution: int):
        self.in_channels, self.out_features, self.resolution = in_channels, out_features, resolution
        self.cache: dict[tuple[Any, ...], int] = {}

    def _measure(self, key: tuple[Any, ...], build: tuple[Any, ...], shape: tuple[int, ...]) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        if key not in self.cache:
            with torch.device("meta"):
                part = build[0](*build[1:]).eval()
                counter = FlopCounterMode(display=False)
                with counter, torch.no_grad():
                    part(torch.zeros(shape))
            self.cache[key] = int(counter.get_total_flops())
        return self.cache[key]

    def total(self, depths: tuple[int, ...], widths: tuple[int, ...]) -> int:
        r, c = self.resolution, self.in_channels
        flops = self._measure(("stem", widths[0]), (_stem, c, widths[0], r), (1, c, r, r))
        side = r if r <= STEM_STRIDE1_MAX else (r + 1) // 2
        for i, (c_in, width, depth) in enumerate(zip([widths[0], *widths], widths, depths)):
            flops += self._measure(("stage", i, c_in, width, depth, side), (_stage, c_in, width, depth, i > 0),
                                   (1, c_in, side, side))
            side = (side + 1) // 2 if i > 0 else side  # the stage's output map, the next one's input
        return flops + self._measure(("head", widths[-1]), (_pooled_head, widths[-1], self.out_features),
                                     (1, widths[-1], side, side))


def _pooled_head(width: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, out_features))


def _down_up(value: float, step: int, least: int) -> list[int]:
    """The multiples of `step` just below and just above `value` (at least `least`), without repeats."""
    low = max(least, int(math.floor(value / step + 1e-9)) * step)
    high = max(least, int(math.ceil(value / step - 1e-9)) * step)
    return sorted({low, high})


_FAMILY: dict[tuple[int, int, int], dict[str, Any]] = {}  # (phi, in_channels, out_features) -> cnn_family's dict


def cnn_family(phi: int, in_channels: int = 3, out_features: int = 10) -> dict[str, Any]:
    """Member phi of the family: {"depths", "widths", "resolution", "flops" (measured), "target_flops",
    "phi"}. The target is the base network's measured FLOPs x 2^phi; among every floor/ceiling choice of
    each stage's depth (1 x alpha^phi) and width (base width x beta^phi, to a multiple of 8), the one whose
    FLOPs are nearest the target in log ratio (ties: the smaller). Measured once per process (per phi,
    channels and outputs), on the meta device: ~0.5 s a member on one CPU thread.

    The family for 3-channel images and 10 classes (FLOPs of one forward pass, measured / target), and
    what rounding each scaled depth and width on its own would have given instead:
      phi  px  depths     widths           MFLOPs   / target   rounding each alone
      0    32  [1, 1, 1]  [16, 32, 64]       25.0    1.000
      1    40  [1, 1, 1]  [16, 40, 72]       47.9    0.957     0.831
      2    40  [2, 1, 1]  [24, 32, 80]       98.6    0.986     0.507
      3    48  [2, 2, 2]  [16, 48, 88]      197.4    0.987     1.148
      4    56  [2, 2, 3]  [24, 48, 88]      402.9    1.007     0.913
      5    64  [2, 2, 3]  [32, 56, 104]     798.2    0.998     0.626
      6    72  [3, 3, 3]  [32, 64, 120]    1582.8    0.989     0.875"""
    if not isinstance(phi, int) or not 0 <= phi <= MAX_PHI:
        raise ConfigError(f"phi={phi!r} is not allowed; choose an integer from 0 to {MAX_PHI}")
    key = (phi, int(in_channels), int(out_features))
    if key in _FAMILY:
        return {k: list(v) if isinstance(v, list) else v for k, v in _FAMILY[key].items()}
    base = _flops_of(list(BASE_DEPTHS), list(BASE_WIDTHS), BASE_RESOLUTION, in_channels, out_features)
    target = base * 2 ** phi
    r = family_resolution(phi)
    depth_choices = [_down_up(d * ALPHA ** phi, 1, 1) for d in BASE_DEPTHS]
    width_choices = [_down_up(w * BETA ** phi, 8, 8) for w in BASE_WIDTHS]
    parts = _Parts(in_channels, out_features, r)
    candidates = [(depths, widths, parts.total(depths, widths))
                  for depths in itertools.product(*depth_choices) for widths in itertools.product(*width_choices)]
    depths, widths, _ = min(candidates, key=lambda c: (abs(math.log(c[2] / target)), c[2]))
    member = {"depths": list(depths), "widths": list(widths), "resolution": r, "target_flops": target, "phi": phi,
              "flops": _flops_of(list(depths), list(widths), r, in_channels, out_features)}
    _FAMILY[key] = member
    return {k: list(v) if isinstance(v, list) else v for k, v in member.items()}


def choose_phi(n_train: int, native_side: int, cuda: bool | None = None) -> int:
    """The data-size rule (the module's docstring): phi from the number of training images, capped at 4
    on the CPU and 6 with CUDA (`cuda`: None asks torch), then lowered until the resolution is at most 4x
    the images' native side."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    phi = 0 if n_train < IMAGES_FOR_PHI1 else 1 + int(math.floor(math.log2(n_train / IMAGES_FOR_PHI1) + 1e-9))
    phi = min(phi, MAX_PHI if cuda else CPU_MAX_PHI)
    while phi > 0 and family_resolution(phi) > MAX_UPSCALE * native_side:
        phi -= 1
    return phi


def make_cnn(in_channels: int, out_features: int, n_train: int, native_side: int, phi: int | None = None,
             dropout: float | None = None, activation: str = "none", mean: list[float] | None = None,
             std: list[float] | None = None, cuda: bool | None = None, pad_channels: bool = False,
             channels_last: bool = False) -> CNN:
    """The recipe's CNN: the family member `phi` (None: `choose_phi`'s rule), dropout 0.2 before the head
    unless given (M8), the images' per-channel statistics as its standardisation; `cuda`: the run trains on
    CUDA (None: torch says whether CUDA is there); `pad_channels`, `channels_last`: the layouts
    `models.layout.choose_layout` kept (both off by default)."""
    chosen = choose_phi(n_train, native_side, cuda) if phi is None else phi
    member = cnn_family(chosen, in_channels, out_features)
    log.info("CNN phi=%d%s: depths %s, widths %s, %d px, %.1f MFLOPs an image", chosen,
             " (the rule)" if phi is None else "", member["depths"], member["widths"], member["resolution"],
             member["flops"] / 1e6)
    model = CNN(in_channels, out_features, member["depths"], member["widths"], member["resolution"],
                DEFAULT_DROPOUT if dropout is None else dropout, activation, mean, std, pad_channels, channels_last)
    model.phi = chosen  # config.json records the member chosen (not an argument of the spec: the sizes are)
    return model
