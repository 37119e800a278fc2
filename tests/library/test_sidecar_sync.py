"""Sidecars follow the person's decisions: what this app wrote and a person has since rejected, or
that fell below its threshold, or whose label was deleted, leaves the sidecar on the next export;
every keyword and field another program wrote stays. exiftool and exiv2 read the result."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from mkt_desktop.library.library import Library
from mkt_desktop.library.xmp import read_subjects, sidecar_path, sync_subjects, write_subjects

from .test_xmp import DARKTABLE_SIDECAR, DC, DIGIKAM, DIGIKAM_SIDECAR, LR, bag, canonical

OURS = "{http://ns.mkt-photo-tagger.org/1.0/}WrittenKeywords"


def _photo(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def _tree(path):
    return ET.parse(path, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()


def test_a_keyword_taken_back_leaves_every_list_and_the_rest_is_what_darktable_wrote(tmp_path):
    photo = _photo(tmp_path / "IMG_0001.jpg", 1)
    sidecar = sidecar_path(photo)
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    original = _tree(sidecar)

    sync_subjects(photo, ["sunset", "holiday", "sea"])
    assert bag(sidecar, LR, "hierarchicalSubject") == ["places|italy", "holiday", "sunset", "sea"]
    sync_subjects(photo, ["sea"])  # "sunset" rejected; "holiday" was darktable's before it was ours
    assert bag(sidecar, DC, "subject") == ["holiday", "darktable|format|jpg", "sea"]
    assert bag(sidecar, LR, "hierarchicalSubject") == ["places|italy", "holiday", "sea"]
    assert sync_subjects(photo, []) == sidecar  # everything of ours taken back...
    assert sync_subjects(photo, []) is None  # ...once
    assert canonical(_tree(sidecar)) == canonical(original)  # exactly what darktable had


def test_digikam_tags_and_the_packet_survive_a_take_back(tmp_path):
    photo = _photo(tmp_path / "b.png", 2)
    sidecar = sidecar_path(photo)
    sidecar.write_text(DIGIKAM_SIDECAR, encoding="utf-8")
    write_subjects(photo, ["cat", "dog"])
    sync_subjects(photo, ["dog"])
    assert bag(sidecar, DIGIKAM, "TagsList") == ["People/Anna", "dog"]
    assert read_subjects(sidecar) == ["dog"]
    text = sidecar.read_text(encoding="utf-8")
    assert "<?xpacket begin=" in text and 'Rating="5"' in text.replace("xmp:Rating", "Rating")


def test_no_keywords_and_no_sidecar_writes_no_file(tmp_path):
    photo = _photo(tmp_path / "c.jpg", 3)
    assert sync_subjects(photo, []) is None and not sidecar_path(photo).exists()


def test_export_takes_back_rejected_deleted_and_below_threshold_labels(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    a, b = _photo(photos / "a.jpg", 1), _photo(photos / "b.jpg", 2)
    sidecar_path(a).write_text(DIGIKAM_SIDECAR, encoding="utf-8")  # digiKam was here first
    lib = Library(db_path=tmp_path / "db" / "library.sqlite", model=tiny_bundle, vocabulary=False)
    lib.index([photos])
    lib.set_tag(a, "lighthouse", "accepted")
    lib.set_tag(a, "harbour", "accepted")
    lib.add_label("fog", threshold=-1e9)  # above threshold everywhere
    assert lib.export_xmp() == (2, [])
    assert sorted(read_subjects(sidecar_path(a))) == ["fog", "harbour", "lighthouse"]
    assert read_subjects(sidecar_path(b)) == ["fog"]

    lib.set_tag(a, "lighthouse", "rejected")
    lib.set_threshold("fog", 1e9)  # raised above every photo
    assert lib.export_xmp() == (2, [])
    assert read_subjects(sidecar_path(a)) == ["harbour"] and read_subjects(sidecar_path(b)) == []
    lib.remove_label("harbour")
    assert lib.export_xmp() == (1, [])
    assert read_subjects(sidecar_path(a)) == []
    assert bag(sidecar_path(a), DIGIKAM, "TagsList") == ["People/Anna"]  # digiKam's tag stayed throughout
    assert 'Rating="5"' in sidecar_path(a).read_text(encoding="utf-8")
    assert ET.parse(sidecar_path(a)).getroot().find(f".//{OURS}") is None
    assert lib.export_xmp() == (0, [])  # nothing left to change


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install "
                    f"{'libimage-exiftool-perl' if name == 'exiftool' else 'exiv2'}; `make test-tools`)")
    return path


def _synced_darktable_sidecar(tmp_path):
    photo = _photo(tmp_path / "IMG_0001.jpg", 1)
    sidecar = sidecar_path(photo)
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    sync_subjects(photo, ["sunset", "Möwe", "海鸥"])
    sync_subjects(photo, ["Möwe", "海鸥"])
    return sidecar


def test_exiftool_reads_the_sidecar(tmp_path):
    exiftool = _tool("exiftool")
    sidecar = _synced_darktable_sidecar(tmp_path)
    out = subprocess.run([exiftool, "-j", "-charset", "UTF8", "-XMP:Subject", "-XMP:HierarchicalSubject",
                          "-XMP:Rating", "-XMP:DateTimeOriginal", "-XMP-mktpt:all", str(sidecar)],
                         capture_output=True, text=True, check=True)
    (data,) = json.loads(out.stdout)
    assert data["Subject"] == ["holiday", "darktable|format|jpg", "Möwe", "海鸥"]
    assert data["HierarchicalSubject"] == ["places|italy", "holiday", "Möwe", "海鸥"]
    assert data["Rating"] == 4 and data["DateTimeOriginal"] == "2019:07:14 18:30:05"
    assert data["WrittenKeywords"] == ["Möwe", "海鸥"]
    assert "Warning" not in data and "Error" not in data


def test_exiv2_reads_the_sidecar(tmp_path):
    exiv2 = _tool("exiv2")
    sidecar = _synced_darktable_sidecar(tmp_path)
    out = subprocess.run([exiv2, "-px", str(sidecar)], capture_output=True, text=True, check=True)
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert lines["Xmp.dc.subject"].rstrip().endswith("holiday, darktable|format|jpg, Möwe, 海鸥")
    assert lines["Xmp.xmp.Rating"].rstrip().endswith("4")
    assert "sunset" not in out.stdout and not out.stderr.strip()

