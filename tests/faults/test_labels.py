"""2. A label is never left without scores. 5. A label is checked once, on entry; a bad one breaks nothing."""

import pytest

from mkt_core.runtime.store import EmbeddingStore
from mkt_desktop.library.labels import LabelError
from mkt_desktop.library.library import Library
from tests.faults.helpers import KILLED, cli, killed_cli, label_score_counts, photo, photos, sql, strict_json


@pytest.fixture
def indexed(tmp_path, tiny_bundle):
    """A database with 6 indexed photos and the tiny model's arguments for the command line."""
    db = tmp_path / "lib.sqlite"
    photos(tmp_path / "photos", 6)
    Library(db_path=db, model=tiny_bundle).index([tmp_path / "photos"])
    return db, ["--db", str(db), "--model", tiny_bundle]


@pytest.mark.slow
def test_a_label_killed_while_being_saved_is_there_with_every_score_or_not_at_all(indexed, tiny_bundle):
    db, common = indexed
    after = 1
    while (run := killed_cli("after-commit", after, "labels", "add", "red kite", *common)).returncode == KILLED:
        counts = label_score_counts(db, tiny_bundle)
        assert counts.get("red kite", 6) == 6, f"killed after commit {after}: {counts.get('red kite')} scores"
        after += 1
    assert run.returncode == 0, run.stderr
    assert label_score_counts(db, tiny_bundle)["red kite"] == 6


@pytest.mark.slow
def test_a_tag_killed_while_being_saved_leaves_its_label_scored(indexed, tmp_path, tiny_bundle):
    db, common = indexed
    target = str(tmp_path / "photos" / "p001.jpg")
    after = 1
    tag = ["tags", target, "--accept", "sea gull", *common]
    while (run := killed_cli("after-commit", after, *tag)).returncode == KILLED:
        assert label_score_counts(db, tiny_bundle).get("sea gull", 6) == 6, f"killed after commit {after}"
        after += 1
    assert run.returncode == 0, run.stderr
    assert label_score_counts(db, tiny_bundle)["sea gull"] == 6
    tags = strict_json(cli("tags", target, "--json", *common).stdout)
    assert {"label": "sea gull", "status": "accepted"}.items() <= tags[0].items()


def test_a_label_whose_scoring_fails_while_it_is_saved_is_scored_when_next_used(indexed, tiny_bundle, monkeypatch):
    db, _ = indexed
    lib = Library(db_path=db, model=tiny_bundle)

    def broken(self, *args, **kwargs):
        raise MemoryError("no memory left for scoring")

    with monkeypatch.context() as patch:
        patch.setattr(EmbeddingStore, "score_row_range", broken)
        with pytest.raises(MemoryError):
            lib.add_label("red kite")
    assert label_score_counts(db, tiny_bundle)["red kite"] == 6
    assert len(lib.search("red kite", limit=100)[0]) == 6


def test_a_label_an_older_version_left_unscored_is_scored_when_used(indexed, tiny_bundle):
    """What a kill between `labels add`'s two commits left before: the label, and none of its scores."""
    db, _ = indexed
    sql(db, "INSERT INTO labels (text, key, source, created) VALUES ('red kite', 'red kite', 'user', '2026-01-01')")
    assert label_score_counts(db, tiny_bundle)["red kite"] == 6
    info = next(i for i in Library(db_path=db, model=tiny_bundle).labels() if i.text == "red kite")
    assert info.effective_threshold is not None


@pytest.mark.parametrize("text", ["\ufeff", "\u206f", "\ufffb", "x\ufffe", "\uffff"])
def test_a_label_the_model_or_a_sidecar_cannot_hold_is_refused_on_entry(tmp_path, tiny_bundle, text):
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    with pytest.raises(LabelError, match="cannot"):
        lib.add_label(text)
    assert lib.labels() == []
    with pytest.raises(LabelError):
        lib.rename_label("nothing", text)


def test_labels_add_saves_none_when_one_is_bad(indexed, tiny_bundle):
    db, common = indexed
    run = cli("labels", "add", "red kite", "\ufeff", "sea gull", *common)
    assert run.returncode == 1
    assert "error" in run.stderr and "tokenizer" in run.stderr and run.stderr.count("\n") == 1
    saved = label_score_counts(db, tiny_bundle)
    assert "red kite" not in saved and "sea gull" not in saved


def test_a_bad_label_saved_by_an_older_version_is_skipped_and_reported_not_fatal(indexed, tmp_path, tiny_bundle):
    db, common = indexed
    for text in ("\ufeff", "\u206f"):
        sql(db, "INSERT INTO labels (text, key, source, created) VALUES (?, ?, 'user', '2026-01-01')", text, text)
    photo(tmp_path / "photos" / "new.jpg", 99)
    run = cli("index", *common, "--json")
    assert run.returncode == 0, run.stderr
    assert strict_json(run.stdout)["indexed"] == 1
    assert "label '\\ufeff' not scored" in run.stderr and "label '\\u206f' not scored" in run.stderr
    counts = label_score_counts(db, tiny_bundle)
    assert counts.pop("\ufeff") == counts.pop("\u206f") == 0
    assert set(counts.values()) == {7}  # every other label scored for the new photo
    lib = Library(db_path=db, model=tiny_bundle)
    assert len(lib.search("red kite", limit=100)[0]) == 7
    lib.add_label("red kite")  # scoring a new label is not stopped by them either
    assert label_score_counts(db, tiny_bundle)["red kite"] == 7
    lib.remove_label("\ufeff")  # and they can be removed
    assert "\ufeff" not in label_score_counts(db, tiny_bundle)
