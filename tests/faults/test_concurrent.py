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

    def embed_then_let_the_other_run(self, to_embed):
        result = real(self, to_embed)
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
def test_two_index_processes_at_once_on_one_library(tmp_path, tiny_bundle):
    photos(tmp_path / "photos", 40)
    db = tmp_path / "lib.sqlite"
    Library(db_path=db, model=tiny_bundle).add_folder(tmp_path / "photos")
    for run in cli_processes_at_once(2, "index", "--db", str(db), "--model", tiny_bundle, "--json"):
        assert run.returncode == 0, run.stderr
        assert strict_json(run.stdout)["failed"] == 0
    assert sql(db, "SELECT count(*) FROM photos WHERE status = 'ok'") == [(40,)]
    assert sql(db, "SELECT count(*) FROM embeddings") == [(40,)]
    assert set(label_score_counts(db, tiny_bundle).values()) == {40}
