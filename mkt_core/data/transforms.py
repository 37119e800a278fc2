"""Image -> tensor pipelines for training and evaluation (torchvision, plus timm's RandAugment).

The released MKT code trains with timm's `create_transform` (random resized crop of scale
0.08..1, flip, RandAugment "rand-m9-mstd0.5-inc1", bicubic) and evaluates with a resize of the
short side to 256 and a centre crop of 224. By default the crop here keeps at least half of the
image (scale 0.5..1: a multi-label photo loses its labels when cropped to a small patch) and
evaluation resizes the whole image to a square ("squash"), so that objects at the borders are
still seen; `crop_scale=0.08` and `resize="center_crop"` give the release's pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image, ImageOps
from torchvision import transforms as T

Transform = Callable[[Image.Image], torch.Tensor]


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std must have 3 values (R, G, B), got {mean} and {std}")
    if min(std) <= 0:
        raise ValueError(f"std must be positive, got {std}")
    return mean, std


def _posterize_keeping_a_bit(img: Image.Image, bits_to_keep: int, **_) -> Image.Image:
    """timm's posterize asks for 0 bits at the extreme magnitudes; Pillow >= 12 refuses that, so keep at least 1."""
    bits = max(1, int(bits_to_keep))
    return img if bits >= 8 else ImageOps.posterize(img, bits)


def _rand_augment(config: str, image_size: int, mean: tuple[float, ...]) -> Callable[[Image.Image], Image.Image]:
    from timm.data.auto_augment import rand_augment_transform

    if not config.startswith("rand"):
        raise ValueError(f"randaugment must be a timm RandAugment string like 'rand-m9-mstd0.5-inc1', got {config!r}")
    hparams = {
        # timm's defaults for ImageNet-style training: translate up to 45% of the image side,
        # fill uncovered pixels with the mean colour.
        "translate_const": int(image_size * 0.45),
        "img_mean": tuple(min(255, round(255 * m)) for m in mean),
        "interpolation": Image.BICUBIC,
    }
    augment = rand_augment_transform(config, hparams)
    for op in augment.ops:
        if op.name.startswith("Posterize"):
            op.aug_fn = _posterize_keeping_a_bit
    return augment


def train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                    randaugment: str | None = None, crop_scale: float = 0.5) -> Transform:
    """Random resized crop (scale crop_scale..1, bicubic) + horizontal flip [+ RandAugment] + normalise.

    crop_scale = 1 keeps the whole image (resized): for labels that must stay true of what is seen.
    """
    mean, std = _check_stats(mean, std)
    if not 0 < crop_scale <= 1:
        raise ValueError(f"crop_scale must be in (0, 1], got {crop_scale}")
    bicubic = T.InterpolationMode.BICUBIC
    crop = (T.Resize((image_size, image_size), interpolation=bicubic) if crop_scale == 1
            else T.RandomResizedCrop(image_size, scale=(crop_scale, 1.0), interpolation=bicubic))
    steps: list = [crop, T.RandomHorizontalFlip()]
    if randaugment:
        steps.append(_rand_augment(randaugment, image_size, mean))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                   resize: str = "squash") -> Transform:
    """Evaluation pixels (bicubic), then normalise.

    "squash": the whole image resized to image_size x image_size. "center_crop": as the release
    (timm's crop_pct 0.875 up to 224 px, 1.0 above): the short side resized to image_size / crop_pct
    (256 for 224), then the centre image_size x image_size.
    """
    mean, std = _check_stats(mean, std)
    bicubic = T.InterpolationMode.BICUBIC
    if resize == "squash":
        steps = [T.Resize((image_size, image_size), interpolation=bicubic)]
    elif resize == "center_crop":
        crop_pct = 224 / 256 if image_size <= 224 else 1.0
        steps = [T.Resize(int(image_size / crop_pct), interpolation=bicubic), T.CenterCrop(image_size)]
    else:
        raise ValueError(f"resize must be 'squash' or 'center_crop', got {resize!r}")
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
