"""8. The store's folder has a name every file system takes; a library made before keeps its embeddings."""

import os

from mkt_desktop.library.library import Library
from tests.faults.helpers import photos


def test_no_file_of_a_library_has_a_colon_in_its_name(tmp_path, tiny_bundle):
    photos(tmp_path / "photos", 3)
    lib = Library(db_path=tmp_path / "db" / "lib.sqlite", model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    names = [name for _, folders, files in os.walk(tmp_path / "db") for name in folders + files]
    assert names and not [name for name in names if ":" in name]  # not on Windows, FAT or exFAT
    assert lib.store.folder.name == "sha256-" + lib.bundle.fingerprint.removeprefix("sha256:")[:16]


def test_a_store_folder_under_the_old_name_is_moved_once_with_its_embeddings(tmp_path, tiny_bundle, monkeypatch):
    photos(tmp_path / "photos", 5)
    db = tmp_path / "db" / "lib.sqlite"
    lib = Library(db_path=db, model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    new = lib.store.folder
    old = new.parent / lib.bundle.fingerprint[:16]  # "sha256:012345678", as versions before this one named it
    new.rename(old)

    def no_reading(*args, **kwargs):
        raise AssertionError("an image was read: the embeddings were not found")

    reopened = Library(db_path=db, model=tiny_bundle)
    monkeypatch.setattr("PIL.Image.open", no_reading)
    assert len(reopened.search("red kite", limit=100)[0]) == 5
    assert new.is_dir() and not old.exists()
    monkeypatch.undo()
    assert reopened.index().unchanged == 5
