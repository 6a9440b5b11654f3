"""D11: augmentation on the device, in training only (issue 20).

`Augment` turns a batch of images (N, C, H, W) in [0, 1] into an augmented batch of the same shape, on
the batch's own device: no worker processes, no per-image Python (airbench keeps its data on the GPU and
flips and translates whole tensors; fastai augments whole batches on the GPU). Every random draw comes
from the generator passed in, one set of parameters per image, so equal generators give equal batches.

"fused" (the default) composes the crop, zoom, rotation, shear, translation and flips of each image into
one 2x3 affine matrix and resamples the batch once (an affine grid, then F.grid_sample), as fastai composes its
affine transforms into a single interpolation (fastai.vision.augment: `AffineCoordTfm`), so the image is
blurred by one interpolation, not one per transform; then brightness, contrast, saturation, noise and
random erasing, vectorised over the batch. "kornia" runs the same settings through kornia.augmentation.

`Augmented` is the training Step that augments each batch before the supervised loss; validation and
prediction call the model's forward on the images as they are, so they never see an augmented image."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, check_choice, did_you_mean
from ...steps.batch import Batch, as_batch
from ...steps.step import LossFn, Step

METHODS = ("fused", "kornia")
# Zhong et al. (AAAI 2020, "Random Erasing Data Augmentation"): the erased area is 2% to 40% of the image,
# its aspect ratio from 0.3 to 1/0.3; torchvision and kornia take 2% to 33%, which we follow
ERASE_AREA, ERASE_RATIO = (0.02, 0.33), (0.3, 1 / 0.3)
CROP_RATIO = (3 / 4, 4 / 3)  # random-resized-crop's aspect range (Szegedy et al. 2015; torchvision's default)
# reflection, fastai's default pad_mode for its affine transforms: zero padding paints black corners and
# borders, a feature that no unaugmented (validation, test) image has; reflection continues the
# background, which for a glyph on a plain background is more background
PADDING = "reflection"
PADDINGS = ("reflection", "border", "zeros")  # F.grid_sample's padding modes
# The luminance weights (ITU-R BT.601), which torchvision's and kornia's rgb_to_grayscale use
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    """The settings of one augmentation; the defaults change nothing."""
    rotate: float = 0.0  # degrees: uniform in [-rotate, rotate]
    scale: tuple[float, float] = (1.0, 1.0)  # zoom factor range: > 1 zooms in
    translate: float = 0.0  # fraction of the side: uniform in [-t, t] on each axis
    shear: float = 0.0  # degrees: horizontal shear uniform in [-shear, shear]
    hflip: bool | float = False  # left-right mirror: True is probability 0.5, a number in [0, 1] that probability
    vflip: bool | float = False  # upside-down mirror: as hflip
    crop: tuple[float, float] | None = None  # random-resized-crop: fraction of the area kept, aspect 3/4 to 4/3
    brightness: float = 0.0  # added to every pixel: uniform in [-b, b] (images in [0, 1])
    contrast: float = 0.0  # factor in [1-c, 1+c] around each image's mean
    saturation: float = 0.0  # factor in [1-s, 1+s] around each pixel's grey (3-channel images only)
    noise: float = 0.0  # std of gaussian noise added to every pixel
    erase: float = 0.0  # probability of erasing one rectangle (2-33% of the area) with a random colour
    padding: str = PADDING  # what a warp shows beyond the image's edge: reflection | border | zeros

    def __post_init__(self) -> None:
        problems = []
        for name in ("rotate", "shear", "translate", "brightness", "contrast", "saturation", "noise", "erase"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}={getattr(self, name)} is negative; give 0 or more")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            problems.append(f"scale={self.scale}: give a range (low, high) with 0 < low <= high, (1.0, 1.0) for none")
        if self.crop is not None and not 0 < self.crop[0] <= self.crop[1] <= 1:
            problems.append(f"crop={self.crop}: give an area range (low, high) with 0 < low <= high <= 1, or None")
        for name in ("translate", "erase", "brightness", "contrast", "saturation"):
            if getattr(self, name) > 1:
                problems.append(f"{name}={getattr(self, name)} is above 1; give a fraction in [0, 1]")
        if self.shear >= 90:
            problems.append(f"shear={self.shear} degrees; give less than 90")
        for name in ("hflip", "vflip"):
            if not 0 <= float(getattr(self, name)) <= 1:
                problems.append(f"{name}={getattr(self, name)}: give True/False or a probability in [0, 1]")
        if self.padding not in PADDINGS:
            problems.append(f"padding={self.padding!r}; choose one of: {', '.join(PADDINGS)}")
        if problems:
            raise ConfigError("AugmentConfig: " + "; ".join(problems))

    @property
    def flips(self) -> tuple[float, float]:
        """The probabilities of a left-right and of an upside-down mirror."""
        return tuple(0.5 if v is True else float(v) for v in (self.hflip, self.vflip))  # type: ignore[return-value]

    @property
    def warps(self) -> bool:
        """Whether any geometric transform but a flip is on (then the batch is resampled)."""
        return bool(self.rotate or self.shear or self.translate or self.crop or self.scale != (1.0, 1.0))


# The presets start from fastai's `aug_transforms` defaults (fastai.vision.augment: do_flip=True,
# max_rotate=10, min_zoom=1, max_zoom=1.1, max_lighting=0.2, pad_mode='reflection') and its
# RandomResizedCrop(min_scale=0.35) of the Imagenette examples.
PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    # digits and letters: no flips (a mirrored 2 or R is no longer that glyph), no crop (it can cut the
    # stroke that tells 7 from 1); small rotations, zooms, shifts and a slant, the variations of handwriting
    # (Simard et al. 2003, "Best Practices for Convolutional Neural Networks Applied to Visual Document
    # Analysis": affine distortions on MNIST). On 8x8 digits it did not help within 30 epochs: test accuracy
    # 0.982 +- 0.004 vs 0.989 +- 0.006 without, seeds 0-2, ~2 of 270 test images (CNN.train_defaults)
    "glyphs": AugmentConfig(rotate=10.0, scale=(0.9, 1.1), translate=0.1, shear=10.0),
    # photographs: fastai's defaults (left-right flips, rotate 10, zoom up to 1.1, lighting 0.2), the
    # random-resized crop of 35% to 100% of the area, and random erasing at a quarter of the images (half of
    # Zhong et al.'s 0.5: the crop already removes parts of the object)
    "photos": AugmentConfig(rotate=10.0, scale=(1.0, 1.1), hflip=True, crop=(0.35, 1.0), brightness=0.2,
                            contrast=0.2, saturation=0.2, erase=0.25),
}


def resolve_preset(name: str, channels: int, side: int) -> tuple[str, AugmentConfig]:
    """The preset `name` means for images of `channels` and `side` pixels, and its settings. "auto": glyphs
    for grey images of side 64 or less (digits, letters, symbols: MNIST, EMNIST, scanned characters are
    small and grey, and for them a flip or a crop changes the class), photos otherwise (colour or large
    images: a flipped or cropped photo of a cat is still a cat)."""
    if name == "auto":
        name = "glyphs" if channels == 1 and side <= 64 else "photos"
    if name not in PRESETS:
        raise ConfigError(f"augment={name!r} is not a preset{did_you_mean(name, ['auto', *PRESETS])}; choose one of: "
                          f"auto, {', '.join(PRESETS)}")
    return name, PRESETS[name]


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=g.device)


def _affine(cfg: AugmentConfig, n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """(N, 2, 3): each image's matrix from output to input coordinates (affine_grid's normalised [-1, 1]),
    composing flips, zoom, shear, rotation, translation and the crop. Rotation and shear act in pixel units
    (D^-1 M D, D = diag(w, h)), so a non-square image is rotated, not skewed."""
    eye = torch.eye(2, device=g.device).expand(n, 2, 2)
    m = eye.clone()
    ph, pv = cfg.flips
    if ph:
        m[:, 0, 0] = torch.where(torch.rand(n, generator=g, device=g.device) < ph, -1.0, 1.0)
    if pv:
        m[:, 1, 1] = torch.where(torch.rand(n, generator=g, device=g.device) < pv, -1.0, 1.0)
    if cfg.scale != (1.0, 1.0):  # zoom in by z: the output shows 1/z of the input
        m = m / _uniform(*cfg.scale, n, g).view(n, 1, 1)
    if cfg.shear:
        shear = eye.clone()
        shear[:, 0, 1] = torch.tan(torch.deg2rad(_uniform(-cfg.shear, cfg.shear, n, g)))
        m = shear @ m
    if cfg.rotate:
        a = torch.deg2rad(_uniform(-cfg.rotate, cfg.rotate, n, g))
        cos, sin = torch.cos(a), torch.sin(a)
        m = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1) @ m
    d = torch.tensor([w, h], dtype=torch.float32, device=g.device)
    m = m * d.view(1, 1, 2) / d.view(1, 2, 1)  # D^-1 M D: row i divided by d_i, column j multiplied by d_j
    shift = torch.zeros(n, 2, device=g.device)
    if cfg.translate:  # a fraction t of the side is 2t in normalised units
        shift = -2 * _uniform(-cfg.translate, cfg.translate, 2 * n, g).view(n, 2)
    theta = torch.cat([m, shift.unsqueeze(2)], dim=2)
    if cfg.crop is not None:  # the crop's box (fractions cw, ch of the sides, centred at c) fills the output
        area = _uniform(*cfg.crop, n, g)
        ratio = torch.exp(_uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), n, g))
        size = torch.stack([torch.sqrt(area * ratio), torch.sqrt(area / ratio)], 1).clamp(max=1.0)  # (N, 2)
        centre = (1 - size) * _uniform(-1.0, 1.0, 2 * n, g).view(n, 2)
        theta = theta * size.unsqueeze(2)
        theta[:, :, 2] += centre
    return theta


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """F.affine_grid(theta, (N, C, h, w), align_corners=False), (N, h, w, 2), computed as two broadcast
    multiply-adds per coordinate: on one CPU thread, 0.3 ms for 64 x 64 x 64 where F.affine_grid (a batched
    matrix product over every pixel) took 2.6 ms, a third of the photos augmentation. The tests check the two
    agree."""
    n = theta.shape[0]
    xs = (torch.arange(w, dtype=theta.dtype, device=theta.device) * 2 + 1) / w - 1  # pixel centres in [-1, 1]
    ys = (torch.arange(h, dtype=theta.dtype, device=theta.device) * 2 + 1) / h - 1
    grid = torch.empty(n, h, w, 2, dtype=theta.dtype, device=theta.device)
    for k in range(2):  # input coordinate k = theta[k, 0] x + theta[k, 1] y + theta[k, 2]
        row = theta[:, k, 1, None] * ys + theta[:, k, 2, None]  # (N, h)
        torch.add(row[:, :, None], theta[:, k, 0, None, None] * xs, out=grid[..., k])
    return grid


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W): the luminance of RGB images, the image itself otherwise."""
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    # three multiply-adds on single channels: a 1x1 F.conv2d took 15 ms on a 64 x 3 x 64 x 64 batch (one CPU
    # thread, mkldnn), this ~0.2 ms
    grey = x[:, :1] * LUMA[0]
    return grey.add_(x[:, 1:2], alpha=LUMA[1]).add_(x[:, 2:3], alpha=LUMA[2])


