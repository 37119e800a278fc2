"""Thresholds that hold: a label the model does not know tags nothing, in a library of one photo or
of many, and a label's count does not move when unrelated photos join (benchmarks/thresholds.py
measures the same on more photos)."""

import csv
import json
from collections import Counter

from mkt_core.synthetic.world import write_demo_photos, write_off_world_photos
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.library import Library
from mkt_desktop.library.xmp import read_photo_subjects

UNKNOWN = ("qwxz", "a photo of nothing", "dog", "a person")


def _library(tmp_path, name="library") -> Library:
    return Library(db_path=tmp_path / name / "library.sqlite", model="demo", vocabulary=False)


def test_a_one_photo_library_tags_nothing_the_model_does_not_know(tmp_path):
    write_demo_photos(tmp_path / "photo", 1, seed=23)
    lib = _library(tmp_path)
    lib.index([tmp_path / "photo"])
    for text in UNKNOWN:
        lib.add_label(text)
    assert {info.text: info.above_threshold for info in lib.labels()} == dict.fromkeys(UNKNOWN, 0)
    assert lib.export_xmp() == (0, [])
    assert read_photo_subjects(tmp_path / "photo" / "scene_00000.jpg") == []
    result = lib.search("qwxz")
    assert result.note == "this model does not seem to know 'qwxz': no photo scores above what random text scores here"
    assert 0 < result.hits[0].confidence < 0.2 and result.threshold_confidence == 0.5


def test_real_labels_are_found_with_confidences_and_unrelated_photos_change_no_count(tmp_path):
    csv_path = write_demo_photos(tmp_path / "photos" / "scenes", 40, seed=21)
    truth = {row["path"]: set(row["labels"].split("|")) for row in csv.DictReader(csv_path.open())}
    lib = _library(tmp_path)
    lib.index([tmp_path / "photos"])
    labels = sorted({label for labels in truth.values() for label in labels})
    for text in labels:
        lib.add_label(text)
    def scene_counts():
        return Counter(pl.label for path, pls in lib.photo_tags().items() if "/scenes/" in path for pl in pls)

    before = scene_counts()
    tags = lib.photo_tags()
    tagged = [(path.rsplit("/", 1)[1], pl.label) for path, pls in tags.items() for pl in pls]
    right = sum(label in truth[name] for name, label in tagged)
    assert len(tagged) >= 5 and right / len(tagged) >= 0.7  # most stars are true
    hits = lib.search(labels[0], limit=50).hits
    confidences = [h.confidence for h in hits]
    assert confidences == sorted(confidences, reverse=True) and all(0 < c < 1 for c in confidences)

    write_off_world_photos(tmp_path / "photos" / "ordinary", 20)
    lib.index()
    assert lib.photo_count() == 60 and scene_counts() == before
    for text in UNKNOWN:
        assert "does not seem to know" in lib.search(text).note


def test_a_threshold_set_as_a_confidence(tmp_path, capsys):
    write_demo_photos(tmp_path / "photos", 12, seed=2)
    db = str(tmp_path / "cli" / "library.sqlite")
    common = ["--db", db, "--json"]
    assert mkt_desktop(["index", str(tmp_path / "photos"), *common]) == 0
    capsys.readouterr()
    assert mkt_desktop(["labels", "add", "red star", *common]) == 0
    automatic = json.loads(capsys.readouterr().out)
    row = next(r for r in automatic if r["label"] == "red star")
    assert row["automatic"] and row["threshold_confidence"] == 0.5
    assert mkt_desktop(["labels", "threshold", "red star", "--confidence", "90", *common]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["label"] == "red star")
    assert not row["automatic"] and abs(row["threshold_confidence"] - 0.9) < 1e-6
