"""5 and 8. Exports write what they can and report the rest; no formula, no NaN, no replaced link, no leftovers."""

import csv
import json
import os

import pytest

from mkt_desktop.library.library import Library
from mkt_desktop.library.xmp import read_subjects, sidecar_path
from tests.faults.helpers import KILLED, cli, killed_cli, photos, sql, strict_json

SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>
<rdf:li>kept</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>
"""


@pytest.fixture
def tagged(tmp_path, tiny_bundle):
    """Three indexed photos, each with an accepted label, and the command line's common arguments."""
    db = tmp_path / "lib.sqlite"
    files = photos(tmp_path / "photos", 3)
    lib = Library(db_path=db, model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    for path in files:
        lib.set_tag(path, "harbour", "accepted")
    return lib, files, ["--db", str(db), "--model", tiny_bundle]


def test_a_label_an_older_version_let_in_is_left_out_of_xmp_and_everything_else_is_written(tagged, tmp_path):
    lib, files, common = tagged
    sql(lib.db_path, "INSERT INTO labels (text, key, source, created) VALUES (?, ?, 'user', '2026-01-01')",
        "bad\uffff", "bad\uffff")
    sql(lib.db_path, "INSERT INTO tags (photo_id, label_id, status, updated) SELECT p.id, l.id, 'accepted', "
                     "'2026-01-01' FROM photos p, labels l WHERE l.text = ? AND p.path = ?", "bad\uffff", str(files[0]))
    out_csv, out_json = tmp_path / "tags.csv", tmp_path / "tags.json"
    run = cli("export", "--xmp", "--csv", str(out_csv), "--json-file", str(out_json), "--json", *common)
    assert run.returncode == 0, run.stderr
    result = strict_json(run.stdout)
    # the photo it was accepted on is named (photos it now tags from what it learned may be too), for that reason only
    assert result["xmp_written"] == 3 and str(files[0]) in {p["path"] for p in result["xmp_problems"]}
    assert all("U+FFFF" in p["reason"] for p in result["xmp_problems"]) and "U+FFFF" in run.stderr
    assert all("harbour" in read_subjects(sidecar_path(f)) for f in files)
    assert "bad\uffff" in out_csv.read_text(encoding="utf-8")  # CSV and JSON can hold it
    assert len(json.loads(out_json.read_text(encoding="utf-8"))) == 3


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tagged, tmp_path):
    lib, files, common = tagged
    formulas = ["=HYPERLINK(\"http://evil\")", "+1+1", "-2+3", "@SUM(A1)"]
    for text in formulas:
        lib.set_tag(files[1], text, "accepted")
    out = tmp_path / "tags.csv"
    assert cli("export", "--csv", str(out), *common).returncode == 0
    with open(out, encoding="utf-8", newline="") as file:
        cells = [cell for row in csv.reader(file) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "@")]
    assert not [cell for cell in cells if cell.startswith("-") and not _number(cell)]  # negative scores stay
    assert {"'" + text for text in formulas} <= set(cells)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_json_output_is_strict_json_whatever_the_database_holds(tagged):
    lib, files, common = tagged
    run = cli("labels", "add", "red kite", "--threshold", "inf", *common)
    assert run.returncode == 1 and "finite" in run.stderr
    assert cli("labels", "add", "red kite", "--threshold", "nan", *common).returncode == 1
    sql(lib.db_path, "UPDATE labels SET threshold = 9e999 WHERE text = 'harbour'")  # what an older version stored
    for command in (["labels", "list"], ["tags", str(files[0])], ["search", "harbour"]):
        run = cli(*command, "--json", *common)
        assert run.returncode == 0, run.stderr
        strict_json(run.stdout)  # never NaN or Infinity


def test_a_symlinked_sidecar_is_followed_and_stays_a_link(tagged, tmp_path):
    lib, files, _ = tagged
    real = tmp_path / "sidecars" / "shared.xmp"
    real.parent.mkdir()
    real.write_text(SIDECAR)
    link = sidecar_path(files[0])
    link.symlink_to(real)
    dangling = sidecar_path(files[1])
    dangling.symlink_to(tmp_path / "nowhere.xmp")
    written, problems = lib.export_xmp()
    assert link.is_symlink() and read_subjects(real) == ["kept", "harbour"]
    assert dangling.is_symlink() and not (tmp_path / "nowhere.xmp").exists()  # refused, not replaced
    assert [p for p, _ in problems] == [str(files[1])] and "symbolic link" in problems[0][1]
    assert written == 2


def test_a_killed_export_leaves_no_temporary_file_after_the_next_one(tagged, tmp_path):
    lib, files, common = tagged
    out = tmp_path / "exports" / "tags.csv"
    out.parent.mkdir()
    for count in range(1, 20):  # killed before a rename: the store's and score columns' own come first
        run = killed_cli("before-replace", count, "export", "--csv", str(out), *common)
        assert run.returncode == KILLED, "the export's rename was never reached"
        if [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]:
            break  # killed before the CSV's rename: its temporary file is left
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    old_style = out.parent / f".{out.name}.0123abcd.tmp"  # what a version before this one left
    old_style.write_text("half")
    assert cli("export", "--csv", str(out), "--xmp", *common).returncode == 0
    for folder in (out.parent, files[0].parent):
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert out.read_text(encoding="utf-8").startswith("path,label,score,confidence,status")


def test_a_concurrent_writers_temporary_file_is_left_alone(tmp_path):
    from mkt_core.runtime.files import remove_stale_temporaries

    mine = tmp_path / f".tags.csv.{os.getpid()}-0123abcd.tmp"  # a live process is writing it
    mine.write_text("in progress")
    assert remove_stale_temporaries(tmp_path) == 0 and mine.exists()
