"""D11 (data/image/augment.py): augmentation on the device, in training only. The output keeps the batch's
shape and range and is a function of the generator alone; "none" changes nothing; the glyphs preset never
mirrors; a flip mirrors exactly; the Augmented step resumes the same augmentations bit for bit, and
evaluation never sees an augmented image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from nnrecipe import ConfigError, Step, TrainConfig, Trainer
from nnrecipe.data.image.augment import (PRESETS, Augment, AugmentConfig, Augmented, affine_grid, batch_generator,
                                         resolve_preset)
from nnrecipe.models.cnn import CNN
from nnrecipe.steps import Batch
from nnrecipe.testing import assert_identical, states_equal
from nnrecipe.train.checkpoint import load_state

METHODS = ("fused", "kornia")


def _images(n=6, c=3, h=20, w=24, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _left_heavy(n=32, side=24):
    """Grey images whose left third is bright and right third dark: a mirror swaps which side is brighter."""
    x = torch.full((n, 1, side, side), 0.5)
    x[..., : side // 3] = 0.9
    x[..., -(side // 3):] = 0.1
    return x


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("preset", ["glyphs", "photos"])
def test_shape_and_range_are_kept_and_the_generator_decides(method, preset):
    x = _images()
    augment = Augment(PRESETS[preset], method)
    out = augment(x, _gen(0))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(augment(x, _gen(0)), out)  # equal generators, equal batches
    assert not torch.equal(augment(x, _gen(1)), out)
    assert not torch.equal(out, x)
    assert torch.equal(x, _images())  # the caller's batch is left as it was
    pixels = (x * 255).round().to(torch.uint8)  # uint8 is taken as pixels in 0..255
    assert torch.allclose(augment(pixels, _gen(0)), augment(pixels.float() / 255, _gen(0)))


def test_kornia_leaves_the_global_rng_as_it_was():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    Augment(PRESETS["photos"], "kornia")(_images(), _gen(0))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("method", METHODS)
def test_none_changes_nothing(method):
    x = _images()
    out = Augment(PRESETS["none"], method)(x, _gen(0))
    assert torch.equal(out, x) and out is not x


def test_glyphs_never_mirror_and_photos_do():
    x = _left_heavy()
    assert PRESETS["glyphs"].flips == (0.0, 0.0)
    sides = {}
    for preset in ("glyphs", "photos"):
        out = Augment(PRESETS[preset])(x, _gen(0))
        third = x.shape[-1] // 3
        sides[preset] = out[..., :third].mean(dim=(1, 2, 3)) - out[..., -third:].mean(dim=(1, 2, 3))
    assert bool((sides["glyphs"] > 0.3).all())  # rotated, zoomed, shifted, slanted: still bright on the left
    assert bool((sides["photos"] < 0).any())  # the test can see a mirror: photos flip about half of them


@pytest.mark.parametrize("method", METHODS)
def test_a_certain_flip_mirrors_exactly(method):
    x = _images()
    assert torch.equal(Augment(AugmentConfig(hflip=1.0), method)(x, _gen(0)), x.flip(-1))
    assert torch.equal(Augment(AugmentConfig(vflip=1.0), method)(x, _gen(0)), x.flip(-2))


def test_our_affine_grid_is_torchs():
    theta = torch.randn(5, 2, 3, generator=_gen(0))
    for h, w in ((7, 7), (12, 20)):
        expected = torch.nn.functional.affine_grid(theta, [5, 1, h, w], align_corners=False)
        assert torch.allclose(affine_grid(theta, h, w), expected, atol=1e-6)


def test_inside_the_one_resampling_a_flip_is_a_mirror_too():
    x = _images()
    out = Augment(AugmentConfig(hflip=1.0, rotate=1e-6))(x, _gen(0))  # a warp: the affine path
    assert torch.allclose(out, x.flip(-1), atol=1e-4)


def test_brightness_shifts_each_image_by_one_amount_within_the_range():
    x = 0.3 + 0.4 * _images()  # no pixel reaches the clamp
    out = Augment(AugmentConfig(brightness=0.2))(x, _gen(0))
    shift = out - x
    per_image = shift.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-6)
    assert float(per_image.abs().max()) <= 0.2 and float(per_image[:, 0].std()) > 0


def test_erasing_covers_one_rectangle_of_2_to_33_percent():
    x = torch.ones(16, 1, 20, 20)  # white: the random values of the rectangle are below 1
    out = Augment(AugmentConfig(erase=1.0))(x, _gen(0))
    erased = (out < 1.0).float().mean(dim=(1, 2, 3))
    assert bool((erased > 0).all()) and float(erased.max()) <= 0.36  # 33%, and the rounding of its sides


def test_presets_resolve_by_the_images_and_unknown_names_are_named():
    assert resolve_preset("auto", 1, 28) == ("glyphs", PRESETS["glyphs"])
    assert resolve_preset("auto", 1, 64)[0] == "glyphs"
    assert resolve_preset("auto", 1, 65)[0] == "photos"
    assert resolve_preset("auto", 3, 28)[0] == "photos"
    assert resolve_preset("none", 3, 224) == ("none", AugmentConfig())
    with pytest.raises(ConfigError) as e:
        resolve_preset("glyph", 1, 28)
    assert str(e.value) == ("augment='glyph' is not a preset (did you mean 'glyphs'?); choose one of: auto, none, "
                            "glyphs, photos")


def test_bad_settings_are_named_all_at_once():
    with pytest.raises(ConfigError) as e:
        AugmentConfig(rotate=-5, crop=(0.5, 0.2), hflip=2.0)
    assert str(e.value) == ("AugmentConfig: rotate=-5 is negative; give 0 or more; crop=(0.5, 0.2): give an area "
                            "range (low, high) with 0 < low <= high <= 1, or None; hflip=2.0: give True/False or a "
                            "probability in [0, 1]")
    with pytest.raises(ConfigError) as e:
        Augment(AugmentConfig(), "torchvision")
    assert str(e.value) == "method='torchvision' is not allowed; choose one of: fused, kornia"


# ---------------------------------------------------------------- the Augmented step
def _cnn(seed=0):
    torch.manual_seed(seed)
    return CNN(1, 2, [1, 1], [8, 16], 16, dropout=0.0)


def test_the_step_augments_by_batch_number_and_its_state_resumes_the_sequence():
    augment = Augment(PRESETS["glyphs"])
    batches = [Batch((_images(4, 1, 16, 16, seed=i),), torch.zeros(4, dtype=torch.long)) for i in range(5)]
    straight = Augmented(augment, seed=3)
    seen = [straight.transform(b).inputs[0] for b in batches]
    assert straight.state_dict() == {"seen": 5}
    first = Augmented(augment, seed=3)
    for b in batches[:2]:
        first.transform(b)
    resumed = Augmented(augment, seed=3)
    resumed.load_state_dict(first.state_dict())
    assert all(torch.equal(resumed.transform(b).inputs[0], s) for b, s in zip(batches[2:], seen[2:]))
    assert not torch.equal(Augmented(augment, seed=4).transform(batches[0]).inputs[0], seen[0])
    # the augmentation's stream is not the one that orders an epoch (repro.epoch_generator)
    assert batch_generator(3, 0).initial_seed() != (3 * 1_000_003) % 2**63


def test_only_the_training_loss_sees_augmented_images():
    model = _cnn().eval()  # eval: BatchNorm's statistics stay as they are
    x, y = _images(8, 1, 16, 16), torch.randint(0, 2, (8,), generator=_gen(0))
    before = model(x)
    plain, _ = Step(nn.CrossEntropyLoss()).loss(model, Batch((x,), y))
    step = Augmented(Augment(PRESETS["glyphs"]), seed=0, loss_fn=nn.CrossEntropyLoss())
    augmented, outputs = step.loss(model, Batch((x,), y))
    assert not torch.equal(outputs, before) and float(augmented.detach()) != float(plain.detach())
    assert torch.equal(model(x), before)  # the model's forward (validation, prediction) is unchanged
    assert torch.equal(x, _images(8, 1, 16, 16))
    same, _ = Augmented(Augment(PRESETS["none"]), seed=0, loss_fn=nn.CrossEntropyLoss()).loss(model, Batch((x,), y))
    assert torch.equal(same, plain)


class Members(nn.Module):
    """A TabM-like model: k members' outputs, trained as separate models (steps/step.py)."""

    def __init__(self, k=3):
        super().__init__()
        self.lin = nn.Linear(16 * 16, 2 * k)
        self.k = k

    def member_outputs(self, x):
        return self.lin(x.flatten(1)).view(len(x), self.k, 2)

    def combine(self, outs):
        return outs.mean(1)

    def forward(self, x):
        return self.combine(self.member_outputs(x))


