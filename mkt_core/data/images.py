"""Decoding photos into 8-bit RGB, and the dataset / collate pair every split in this package uses.

Real photo folders contain rotated phone pictures, CMYK scans, 16-bit PNGs, transparent icons,
animated GIFs and the odd broken or empty file. `load_rgb` turns all of these into plain RGB and
turns every failure into one exception type that names the file, so that a training run can skip
and report a bad image instead of dying in a DataLoader worker with a bare PIL traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

# Fallback limit on width * height when PIL's own check is switched off (the authors' release sets
# Image.MAX_IMAGE_PIXELS = None): PIL's default hard limit. It stops a "decompression bomb" (a tiny
# file claiming a gigantic canvas) before it eats the memory, and still admits 108 MP phone photos.
MAX_PIXELS = 2 * 89_478_485


def pixel_limit() -> int:
    """Where PIL raises DecompressionBombError (2 x Image.MAX_IMAGE_PIXELS), or MAX_PIXELS if that is off."""
    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else MAX_PIXELS


_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_WIDE_GRAY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


class ImageLoadError(ValueError):
    """An image that cannot be decoded; `path` and `reason` are kept for reports.

    Called with one argument it takes it as the whole message: that is how a DataLoader re-raises
    an exception from a worker process, and it keeps the type the caller catches.
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        self.path = str(path)
        self.reason = reason or ""
        self._args = (self.path,) if reason is None else (self.path, reason)
        super().__init__(self.path if reason is None else f"cannot load image {self.path}: {reason}")

    def __reduce__(self):  # pickles whole across process pools
        return (type(self), self._args)


def _reason_for(exc: BaseException) -> str:
    """A short, plain reason for a decoding failure (users read these in skip reports)."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return f"decompression bomb ({exc})"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (unrecognised file format)"
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return f"truncated ({text})" if text else "truncated"
    return f"cannot decode ({type(exc).__name__}: {text})"


def _wide_gray_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> 8-bit "L"; PIL's own convert clips instead of scaling."""
    values = np.asarray(img)
    if img.mode == "F":
        scaled = np.clip(values, 0.0, 255.0)
    else:
        # 16-bit data (I;16 and the "I" mode older PIL uses for 16-bit PNGs): 0..65535 -> 0..255.
        scaled = np.clip(values.astype(np.float64), 0, 65535) / 257.0
    return Image.fromarray(np.rint(scaled).astype(np.uint8), mode="L")


def _over_white(img: Image.Image) -> Image.Image:
    """Composite a transparent image over white: transparent pixels keep whatever colour they hide otherwise."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _WIDE_GRAY_MODES:
        return _wide_gray_to_l(img).convert("RGB")
    if mode == "P":
        if "transparency" in img.info:
            return _over_white(img)
        return img.convert("RGB")
    if mode in _ALPHA_MODES:
        return _over_white(img)
    return img.convert("RGB")  # CMYK, L, 1, YCbCr...; PIL raises for a mode it cannot convert


def load_rgb(path: str | os.PathLike, target_size: int | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open any photo as 8-bit RGB, EXIF orientation applied, first frame of an animation.

    `target_size` lets the JPEG decoder skip detail we would throw away anyway (DCT scaling,
    `Image.draft`): the result is still at least `target_size` on both sides. `max_pixels` (default
    `pixel_limit()`) caps width * height. Any failure raises ImageLoadError naming the file.
    (Where other code sets PIL's ImageFile.LOAD_TRUNCATED_IMAGES, as the authors' release does,
    PIL fills a truncated file with grey instead of failing.)
    """
    path = os.fspath(path)
    limit = max_pixels if max_pixels is not None else pixel_limit()
    try:
        if os.path.getsize(path) == 0:
            raise ImageLoadError(path, "zero bytes (empty file)")
        with Image.open(path) as img:
            width, height = img.size
            if width * height > limit:
                raise ImageLoadError(path, f"decompression bomb ({width}x{height} pixels is more than "
                                           f"the limit of {limit})")
            img.seek(0)
            if target_size is not None and img.format == "JPEG":
                img.draft("RGB", (target_size, target_size))
            img.load()  # decode everything now, so truncation is caught here and not later
            oriented = ImageOps.exif_transpose(img)
            rgb = _to_rgb(oriented)
            if rgb is img:
                rgb = img.copy()  # detach from the file before it is closed
            rgb.load()
    except ImageLoadError:
        raise
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, struct.error...)
        raise ImageLoadError(path, _reason_for(exc)) from exc
    if rgb.mode != "RGB":
        raise ImageLoadError(path, f"cannot convert colour mode {rgb.mode} to RGB")
    return rgb


