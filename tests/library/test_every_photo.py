"""Every photo a person has: names that are not UTF-8 are indexed, kept byte for byte and shown
readably; thumbnails come from the decoder indexing uses (16-bit, CMYK, palette, alpha, EXIF)."""

import csv
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.library import Library
from mkt_desktop.library.thumbnails import decode_thumbnail, needs_own_decoder
from mkt_desktop.library.xmp import read_subjects, sidecar_path


def _bad_names(tmp_path: Path) -> tuple[str, str]:
    """A photo named b"bad-\\xff-name.jpg" and one in a folder named b"caf\\xe9" (Latin-1), as str paths."""
    base = os.fsencode(tmp_path / "photos")
    os.makedirs(os.path.join(base, b"caf\xe9"))
    paths = []
    for seed, name in enumerate((b"bad-\xff-name.jpg", b"caf\xe9/menu.jpg")):
        pixels = np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)
        try:
            with open(os.path.join(base, name), "wb") as file:
                Image.fromarray(pixels).save(file, "JPEG")
        except OSError as exc:
            pytest.skip(f"this file system does not take non-UTF-8 names: {exc}")
        paths.append(os.fsdecode(os.path.join(base, name)))
    pixels[:, :20] = 255
    Image.fromarray(pixels).save(tmp_path / "photos" / "plain.jpg")
    return paths[0], paths[1]


def test_a_photo_whose_name_is_not_utf8_is_indexed_tagged_and_shown_readably(tmp_path, tiny_bundle, capsys):
    bad, in_bad_folder = _bad_names(tmp_path)
    db = tmp_path / "db" / "library.sqlite"
    lib = Library(db_path=db, model=tiny_bundle, vocabulary=False)
    report = lib.index([tmp_path / "photos"])
    assert report.indexed == 3 and report.failed == 0, report.failures
    assert {p for _, p in lib.photos()} == {bad, in_bad_folder, str(tmp_path / "photos" / "plain.jpg")}
    again = lib.index([os.path.dirname(in_bad_folder)])  # a folder so named can be a library folder
    assert again.failed == 0 and again.indexed == 0
    assert os.path.dirname(in_bad_folder) in lib.folders()

    lib.set_tag(bad, "lighthouse", "accepted")  # tagged by its own path
    assert lib.export_xmp() == (1, [])
    assert read_subjects(sidecar_path(bad)) == ["lighthouse"]
    assert os.fsencode(sidecar_path(bad)).endswith(b"bad-\xff-name.jpg.xmp")

    with sqlite3.connect(db) as conn:  # stored losslessly: the very bytes of the name
        stored = {row[0] for row in conn.execute("SELECT path FROM photos")}
    assert os.fsencode(bad) in stored and os.fsencode(in_bad_folder) in stored
    again = Library(db_path=db, model=tiny_bundle, vocabulary=False)  # and read back as the same path
    assert bad in {p for _, p in again.photos()} and os.path.exists(again.search("lighthouse").hits[0].path)

    common = ["--db", str(db), "--model", tiny_bundle]
    assert mkt_desktop(["search", "lighthouse", "--limit", "5", *common]) == 0
    assert "bad-\\xff-name.jpg" in capsys.readouterr().out  # readable, never a crash on printing
    assert mkt_desktop(["search", "lighthouse", "--json", *common]) == 0
    assert any(h["path"].endswith("caf\\xe9/menu.jpg") for h in json.loads(capsys.readouterr().out)["hits"])
    out_csv = tmp_path / "tags.csv"
    assert mkt_desktop(["export", "--csv", str(out_csv), *common]) == 0
    with out_csv.open(encoding="utf-8") as f:
        assert any(row["path"].endswith("bad-\\xff-name.jpg") for row in csv.DictReader(f))


def test_folders_a_nas_leaves_are_skipped_by_default_and_walked_when_asked(tmp_path, tiny_bundle):
    pixels = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for folder in ("2024", "@eaDir/2024", ".thumbnails", "#recycle", ".git"):
        (tmp_path / "photos" / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(tmp_path / "photos" / folder / "x.jpg")
    lib = Library(db_path=tmp_path / "a" / "library.sqlite", model=tiny_bundle, vocabulary=False)
    lib.index([tmp_path / "photos"])
    assert [Path(p).parent.name for _, p in lib.photos()] == ["2024"]
    everything = Library(db_path=tmp_path / "b" / "library.sqlite", model=tiny_bundle, vocabulary=False,
                         skip_folders=[])
    assert everything.index([tmp_path / "photos"]).reused == 4  # byte-identical copies of one photo


def _exif_rotated(path: Path) -> Path:
    """A 40 x 20 landscape image stored with EXIF orientation 6 (rotate 90 degrees clockwise to view)."""
    image = Image.new("RGB", (40, 20), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 10, 20))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    return path


def test_thumbnails_look_right_whatever_the_pixel_format(tmp_path):
    wide = np.full((30, 40), 40_000, dtype=np.uint16)  # 16-bit grey at 61 %: Qt's reader shows it black
    Image.fromarray(wide).save(tmp_path / "16bit.png")
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", "JPEG", quality=95)  # red
    palette = Image.new("P", (40, 30), 1)
    palette.putpalette([0, 0, 0, 20, 200, 20] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)  # fully transparent: white, not black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    _exif_rotated(tmp_path / "rotated.jpg")

    def colour(name):
        assert needs_own_decoder(str(tmp_path / name))  # the grid leaves none of them to Qt
        pixels = decode_thumbnail(str(tmp_path / name), 16)
        assert pixels.dtype == np.uint8 and pixels.shape[2] == 3 and max(pixels.shape[:2]) == 16
        return pixels.reshape(-1, 3).mean(axis=0)

    assert np.allclose(colour("16bit.png"), 40_000 / 257, atol=2)
    assert np.allclose(colour("cmyk.jpg"), (255, 0, 0), atol=12)
    assert np.allclose(colour("palette.png"), (20, 200, 20), atol=2)
    assert np.allclose(colour("alpha.png"), (255, 255, 255), atol=1)
    rotated = decode_thumbnail(str(tmp_path / "rotated.jpg"), 16)
    assert rotated.shape[:2] == (16, 8)  # portrait, as a viewer shows it
    top = rotated[:3].reshape(-1, 3).mean(axis=0).astype(int)
    assert top[2] > 150 and top[0] < 100  # the blue band, left in the file, is on top once rotated


def test_a_photo_whose_name_is_not_utf8_gets_its_thumbnail_and_a_broken_one_none(tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"bad-\xff.png")
    try:
        with open(name, "wb") as file:
            Image.fromarray(np.full((30, 40), 40_000, dtype=np.uint16)).save(file, "PNG")
    except OSError as exc:
        pytest.skip(f"this file system does not take non-UTF-8 names: {exc}")
    pixels = decode_thumbnail(os.fsdecode(name), 32)
    assert pixels.shape == (24, 32, 3) and abs(pixels.mean() - 40_000 / 257) < 3
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert decode_thumbnail(str(tmp_path / "broken.png"), 32) is None
