"""1. A long-lived Library (the window's) sees what other processes committed, and no score goes missing."""

from pathlib import Path

import numpy as np

from mkt_desktop.library.library import Library
from tests.faults.helpers import cli_process, label_score_counts, make_version_1, photos, sql


def test_a_window_sees_photos_the_command_line_indexed_meanwhile(tmp_path, tiny_bundle):
    db = tmp_path / "lib.sqlite"
    window = Library(db_path=db, model=tiny_bundle)
    assert window.search("red kite") == ([], None)  # opened on an empty library: the store has no codec yet
    first = photos(tmp_path / "photos", 5)
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    assert len(window.search("red kite", limit=100)[0]) == 5

    photos(tmp_path / "photos", 7, start=5)
    done = cli_process("index", str(tmp_path / "photos"), "--db", str(db), "--model", tiny_bundle, "--json")
    assert done.returncode == 0, done.stderr

    hits, _ = window.search("red kite", limit=100)
    assert len(hits) == 12
    new = tmp_path / "photos" / "p011.jpg"
    assert window.similar(new, limit=3)  # "more like this" of a photo the window never saw indexed
    global_emb, _ = window.embeddings(new)  # the photo view
    assert np.isfinite(global_emb).all()
    assert window.patch_scores(new, "red kite").shape == (8, 8)  # the heat map
    assert first[0].exists()


def test_a_label_saved_in_the_window_is_scored_for_photos_indexed_elsewhere(tmp_path, tiny_bundle):
    db = tmp_path / "lib.sqlite"
    photos(tmp_path / "photos", 4)
    window = Library(db_path=db, model=tiny_bundle)
    window.index([tmp_path / "photos"])
    photos(tmp_path / "photos", 6, start=4)
    Library(db_path=db, model=tiny_bundle).index()
    window.add_label("red kite")
    assert label_score_counts(db)["red kite"] == 10
    assert len(window.search("red kite", limit=100)[0]) == 10


def test_scores_a_label_lacks_are_filled_in_by_the_next_index(tmp_path, tiny_bundle):
    """What an older version's window left: a label scored only for the photos it knew of."""
    db = tmp_path / "lib.sqlite"
    photos(tmp_path / "photos", 10)
    lib = Library(db_path=db, model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    lib.add_label("red kite")
    sql(db, "DELETE FROM scores WHERE label_id = (SELECT id FROM labels WHERE text = 'red kite') "
            "AND photo_id IN (SELECT id FROM photos ORDER BY id LIMIT 6)")
    del lib
    make_version_1(db)
    assert label_score_counts(db)["red kite"] == 4

    lib = Library(db_path=db, model=tiny_bundle)
    report = lib.index()
    assert report.unchanged == 10 and report.filled == 6
    assert label_score_counts(db)["red kite"] == 10
    hits, _ = lib.search("red kite", limit=100)
    stored = {pl.label: pl.score for pl in lib.photo_labels(hits[0].photo_id, limit=1000)}
    assert abs(stored["red kite"] - hits[0].score) < 1e-5
    assert Path(hits[0].path).exists()
