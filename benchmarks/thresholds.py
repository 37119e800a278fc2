"""Thresholds on the proving ground: does "above threshold" mean what a person thinks it means?

    .venv/bin/python benchmarks/thresholds.py                   # about a minute on two cores
    .venv/bin/python benchmarks/thresholds.py --photos 100      # quicker

Prints one JSON object: every number under "before" (the old automatic threshold, the library's
mean + 2 standard deviations of the label's own scores) and "after" (what `Library.labels()` and
`Library.search()` give now: the larger of the calibrated 50 % score and the 99.9 % quantile of
random texts' scores; labels.py). Libraries are real: demo-world JPEGs (`write_demo_photos`, stream
"demo", never the calibration's stream "eval") indexed by `Library.index` with the demo model.

- `real_labels`: the world's 80 labels saved in a library of `--photos` scenes; precision and
  recall of "above threshold" against the scenes' truth, over every (photo, label) pair.
- `unknown_texts`: strings the model cannot know (random letters, disjoint from the null texts, and
  words of another world: "dog", "a person", "qwxz"...): photos above threshold, in all (goal: 0),
  and how many of the searches say that the model does not seem to know the text.
  `partly_known_texts` ("black and white portrait", "blue sky"...) hold a word of the world: what
  they tag is shown apart (they are not unknown to this model).
- `absent_shapes`: a library drawn without moons and arrows; the 16 "colour moon / arrow" labels:
  photos above threshold (goal: 0).
- `small_libraries`: libraries of 1, 5 and 20 photos taken from the first library (`--draws` random
  draws each; thresholds computed as the library computes them, from those photos alone): precision,
  recall and unknown texts' photos above threshold. `one_photo_library`: a real one-photo library.
- `ordinary_photos`: `write_off_world_photos` beside the scenes: world labels above threshold on
  them (the demo model knows only its world; every one of these is wrong).
- `reliability`: the confidence shown against the share of true pairs, per confidence bin.
"""

import argparse
import csv
import json
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from mkt_core.runtime.calibration import NULL_TEXTS, reliability  # noqa: E402
from mkt_core.synthetic.world import (  # noqa: E402
    DEFAULT_SHAPES,
    DEFAULT_UNSEEN_COMPOSITIONS,
    WorldSpec,
    write_demo_photos,
    write_off_world_photos,
)
from mkt_desktop.library.labels import automatic_threshold, null_scores  # noqa: E402
from mkt_desktop.library.library import Library  # noqa: E402

WORDS = ["dog", "a person", "qwxz", "a photo of nothing", "cat", "car", "tree", "cartoon fish", "sunset",
         "birthday cake", "mountain lake", "a wedding"]
# texts that hold a word the model does know (a colour or a shape of its world): reported apart
PARTLY_KNOWN = ["black and white portrait", "a red sports car", "blue sky", "heart surgery"]


def unknown_texts(count: int = 20, seed: int = 99) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(list(string.ascii_lowercase), int(rng.integers(3, 10)))) for _ in range(count)]
    return [t for t in texts if t not in NULL_TEXTS] + WORDS


def old_threshold(scores: np.ndarray) -> np.ndarray:
    """The automatic threshold before: mean + 2 sd of each label's scores over the library `[P, L] -> [L]`."""
    return scores.mean(axis=0) + 2.0 * scores.std(axis=0)


def precision_recall(above: np.ndarray, truth: np.ndarray) -> dict:
    hits = int((above & truth).sum())
    return {"precision": round(hits / max(int(above.sum()), 1), 4), "recall": round(hits / max(int(truth.sum()), 1), 4),
            "above": int(above.sum()), "true_pairs": int(truth.sum())}


