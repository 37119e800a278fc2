"""Heat-map pointing through the app: a bundle -> a library of held-out scenes -> each label's heat map.

The proving ground (`mkt-train toy-benchmark`) measures pointing on the torch models; this measures what a
person sees: the photos indexed by the library (the bundle's ONNX encoder, the store's int8 codes) and the
heat map the photo view draws (`Library.patch_scores`). For each object of each scene: is the label's
highest patch on the object (`mkt_core.synthetic.pointing`), against the random-patch rate.

    python -m benchmarks.app_pointing --model toy-vit-clip   # the toy ViT teacher as the app's CLIP bundle
    python -m benchmarks.app_pointing --model demo           # the demo model
    python -m benchmarks.app_pointing --model PATH           # any bundle of the synthetic world

The scenes are the first `--scenes` of the proving ground's test set (data seed 0), never seen in training.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_facts
from mkt_core.synthetic.pointing import pointing_accuracy, test_objects
from mkt_core.synthetic.world import SEEN, WorldSpec, mkt_test_set, write_multilabel_set


def _bundle(model: str, folder: Path) -> str:
    if model != "toy-vit-clip":
        return model
    from mkt_core.assets import TOY_VIT_TEACHER
    from mkt_core.model.export import export_clip_bundle

    return str(export_clip_bundle("toy-vit", str(TOY_VIT_TEACHER), folder / "toy-vit-clip", name="toy ViT teacher"))


def measure(model: str, scenes: int, seed: int, folder: Path) -> dict:
    from mkt_desktop.library import Library

    world = WorldSpec()
    test = mkt_test_set(scenes, seed, world)
    write_multilabel_set(test, folder / "scenes")
    lib = Library(db_path=folder / "library.sqlite", model=_bundle(model, folder), vocabulary=False)
    started = time.perf_counter()
    report = lib.index([folder / "scenes" / "images"])
    index_seconds = time.perf_counter() - started
    if report.indexed != scenes:
        raise RuntimeError(f"indexed {report.indexed} of {scenes} scenes: {report.counts()}")
    grid = tuple(lib.bundle.manifest["patch_grid"])
    if not lib.bundle.num_patches:
        raise ValueError(f"{model}: the bundle has no local stream, so no heat map")
    objects = test_objects(scenes, seed, world, grid, test.labels)
    top = np.zeros((scenes, len(test.labels)), dtype=np.int64)
    for i, scene in enumerate(objects):
        photo = lib.photo_id(str(folder / "scenes" / "images" / f"{i:06d}.png"))
        for j, _ in scene:
            top[i, j] = int(np.argmax(lib.patch_scores(photo, test.labels[j])))
    kinds = test.kinds
    by_kind = {kind: pointing_accuracy(top, objects, [j for j, k in enumerate(kinds) if k == kind])
               for kind in dict.fromkeys(kinds)}
    return {"benchmark": "app_pointing", "model": model, "bundle": lib.bundle.name, "scenes": scenes,
            "data_seed": seed, "patch_grid": list(grid), "all": pointing_accuracy(top, objects),
            "by_kind": by_kind, "seen_kind": SEEN, "index_seconds": round(index_seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy-vit-clip", help="toy-vit-clip, demo or a bundle folder")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0, help="the world's data seed (the proving ground's: 0)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    facts = machine_facts()
    with tempfile.TemporaryDirectory() as tmp:
        result = {**measure(args.model, args.scenes, args.seed, Path(tmp)), "machine": facts}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
