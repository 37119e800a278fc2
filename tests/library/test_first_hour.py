"""The first hour from the command line: errors that name the path and the reason (JSON under --json), a
read-only library that still searches, clip specs that cannot silently go wrong, an offline hub found at once,
and the conveniences: browse by folder and date taken, similar, where, undoable decisions."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mkt_desktop.library.library as library_module
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.browse import View, parse_day, parse_last_day
from mkt_desktop.library.db import DatabaseError
from mkt_desktop.library.library import Library
from mkt_desktop.library.model_source import ModelUnavailable, check_model, local_weights, split_clip_spec

ROOT = Path(__file__).resolve().parents[2]


def photos_in(folder: Path, count: int, years: tuple[int, ...] = ()) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        path = folder / f"p{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).save(path)
        if years:
            stamp = datetime(years[i % len(years)], 3, 1 + i).timestamp()
            os.utime(path, (stamp, stamp))
        paths.append(path)
    return paths


def run_json(capsys, *argv) -> tuple[int, object]:
    rc = mkt_desktop([*argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


# -- errors ----------------------------------------------------------------------------------------


def test_errors_are_one_line_and_json_under_json(tmp_path, tiny_bundle, capsys):
    db = tmp_path / "lib.sqlite"
    rc, out = run_json(capsys, "index", str(tmp_path / "nowhere"), "--db", str(db), "--model", tiny_bundle)
    assert rc == 1 and out == {"error": f"mkt-desktop index: error: {tmp_path / 'nowhere'}: no such folder"}
    (tmp_path / "a-file").write_text("x")
    rc, out = run_json(capsys, "index", str(tmp_path / "a-file"), "--db", str(db), "--model", tiny_bundle)
    assert rc == 1 and "not a folder" in out["error"]
    rc, out = run_json(capsys, "index", str(tmp_path), "--db", str(db), "--model", str(tmp_path / "nonexistent"))
    assert rc == 1 and "no such model bundle folder" in out["error"]
    assert not db.exists()  # a wrong folder or model never creates a database
    rc, out = run_json(capsys, "labels", "frobnicate", "--db", str(db))
    assert rc == 2 and "invalid choice" in out["error"]

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not SQLite" * 100)
    assert mkt_desktop(["labels", "list", "--db", str(junk)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(junk) in err and "not a library database" in err


def test_a_library_that_cannot_be_opened_names_the_path_and_the_reason(tmp_path):
    (tmp_path / "folder.sqlite").mkdir()
    with pytest.raises(DatabaseError, match="is a folder, not a library database file"):
        Library(db_path=tmp_path / "folder.sqlite", model="demo")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(DatabaseError, match="cannot create the library's folder .*blocker: a file is in the way"):
        Library(db_path=tmp_path / "blocker" / "lib.sqlite", model="demo")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_library_in_a_read_only_folder_opens_read_only(tmp_path, tiny_bundle):
    photos_in(tmp_path / "photos", 3)
    db = tmp_path / "ro" / "lib.sqlite"
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    (tmp_path / "ro").chmod(0o555)
    db.chmod(0o444)
    try:
        lib = Library(db_path=db, model=tiny_bundle)
        assert lib.read_only
        assert len(lib.search("red boat")[0]) == 3
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_a_read_only_library_searches_browses_and_exports_but_refuses_writes(tmp_path, tiny_bundle, capsys,
                                                                            monkeypatch):
    photos_in(tmp_path / "photos", 3)
    db = tmp_path / "lib.sqlite"
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    monkeypatch.setattr(library_module, "database_writable", lambda path: False)
    lib = Library(db_path=db, model=tiny_bundle)
    assert lib.read_only
    assert len(lib.search("red boat")[0]) == 3
    assert len(lib.browse()) == 3
    common = ["--db", str(db), "--model", tiny_bundle]
    assert mkt_desktop(["export", "--json-file", str(tmp_path / "out.json"), *common]) == 0
    assert (tmp_path / "out.json").is_file()
    capsys.readouterr()
    rc, out = run_json(capsys, "labels", "add", "sunset", *common)
    assert rc == 1 and f"{db}: the library is read-only" in out["error"]


# -- models ----------------------------------------------------------------------------------------


def test_a_clip_spec_without_weights_is_refused_with_the_tags():
    with pytest.raises(ModelUnavailable, match="random weights.*Tags of ViT-B-16: openai"):
        check_model("clip:ViT-B-16")
    with pytest.raises(ModelUnavailable, match="not an open_clip model"):
        check_model("clip:NoSuchNet")


def test_a_local_clip_file_has_a_syntax(tmp_path):
    weights = tmp_path / "open_clip_pytorch_model.bin"
    assert split_clip_spec("ViT-B-16/openai") == ("ViT-B-16", "openai")
    assert local_weights("openai") is None and local_weights("laion2b_s34b_b88k") is None
    name, tag = split_clip_spec(f"ViT-B-16/{weights}")  # clip:ViT-B-16//tmp/.../open_clip_pytorch_model.bin
    assert name == "ViT-B-16" and local_weights(tag) == weights
    with pytest.raises(ModelUnavailable, match="no such weights file"):
        check_model(f"clip:ViT-B-16/{weights}")
    weights.write_bytes(b"")
    check_model(f"clip:ViT-B-16/{weights}")


def test_an_unreachable_hub_fails_at_once_with_the_local_file_syntax(tmp_path, monkeypatch):
    from mkt_core.model.config import VLPConfig
    from mkt_core.model.vlp import VLPWeightsUnavailable, hub_reachable, load_vlp

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: as good as no network
    assert not hub_reachable()
    started = time.monotonic()
    with pytest.raises(VLPWeightsUnavailable) as error:
        load_vlp(VLPConfig(model_name="ViT-B-16", pretrained="openai", cache_dir=str(tmp_path / "cache")))
    print(f"refused in {time.monotonic() - started:.2f} s")
    message = str(error.value)
    assert "cannot be reached" in message
    assert "--model clip:ViT-B-16/PATH for mkt-desktop" in message


# -- the conveniences ----------------------------------------------------------------------------


def test_browse_by_folder_and_date_taken(tmp_path, tiny_bundle, capsys):
    photos_in(tmp_path / "old", 2, years=(2019,))
    photos_in(tmp_path / "new", 3, years=(2023, 2024))
    db = tmp_path / "lib.sqlite"
    lib = Library(db_path=db, model=tiny_bundle)
    lib.index([tmp_path / "old", tmp_path / "new"])
    assert len(lib.browse()) == 5
    assert {Path(r.path).parent.name for r in lib.browse(View(folder=str(tmp_path / "new")))} == {"new"}
    newest = lib.browse(View(sort="newest"))
    assert [r.taken for r in newest] == sorted((r.taken for r in newest), reverse=True)
    in_2023 = lib.browse(View(taken_from=parse_day("2023"), taken_to=parse_last_day("2023")))
    assert [r.taken.year for r in in_2023] == [2023, 2023]
    assert lib.taken_years() == [2024, 2023, 2019]
    assert parse_last_day("2024-02") == datetime(2024, 2, 29).date()
    with pytest.raises(ValueError, match="not a date"):
        parse_day("June")

    common = ["--db", str(db), "--model", tiny_bundle]
    rc, rows = run_json(capsys, "photos", "--sort", "oldest", "--taken-from", "2020", *common)
    assert rc == 0 and [row["taken"][:4] for row in rows] == ["2023", "2023", "2024"]
    rc, rows = run_json(capsys, "search", "red boat", "--folder", str(tmp_path / "old"), *common)
    assert rc == 0 and len(rows) == 2 and all("/old/" in row["path"] for row in rows)
    rc, out = run_json(capsys, "photos", "--folder", str(tmp_path / "elsewhere"), *common)
    assert rc == 1 and "not a library folder" in out["error"]
    rc, folders = run_json(capsys, "folders", *common)
    assert folders == sorted([str((tmp_path / "old").resolve()), str((tmp_path / "new").resolve())])
    rc, folders = run_json(capsys, "folders", "remove", str(tmp_path / "old"), *common)
    assert rc == 0 and folders == [str((tmp_path / "new").resolve())]


def test_similar_and_where_from_the_command_line(tmp_path, tiny_bundle, capsys):
    paths = photos_in(tmp_path / "photos", 4)
    common = ["--db", str(tmp_path / "lib.sqlite"), "--model", tiny_bundle]
    assert mkt_desktop(["index", str(tmp_path / "photos"), *common]) == 0
    capsys.readouterr()
    rc, similar = run_json(capsys, "similar", str(paths[0]), *common)
    assert rc == 0 and len(similar) == 3 and str(paths[0]) not in [row["path"] for row in similar]
    assert [row["similarity"] for row in similar] == sorted((row["similarity"] for row in similar), reverse=True)

    rc, where = run_json(capsys, "where", str(paths[1]), "Red  Boat", *common)
    assert rc == 0 and where["label"] == "Red Boat" and where["photo"] == str(paths[1].resolve())
    rows, cols = where["patch_grid"]
    assert len(where["patch_scores"]) == rows and all(len(line) == cols for line in where["patch_scores"])
    best = max(max(line) for line in where["patch_scores"])
    assert where["peak"]["score"] == pytest.approx(best) and 0 < where["peak"]["x"] < 1
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    grid = lib.patch_scores(paths[1], "red boat")
    assert np.allclose(np.array(where["patch_scores"]), grid, atol=1e-5)
    assert mkt_desktop(["where", str(paths[1]), "red boat", *common]) == 0
    assert "best patch: row" in capsys.readouterr().out


def test_decisions_undo_to_what_was_there(tmp_path, tiny_bundle):
    photos_in(tmp_path / "photos", 3)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    ids = [photo_id for photo_id, _ in lib.photos()]
    lib.set_tag(ids[0], "Boat", "rejected")
    decision = lib.decide(ids[:2], "boat", "accepted")
    assert decision.before == {ids[0]: "rejected", ids[1]: None}
    assert decision.describe() == "accept \u201cboat\u201d on 2 photos"
    lib.undo(decision)
    status = {pid: {pl.label.casefold(): pl.status for pl in lib.photo_labels(pid)}.get("boat") for pid in ids[:2]}
    assert status[ids[0]] == "rejected" and status[ids[1]] in (None, "auto")


# -- fast commands -----------------------------------------------------------------------------------


def test_commands_that_only_read_the_library_load_no_model(tmp_path, tiny_bundle):
    photos_in(tmp_path / "photos", 2)
    db = tmp_path / "lib.sqlite"
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    lib = Library(db_path=db, model=tiny_bundle)
    lib.labels(), lib.failures(), lib.browse()
    assert lib._engine is None  # the bundle's manifest is enough

    def loaded(*commands: str) -> list[str]:
        script = "\n".join([
            "import sys",
            "from mkt_desktop.cli import main",
            f"common = ['--db', {str(db)!r}, '--model', {tiny_bundle!r}]",
            *[f"assert main([*{command.split()!r}, *common]) == 0" for command in commands],
            "print(sorted(m for m in ('onnxruntime', 'onnx', 'torch', 'open_clip', 'timm', 'PySide6') "
            "if m in sys.modules))"])
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))

    assert loaded("labels list", "failures", "photos") == []
    assert loaded("search boat") == []  # a saved label (the vocabulary's) reads its score column: no model
    # the first typed text builds the store's scoring graph (the onnx package) and keeps it; later ones
    # read it: the text encoder's onnxruntime, neither onnx nor torch
    loaded("search foggy")
    assert loaded("search misty") == ["onnxruntime"]
