"""The photo library end to end, with real files, a real SQLite database and a real (tiny) model bundle."""

import csv
import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mkt_core.model.scoring import two_stream_scores
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.library import Library
from mkt_desktop.library.xmp import read_photo_subjects

ROOT = Path(__file__).resolve().parents[2]


def _photo(path: Path, seed: int, fmt: str | None = None, **save) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    pixels[:, : 8 * (seed % 7 + 1)] = (seed * 37) % 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **save)
    return path


def _bomb_png(path: Path) -> None:
    """A small PNG whose header claims 40,000 x 40,000 pixels: PIL must refuse to decode it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def make_folder(folder: Path) -> dict[str, Path]:
    good = {
        "a.jpg": _photo(folder / "a.jpg", 1),
        "b.png": _photo(folder / "b.png", 2),
        "c.webp": _photo(folder / "sub" / "c.webp", 3),
        "d.tif": _photo(folder / "sub" / "d.tif", 4),
        "e.bmp": _photo(folder / "e.bmp", 5),
        "f.gif": _photo(folder / "f.gif", 6),
        "UPPER.JPG": _photo(folder / "UPPER.JPG", 7, fmt="JPEG"),
    }
    (folder / ".hidden").mkdir()
    _photo(folder / ".hidden" / "secret.jpg", 8)
    (folder / "a.jpg.xmp").write_text("<x/>")  # a sidecar is not a photo
    return good


def make_bad_files(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    data = _photo(folder / "whole.jpg", 9).read_bytes()
    (folder / "whole.jpg").unlink()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a photo")
    _bomb_png(folder / "bomb.png")
    os.symlink(folder, folder / "loop")
    return {"truncated.jpg": "truncated", "empty.jpg": "zero bytes", "notes.jpg": "not", "bomb.png": "bomb",
            "loop": "symlink loop"}


def open_library(tmp_path: Path, bundle: str) -> Library:
    return Library(db_path=tmp_path / "db" / "library.sqlite", model=bundle)


def test_indexes_every_supported_kind_and_lists_every_bad_file(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    good = make_folder(photos)
    bad = make_bad_files(photos / "bad")
    lib = open_library(tmp_path, tiny_bundle)
    report = lib.index([photos])
    assert report.indexed == len(good)
    assert report.failed == len(bad)
    indexed = {Path(p).name for _, p in lib.photos()}
    assert indexed == set(good)  # hidden folders, sidecars and bad files are not photos of the library
    failures = lib.failures()
    assert len(failures) == len(bad)
    for name, words in bad.items():
        reasons = [reason for path, reason in failures if name in path]
        assert reasons, f"{name} not listed"
        assert words.lower() in reasons[0].lower() and reasons[0].strip()


def test_second_run_reads_nothing_and_a_changed_file_is_redone(tmp_path, tiny_bundle, monkeypatch):
    photos = tmp_path / "photos"
    make_folder(photos)
    lib = open_library(tmp_path, tiny_bundle)
    first = lib.index([photos])
    assert first.indexed == 7
    again = lib.index()
    assert again.counts() == {"indexed": 0, "reused": 0, "unchanged": 7, "failed": 0, "removed": 0}
    _photo(photos / "a.jpg", 99)  # new content at the same path
    changed = lib.index()
    assert changed.indexed == 1 and changed.unchanged == 6


def test_moved_folder_keeps_tags_and_scores_without_inference(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    make_folder(photos)
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])
    lib.set_tag(photos / "a.jpg", "beach holiday", "accepted")
    before = {pl.label: pl.score for pl in lib.photo_labels(photos / "a.jpg", limit=500)}
    moved = tmp_path / "renamed-photos"
    shutil.move(photos, moved)
    report = lib.index([moved])
    assert report.indexed == 0 and report.reused == 7
    labels = lib.photo_labels(moved / "a.jpg", limit=500)
    assert ("beach holiday", "accepted") in [(pl.label, pl.status) for pl in labels]
    after = {pl.label: pl.score for pl in labels}
    assert after == before
    assert lib.index().removed == 0  # the old folder's photos moved: nothing was lost


def test_duplicates_share_one_embedding_and_deleted_files_leave(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    make_folder(photos)
    shutil.copy(photos / "a.jpg", photos / "copy-of-a.jpg")
    lib = open_library(tmp_path, tiny_bundle)
    report = lib.index([photos])
    assert report.indexed == 7 and report.reused == 1
    assert len(lib.store) == 7
    (photos / "b.png").unlink()
    assert lib.index().removed == 1
    assert "b.png" not in {Path(p).name for _, p in lib.photos()}
    hits, _ = lib.search("anything at all", limit=100)
    assert "b.png" not in {Path(h.path).name for h in hits} and len(hits) == 7


def test_a_label_added_after_indexing_is_scored_from_the_store_without_reading_images(tmp_path, tiny_bundle,
                                                                                      monkeypatch):
    photos = tmp_path / "photos"
    make_folder(photos)
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])

    def no_reading(*args, **kwargs):
        raise AssertionError("an image was read")

    monkeypatch.setattr("PIL.Image.open", no_reading)
    lib.add_label("  red   kite  ")
    info = [i for i in lib.labels() if i.text == "red kite"]
    assert len(info) == 1 and info[0].effective_threshold is not None
    hits, threshold = lib.search("red kite", limit=10)
    assert len(hits) == 7 and threshold == pytest.approx(info[0].effective_threshold)
    stored = {pl.label: pl.score for pl in lib.photo_labels(hits[0].photo_id, limit=1000)}
    assert stored["red kite"] == pytest.approx(hits[0].score, abs=1e-5)
    # the store's one-pass scores equal Eq. 3 on the embeddings it holds
    store_scores = lib.store.score_label(lib.label_embeddings(["red kite"])[0])
    global_emb, local_emb = lib.store.get(int(lib.store.ids[0]))
    z = torch.from_numpy(lib.label_embeddings(["red kite"]))
    direct = float(two_stream_scores(z, torch.from_numpy(global_emb[None]), torch.from_numpy(local_emb[None]),
                                     lib.bundle.top_k)[0, 0])
    assert direct == pytest.approx(store_scores[0], abs=5e-3)  # fp16 global, int8 codes


def test_labels_refuse_bad_text_clearly(tmp_path, tiny_bundle):
    lib = open_library(tmp_path, tiny_bundle)
    from mkt_desktop.library.labels import LabelError

    with pytest.raises(LabelError, match="empty"):
        lib.add_label("   ")
    with pytest.raises(LabelError, match="at most"):
        lib.add_label("x" * 500)
    lib.add_label("Möwe am Strand")
    lib.add_label("möwe   am strand")  # the same label, differently typed
    assert [i.text for i in lib.labels()] == ["Möwe am Strand"]
    lib.rename_label("möwe am strand", "海鸥")
    assert [i.text for i in lib.labels()] == ["海鸥"]
    lib.remove_label("海鸥")
    assert lib.labels() == []


def test_xmp_written_beside_photos_and_read_back(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    make_folder(photos)
    original = (photos / "a.jpg").read_bytes()
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])
    lib.set_tag(photos / "a.jpg", "lighthouse", "accepted")
    lib.set_tag(photos / "a.jpg", "fog", "rejected")
    written, problems = lib.export_xmp()
    assert written >= 1 and problems == []
    subjects = read_photo_subjects(photos / "a.jpg")
    assert "lighthouse" in subjects and "fog" not in subjects
    assert (photos / "a.jpg").read_bytes() == original


def test_cli_json_outputs(tmp_path, tiny_bundle, capsys):
    photos = tmp_path / "photos"
    make_folder(photos)
    make_bad_files(photos / "bad")
    db = str(tmp_path / "cli.sqlite")
    common = ["--db", db, "--model", tiny_bundle, "--json"]
    assert mkt_desktop(["index", str(photos), *common]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts == {"indexed": 7, "reused": 0, "unchanged": 0, "failed": 5, "removed": 0}
    assert mkt_desktop(["search", "sunny meadow", "--limit", "3", *common]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert all(0 <= h["confidence"] <= 1 for h in hits)
    assert mkt_desktop(["failures", *common]) == 0
    failures = json.loads(capsys.readouterr().out)
    assert len(failures) == 5 and all(f["reason"] for f in failures)
    assert mkt_desktop(["labels", "add", "sunny meadow", *common]) == 0
    assert [row["label"] for row in json.loads(capsys.readouterr().out)] == ["sunny meadow"]
    assert mkt_desktop(["tags", str(photos / "a.jpg"), "--accept", "sunny meadow", *common]) == 0
    tags = json.loads(capsys.readouterr().out)
    assert {"label": "sunny meadow", "status": "accepted"}.items() <= tags[0].items()
    out_csv = tmp_path / "tags.csv"
    assert mkt_desktop(["export", "--csv", str(out_csv), *common]) == 0
    with open(out_csv, encoding="utf-8", newline="") as file:
        line = next(row for row in csv.DictReader(file) if row["label"] == "sunny meadow")
    assert 0 <= float(line["confidence"]) <= 1  # beside the raw score, what the window shows
    assert float(line["confidence"]) == pytest.approx(
        Library(db_path=db, model=tiny_bundle).confidence(float(line["score"])))
    capsys.readouterr()
    assert mkt_desktop(["labels", "add", "   ", *common]) == 1
    assert "empty" in json.loads(capsys.readouterr().out)["error"]  # under --json, errors are JSON too


@pytest.mark.slow
def test_killed_indexing_loses_nothing_committed_and_a_rerun_completes(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    for i in range(160):
        _photo(photos / f"p{i:03d}.jpg", i)
    db = tmp_path / "kill.sqlite"
    command = [sys.executable, "-m", "mkt_desktop.cli", "index", str(photos), "--db", str(db),
               "--model", tiny_bundle, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    committed = 0
    for _ in range(1200):  # kill it once a few batches are committed, mid-run
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as conn:
                    committed = conn.execute("SELECT count(*) FROM photos WHERE status='ok'").fetchone()[0]
            except sqlite3.Error:
                continue
            if committed >= 32:
                break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 32 <= committed < 160, "the run finished before it could be killed; give it more photos"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after_kill = conn.execute("SELECT count(*) FROM photos WHERE status='ok'").fetchone()[0]
    assert after_kill >= committed
    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    counts = json.loads(rerun.stdout)
    # The batch in flight when the kill came may already be in the embedding store (appended before its
    # SQLite commit): the rerun then finds it by content hash and reuses it without inference.
    assert counts["unchanged"] >= committed and counts["reused"] <= 16, counts
    assert counts["indexed"] + counts["reused"] + counts["unchanged"] == 160, counts
    lib = Library(db_path=db, model=tiny_bundle)
    assert lib.photo_count() == 160 and len(lib.store) == 160


def test_more_like_this_ranks_a_duplicate_first(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    make_folder(photos)
    _photo(photos / "a-again.png", 1)  # the same pixels as a.jpg, another file
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])
    hits = lib.similar(photos / "a.jpg", limit=3)
    assert Path(hits[0].path).name == "a-again.png" and hits[0].score > hits[1].score


def test_a_file_changing_or_unreadable_while_indexed_is_listed_and_the_rest_indexed(tmp_path, tiny_bundle,
                                                                                     monkeypatch):
    """Root reads every file and writes race: the two failures are injected at the hashing step."""
    from mkt_desktop.library import indexer
    from mkt_desktop.library.scanner import FileChanged

    photos = tmp_path / "photos"
    make_folder(photos)
    real = indexer.read_stable

    def flaky(path, size, mtime_ns):
        if path.endswith("a.jpg"):
            raise FileChanged(path)
        if path.endswith("b.png"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, size, mtime_ns)

    monkeypatch.setattr(indexer, "read_stable", flaky)
    lib = open_library(tmp_path, tiny_bundle)
    report = lib.index([photos])
    assert report.indexed == 5 and report.failed == 2
    reasons = {Path(p).name: r for p, r in lib.failures()}
    assert reasons == {"a.jpg": "the file changed while being read", "b.png": "permission denied"}
    monkeypatch.setattr(indexer, "read_stable", real)
    _photo(photos / "a.jpg", 1)  # rewritten: a new mtime, so the next run reads it again
    assert lib.index().indexed == 2  # and both causes may pass, so both are tried again: now they read
    assert lib.failures() == []


def test_patch_scores_show_where_a_label_is(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    make_folder(photos)
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])
    grid = lib.patch_scores(photos / "a.jpg", "red kite")
    assert grid.shape == (8, 8)  # the tiny model: 64 px, patch 8
    # Eq. 3 rebuilt from the map: global dot + mean of the k best patch scores = the stored score
    lib.add_label("red kite")
    stored = {pl.label: pl.score for pl in lib.photo_labels(photos / "a.jpg", limit=1000)}["red kite"]
    global_emb, _ = lib.embeddings(photos / "a.jpg")
    z = lib.label_embeddings(["red kite"])[0]
    k = lib.bundle.top_k
    rebuilt = float(global_emb @ z) + float(np.sort(grid.ravel())[::-1][:k].mean())
    assert rebuilt == pytest.approx(stored, abs=1e-4)  # the map is the store's own patch scores
    with pytest.raises(KeyError):
        lib.patch_scores(10_000, "red kite")


def test_a_bundle_with_its_own_vocabulary_is_scored_with_it_instead_of_the_general_one(tmp_path):
    from mkt_core.model.export import export_bundle
    from mkt_core.model.mkt import create_model

    bundle = export_bundle(create_model("tiny"), tmp_path / "bundle", vocabulary=["red kite", "blue moon"])
    assert (bundle / "vocabulary.txt").read_text() == "red kite\nblue moon\n"
    photos = tmp_path / "photos"
    _photo(photos / "a.jpg", 1)
    lib = open_library(tmp_path, str(bundle))
    assert sorted(lib.vocabulary_labels()) == ["blue moon", "red kite"]
    lib.index([photos])
    assert {pl.label for pl in lib.photo_labels(photos / "a.jpg", source="vocabulary")} == {"red kite", "blue moon"}
    general = Library(db_path=tmp_path / "other.sqlite", model=str(tmp_path / "no-bundle-here"))
    assert len(general.vocabulary_labels()) > 300  # without a bundle vocabulary: the general list


def test_the_batch_size_setting_is_the_indexing_batch(tmp_path, tiny_bundle):
    photos = tmp_path / "photos"
    for i in range(10):
        _photo(photos / f"p{i}.jpg", i)
    lib = Library(db_path=tmp_path / "db" / "library.sqlite", model=tiny_bundle, engine_options={"batch_size": 4})
    done = []
    lib.index([photos], progress=lambda p: done.append(p.done))
    assert done == [4, 8, 10] and lib.photo_count() == 10


def test_saving_a_threshold_keeps_the_photo_arrays_and_photos_indexed_elsewhere_are_seen(tmp_path, tiny_bundle):
    """The window's arrays of every photo are rebuilt when photos change, not on every commit: a threshold
    saved is answered from the arrays it has; a photo another process indexed is seen at once."""
    photos = tmp_path / "photos"
    make_folder(photos)
    lib = open_library(tmp_path, tiny_bundle)
    lib.index([photos])
    lib.add_label("red star")
    before = lib.snapshot()
    lib.set_threshold("red star", 0.5)
    lib.set_threshold("red star", None)
    assert lib.snapshot() is before

    other = open_library(tmp_path, tiny_bundle)  # e.g. `mkt-desktop index` while the window is open
    _photo(photos / "new.jpg", 123)
    assert other.index().indexed == 1
    after = lib.snapshot()
    assert after is not before and len(after) == len(before) + 1
    assert lib.photo_id(str(photos / "new.jpg")) in set(after.photo_ids.tolist())


def test_a_new_photo_is_read_from_disk_once(tmp_path, tiny_bundle, monkeypatch):
    """Its hash, size, EXIF date, the JPEG check and the decoding all come from one read of the file
    (on a NAS or a USB disk each read is paid again), and what is stored is what that read found."""
    import builtins
    from collections import Counter

    photos = tmp_path / "photos"
    wanted = {str(_photo(photos / f"p{i}.jpg", i)) for i in range(3)}
    lib = open_library(tmp_path, tiny_bundle)
    opened: Counter = Counter()
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike) and os.fspath(file) in wanted:
            opened[os.fspath(file)] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    report = lib.index([photos])
    monkeypatch.undo()
    assert report.indexed == 3
    assert opened == Counter({path: 1 for path in wanted})
    with sqlite3.connect(tmp_path / "db" / "library.sqlite") as db:
        sizes = dict((path, (w, h)) for path, w, h in db.execute("SELECT path, width, height FROM photos"))
    assert sizes == {path: (56, 40) for path in wanted}  # the header, read from the same bytes
