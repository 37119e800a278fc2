"""Learning from decisions on the proving ground: how much a label's ranking gains from a person's accepts and rejects.

    .venv/bin/python benchmarks/feedback_gain.py                  # 3 seeds of 400 photos: a few minutes on 2 cores
    .venv/bin/python benchmarks/feedback_gain.py --photos 200 --seeds 1

For each seed: demo-world JPEGs (`write_demo_photos`, stream "demo") indexed by `Library.index` with the
demo model, split at random into photos a simulated person reviews and held-out photos. For every
label of the world, the person looks at the best 5 photos of the reviewable half that they have not
decided on yet (the library's current, adapted ranking), accepts those that truly carry the label and
rejects the others, and so on up to 20 decisions; after 0, 5, 10 and 20 decisions the label's AP over
the held-out photos is measured with the library's own scores (`Library.label_scores`, what every
view shows). Then `forget_corrections` gives the label back its original scores. Labels with no
held-out photo carrying them are left out.

Prints one JSON object: `by_kind` {seen | unseen-category | unseen-composition: {"0" | "5" | "10" |
"20": {mean, sd}}}, mAP as fractions, the mean and sd over seeds of each seed's mAP over the kind's
labels; `every_reviewable_photo_decided`: the same once the person has decided on every photo of
their half (what this learner reaches at best); `worse_labels`: labels whose AP after 10 decisions is
lower than at 0, averaged over seeds; and the machine's facts.
"""

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from mkt_core.synthetic.world import WorldSpec, write_demo_photos  # noqa: E402
from mkt_core.train.metrics import average_precision  # noqa: E402
from mkt_desktop.library.library import Library  # noqa: E402

STEPS = (0, 5, 10, 20)
PAGE = 5  # photos a person decides on between two looks at the ranking


def one_seed(work: Path, photos: int, seed: int, world: WorldSpec) -> dict[str, dict[int, float]]:
    """{label: {decisions: held-out AP}} for one library."""
    csv_path = write_demo_photos(work / "photos", photos, seed=seed)
    with csv_path.open(newline="", encoding="utf-8") as f:
        truth_of = {str((csv_path.parent / row["path"]).resolve()): set(row["labels"].split("|"))
                    for row in csv.DictReader(f)}
    lib = Library(db_path=work / "library.sqlite", model="demo", vocabulary=False)
    lib.index([work / "photos"])
    lib.add_labels(world.labels)
    paths = dict(lib.photos())
    snapshot = lib.snapshot()
    ids = snapshot.photo_ids
    held = np.random.default_rng(seed).permutation(len(ids)) < len(ids) // 2
    result = {}
    for label in world.labels:
        truth = np.array([label in truth_of[str(Path(paths[int(p)]).resolve())] for p in ids])
        if not truth[held].any():
            continue
        decided: set[int] = set()
        result[label] = {}
        for step in range(0, max(STEPS) + 1, PAGE):
            _, (scores,) = lib.label_scores([label])
            if step in STEPS:
                targets = np.where(truth[held], 1, -1)[:, None]
                result[label][step] = float(average_precision(scores[held][:, None], targets)[0])
            if step == max(STEPS):
                break
            order = [i for i in np.lexsort((ids, -scores)) if not held[i] and int(ids[i]) not in decided][:PAGE]
            for status, picked in (("accepted", [i for i in order if truth[i]]),
                                   ("rejected", [i for i in order if not truth[i]])):
                if picked:
                    lib.decide([int(ids[i]) for i in picked], label, status)
            decided |= {int(ids[i]) for i in order}
        rest = [i for i in range(len(ids)) if not held[i] and int(ids[i]) not in decided]
        for status, picked in (("accepted", [i for i in rest if truth[i]]),
                               ("rejected", [i for i in rest if not truth[i]])):
            if picked:
                lib.decide([int(ids[i]) for i in picked], label, status)
        _, (scores,) = lib.label_scores([label])  # every reviewable photo decided: what this learner can reach
        result[label]["all"] = float(average_precision(scores[held][:, None], np.where(truth[held], 1, -1)[:, None])[0])
        lib.forget_corrections(label)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    world = WorldSpec()
    started = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="mkt-feedback-") as folder:
            runs.append(one_seed(Path(folder), args.photos, 100 + seed, world))
    def summary(kind: str, step) -> dict[str, float]:
        per_seed = [np.mean([aps[step] for label, aps in run.items() if world.label_kind(label) == kind])
                    for run in runs]
        return {"mean": round(float(np.mean(per_seed)), 4), "sd": round(float(np.std(per_seed)), 4)}

    kinds = ("seen", "unseen-category", "unseen-composition")
    by_kind = {kind: {str(step): summary(kind, step) for step in STEPS} for kind in kinds}
    every = {kind: summary(kind, "all") for kind in kinds}
    change = {}
    for run in runs:
        for label, aps in run.items():
            change.setdefault(label, []).append(aps[10] - aps[0])
    worse = sorted(label for label, deltas in change.items() if np.mean(deltas) < 0)
    print(json.dumps({"by_kind": by_kind, "every_reviewable_photo_decided": every,
                      "worse_labels": {"count": len(worse), "of": len(change), "labels": worse},
                      "photos": args.photos, "seeds": args.seeds, "page": PAGE,
                      "seconds": round(time.perf_counter() - started, 1), "machine": machine_facts()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
