"""A library that notices damage and heals: each kind of damage to the embedding store or the
database is reported in one line naming the file, and the next index run (or `mkt-desktop check`)
brings back every photo's embedding; two index runs at once on a new library both finish."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkt_core.runtime.store import StoreDamaged
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.db import DatabaseError
from mkt_desktop.library.library import Library

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 6


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny_bundle):
    """(photos folder, a library folder indexed in blocks of 4 + 2, each photo's score for one label)."""
    base = tmp_path_factory.mktemp("damage")
    (base / "photos").mkdir()
    for i in range(PHOTOS):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 56, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(base / "photos" / f"p{i}.jpg")
    lib = Library(db_path=base / "lib" / "library.sqlite", model=tiny_bundle, vocabulary=False)
    assert lib.index([base / "photos"], batch_size=4).indexed == PHOTOS
    return base / "photos", base / "lib", _scores(lib)


def _scores(lib: Library) -> dict[str, float]:
    result = lib.search("red kite", limit=100)
    return {Path(h.path).name: h.score for h in result.hits}


def _copy(indexed, tmp_path, tiny_bundle):
    photos, folder, scores = indexed
    shutil.copytree(folder, tmp_path / "lib")
    db = tmp_path / "lib" / "library.sqlite"
    lib = Library(db_path=db, model=tiny_bundle, vocabulary=False)
    return lib, lib.store_folder, scores


def _healed_by_indexing(tiny_bundle, db: Path, scores: dict[str, float], embedded_again: int) -> list[str]:
    lib = Library(db_path=db, model=tiny_bundle, vocabulary=False)
    report = lib.index(batch_size=4)
    assert report.indexed == embedded_again and report.failed == 0
    assert report.indexed + report.unchanged + report.reused == PHOTOS
    after = _scores(lib)
    assert after.keys() == scores.keys()  # every photo is found again...
    assert max(abs(after[k] - scores[k]) for k in scores) < 1e-4  # ...with its own score
    again = lib.index()
    assert again.counts()["unchanged"] == PHOTOS and not again.repairs  # healed for good
    return report.repairs


def test_a_deleted_store_is_noticed_and_the_next_index_run_embeds_every_photo_again(indexed, tmp_path,
                                                                                   tiny_bundle):
    lib, store, scores = _copy(indexed, tmp_path, tiny_bundle)
    shutil.rmtree(store)
    fresh = Library(db_path=lib.db_path, model=tiny_bundle, vocabulary=False)
    result = fresh.search("red kite")
    assert result.hits == [] and f"{store}: {PHOTOS} indexed photos have no embedding here" in result.warning
    repairs = _healed_by_indexing(tiny_bundle, lib.db_path, scores, embedded_again=PHOTOS)
    assert repairs == [f"{store}: {PHOTOS} indexed photos had no embedding there; they are embedded again by "
                       "this index run (or the next one)"]


@pytest.mark.parametrize(("damage", "message", "embedded_again"), [
    (lambda s: (s / "count").unlink(), "count: missing", 0),
    (lambda s: (s / "count").write_text("-1\n"), "count: negative record count -1", 0),
    (lambda s: (s / "store.json").unlink(), "store.json: missing, but", PHOTOS),
    (lambda s: (s / "store.json").write_text(json.dumps({**json.loads((s / "store.json").read_text()),
                                                         "version": 0})), "store version 0", 0),  # data whole
    (lambda s: (s / "codec.npz").unlink(), "codec.npz: missing", PHOTOS),
    (lambda s: (s / "codec.npz").write_bytes((s / "codec.npz").read_bytes()[:64]), "codec.npz: unreadable",
     PHOTOS),
    (lambda s: os.truncate(s / "ids.bin", 5 * 8), "ids.bin: holds 5 photos where 6 were committed", 2),
])
def test_damage_found_on_open_is_one_line_and_the_next_index_run_heals_it(indexed, tmp_path, tiny_bundle, capsys,
                                                                         damage, message, embedded_again):
    lib, store, scores = _copy(indexed, tmp_path, tiny_bundle)
    damage(store)
    fresh = Library(db_path=lib.db_path, model=tiny_bundle, vocabulary=False)
    with pytest.raises(StoreDamaged, match=message) as error:
        fresh.search("red kite")
    assert "\n" not in str(error.value) and "mkt-desktop check" in str(error.value)
    assert mkt_desktop(["search", "red kite", "--db", str(lib.db_path), "--model", tiny_bundle]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    repairs = _healed_by_indexing(tiny_bundle, lib.db_path, scores, embedded_again)
    assert message in repairs[0] and "rebuilt with the" in repairs[1]
    assert len(list(store.parent.glob(f"{store.name}.damaged-*"))) == 1  # kept aside


def _random_bytes(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(f.seek(0, os.SEEK_END) // 3)  # inside the first block: photos 0 to 3
        f.write(np.random.default_rng(2).bytes(64))


@pytest.mark.parametrize("name", ["local.bin", "global.bin"])
def test_random_bytes_in_the_data_are_found_by_the_next_index_run(indexed, tmp_path, tiny_bundle, name):
    lib, store, scores = _copy(indexed, tmp_path, tiny_bundle)
    _random_bytes(store / name)
    repairs = _healed_by_indexing(tiny_bundle, lib.db_path, scores, embedded_again=4)
    assert repairs[0] == f"{store / name}: photos 0 to 3 do not match their checksum (damaged)"


@pytest.mark.parametrize("name", ["local.bin", "global.bin"])
def test_random_bytes_in_the_data_are_found_by_check_and_only_those_photos_are_embedded_again(
        indexed, tmp_path, tiny_bundle, capsys, name):
    lib, store, scores = _copy(indexed, tmp_path, tiny_bundle)
    _random_bytes(store / name)
    common = ["--db", str(lib.db_path), "--model", tiny_bundle]
    assert mkt_desktop(["check", *common]) == 0
    out = capsys.readouterr().out
    assert f"found and repaired: {store / name}: photos 0 to 3 do not match their checksum (damaged)" in out
    assert "rebuilt with the 2 of 6 photos that were whole" in out
    _healed_by_indexing(tiny_bundle, lib.db_path, scores, embedded_again=4)
    assert mkt_desktop(["check", *common]) == 0 and capsys.readouterr().out.strip() == "no damage found"


def test_a_damaged_database_file_is_named_in_one_line_and_left_as_it_was(tmp_path, tiny_bundle, capsys):
    db = tmp_path / "library.sqlite"
    db.write_bytes(b"SQLite format 3\0" + bytes(range(256)) * 16)
    before = db.read_bytes()
    with pytest.raises(DatabaseError, match="library.sqlite: cannot open the library database"):
        Library(db_path=db, model=tiny_bundle)
    for command in (["search", "x"], ["check"]):
        assert mkt_desktop([*command, "--db", str(db), "--model", tiny_bundle]) == 1
        captured = capsys.readouterr()
        text = captured.err + captured.out
        assert "cannot open the library database" in text and "Traceback" not in text
        assert text.count("\n") == 1
    assert db.read_bytes() == before


def test_a_schema_version_of_0_is_refused_clearly(indexed, tmp_path, tiny_bundle):
    import sqlite3

    lib, _, _ = _copy(indexed, tmp_path, tiny_bundle)
    with sqlite3.connect(lib.db_path) as conn:
        conn.execute("UPDATE schema_info SET version = 0")
    with pytest.raises(DatabaseError, match="schema version 0 was never written by this program"):
        Library(db_path=lib.db_path, model=tiny_bundle)


def test_two_index_runs_at_once_on_a_new_library_both_finish(indexed, tmp_path, tiny_bundle):
    """Both create the database at the same moment: neither may fail on the other's tables or rows."""
    photos, _, _ = indexed
    db = tmp_path / "both.sqlite"
    command = [sys.executable, "-m", "mkt_desktop.cli", "index", str(photos), "--db", str(db), "--model",
               tiny_bundle, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0 and "Traceback" not in err, out + err
        assert json.loads(out)["failed"] == 0
    assert Library(db_path=db, model=tiny_bundle).photo_count() == PHOTOS


def test_the_command_line_exits_with_its_library_whole_in_one_file(indexed, tmp_path, tiny_bundle):
    """`mkt-desktop` skips the interpreter's slow teardown (os._exit), but closes the database first:
    a library copied as its .sqlite file alone, right after a command, holds that command's changes."""
    _, lib_dir, _ = indexed
    db = tmp_path / "lib" / "library.sqlite"
    shutil.copytree(lib_dir, db.parent)
    command = [sys.executable, "-c", "from mkt_desktop.cli import run; run()", "labels", "add", "harbour fog",
               "--db", str(db), "--model", tiny_bundle]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    alone = tmp_path / "copied" / "library.sqlite"
    alone.parent.mkdir()
    shutil.copy(db, alone)  # the file alone, without its -wal and -shm
    import sqlite3

    with sqlite3.connect(alone) as conn:
        assert ("harbour fog",) in conn.execute("SELECT text FROM labels").fetchall()