class Augment:
    """The augmentation `cfg` as a function of (images, generator): (N, C, H, W) floats in [0, 1] (uint8
    is divided by 255) on any device -> the same shape in [0, 1]. Runs without gradients and outside any
    autocast (the pixels in float32 whatever precision the model runs in).

    method: "fused" (the default: the faster) or "kornia". Per batch, one CPU thread (torch 2.13 CPU, kornia
    0.9, a shared 2-core x86-64 VM; median of 40 in interleaved rounds): 128 x 1 x 28 x 28 with the glyphs
    preset, fused 0.9 ms, kornia 3.0 ms; 64 x 3 x 64 x 64 with the photos preset, fused 6.4 ms, kornia
    20.9 ms. A forward and backward pass of the phi = 0 CNN on the same batches takes 216 and 98 ms, so
    the fused augmentation is 0.4% and 6% of a training step (issue 20's goal: at most 10% on the CPU)."""

    def __init__(self, cfg: AugmentConfig, method: str = "fused"):
        check_choice("method", method, METHODS)
        self.cfg, self.method = cfg, method
        self._kornia: dict[tuple[int, int, int], nn.Module] = {}

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"Augment takes a batch of images (N, C, H, W); got shape {tuple(x.shape)}: add the "
                              "batch dimension (x.unsqueeze(0)) or the channel one (x.unsqueeze(1))")
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
            x = x.float()
            out = self._fused(x, generator) if self.method == "fused" else self._with_kornia(x, generator)
            # in place only on a new tensor: kornia with nothing to do returns the caller's batch itself
            return out.clamp_(0.0, 1.0) if out.data_ptr() != x.data_ptr() else out.clamp(0.0, 1.0)

    def _device_generator(self, x: torch.Tensor, g: torch.Generator) -> torch.Generator:
        """A generator on the images' device for the per-pixel draws (noise, erasing), seeded from `g`."""
        if g.device == x.device:
            return g
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
        return torch.Generator(device=x.device).manual_seed(seed)

    def _fused(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg, (n, c, h, w) = self.cfg, x.shape
        if cfg.warps:
            theta = _affine(cfg, n, h, w, g).to(x.device)
            grid = affine_grid(theta, h, w)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=cfg.padding, align_corners=False)
        elif any(cfg.flips):  # flips alone: exact and cheaper as index reversal (airbench's flip)
            for p, dim in zip(cfg.flips, (3, 2)):
                if p:
                    chosen = (torch.rand(n, generator=g, device=g.device) < p).to(x.device).view(n, 1, 1, 1)
                    x = torch.where(chosen, x.flip(dim), x)
        else:
            x = x.clone()  # the caller's batch is never changed in place
        # x is this call's own tensor now: the pointwise steps work in place (a 64 x 3 x 64 x 64 batch, one
        # CPU thread: ~1 ms less per step than allocating each intermediate)
        if cfg.brightness:
            x.add_(_uniform(-cfg.brightness, cfg.brightness, n, g).to(x.device).view(n, 1, 1, 1))
        if cfg.contrast:  # mean + f (x - mean) = f x + (1 - f) mean
            f = _uniform(1 - cfg.contrast, 1 + cfg.contrast, n, g).to(x.device).view(n, 1, 1, 1)
            x.mul_(f).add_((1 - f) * _grey(x).mean(dim=(1, 2, 3), keepdim=True))
        if cfg.saturation and c == 3:
            f = _uniform(1 - cfg.saturation, 1 + cfg.saturation, n, g).to(x.device).view(n, 1, 1, 1)
            grey = _grey(x)
            x.mul_(f).add_(grey.mul_(1 - f))
        if cfg.noise:
            x.add_(torch.randn(x.shape, generator=self._device_generator(x, g), device=x.device), alpha=cfg.noise)
        if cfg.erase:
            self._erase(x, g)
        return x

    def _erase(self, x: torch.Tensor, g: torch.Generator) -> None:
        """Random erasing (Zhong et al. 2020), in place: with probability cfg.erase, one rectangle of 2-33%
        of the area per image, filled with one random colour per image. Their default fills each pixel with
        its own random value; their ablation of the fill value (random, the data's mean, 0, 255) found
        small differences, and a random number per pixel was a quarter of the whole photos augmentation of a
        64 x 3 x 64 x 64 batch on one CPU thread."""
        n, c, h, w = x.shape
        on = torch.rand(n, generator=g, device=g.device) < self.cfg.erase
        area = _uniform(*ERASE_AREA, n, g) * h * w
        ratio = torch.exp(_uniform(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), n, g))
        eh = torch.sqrt(area * ratio).round().clamp(1, h)
        ew = torch.sqrt(area / ratio).round().clamp(1, w)
        top = (torch.rand(n, generator=g, device=g.device) * (h - eh + 1)).floor()
        left = (torch.rand(n, generator=g, device=g.device) * (w - ew + 1)).floor()
        fill = torch.rand(n, c, 1, 1, generator=g, device=g.device).to(x.device, x.dtype)
        box = [v.to(x.device).view(n, 1, 1) for v in (top, eh, left, ew, on)]
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        mask = (rows >= box[0]) & (rows < box[0] + box[1]) & (cols >= box[2]) & (cols < box[2] + box[3]) & box[4]
        x.lerp_(fill, mask.unsqueeze(1).to(x.dtype))  # weight 0 keeps x, 1 gives the fill, both exactly

    def _with_kornia(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """kornia draws from torch's global RNG: seed it from `g` inside fork_rng, so the output is still a
        function of the generator and the caller's global RNG state is left as it was."""
        key = tuple(x.shape[1:])
        if key not in self._kornia:
            self._kornia[key] = self._kornia_pipeline(*key)  # type: ignore[arg-type]
        seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(seed)
            return self._kornia[key](x)

    def _kornia_pipeline(self, c: int, h: int, w: int) -> nn.Module:
        """The same settings as kornia.augmentation transforms. Differences: kornia resamples once per
        geometric transform (a crop, then the affine), and erases with zeros rather than random values."""
        import kornia.augmentation as K

        cfg, parts = self.cfg, []
        if cfg.crop is not None:
            parts.append(K.RandomResizedCrop((h, w), scale=cfg.crop, ratio=CROP_RATIO, align_corners=False))
        ph, pv = cfg.flips
        if ph:
            parts.append(K.RandomHorizontalFlip(p=ph))
        if pv:
            parts.append(K.RandomVerticalFlip(p=pv))
        if cfg.rotate or cfg.shear or cfg.translate or cfg.scale != (1.0, 1.0):
            parts.append(K.RandomAffine(cfg.rotate, translate=(cfg.translate,) * 2 if cfg.translate else None,
                                        scale=cfg.scale if cfg.scale != (1.0, 1.0) else None,
                                        shear=(-cfg.shear, cfg.shear) if cfg.shear else None,
                                        padding_mode=cfg.padding, p=1.0))
        if cfg.brightness:  # additive, as ours: kornia's RandomBrightness adds factor - 1
            parts.append(K.RandomBrightness((1 - cfg.brightness, 1 + cfg.brightness), p=1.0))
        saturation = cfg.saturation if c == 3 else 0.0
        if cfg.contrast or saturation:  # torchvision's blends with the mean and the grey, as ours
            parts.append(K.ColorJitter(contrast=cfg.contrast, saturation=saturation, p=1.0))
        if cfg.noise:
            parts.append(K.RandomGaussianNoise(std=cfg.noise, p=1.0))
        if cfg.erase:
            parts.append(K.RandomErasing(scale=ERASE_AREA, ratio=ERASE_RATIO, p=cfg.erase))
        return K.AugmentationSequential(*parts) if parts else nn.Identity()


# Mixed into each batch's seed, so a batch's augmentation is not drawn from the stream that orders an
# epoch's rows (repro.epoch_generator(seed, epoch) for the same seed)
_SALT = 0xA06_3E27


def batch_generator(seed: int, seen: int) -> torch.Generator:
    """The generator of the augmentation of batch number `seen`: a pure function of (seed, seen), so a
    resumed run draws what the uninterrupted one did. numpy's SeedSequence mixes the three numbers into
    a well-spread seed (nearby seeds give unrelated streams)."""
    state = np.random.SeedSequence([seed % 2**64, _SALT, seen]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31 | int(state[1])) % 2**63)


