"""A library of the formats people really have: phone HEIC, camera RAW beside their JPEGs."""

from pathlib import Path

import numpy as np
from PIL import Image

from mkt_desktop.library.library import Library
from tests.photo_formats import write_dng, write_heic


def test_a_mixed_format_library_indexes_every_readable_file(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    pixels = lambda: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)  # noqa: E731
    photos.mkdir()
    Image.fromarray(pixels()).save(photos / "a.jpg")
    Image.fromarray(pixels()).save(photos / "b.png")
    write_heic(photos / "phone" / "IMG_0001.HEIC", pixels())
    write_heic(photos / "phone" / "IMG_0002.heif", pixels())
    write_dng(photos / "camera" / "DSC_0001.dng", preview=(32, 48))
    write_dng(photos / "camera" / "DSC_0002.DNG")
    (photos / "camera" / "DSC_0003.NEF").write_bytes(b"cut short by a card reader" * 40)
    (photos / "camera" / "DSC_0001.dng.xmp").write_text("<x/>")  # a sidecar, not a photo
    lib = Library(db_path=tmp_path / "library.sqlite", model=tiny_bundle, vocabulary=False)
    report = lib.index([photos])
    assert report.indexed == 6
    failed = {Path(path).name: reason for path, reason in lib.failures()}
    assert list(failed) == ["DSC_0003.NEF"] and "camera RAW" in failed["DSC_0003.NEF"]
    hits, _ = lib.search("red star", limit=10)
    assert {Path(h.path).suffix.lower() for h in hits} == {".jpg", ".png", ".heic", ".heif", ".dng"}
