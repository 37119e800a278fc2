"""The grid and the photo view show HEIC and RAW photos, which Qt cannot read itself."""

import numpy as np

from mkt_desktop.ui.photo_grid import ThumbnailJob, ThumbnailSignals
from tests.photo_formats import write_dng, write_heic


def _thumbnail(path, size, cache_dir=None):
    signals, got = ThumbnailSignals(), []
    signals.loaded.connect(lambda _path, _size, image: got.append(image))
    ThumbnailJob(str(path), signals, size, cache_dir).run()
    return got[0]


def test_heic_and_raw_photos_get_thumbnails(qtbot, tmp_path):
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[..., 1] = 200
    heic = _thumbnail(write_heic(tmp_path / "IMG_0001.HEIC", pixels), 32, tmp_path / "cache")
    assert not heic.isNull() and (heic.width(), heic.height()) == (32, 24)
    assert heic.pixelColor(16, 12).green() > 150
    assert list((tmp_path / "cache").rglob("*.jpg"))  # cached like any other thumbnail

    raw = _thumbnail(write_dng(tmp_path / "DSC_0001.dng", preview=(32, 48)), 24)
    assert (raw.width(), raw.height()) == (24, 16) and raw.pixelColor(12, 8).blue() > 200  # the camera's preview
    broken = tmp_path / "DSC_0002.NEF"
    broken.write_bytes(b"\0" * 100)
    assert _thumbnail(broken, 24).isNull()
