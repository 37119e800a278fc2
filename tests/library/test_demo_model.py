"""The shipped demo model, offline, over photos of its own world: labels typed after indexing find their photos."""

import csv
from pathlib import Path

import numpy as np

from mkt_core.synthetic.world import SEEN, WorldSpec, write_demo_photos
from mkt_core.train.metrics import average_precision
from mkt_desktop.library.library import Library
from mkt_desktop.library.model_source import DEMO_MODEL

PHOTOS = 240


def _truth(csv_path: Path) -> dict[str, set[str]]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {str(csv_path.parent / row["path"]): set(filter(None, row["labels"].split("|")))
                for row in csv.DictReader(f)}


def test_a_label_added_after_indexing_ranks_the_demo_photos_that_carry_it_first(tmp_path):
    assert (DEMO_MODEL / "manifest.json").is_file(), "the demo model must ship in assets/demo-model"
    truth = _truth(write_demo_photos(tmp_path / "photos", count=PHOTOS, seed=11))
    lib = Library(db_path=tmp_path / "db" / "library.sqlite", model="demo", vocabulary=False)
    lib.add_folder(tmp_path / "photos")
    report = lib.index()
    assert report.counts()["indexed"] == PHOTOS and not lib.failures()

    world = WorldSpec()
    average_precisions = {}
    for label in world.labels:
        carriers = {path for path, labels in truth.items() if label in labels}
        if len(carriers) < 3:
            continue
        lib.add_label(label)
        hits, _ = lib.search(label, limit=PHOTOS)
        assert len(hits) == PHOTOS
        ranked = np.array([[1 if hit.path in carriers else -1] for hit in hits])
        scores = np.array([[hit.score] for hit in hits])
        average_precisions[label] = float(average_precision(scores, ranked)[0])
    seen = [ap for label, ap in average_precisions.items() if world.label_kind(label) == SEEN]
    unseen = [ap for label, ap in average_precisions.items() if world.label_kind(label) != SEEN]
    chance = np.mean([sum(label in labels for labels in truth.values()) / PHOTOS for label in average_precisions])
    # The seen labels' photos come first; labels never seen in training still rank far above chance.
    assert np.mean(seen) > 0.6, average_precisions
    assert np.mean(unseen) > 4 * chance, average_precisions