class LabelledImages(Dataset):
    """Images with a target row each: 1 positive, -1 negative, 0 unannotated.

    Files missing on disk are dropped at construction (a cheap stat each) and listed in `missing`,
    so a partly downloaded data set still trains (strict: the first one is an ImageLoadError). A file
    that exists but cannot be decoded is only found when it is read: then the item comes back as a
    zero image with ok=False (or, strict, ImageLoadError), and `collate_skipping_bad` removes it.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], targets: np.ndarray, labels: Sequence[str],
                 transform: Callable[[Image.Image], torch.Tensor], strict: bool = False,
                 decode_size: int | None = None):
        targets = np.asarray(targets)
        if targets.ndim != 2:
            raise ValueError(f"targets must be a 2-D [images, labels] matrix, got shape {targets.shape}")
        if targets.shape != (len(paths), len(labels)):
            raise ValueError(f"targets have shape {targets.shape}, expected ({len(paths)}, {len(labels)}) "
                             f"for {len(paths)} images and {len(labels)} labels")
        if targets.size and not np.isin(targets, (-1, 0, 1)).all():
            raise ValueError("targets must hold only 1 (positive), -1 (negative) and 0 (unannotated)")
        all_paths = [os.fspath(p) for p in paths]
        present = np.fromiter((os.path.isfile(p) for p in all_paths), dtype=bool, count=len(all_paths))
        self.missing: list[str] = [p for p, ok in zip(all_paths, present, strict=True) if not ok]
        self.paths: list[str] = [p for p, ok in zip(all_paths, present, strict=True) if ok]
        self.targets: np.ndarray = np.ascontiguousarray(targets[present], dtype=np.int8)
        self.labels: list[str] = list(labels)
        self.transform = transform
        self.strict = strict
        self.decode_size = decode_size
        self._blank: torch.Tensor | None = None
        if self.missing and strict:
            raise ImageLoadError(self.missing[0], f"file not found ({len(self.missing)} of {len(all_paths)} "
                                                  "images are missing; strict mode makes that fatal)")
        if self.missing:
            log.warning("%d of %d images are missing on disk and were left out (first: %s)",
                        len(self.missing), len(all_paths), self.missing[0])

    def __len__(self) -> int:
        return len(self.paths)

    def _blank_image(self) -> torch.Tensor:
        """A zero image shaped like the transform's output (learned once from a gray dummy image)."""
        if self._blank is None:
            probe = self.transform(Image.new("RGB", (64, 64), (128, 128, 128)))
            self._blank = torch.zeros_like(probe)
        return self._blank.clone()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        targets = torch.from_numpy(self.targets[index].copy())
        try:
            image = load_rgb(self.paths[index], target_size=self.decode_size)
        except ImageLoadError as exc:
            if self.strict:
                raise
            log.warning("skipping image: %s", exc)
            return self._blank_image(), targets, index, False
        return self.transform(image), targets, index, True

    def describe(self) -> dict[str, Any]:
        return {"images": len(self.paths), "labels": len(self.labels), "missing": len(self.missing)}


def collate_skipping_bad(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int, bool]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Stack the readable items; return the dataset indices of the unreadable ones for the caller to report."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    good = [item for item in batch if item[3]]
    bad = [int(item[2]) for item in batch if not item[3]]
    if not good:  # keep the shapes, so the caller can simply skip a batch of size 0
        image_shape, target_shape = batch[0][0].shape, batch[0][1].shape
        return (torch.zeros((0, *image_shape), dtype=batch[0][0].dtype),
                torch.zeros((0, *target_shape), dtype=batch[0][1].dtype),
                torch.zeros(0, dtype=torch.long), bad)
    images = torch.stack([item[0] for item in good])
    targets = torch.stack([item[1] for item in good])
    indices = torch.tensor([int(item[2]) for item in good], dtype=torch.long)
    return images, targets, indices, bad