def test_a_model_of_members_keeps_its_members_losses():
    torch.manual_seed(0)
    model, x, y = Members(), _images(4, 1, 16, 16), torch.tensor([0, 1, 1, 0])
    step = Augmented(Augment(PRESETS["glyphs"]), seed=0, loss_fn=nn.CrossEntropyLoss())
    loss, _ = step.loss(model, Batch((x,), y))
    again = Augmented(Augment(PRESETS["glyphs"]), seed=0).transform(Batch((x,), y)).inputs[0]
    outs = model.member_outputs(again)
    expected = nn.functional.cross_entropy(outs.reshape(-1, 2), y.repeat_interleave(3))
    assert torch.allclose(loss, expected)


def _fit(run_dir: Path, crash_after: int | None = None, resume: bool = False) -> Trainer:
    from nnrecipe import Callback

    class Crash(Exception):
        pass

    class CrashAfter(Callback):
        def __init__(self):
            self.count = 0

        def on_batch_end(self, trainer, logs):
            self.count += 1
            if self.count == crash_after:
                raise Crash

    x = _images(48, 1, 16, 16)
    y = (x[:, 0, :, :8].mean(dim=(1, 2)) > x[:, 0, :, 8:].mean(dim=(1, 2))).long()
    cfg = TrainConfig(device="cpu", batch_size=16, epochs=2, patience=None, lr=3e-3, checkpoint_every=2)
    step = Augmented(Augment(dataclasses.replace(PRESETS["photos"], saturation=0.0)), seed=7)
    trainer = Trainer(_cnn(), nn.CrossEntropyLoss(), (x[:32], y[:32]), val_data=(x[32:], y[32:]), config=cfg,
                      run_dir=run_dir, step=step, callbacks=[CrashAfter()], resume=resume)
    try:
        trainer.fit()
    except Crash:
        pass
    return trainer


def test_a_resumed_training_replays_the_same_augmentations(tmp_path):
    straight = _fit(tmp_path / "straight")
    _fit(tmp_path / "resumed", crash_after=3)  # 2 batches an epoch: the checkpoint after batch 2
    assert load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors")["step"] == {"seen": 2}
    resumed = _fit(tmp_path / "resumed", resume=True)
    assert resumed.step.seen == straight.step.seen == 4
    assert resumed.history == straight.history
    assert states_equal(resumed.model.state_dict(), straight.model.state_dict())
    assert_identical(load_state(tmp_path / "resumed" / "checkpoints" / "last.safetensors"),
                     load_state(tmp_path / "straight" / "checkpoints" / "last.safetensors"))
