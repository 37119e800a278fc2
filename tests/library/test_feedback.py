"""Learning from decisions: after a person accepts and rejects a label on a few demo photos, that
label ranks the photos they did not decide on better; undo and "forget my corrections" give back
the original scores exactly; the adapted score is one number everywhere."""

import csv
from pathlib import Path

import numpy as np
import pytest

from mkt_core.synthetic.world import WorldSpec, write_demo_photos
from mkt_core.train.metrics import average_precision
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.library import Library

PHOTOS = 240
REVIEWED = 10  # the top of each label's ranking a person looks at
PAGE = 5  # photos decided on between two looks at the ranking


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A real library of demo photos indexed with the demo model, and each photo's true labels."""
    folder = tmp_path_factory.mktemp("feedback")
    csv_path = write_demo_photos(folder / "photos", count=PHOTOS, seed=41)
    with csv_path.open(newline="", encoding="utf-8") as f:
        truth = {str((csv_path.parent / row["path"]).resolve()): set(row["labels"].split("|"))
                 for row in csv.DictReader(f)}
    lib = Library(db_path=folder / "library.sqlite", model="demo", vocabulary=False)
    lib.index([folder / "photos"])
    return lib, truth


def _scores(lib: Library, label: str) -> dict[int, float]:
    snapshot, (column,) = lib.label_scores([label])
    return dict(zip(snapshot.photo_ids.tolist(), column.tolist(), strict=True))


def _review(lib: Library, truth: dict, label: str, rounds: int = 1):
    """What a person does: look at the label's best photos not yet decided, accept the right ones and
    reject the others; `rounds` times (a page at a time, the ranking learning after each)."""
    accepted = rejected = None
    decided: set[int] = set()
    for _ in range(rounds):
        hits = [h for h in lib.search(label, limit=REVIEWED + len(decided)).hits if h.photo_id not in decided]
        hits = hits[:REVIEWED]
        right = [h.photo_id for h in hits if label in truth[str(Path(h.path).resolve())]]
        wrong = [h.photo_id for h in hits if label not in truth[str(Path(h.path).resolve())]]
        accepted, rejected = lib.decide(right, label, "accepted"), lib.decide(wrong, label, "rejected")
        decided |= {*right, *wrong}
    return accepted, rejected, decided


def _ap(lib: Library, truth: dict, label: str, scores: dict[int, float], leave_out: set[int]) -> float:
    paths = dict(lib.photos())
    ids = [p for p in scores if p not in leave_out]
    targets = [[1 if label in truth[str(Path(paths[p]).resolve())] else -1] for p in ids]
    return float(average_precision(np.array([[scores[p]] for p in ids]), np.array(targets))[0])


def test_decisions_on_some_photos_rank_the_held_out_photos_better(demo):
    """The proving ground's protocol (benchmarks/feedback_gain.py) on one library: a person pages through
    the best photos of one half, 5 at a time, up to 20 decisions; AP is measured on the other half."""
    lib, truth = demo
    paths = dict(lib.photos())
    ids = sorted(paths)
    held = set(ids[::2])
    labels = [x for x in WorldSpec().unseen_category_labels  # shapes the model was never taught: what it is for
              if sum(x in truth[str(Path(paths[p]).resolve())] for p in held) >= 2]
    assert len(labels) >= 10
    before, after = [], []
    for label in labels:
        lib.add_label(label)
        original = _scores(lib, label)
        decided: set[int] = set()
        for _ in range(4):
            scores = _scores(lib, label)
            page = [p for p in sorted(scores, key=lambda p: (-scores[p], p)) if p not in held | decided][:PAGE]
            decided |= set(page)
            for status in ("accepted", "rejected"):
                chosen = [p for p in page if (label in truth[str(Path(paths[p]).resolve())]) == (status == "accepted")]
                if chosen:
                    lib.decide(chosen, label, status)
        assert next(i for i in lib.labels() if i.text == label).learned_from == 4 * PAGE
        before.append(_ap(lib, truth, label, original, set(ids) - held))
        after.append(_ap(lib, truth, label, _scores(lib, label), set(ids) - held))
    # measured here: 0.244 -> 0.268 over 14 labels (docs/proving-ground.md has the kinds and seeds)
    assert np.mean(after) > np.mean(before) + 0.01, (np.mean(before), np.mean(after))


def test_undo_and_forget_give_back_the_original_scores_exactly(demo):
    lib, truth = demo
    label = "yellow triangle"  # a label the other tests leave alone
    lib.add_label(label)
    original = _scores(lib, label)
    accepted, rejected, decided = _review(lib, truth, label)
    learned = _scores(lib, label)
    assert learned != original
    lib.undo(rejected)
    lib.undo(accepted)
    assert _scores(lib, label) == original
    assert next(i for i in lib.labels() if i.text == label).learned_from == 0

    accepted, rejected, decided = _review(lib, truth, label)
    assert _scores(lib, label) == learned  # the same decisions, the same scores
    assert mkt_desktop(["labels", "forget-corrections", label, "--db", str(lib.db_path)]) == 0
    assert _scores(lib, label) == original
    info = next(i for i in lib.labels() if i.text == label)
    assert info.learned_from == 0
    photo = next(iter(rejected.before or accepted.before))
    status = next(pl.status for pl in lib.photo_labels(photo, limit=50) if pl.label == label)
    assert status == ("rejected" if rejected.before else "accepted")  # the decisions themselves stay

    decision = lib.decide([photo], label, "accepted")  # decisions after forgetting teach again
    assert next(i for i in lib.labels() if i.text == label).learned_from == 1
    assert _scores(lib, label) != original
    lib.undo(decision)  # ...and undoing one brings back the forgotten decision, still forgotten
    assert _scores(lib, label) == original
    assert next(pl.status for pl in lib.photo_labels(photo, limit=50) if pl.label == label) == status


def test_an_adapted_label_shows_one_score_everywhere_and_ignores_other_labels(demo):
    lib, truth = demo
    label, other = "green star", "red circle"
    lib.add_labels([label, other])
    _review(lib, truth, label)
    scores = _scores(lib, label)
    hits = lib.search(label, limit=PHOTOS).hits
    assert {h.photo_id: h.score for h in hits} == scores
    photo = hits[0].photo_id
    shown = next(pl.score for pl in lib.photo_labels(photo, limit=100) if pl.label == label)
    assert shown == scores[photo]
    assert lib.where(photo, label)["score"] == pytest.approx(scores[photo], abs=1e-4)
    info = next(i for i in lib.labels() if i.text == label)
    assert info.above_threshold == sum(s >= info.effective_threshold for s in scores.values())

    _review(lib, truth, other)  # another label's decisions change nothing of this one
    lib.add_label("yellow cross")
    assert _scores(lib, label) == scores


def test_removing_a_label_that_learned_leaves_none_of_its_scores_behind(demo):
    lib, truth = demo
    label = "white square"
    folder = lib.score_columns.folder
    before = set(folder.iterdir())
    lib.add_label(label)
    _review(lib, truth, label)
    assert len(set(folder.iterdir()) - before) >= 4  # its own column and at least one learned one
    lib.remove_label(label)
    assert set(folder.iterdir()) == before
