"""Transforms: output shapes, and normalisation to the exact expected values."""

import numpy as np
import pytest
import torch
from PIL import Image

from mkt_core.data import eval_transform, train_transform

MEAN = (0.1, 0.2, 0.3)
STD = (0.5, 0.25, 0.125)


def expected_gray(value: int) -> torch.Tensor:
    return torch.tensor([(value / 255 - m) / s for m, s in zip(MEAN, STD, strict=True)])


def test_eval_transform_shape_and_normalisation():
    out = eval_transform(32, MEAN, STD)(Image.new("RGB", (70, 50), (128, 128, 128)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    want = expected_gray(128)
    for channel in range(3):
        torch.testing.assert_close(out[channel], torch.full((32, 32), want[channel].item()), atol=1e-5, rtol=0)


def test_eval_transform_squashes_the_whole_image():
    # Left column red, the rest black: a centre crop would lose the red; a squash keeps it at the border.
    pixels = np.zeros((40, 80, 3), dtype=np.uint8)
    pixels[:, :8] = (255, 0, 0)
    out = eval_transform(16, (0, 0, 0), (1, 1, 1))(Image.fromarray(pixels))
    assert out[0, :, 0].min() > 0.9 and out[0, :, -1].max() < 0.1


def test_eval_transform_centre_crop_sees_what_the_release_sees():
    """The release: short side to 256, centre 224 (crop_pct 0.875): the borders of a wide photo are cut."""
    pixels = np.zeros((200, 400, 3), dtype=np.uint8)
    pixels[:, :40] = (255, 0, 0)  # a red band at the left edge, 10 % of the width
    pixels[90:110, 190:210] = (0, 255, 0)  # a green square at the centre
    image = Image.fromarray(pixels)
    out = eval_transform(224, (0, 0, 0), (1, 1, 1), resize="center_crop")(image)
    assert out.shape == (3, 224, 224)
    assert out[0].max() < 0.1  # the red band is outside the crop
    # 200 px -> 256 px: the 20 px square becomes 25.6 px, around the centre
    green = (out[1] > 0.5).nonzero()
    assert 20 <= green[:, 0].max() - green[:, 0].min() + 1 <= 28
    assert abs(green[:, 0].float().mean().item() - 111.5) < 2 and abs(green[:, 1].float().mean().item() - 111.5) < 2
    squashed = eval_transform(224, (0, 0, 0), (1, 1, 1))(image)
    assert squashed[0, :, 0].min() > 0.9  # the default keeps the whole photo
    with pytest.raises(ValueError, match="center_crop"):
        eval_transform(224, (0, 0, 0), (1, 1, 1), resize="crop")


def test_release_preset_evaluates_with_the_centre_crop():
    from mkt_core.model.config import get_preset

    assert get_preset("release-vit-b16").eval_resize == "center_crop"
    assert get_preset("paper-vit-b16").eval_resize == "squash"


def test_train_transform_shape_and_normalisation():
    torch.manual_seed(0)
    out = train_transform(24, MEAN, STD)(Image.new("RGB", (60, 40), (128, 128, 128)))
    assert out.shape == (3, 24, 24)
    want = expected_gray(128)
    torch.testing.assert_close(out.mean(dim=(1, 2)), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)


def test_train_transform_is_random_and_keeps_at_least_half_the_image():
    crop = train_transform(24, MEAN, STD).transforms[0]
    assert crop.scale == (0.5, 1.0)
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    transform = train_transform(24, MEAN, STD)
    torch.manual_seed(1)
    a = transform(image)
    torch.manual_seed(2)
    b = transform(image)
    assert not torch.equal(a, b)


def test_randaugment_from_a_timm_string():
    from timm.data.auto_augment import RandAugment

    transform = train_transform(32, MEAN, STD, randaugment="rand-m9-mstd0.5-inc1")
    assert any(isinstance(t, RandAugment) for t in transform.transforms)
    assert not any(isinstance(t, RandAugment) for t in train_transform(32, MEAN, STD).transforms)
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    out = transform(Image.fromarray(pixels))
    assert out.shape == (3, 32, 32) and torch.isfinite(out).all()


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="RandAugment"):
        train_transform(32, MEAN, STD, randaugment="autoaug-v0")
    with pytest.raises(ValueError, match="3 values"):
        eval_transform(32, (0.5, 0.5), STD)


def test_randaugment_posterize_at_full_magnitude_does_not_crash():
    # timm turns magnitude 10 into "keep 0 bits", which Pillow >= 12 rejects; we keep 1 bit instead.
    transform = train_transform(16, (0, 0, 0), (1, 1, 1), randaugment="rand-m10-n1-mstd0-inc1")
    augment = next(t for t in transform.transforms if type(t).__name__ == "RandAugment")
    posterize = next(op for op in augment.ops if op.name == "PosterizeIncreasing")
    posterize.prob = 1.0
    augment.ops = [posterize]
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    out = transform(Image.fromarray(pixels))
    levels = torch.unique(torch.round(out * 255))
    assert set(levels.tolist()) <= {0.0, 128.0} and len(levels) == 2


def test_crop_scale_one_keeps_the_whole_image():
    # A border column of red must survive every draw: labels of what is visible stay true.
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    pixels[:, :4] = (255, 0, 0)
    transform = train_transform(20, (0, 0, 0), (1, 1, 1), crop_scale=1.0)
    for seed in range(8):
        torch.manual_seed(seed)
        out = transform(Image.fromarray(pixels))
        assert max(out[0, :, 0].min(), out[0, :, -1].min()) > 0.9  # on the left, or on the right when flipped
    with pytest.raises(ValueError, match="crop_scale"):
        train_transform(20, MEAN, STD, crop_scale=0)
