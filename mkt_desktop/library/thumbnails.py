"""Pictures for the screen of photos Qt cannot read itself: HEIC/HEIF and camera RAW.

The window decodes JPEG, PNG and the like with Qt's own readers (fast, reduced-size decoding).
Qt ships no HEIF or RAW reader, and its TIFF reader would show a RAW's tiny first-IFD thumbnail,
so those go through the decoder that indexes them (`mkt_core.runtime.images.load_rgb`): the
grid shows what the model saw.
"""

import os

import numpy as np
from PIL import Image

from mkt_core.runtime.images import HEIF_SUFFIXES, RAW_SUFFIXES, ImageLoadError, load_rgb


def needs_own_decoder(path: str) -> bool:
    """True for the formats the window must not leave to Qt (HEIC/HEIF, camera RAW)."""
    return os.path.splitext(path)[1].lower() in HEIF_SUFFIXES | RAW_SUFFIXES


def decode_thumbnail(path: str, size: int) -> np.ndarray | None:
    """The photo upright, fitted in `size` x `size`, as RGB uint8 [h, w, 3]; None when it cannot be read."""
    try:
        image = load_rgb(path, target_size=size)
    except ImageLoadError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
