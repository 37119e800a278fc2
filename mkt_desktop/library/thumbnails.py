"""Pictures for the screen, from the decoder that indexes the photos.

Qt's own readers show a 16-bit PNG black, ignore a CMYK JPEG's inversion, cannot open a file whose
name is not UTF-8, and ship no HEIF or RAW reader (its TIFF reader would show a RAW's tiny first-IFD
thumbnail). So every thumbnail goes through `mkt_core.runtime.images.load_rgb` (EXIF rotation,
CMYK, 16-bit, palette, alpha over white, first frame, JPEG draft mode for speed): the grid shows
what the model saw.
"""

import numpy as np
from PIL import Image

from mkt_core.runtime.images import DECODER_VERSION as _LOAD_RGB_VERSION
from mkt_core.runtime.images import ImageLoadError, load_rgb

# What made a thumbnail: the indexer's decoder and the resizing below (bump the second when it changes).
DECODER_VERSION = f"load_rgb-{_LOAD_RGB_VERSION}.lanczos-1"


def needs_own_decoder(path: str) -> bool:
    """Whether the window must not leave this photo to Qt: true of every photo (see the docstring)."""
    return True


def decode_thumbnail(path: str, size: int) -> np.ndarray | None:
    """The photo upright, fitted in `size` x `size`, as RGB uint8 [h, w, 3]; None when it cannot be read."""
    try:
        image = load_rgb(path, target_size=size)
    except ImageLoadError:
        return None
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
