"""The dataset / collate pair every split in this package uses; decoding itself is `mkt_core.runtime.images`."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mkt_core.runtime.images import ImageLoadError, load_rgb

log = logging.getLogger(__name__)


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