def library_scores(lib: Library, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """(paths, scores [P, L]) of every indexed photo, for typed or saved texts (the store's Eq. 3)."""
    snapshot = lib.snapshot()
    z = lib.label_embeddings(texts)
    scores = lib.store.score_labels(z, rows=snapshot.rows)
    with lib.Session() as session:
        from mkt_desktop.library.db import Photo

        paths = dict(session.query(Photo.id, Photo.path).all())
    return [paths[int(p)] for p in snapshot.photo_ids], scores


def truth_of(folder: Path, paths: list[str], labels: list[str]) -> np.ndarray:
    truth = {}
    with (folder / "labels.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            truth[str((folder / row["path"]).resolve())] = set(row["labels"].split("|"))
    return np.array([[label in truth.get(str(Path(p).resolve()), ()) for label in labels] for p in paths])


def make_library(folder: Path, photos: Path) -> Library:
    lib = Library(db_path=folder / "library.sqlite", model="demo", vocabulary=False)
    lib.index([photos])
    return lib


def run(args) -> dict:
    world = WorldSpec()
    labels, unknown = world.labels, unknown_texts()
    started = time.perf_counter()
    result: dict = {"machine": machine_facts(), "photos": args.photos, "draws": args.draws,
                    "null_texts": len(NULL_TEXTS)}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        # -- a library of scenes, with ordinary photos beside them
        write_demo_photos(work / "scenes" / "world", args.photos, seed=21)
        write_off_world_photos(work / "scenes" / "ordinary", args.ordinary)
        lib = make_library(work / "a", work / "scenes")
        calibration = lib.calibration
        paths, scores = library_scores(lib, labels)
        _, unknown_scores = library_scores(lib, unknown)
        _, partly_scores = library_scores(lib, PARTLY_KNOWN)
        _, null_columns = library_scores(lib, list(NULL_TEXTS))
        on_world = np.array(["/world/" in p for p in paths])
        truth = truth_of(work / "scenes" / "world", paths, labels)
        for text in labels:
            lib.add_label(text)
        after = {info.text: info.effective_threshold for info in lib.labels()}
        after_thresholds = np.array([after[text] for text in labels])
        old = old_threshold(scores)
        old_unknown = old_threshold(unknown_scores)
        searches = [lib.search(text, limit=1) for text in unknown]
        result["threshold"] = {"automatic": lib.automatic_threshold(), "null_quantile": lib.null_scores().quantile,
                               "calibrated_50_percent": calibration.score_at(0.5),
                               "calibration_fitted_on": calibration.fitted_on}
        result["real_labels"] = {
            "before": precision_recall((scores >= old)[on_world], truth[on_world]),
            "after": precision_recall((scores >= after_thresholds)[on_world], truth[on_world])}
        result["unknown_texts"] = {
            "texts": len(unknown),
            "before": {"photos_above": int((unknown_scores >= old_unknown).sum()),
                       "texts_tagging_a_photo": int((unknown_scores >= old_unknown).any(axis=0).sum())},
            "after": {"photos_above": int((unknown_scores >= lib.automatic_threshold()).sum()),
                      "texts_tagging_a_photo": int((unknown_scores >= lib.automatic_threshold()).any(axis=0).sum()),
                      "which": {text: int(n) for text, n in zip(
                          unknown, (unknown_scores >= lib.automatic_threshold()).sum(axis=0), strict=True) if n},
                      "searches_saying_unknown": sum("does not seem to know" in (s.note or "") for s in searches),
                      "searches_with_a_note": sum(s.note is not None for s in searches)}}
        partly_above = (partly_scores >= lib.automatic_threshold())[on_world]
        partly_truth = {text: [any(word in labels_of.split(" ") for word in text.split(" ")) for labels_of in
                               np.array(labels)] for text in PARTLY_KNOWN}
        result["partly_known_texts"] = {
            "before": {text: int(n) for text, n in zip(
                PARTLY_KNOWN, (partly_scores >= old_threshold(partly_scores))[on_world].sum(axis=0), strict=True)},
            "after": {text: int(n) for text, n in zip(PARTLY_KNOWN, partly_above.sum(axis=0), strict=True)},
            "after_photos_showing_a_word_of_the_text": {
                text: int((partly_above[:, j] & truth[on_world][:, partly_truth[text]].any(axis=1)).sum())
                for j, text in enumerate(PARTLY_KNOWN)}}
        result["ordinary_photos"] = {
            "photos": int((~on_world).sum()),
            "before": {"label_photo_pairs_above": int((scores >= old)[~on_world].sum())},
            "after": {"label_photo_pairs_above": int((scores >= after_thresholds)[~on_world].sum())}}
        result["reliability"] = reliability(calibration.confidence(scores[on_world]), truth[on_world])

        # -- small libraries drawn from the first one
        rng = np.random.default_rng(0)
        world_rows = np.flatnonzero(on_world)
        small = {}
        for size in (1, 5, 20):
            before_above, after_above, before_unknown, after_unknown, truths = [], [], 0, 0, []
            for _ in range(args.draws):
                rows = rng.choice(world_rows, size, replace=False)
                threshold = automatic_threshold(null_scores([c[rows] for c in null_columns.T]), calibration)
                before_above.append(scores[rows] >= old_threshold(scores[rows]))
                after_above.append(scores[rows] >= threshold)
                truths.append(truth[rows])
                before_unknown += int((unknown_scores[rows] >= old_threshold(unknown_scores[rows])).sum())
                after_unknown += int((unknown_scores[rows] >= threshold).sum())
            t = np.concatenate(truths)
            small[str(size)] = {
                "before": {**precision_recall(np.concatenate(before_above), t), "unknown_photos_above": before_unknown},
                "after": {**precision_recall(np.concatenate(after_above), t), "unknown_photos_above": after_unknown}}
        result["small_libraries"] = small

        # -- a real library of one photo
        one = work / "one"
        write_demo_photos(one / "photo", 1, seed=23)
        single = make_library(one, one / "photo")
        _, single_scores = library_scores(single, labels + unknown)
        single_truth = truth_of(one / "photo", library_scores(single, labels)[0], labels)[0]
        for text in ("qwxz", "a photo of nothing", "dog"):
            single.add_label(text)
        exported = single.photo_tags()
        above = single_scores[0] >= single.automatic_threshold()
        result["one_photo_library"] = {
            "truth": sorted(np.array(labels)[single_truth]),
            "before": {"labels_above": int(len(labels) + len(unknown))},  # mean + 2 sd of one score is the score
            "after": {"world_labels_above": sorted(np.array(labels)[above[:len(labels)]]),
                      "unknown_texts_above": int(above[len(labels):].sum()),
                      "exported_to_sidecar": sorted(pl.label for tags in exported.values() for pl in tags)}}

        # -- a library without moons and arrows
        absent_world = WorldSpec(shapes=tuple(s for s in DEFAULT_SHAPES if s not in ("moon", "arrow")),
                                 unseen_shapes=(), unseen_compositions=DEFAULT_UNSEEN_COMPOSITIONS)
        write_demo_photos(work / "absent" / "photos", args.absent_photos, seed=24, world=absent_world)
        absent_lib = make_library(work / "absent", work / "absent" / "photos")
        absent_labels = [text for text in labels if text.split(" ")[1] in ("moon", "arrow")]
        _, absent_scores = library_scores(absent_lib, absent_labels)
        result["absent_shapes"] = {
            "labels": len(absent_labels), "photos": args.absent_photos,
            "before": {"photos_above": int((absent_scores >= old_threshold(absent_scores)).sum())},
            "after": {"photos_above": int((absent_scores >= absent_lib.automatic_threshold()).sum())}}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300, help="scenes in the main library")
    parser.add_argument("--ordinary", type=int, default=40, help="ordinary (off-world) photos beside them")
    parser.add_argument("--absent-photos", type=int, default=150, help="scenes of the library without moons")
    parser.add_argument("--draws", type=int, default=100, help="random small libraries per size")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
