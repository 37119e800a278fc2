"""3. Failures that may pass are retried. 4. Every failed path has its row. 6. NaN from a model is refused.
8. A JPEG header followed by zeros is a failure, not a photo. (Root reads every file, so permission
failures are made at the hashing step, as in tests/library.)"""

import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from mkt_core.runtime.engine import Engine
from mkt_desktop.library import indexer
from mkt_desktop.library.db import Embedding, open_database
from mkt_desktop.library.library import Library
from mkt_desktop.library.scanner import content_hash
from tests.faults.helpers import cli, photo, photos, strict_json


def names(pairs) -> set[str]:
    return {Path(path).name for path, _ in pairs}


def test_a_permission_fixed_after_a_failure_is_read_on_the_next_run(tmp_path, tiny_bundle, monkeypatch):
    photos(tmp_path / "photos", 3)
    locked = tmp_path / "photos" / "p001.jpg"
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    real = indexer.read_stable

    def denied(path, size, mtime_ns):  # what chmod 000 does, also for root (who reads every file)
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return real(path, size, mtime_ns)

    with monkeypatch.context() as patch:
        patch.setattr(indexer, "read_stable", denied)
        report = lib.index([tmp_path / "photos"])
    assert report.failed == 1 and lib.failures() == [(str(locked), "permission denied")]
    again = lib.index()  # chmod fixed it; the file's size and mtime are what they were
    assert again.indexed == 1 and again.unchanged == 2 and lib.failures() == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_a_real_chmod_000_then_644(tmp_path, tiny_bundle):
    photos(tmp_path / "photos", 2)
    locked = tmp_path / "photos" / "p000.jpg"
    locked.chmod(0)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    assert lib.index([tmp_path / "photos"]).failed == 1
    locked.chmod(0o644)
    assert lib.index().indexed == 1 and lib.failures() == []


def test_a_file_replaced_while_it_was_read_is_read_again_on_the_next_run(tmp_path, tiny_bundle, monkeypatch):
    photos(tmp_path / "photos", 3)
    replaced = tmp_path / "photos" / "p002.jpg"
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    real = indexer.read_stable

    def replace_meanwhile(path, size, mtime_ns):
        if path == str(replaced):
            photo(replaced, 42)  # an editor saves a new version just as the indexer reads it
        return real(path, size, mtime_ns)

    with monkeypatch.context() as patch:
        patch.setattr(indexer, "read_stable", replace_meanwhile)
        report = lib.index([tmp_path / "photos"])
    assert report.failures == [(str(replaced), "the file changed while being read")]
    again = lib.index()  # the failure recorded the new version's size and mtime: still read again
    assert again.indexed == 1 and lib.failures() == []
    assert lib.photo_id(replaced)


def test_a_file_changed_between_hashing_and_decoding_is_not_stored_under_the_old_hash(tmp_path, tiny_bundle,
                                                                                    monkeypatch):
    photos(tmp_path / "photos", 2)
    changed = tmp_path / "photos" / "p001.jpg"
    first_hash = content_hash(changed)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    real = indexer.read_stable

    def then_change(path, size, mtime_ns):
        read = real(path, size, mtime_ns)
        if path == str(changed):
            photo(changed, 77)
        return read

    with monkeypatch.context() as patch:
        patch.setattr(indexer, "read_stable", then_change)
        report = lib.index([tmp_path / "photos"])
    assert names(report.failures) == {"p001.jpg"}
    with open_database(tmp_path / "lib.sqlite")() as session:
        assert first_hash not in set(session.scalars(select(Embedding.content_hash)))
    assert lib.index().indexed == 1


