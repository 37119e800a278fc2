"""Small files for the data tests: images written with PIL, h5 label files, pickled name lists."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def write_image(path: str | os.PathLike, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 20),
                fmt: str | None = None) -> str:
    """A plain-coloured image; the format follows the suffix unless `fmt` is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return str(path)


def write_noise_jpeg(path: str | os.PathLike, size: tuple[int, int] = (64, 48), seed: int = 0) -> str:
    """A JPEG full of noise, so that its compressed data is long enough to cut in half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)
    return str(path)


def write_random_bytes(path: str | os.PathLike, n: int = 300, seed: int = 1) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes())
    return str(path)


def write_h5(path: str | os.PathLike, datasets: dict[str, np.ndarray]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value, dtype=value.dtype, compression="gzip")


def write_pickle(path: str | os.PathLike, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
