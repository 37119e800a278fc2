"""CSV and JSON exports read back with the standard csv and json modules; the default vocabulary file."""

import csv
import json
import os
from pathlib import Path

import pytest

from mkt_core.runtime.files import atomic_file
from mkt_desktop.library.export import CSV_COLUMNS, write_csv, write_json
from mkt_desktop.library.labels import normalise_label

VOCABULARY = Path(__file__).resolve().parents[2] / "assets" / "vocabulary" / "default.txt"

ROWS = [
    {"path": "/photos/2024/beach, day 1/IMG_0001.jpg", "labels": [
        {"label": "beach", "score": 0.8125, "confidence": 0.9375, "status": "accepted"},
        {"label": "sunset", "score": 0.1 + 0.2, "confidence": 0.5, "status": "auto"},  # 0.3000...04 stays
        {"label": 'dog "Rex", the\nsecond', "score": -1.5e-7, "confidence": 1e-9, "status": "rejected"},
    ]},
    {"path": "/photos/ünï/猫.png", "labels": [
        {"label": "猫", "score": None, "confidence": None, "status": "accepted"},  # accepted by hand, never scored
        {"label": "café", "score": 3, "confidence": 0.25, "status": "auto"},
    ]},
    {"path": "/photos/empty.jpg", "labels": []},
]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_csv_has_one_line_per_photo_and_label_and_reads_back(tmp_path):
    out = tmp_path / "tags.csv"
    write_csv(ROWS, out)

    with open(out, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == CSV_COLUMNS == ("path", "label", "score", "confidence", "status")
        lines = list(reader)

    expected = [(row["path"], item["label"], item["score"], item["confidence"], item["status"])
                for row in ROWS for item in row["labels"]]
    got = [(line["path"], line["label"], float(line["score"]) if line["score"] else None,
            float(line["confidence"]) if line["confidence"] else None, line["status"]) for line in lines]
    assert got == expected  # scores exactly, commas, quotes, newlines and any script intact
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")  # no BOM
    assert no_temp_files(tmp_path)


def test_json_is_the_list_of_rows_and_reads_back(tmp_path):
    out = tmp_path / "tags.json"
    write_json(ROWS, out)

    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == [{**row, "labels": [{**item, "score": None if item["score"] is None else float(item["score"])}
                                       for item in row["labels"]]} for row in ROWS]
    assert "猫" in out.read_text(encoding="utf-8")  # readable text, not \u escapes


def test_json_writes_only_the_documented_keys(tmp_path):
    out = tmp_path / "tags.json"
    write_json([{"path": "a.jpg", "id": 7, "labels": [{"label": "dog", "score": 0.5, "status": "auto", "x": 1}]}], out)
    assert json.loads(out.read_text(encoding="utf-8")) == [
        {"path": "a.jpg", "labels": [{"label": "dog", "score": 0.5, "confidence": None, "status": "auto"}]}]


@pytest.mark.parametrize("writer", [write_csv, write_json])
@pytest.mark.parametrize(("bad", "message"), [
    ({"path": "b.jpg", "labels": [{"label": "dog", "score": 0.5, "status": "maybe"}]}, "status 'maybe'"),
    ({"path": "b.jpg", "labels": [{"label": "dog", "score": float("nan"), "status": "auto"}]}, "not a finite number"),
    ({"path": "b.jpg", "labels": [{"label": "dog", "score": "high", "status": "auto"}]}, "not a finite number"),
    ({"path": "b.jpg", "labels": [{"label": "dog", "score": 1.0, "confidence": float("inf"), "status": "auto"}]},
     "confidence inf, not a finite number"),
    ({"labels": []}, "needs a 'path'"),
])
def test_a_bad_row_leaves_the_previous_export_untouched(tmp_path, writer, bad, message):
    out = tmp_path / "tags.out"
    out.write_text("previous export\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        writer([ROWS[0], bad], out)
    assert out.read_text(encoding="utf-8") == "previous export\n"
    assert no_temp_files(tmp_path)


def test_replacing_an_export_keeps_its_permissions(tmp_path):
    out = tmp_path / "tags.csv"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o640)
    write_csv(ROWS, out)
    assert (out.stat().st_mode & 0o777) == 0o640
    assert out.read_text(encoding="utf-8").startswith("path,label,score,confidence,status")


def test_atomic_file_writes_nothing_when_the_block_fails(tmp_path):
    out = tmp_path / "never.bin"
    with pytest.raises(RuntimeError), atomic_file(out) as file:
        file.write(b"half")
        raise RuntimeError("stopped halfway")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_new_export_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json([], tmp_path / "a.json")
    finally:
        os.umask(umask)
    assert ((tmp_path / "a.json").stat().st_mode & 0o777) == 0o644
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == []


def test_default_vocabulary_loads_with_no_blanks_or_duplicates():
    lines = VOCABULARY.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "the file ends with a newline"
    labels = lines[:-1]
    assert 250 <= len(labels) <= 400
    assert all(label.strip() for label in labels), "no blank lines"
    assert all(label == normalise_label(label) == label.lower() for label in labels), "trimmed, lowercase"
    assert len({label.casefold() for label in labels}) == len(labels), "no duplicates"
    everyday = {"dog", "cat", "beach", "sunset", "birthday cake", "mountain", "snow", "car", "bicycle", "flower"}
    assert everyday <= set(labels)
