"""Photo files of the formats people's libraries hold beyond JPEG: HEIC (pillow-heif writes it) and a DNG.

The DNG is built by hand: a little-endian TIFF whose first IFD is a 16-bit Bayer mosaic (RGGB) with
the DNG tags LibRaw needs, and optionally a second IFD with an 8-bit RGB preview, the way cameras
embed their own rendering. The mosaic is red and the preview blue, so a test can tell which one it got.
"""

import struct
from pathlib import Path

import numpy as np
from PIL import Image

_FORMATS = {1: "B", 2: "B", 3: "H", 4: "I", 10: "i"}


def write_heic(path: Path, pixels: np.ndarray) -> Path:
    import pillow_heif

    pillow_heif.register_heif_opener()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="HEIF", quality=95)
    return path


def _ifd(entries: list[tuple[int, int, list]], offset: int, next_ifd: int) -> bytes:
    """One IFD at `offset`, its out-of-line values right after it."""
    entries = sorted(entries)
    table, extra = struct.pack("<H", len(entries)), b""
    values_at = offset + 2 + 12 * len(entries) + 4
    for tag, kind, values in entries:
        flat = [v for pair in values for v in pair] if kind == 10 else values
        payload = struct.pack(f"<{len(flat)}{_FORMATS[kind]}", *flat)
        if len(payload) <= 4:
            table += struct.pack("<HHI", tag, kind, len(values)) + payload.ljust(4, b"\0")
        else:
            table += struct.pack("<HHII", tag, kind, len(values), values_at + len(extra))
            extra += payload + b"\0" * (len(payload) % 2)
    return table + struct.pack("<I", next_ifd) + extra


def write_dng(path: Path, size: tuple[int, int] = (64, 96), preview: tuple[int, int] | None = None) -> Path:
    """A red RGGB mosaic of `size` (rows, cols); with `preview` (rows, cols), a blue RGB preview too."""
    rows, cols = size
    mosaic = np.full((rows, cols), 6000, dtype="<u2")
    mosaic[0::2, 0::2] = 50000  # the red sites
    raw = mosaic.tobytes()
    picture = b""
    if preview is not None:
        blue = np.zeros((*preview, 3), np.uint8)
        blue[..., 2] = 255
        picture = blue.tobytes()
    ifd0 = 8 + len(raw) + len(picture)
    ifd0 += ifd0 % 2
    text = lambda s: list(s.encode() + b"\0")  # noqa: E731
    mosaic_ifd = [
        (254, 4, [0]), (256, 4, [cols]), (257, 4, [rows]), (258, 3, [16]), (259, 3, [1]), (262, 3, [32803]),
        (271, 2, text("Test")), (272, 2, text("Synthetic")), (273, 4, [8]), (277, 3, [1]), (278, 4, [rows]),
        (279, 4, [len(raw)]), (284, 3, [1]), (33421, 3, [2, 2]), (33422, 1, [0, 1, 1, 2]),
        (50706, 1, [1, 4, 0, 0]), (50708, 2, text("Test Synthetic")), (50717, 4, [65535]),
        (50721, 10, [(1, 1), (0, 1), (0, 1), (0, 1), (1, 1), (0, 1), (0, 1), (0, 1), (1, 1)]), (50778, 3, [21]),
    ]
    first = _ifd(mosaic_ifd, ifd0, 0)
    second = b""
    if preview is not None:
        ifd1 = ifd0 + len(first) + len(first) % 2
        first = _ifd(mosaic_ifd, ifd0, ifd1)
        second = b"\0" * (len(first) % 2) + _ifd(
            [(254, 4, [1]), (256, 4, [preview[1]]), (257, 4, [preview[0]]), (258, 3, [8, 8, 8]), (259, 3, [1]),
             (262, 3, [2]), (273, 4, [8 + len(raw)]), (277, 3, [3]), (278, 4, [preview[0]]),
             (279, 4, [len(picture)]), (284, 3, [1])], ifd1, 0)
    data = (b"II*\0" + struct.pack("<I", ifd0) + raw + picture).ljust(ifd0, b"\0") + first + second
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
