"""A label's count is the photos it tags: a person's accepts and rejects count, not only the threshold."""

import numpy as np
from PIL import Image

from mkt_desktop.library.library import Library


def test_a_labels_count_follows_accepts_and_rejects(tmp_path, tiny_bundle):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(4):
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(
            folder / f"p{seed}.jpg")
    lib = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle)
    lib.index([folder])
    lib.add_label("red boat")
    hits = lib.search("red boat", limit=10).hits
    lib.set_threshold("red boat", (hits[1].score + hits[2].score) / 2)  # the best two are above it

    def info():
        return next(i for i in lib.labels() if i.text == "red boat")

    assert (info().above_threshold, info().tagged) == (2, 2)

    def expected() -> int:  # (the label learns from decisions: its scores move with them)
        now = {hit.photo_id: hit.score for hit in lib.search("red boat", limit=10).hits}
        decided = lib.label_statuses("red boat")
        threshold = info().effective_threshold
        return sum(decided.get(p) == "accepted" or (decided.get(p) != "rejected" and score >= threshold)
                   for p, score in now.items())

    lib.set_tag(hits[0].photo_id, "red boat", "rejected")  # rejected: never tagged, whatever its score
    lib.set_tag(hits[3].photo_id, "red boat", "accepted")  # accepted: always tagged
    lib.set_tag(hits[1].photo_id, "red boat", "accepted")
    assert info().tagged == expected()
    lib.set_tag(hits[3].photo_id, "red boat", None)
    assert info().tagged == expected()
    assert lib.label_statuses("Red  Boat") == {hits[0].photo_id: "rejected", hits[1].photo_id: "accepted"}
    tagged = {path for path, labels in lib.photo_tags().items()
              if any(pl.label == "red boat" and pl.status != "rejected" for pl in labels)}
    assert len(tagged) == info().tagged  # the count is what an export writes
