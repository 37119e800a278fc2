"""Two indexers on one library: the one that commits second finds the other's work and takes it over."""

import pytest

from mkt_desktop.library import indexer
from mkt_desktop.library.library import Library
from tests.faults.helpers import cli_processes_at_once, label_score_counts, photos, sql, strict_json


def test_two_indexers_embedding_the_same_photos_at_once_both_finish_with_one_copy(tmp_path, tiny_bundle,
                                                                                  monkeypatch):
    """Deterministic: the first indexer's batch is embedded, then the second runs to its end, then the first
    commits. (Before, the first failed on the UNIQUE (model, content hash) of the second's embeddings.)"""
    photos(tmp_path / "photos", 20)
    db = tmp_path / "lib.sqlite"
    first, second = Library(db_path=db, model=tiny_bundle), Library(db_path=db, model=tiny_bundle)
    first.add_folder(tmp_path / "photos")
    real = indexer.Indexer._embed
    interleaved = []

    def embed_then_let_the_other_run(self, to_embed, contents):
        result = real(self, to_embed, contents)
        if self.store is first.store and not interleaved:
            interleaved.append(second.index())
        return result

    monkeypatch.setattr(indexer.Indexer, "_embed", embed_then_let_the_other_run)
    report = first.index()
    assert interleaved[0].indexed == 20 and report.failed == 0
    assert report.indexed + report.reused + report.unchanged == 20
    assert sql(db, "SELECT count(*) FROM photos") == [(20,)] and sql(db, "SELECT count(*) FROM embeddings") == [(20,)]
    assert set(label_score_counts(db, tiny_bundle).values()) == {20}
    assert len(first.search("red kite", limit=100)[0]) == 20


@pytest.mark.slow
def test_two_index_processes_at_once_on_a_new_library(tmp_path, tiny_bundle):
    """Both create the database, seed its vocabulary, save the model and the folder, and index."""
    photos(tmp_path / "photos", 40)
    db = tmp_path / "lib.sqlite"
    for run in cli_processes_at_once(2, "index", str(tmp_path / "photos"), "--db", str(db), "--model", tiny_bundle,
                                     "--json"):
        assert run.returncode == 0, run.stderr
        assert strict_json(run.stdout)["failed"] == 0
    assert sql(db, "SELECT count(*) FROM photos WHERE status = 'ok'") == [(40,)]
    assert sql(db, "SELECT count(*) FROM embeddings") == [(40,)]
    assert set(label_score_counts(db, tiny_bundle).values()) == {40}
    assert sql(db, "SELECT count(*) FROM folders") == [(1,)] and sql(db, "SELECT count(*) FROM models") == [(1,)]


def test_four_openers_of_one_new_library_at_once_make_it_once(tmp_path):
    """(Before, all but one failed: "table schema_info already exists".)"""
    import threading

    from mkt_desktop.library.db import SCHEMA_VERSION, open_database

    path = tmp_path / "new.sqlite"
    errors = []

    def open_it():
        try:
            open_database(path)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    openers = [threading.Thread(target=open_it) for _ in range(4)]  # each its own connection, as processes
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    assert errors == []
    assert sql(path, "SELECT id, version FROM schema_info") == [(1, SCHEMA_VERSION)]