class Augmented(Step):
    """The supervised step on an augmented batch: the first input (the images; a dict batch's first
    entry) augmented with the generator of (seed, the number of batches this step has augmented), then
    the parent step's loss, members' losses for a TabM-like model included. state_dict() holds that count,
    so the Trainer's checkpoint resumes the same augmentations bit for bit. Only `loss` augments (by transform):
    validation and prediction call the model on the images as they are."""

    def __init__(self, augment: Augment, seed: int, loss_fn: LossFn | None = None):
        super().__init__(loss_fn)
        self.augment, self.seed, self.seen = augment, int(seed), 0

    def transform(self, batch: Any) -> Batch:
        """The batch with its images augmented; counts the batch."""
        batch = as_batch(batch)
        g = batch_generator(self.seed, self.seen)
        self.seen += 1
        inputs = batch.inputs
        if isinstance(inputs, Mapping):
            key = next(iter(inputs))
            return batch._replace(inputs={**inputs, key: self.augment(inputs[key], g)})
        return batch._replace(inputs=(self.augment(inputs[0], g), *inputs[1:]))

    def state_dict(self) -> dict[str, int]:
        return {"seen": self.seen}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.seen = int(state["seen"])


__all__ = ["PRESETS", "Augment", "AugmentConfig", "Augmented", "batch_generator", "resolve_preset"]
