"""A library's decisions exported as a data set the trainer reads: accepted labels positive, rejected
negative, everything the person did not decide on unknown."""

import numpy as np

from mkt_core.data.generic import read_annotations, read_label_file
from mkt_core.synthetic.world import write_demo_photos
from mkt_desktop.cli import main as mkt_desktop
from mkt_desktop.library.library import Library


def test_decisions_become_positives_negatives_and_unknowns(tmp_path, tiny_bundle):
    write_demo_photos(tmp_path / "photos", count=4, seed=3)
    lib = Library(db_path=tmp_path / "library.sqlite", model=tiny_bundle, vocabulary=False)
    lib.index([tmp_path / "photos"])
    (a, path_a), (b, path_b), (c, _), _ = lib.photos()
    lib.decide([a, b], "red star", "accepted")
    lib.decide([a], "blue moon", "rejected")
    lib.decide([c], "blue moon", "accepted")
    lib.decide([c], "blue moon", None)  # a decision taken back is no example
    lib.add_label("green ring")  # a label without decisions teaches nothing

    out = tmp_path / "my-tags"
    assert mkt_desktop(["export", "--training-set", str(out), "--db", str(lib.db_path), "--model", tiny_bundle]) == 0
    seen, unseen = read_label_file(out / "labels.txt")
    assert (seen, unseen) == (["red star", "blue moon"], [])
    paths, targets = read_annotations(out / "annotations.jsonl", seen)
    assert dict(zip(paths, targets.tolist(), strict=True)) == {path_a: [1, -1], path_b: [1, 0]}
    assert targets.dtype == np.int8