def test_retry_failed_reads_a_failed_file_again_even_unchanged(tmp_path, tiny_bundle):
    good = photo(tmp_path / "photos" / "a.jpg", 1)
    broken = tmp_path / "photos" / "b.jpg"
    data = photo(tmp_path / "spare.jpg", 2).read_bytes()
    broken.write_bytes(os.urandom(len(data)))
    common = ["--db", str(tmp_path / "lib.sqlite"), "--model", tiny_bundle, "--json"]
    assert strict_json(cli("index", str(tmp_path / "photos"), *common).stdout)["failed"] == 1
    stat = broken.stat()
    broken.write_bytes(data)  # restored from a backup with its old size and mtime (rsync -t, cp -p)
    os.utime(broken, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert strict_json(cli("index", *common).stdout)["unchanged"] == 2  # a damaged file is not re-read each run
    run = cli("index", "--retry-failed", *common)
    assert strict_json(run.stdout) == {"indexed": 1, "reused": 0, "unchanged": 1, "failed": 0, "removed": 0}
    assert strict_json(cli("failures", *common).stdout) == []
    assert good.exists()


def test_byte_identical_broken_files_each_get_their_row_and_are_not_read_again(tmp_path, tiny_bundle, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"garbage{i}.jpg").write_bytes(b"this is not a photo at all" * 10)
    for i in range(40):  # more than a batch: the probe's 5,000 zero-byte files gave 313 failures
        (folder / f"empty{i:02d}.jpg").write_bytes(b"")
    photo(folder / "fine.jpg", 3)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    report = lib.index([folder])
    assert report.indexed == 1 and report.failed == 45
    assert len(lib.failures()) == 45
    assert {reason for _, reason in lib.failures() if "empty" in _} == {"zero bytes (empty file)"}

    def no_reading(*args):
        raise AssertionError("a file was read again")

    monkeypatch.setattr(indexer, "read_stable", no_reading)
    again = lib.index()
    assert again.counts() == {"indexed": 0, "reused": 0, "unchanged": 46, "failed": 0, "removed": 0}


def _nan_for(paths: set[str], monkeypatch) -> None:
    """The engine gives NaN for the images of these files (a broken model; found by their pixels)."""
    from mkt_core.runtime.image_pipeline import Preprocess

    real = Engine.encode_images
    poisoned = []

    def encode(self, images):
        global_emb, local_emb = real(self, images)
        if not poisoned:
            preprocess = Preprocess.from_bundle(self.bundle)
            poisoned.extend(preprocess(p) for p in paths)
        for i, image in enumerate(images):
            if any(np.allclose(image, p) for p in poisoned):
                global_emb[i] = np.nan
                if local_emb is not None:
                    local_emb[i] = np.nan
        return global_emb, local_emb

    monkeypatch.setattr(Engine, "encode_images", encode)


def test_nan_from_the_model_is_refused_naming_the_photo_and_the_next_run_recovers(tmp_path, tiny_bundle,
                                                                                  monkeypatch):
    photos(tmp_path / "photos", 20)
    bad = str(tmp_path / "photos" / "p003.jpg")
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    with monkeypatch.context() as patch:
        _nan_for({bad}, patch)
        report = lib.index([tmp_path / "photos"])
    assert report.indexed == 19 and report.failed == 1
    assert report.failures[0][0] == bad and "non-finite" in report.failures[0][1]
    assert np.isfinite(lib.store.global_embeddings()).all() and len(lib.store) == 19
    again = lib.index()  # a good model of the same fingerprint
    assert again.indexed == 1 and lib.failures() == [] and lib.photo_count() == 20
    hits, _ = lib.search("red kite", limit=100)
    assert len(hits) == 20 and all(np.isfinite(h.score) for h in hits)


def test_nan_an_older_version_stored_is_embedded_again(tmp_path, tiny_bundle):
    """Before, the embeddings committed and the scores failed; every later run crashed on that batch."""
    photos(tmp_path / "photos", 4)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    photos(tmp_path / "more", 3, start=10)
    poisoned = [content_hash(p) for p in sorted((tmp_path / "more").iterdir())]
    with lib.Session() as session:
        rows = [Embedding(model_id=lib.model_id, content_hash=h) for h in poisoned]
        session.add_all(rows)
        session.flush()
        n, d = lib.bundle.num_patches, lib.bundle.embed_dim
        lib.store.append([r.id for r in rows], np.full((3, d), np.nan, np.float32), np.ones((3, n, d), np.float32))
        session.commit()
    report = lib.index([tmp_path / "more"])
    assert report.indexed + report.reused == 3 and report.failed == 0
    hits, _ = lib.search("red kite", limit=100)
    assert len(hits) == 7 and all(np.isfinite(h.score) for h in hits)


def test_a_jpeg_header_followed_by_a_gibibyte_of_zeros_is_a_failure(tmp_path, tiny_bundle):
    real = photo(tmp_path / "real.jpg", 5).read_bytes()
    start_of_scan = real.index(b"\xff\xda")
    folder = tmp_path / "photos"
    folder.mkdir()
    with open(folder / "zeros.jpg", "wb") as file:
        file.write(real[:start_of_scan + 20])
        file.truncate(1 << 30)  # sparse: 1 GiB of zeros that take no disk space
    (folder / "half.jpg").write_bytes(real[:len(real) // 2] + bytes(len(real)))  # a download never finished
    photo(folder / "fine.jpg", 6)
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    report = lib.index([folder])
    assert report.indexed == 1 and names(report.failures) == {"zeros.jpg", "half.jpg"}
    assert "no end-of-image marker" in dict(report.failures)[str(folder / "zeros.jpg")]
    assert [Path(p).name for _, p in lib.photos()] == ["fine.jpg"]

