"""HEIC/HEIF and camera RAW decode like any photo: upright RGB, or an error that names the file."""

import numpy as np
import pytest

from mkt_core.runtime.images import ImageLoadError, heif_supported, load_rgb, raw_supported
from mkt_desktop.library.scanner import is_photo_name
from tests.photo_formats import write_dng, write_heic


def test_the_formats_are_installed_and_listed():
    assert heif_supported() and raw_supported()  # pillow-heif and rawpy are dependencies
    for name in ("IMG_0001.HEIC", "a.heif", "b.dng", "DSC_0001.NEF", "c.cr2", "d.CR3", "e.arw", "f.rw2", "g.orf",
                 "h.raf"):
        assert is_photo_name(name), name
    assert not is_photo_name("b.dng.xmp") and not is_photo_name("IMG_0001.aae")


def test_a_heic_photo_decodes(tmp_path):
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :32] = (220, 30, 30)
    pixels[:, 32:] = (30, 30, 220)
    image = load_rgb(write_heic(tmp_path / "IMG_0001.HEIC", pixels))
    assert image.mode == "RGB" and image.size == (64, 48)
    got = np.asarray(image).astype(int)
    assert np.abs(got[:, 4:28] - (220, 30, 30)).max() < 30 and np.abs(got[:, 36:60] - (30, 30, 220)).max() < 30


def test_a_raw_gives_its_embedded_preview_when_it_is_large_enough(tmp_path):
    path = write_dng(tmp_path / "a.dng", size=(64, 96), preview=(32, 48))
    image = load_rgb(path, target_size=32)
    assert image.size == (48, 32)
    assert tuple(np.asarray(image).reshape(-1, 3).mean(0).round()) == (0, 0, 255)  # the camera's (blue) preview


def test_a_raw_without_a_large_enough_preview_is_demosaiced(tmp_path):
    for path in (write_dng(tmp_path / "none.dng"), write_dng(tmp_path / "small.dng", preview=(16, 24))):
        image = load_rgb(path, target_size=32)
        assert image.size == (48, 32)  # half size
        red, green, blue = np.asarray(image).reshape(-1, 3).mean(0)
        assert red > 200 and red > 2 * max(green, blue), path.name  # the (red) mosaic, not the blue preview


def test_a_broken_raw_names_the_file(tmp_path):
    path = tmp_path / "DSC_0002.NEF"
    path.write_bytes(b"not a raw file" * 100)
    with pytest.raises(ImageLoadError, match="DSC_0002.NEF.*camera RAW"):
        load_rgb(path)
