"""D11's augmentation check (data/audit/augment_check.py): a label-changing transform fails and is named, a
healthy preset passes, what cannot be judged is skipped with its reason, and the inputs stay as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nnrecipe.data.audit import augment_check as ac
from nnrecipe.data.image.augment import PRESETS, AugmentConfig

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def digits() -> Split:
    """scikit-learn's 8x8 digits, split 85/15 stratified by a fixed seed: (train_x, train_y, val_x, val_y)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    train, val = train_test_split(np.arange(len(x)), test_size=0.15, stratify=d.target, random_state=0)
    y = torch.tensor(d.target)
    return x[train], y[train], x[val], y[val]


NAMES = [str(i) for i in range(10)]


def test_vertical_flips_of_digits_fail_and_name_the_flip(digits: Split) -> None:
    v = ac.check_augmentation(*digits, AugmentConfig(vflip=True), "custom", "multiclass", seed=0, classes=NAMES)
    assert (v.id, v.name, v.status) == ("D11", "augmentation keeps the label", "fail")
    assert "vflip (vflip on every image)" in v.summary
    lost = v.evidence["transforms"]["vflip"]["collapsed"]
    assert lost and all(c["kept"] < ac.COLLAPSE for c in lost)  # some digits are no longer read as themselves
    assert v.fix == ("--augment glyphs; with your own Trainer, an AugmentConfig without vflip (a mirrored glyph is "
                     "another glyph or none) or with less of it; if the transformed images plainly keep their labels "
                     "(batch.png shows the training images as augmented), the quick model merely never saw such images "
                     "and this can be ignored")


def test_the_glyphs_preset_on_digits_passes(digits: Split) -> None:
    v = ac.check_augmentation(*digits, PRESETS["glyphs"], "glyphs", "multiclass", seed=0, classes=NAMES)
    assert v.status == "pass", v.summary
    assert set(v.evidence["transforms"]) == {"rotate", "scale", "translate", "shear"}  # one transform at a time
    assert v.evidence["clean_accuracy"] > 0.9


def test_rotation_at_full_strength_is_exactly_plus_or_minus_the_angle() -> None:
    """rotate=180 draws angles in [-180, 180] in training; the check turns every image by exactly 180."""
    x = torch.rand(4, 1, 6, 6)
    turned, setting = ac.full_strength("rotate", AugmentConfig(rotate=180.0), x, torch.Generator().manual_seed(0))
    assert setting == "rotation by +-180 degrees"
    torch.testing.assert_close(turned, x.flip(2, 3), atol=1e-5, rtol=0)


def test_a_multilabel_task_and_no_augmentation_are_skipped_with_a_reason(digits: Split) -> None:
    x, _, vx, _ = digits
    y, vy = torch.zeros(len(x), 3), torch.zeros(len(vx), 3)
    v = ac.check_augmentation(x, y, vx, vy, PRESETS["photos"], "photos", "multilabel")
    assert v.status == "skipped"
    assert v.summary == ("not checked for a multilabel task: a transform may keep one label of an image and change "
                         "another, which accuracy does not tell apart; look at batch.png, the training images as "
                         "augmented")
    none = ac.check_augmentation(*digits, PRESETS["none"], "none", "multiclass")
    assert (none.status, none.summary) == ("skipped", "the none augmentation transforms nothing; nothing to check")


def test_the_check_leaves_its_inputs_the_global_rng_and_the_threads_unchanged(
        digits: Split, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ac, "STEPS", 20)  # what is asserted does not need a trained model
    before = [t.clone() for t in digits]
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    ac.check_augmentation(*digits, PRESETS["photos"], "photos", "multiclass", seed=1, classes=NAMES)
    assert all(torch.equal(a, b) for a, b in zip(before, digits))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads  # the check runs on one thread and puts torch's setting back


def test_nnrecipe_audit_of_a_folder_includes_the_check(tmp_path: Path) -> None:
    """audit_image_data (`nnrecipe audit FOLDER`) ends with D11 on the preset `train` would use: auto is glyphs
    for these grey 8x8 images."""
    from sklearn.datasets import load_digits

    from nnrecipe.recipes.images import audit_image_data
    from nnrecipe.testing import write_image_folder

    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[:80] for c in (0, 1, 2)])  # 12 of each in validation
    folder = write_image_folder(tmp_path / "digits", (d.images[keep] * (255 / 16)).round().astype(np.uint8),
                                [str(c) for c in d.target[keep]])
    found = audit_image_data(folder, seed=0)
    v = found.by_id("D11")[-1]
    assert (v.name, v.status, v.evidence["preset"]) == ("augmentation keeps the label", "pass", "glyphs")
    assert "D11 augmentation" in found.seconds
