"""1. A long-lived Library (the window's) sees what other processes committed, and no score goes missing."""


import numpy as np

from mkt_desktop.library.library import Library
from mkt_desktop.library.scores import column_key
from tests.faults.helpers import cli_process, label_score_counts, photos


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
    assert label_score_counts(db, tiny_bundle)["red kite"] == 10
    assert len(window.search("red kite", limit=100)[0]) == 10


def test_a_score_column_cut_short_is_completed_when_next_used(tmp_path, tiny_bundle):
    """What a kill while a label's scores were being appended leaves, a torn float included."""
    db = tmp_path / "lib.sqlite"
    photos(tmp_path / "photos", 10)
    lib = Library(db_path=db, model=tiny_bundle)
    lib.index([tmp_path / "photos"])
    lib.add_label("red kite")
    before = {h.photo_id: h.score for h in lib.search("red kite", limit=100)[0]}
    (column,) = [p for p in (lib.store.folder / "scores").glob("*.f32")
                 if p.stat().st_size == 4 * len(lib.store) and p.name.startswith(column_key("red kite"))]
    with open(column, "r+b") as file:
        file.truncate(4 * 4 + 2)
    assert label_score_counts(db, tiny_bundle)["red kite"] == 10
    after = {h.photo_id: h.score for h in Library(db_path=db, model=tiny_bundle).search("red kite", limit=100)[0]}
    assert after.keys() == before.keys()
    assert all(abs(after[k] - before[k]) < 1e-5 for k in before)  # float rounding of other batch shapes
