"""Decoding photos into 8-bit RGB: what the app and the trainer both read photos with.

Real photo folders contain rotated phone pictures, CMYK scans, 16-bit PNGs, transparent icons,
animated GIFs and the odd broken or empty file. `load_rgb` turns all of these into plain RGB and
turns every failure into one exception type that names the file, so that a training run can skip
and report a bad image instead of dying in a DataLoader worker with a bare PIL traceback, and so
that the app can list it under the files it could not read.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# Phone photos: HEIC/HEIF through pillow-heif (or pi-heif), registered as a PIL opener so every
# decoder here reads them. Camera RAW through rawpy (LibRaw): the embedded preview the camera made,
# else a half-size demosaic, as digiKam and Immich show them.
# Bump when a change alters the pixels `load_rgb` gives for some file: the window's thumbnail cache keys on it,
# so a decoder fix redraws the thumbnails made before it.
DECODER_VERSION = 2

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".rw2", ".orf",
                          ".raf", ".pef", ".srw", ".rwl", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".x3f"})
RAW_PREVIEW_SIDE = 1024  # with no target size, a RAW's preview is used when its shorter side is at least this


def _register_heif() -> bool:
    for module in ("pillow_heif", "pi_heif"):
        try:
            heif = __import__(module)
            heif.register_heif_opener()
        except Exception:  # noqa: BLE001 - missing or broken native library: try the next, else no HEIC
            continue
        return True
    return False


_HEIF = _register_heif()


def heif_supported() -> bool:
    """Whether HEIC/HEIF photos can be decoded here (pillow-heif or pi-heif is installed)."""
    return _HEIF


def raw_supported() -> bool:
    """Whether camera RAW files can be decoded here (rawpy is installed; imported only when a RAW is read)."""
    return importlib.util.find_spec("rawpy") is not None

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


def load_rgb(path: str | os.PathLike, target_size: int | None = None, max_pixels: int | None = None,
             data: bytes | None = None) -> Image.Image:
    """Open any photo as 8-bit RGB, EXIF orientation applied, first frame of an animation.

    `target_size` lets the JPEG decoder skip detail we would throw away anyway (DCT scaling,
    `Image.draft`): the result is still at least `target_size` on both sides. `max_pixels` (default
    `pixel_limit()`) caps width * height. Any failure raises ImageLoadError naming the file.
    (Where other code sets PIL's ImageFile.LOAD_TRUNCATED_IMAGES, as the authors' release does,
    PIL fills a truncated file with grey instead of failing.)

    `data`, when given, is the file's content already read (the indexer hashes and decodes the same
    bytes); `path` then only names the file and tells its kind.
    """
    path = os.fspath(path)
    limit = max_pixels if max_pixels is not None else pixel_limit()
    source = path if data is None else io.BytesIO(data)
    try:
        if (os.path.getsize(path) if data is None else len(data)) == 0:
            raise ImageLoadError(path, "zero bytes (empty file)")
        if os.path.splitext(path)[1].lower() in RAW_SUFFIXES:
            return _load_raw(path, target_size, limit, source)
        with Image.open(source) as img:
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


# LibRaw's flip code -> the PIL transpose that undoes it (0: as stored)
_RAW_FLIPS = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}


def _load_raw(path: str, target_size: int | None, limit: int, source: str | io.BytesIO) -> Image.Image:
    """A camera RAW as RGB: its embedded preview when it is large enough, else a half-size demosaic.

    The preview is the camera's own rendering (its white balance and tone curve) and decodes in a
    few milliseconds; the demosaic (LibRaw, camera white balance, 8 bits) is for files whose preview
    is missing or smaller than asked. Half size is still 10+ MP for today's cameras.
    """
    try:
        import rawpy
    except ImportError as exc:
        raise ImageLoadError(path, "camera RAW file, and rawpy is not installed (pip install rawpy)") from exc
    try:
        with rawpy.imread(source) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            if width * height > limit:
                raise ImageLoadError(path, f"decompression bomb ({width}x{height} pixels is more than "
                                           f"the limit of {limit})")
            preview = _raw_preview(raw, raw.sizes.flip)
            if preview is not None and min(preview.size) >= (target_size or RAW_PREVIEW_SIDE):
                return preview
            rgb = Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8))
    except ImageLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - LibRaw's errors (not a RAW, unsupported camera, truncated)
        raise ImageLoadError(path, f"cannot decode camera RAW ({type(exc).__name__}: {exc})") from exc
    return rgb


def _raw_preview(raw, flip: int) -> Image.Image | None:
    """The RAW's embedded preview, upright, in RGB; None when it has none that PIL can read."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data)) as img:
                img.load()
                if img.getexif().get(0x0112, 1) != 1:  # the preview says its own orientation
                    return _to_rgb(ImageOps.exif_transpose(img))
                image = _to_rgb(img)
        except Exception:  # noqa: BLE001 - a damaged preview: demosaic instead
            return None
    elif thumb.format == rawpy.ThumbFormat.BITMAP:
        image = Image.fromarray(np.ascontiguousarray(thumb.data, dtype=np.uint8))
    else:
        return None
    transpose = _RAW_FLIPS.get(flip)
    return image.transpose(transpose) if transpose is not None else image
