"""What a person does in a large library, timed through the library's own code.

    .venv/bin/python benchmarks/library_scale.py --photos 100000 --sizes vit-b16
    .venv/bin/python benchmarks/library_scale.py --photos 20000 --sizes demo      # quicker

A library of `--photos` real files (tiny PNGs, each carrying its number in its pixels) is built
with `Library.index`, the write path the app uses; only the model is replaced by a generator of
embeddings structured like real ones (photos made of Zipf-popular concepts over patches, unit-norm
concept directions, a power-law spectrum: `benchmarks.surrogate.Surrogate`), at the sizes of
the demo model (D 128, N 64, k 6) or of ViT-B/16 (D 512, N 196, k 18). The library holds 80
saved labels (the vocabulary a new library scores). Then each operation runs `--repeats` times
and its p50 / p95 seconds are printed:

    search_new_text     a text never seen: encode it, score it over every photo, rank
    search_saved_label  a saved label's ranking
    open_photo          a photo's labels with scores and thresholds (the photo view)
    label_panel         every label with its count above threshold (the labels panel)
    set_threshold       a new threshold for a label, and its new count
    more_like_this      photos like one photo
    save_label          a new label scored over every photo
    rescan_unchanged    indexing again with nothing changed on disk

plus `db_bytes`, `store_bytes`, `peak_rss_bytes`, `recall_at_100` (a saved label's top 100
against exact fp32 Eq. 3 on the raw generated embeddings, over 20 probe labels; the build run only)
and `new_text_recall_at_100` (a typed text's top 100, through the candidate search, against the
store's own Eq. 3 over every photo: what the shortlist loses). Baselines in
the same run: `baseline.exact_fp32_seconds` (one label scored exactly over all photos, timed on
a block in memory and scaled) and `baseline.store_score_label_seconds` (the embedding store's
one-pass scoring alone). Prints one JSON object.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from benchmarks.surrogate import Surrogate  # noqa: E402
from mkt_core.runtime.bundle import Bundle  # noqa: E402

SIZES = {"demo": (128, 64, 6), "vit-b16": (512, 196, 18)}
IMAGE_SIZE = 8  # the tiny files are fed to the "model" as they are: 8 x 8 pixels, no resampling
LABELS = 80
PROBES = 20


def _number_of(array: np.ndarray) -> int:
    """The photo number a tiny file carries in its first pixel (normalised with mean 0, std 1)."""
    r, g, b = (np.rint(array[:, 0, 0] * 255.0)).astype(np.int64)
    return int(r + 256 * g + 65536 * b)


def write_photos(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        pixels[0, 0] = (i % 256, (i // 256) % 256, i // 65536)
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(sub / f"{i:07d}.png", compress_level=1)


class GeneratedEngine:
    """Stands in for the model: the embeddings of photo number i are the surrogate's photo i, and
    texts map to label embeddings (the probes to fixed concepts). Keeps exact Eq. 3 scores of the
    probes for every photo it embeds, for recall."""

    def __init__(self, sizes: str, photos: int):
        global_d, patches, top_k = SIZES[sizes]
        self.dim, self.patches, self.top_k = global_d, patches, top_k
        self.world = Surrogate(seed=0, dim=global_d, patches=patches)
        grid = int(np.sqrt(patches))
        self.bundle = Bundle(Path("generated"), {
            "kind": "mkt", "name": f"generated {sizes}", "fingerprint": f"generated:{sizes}", "embed_dim": global_d,
            "image_size": IMAGE_SIZE, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "squash",
            "patch_grid": [grid, patches // grid], "num_patches": patches, "top_k": top_k, "prompt": {}, "files": {}})
        self.probes = self.world.labels(PROBES, seed=1)
        self.exact = np.zeros((photos, PROBES), dtype=np.float32)
        self.calls = 0

    def encode_images(self, images: np.ndarray):
        numbers = [_number_of(image) for image in images]
        global_emb, local_emb = self.world.photos(len(numbers), seed=numbers[0] + 1_000_000 * self.calls)
        self.calls += 1
        dots = np.einsum("bnd,ld->bln", local_emb, self.probes)
        top = -np.sort(-dots, axis=2)[:, :, : self.top_k]
        self.exact[numbers] = global_emb @ self.probes.T + top.mean(axis=2)
        return global_emb, local_emb

    def encode_labels(self, labels: list[str]) -> np.ndarray:
        out = []
        for text in labels:
            if text.startswith("probe "):
                out.append(self.probes[int(text.split()[1])])
            else:
                seed = int.from_bytes(text.encode("utf-8")[:8].ljust(8, b"\0"), "little") % 2**32
                out.append(self.world.labels(1, seed=seed)[0])
        return np.stack(out).astype(np.float32)

    def device_description(self) -> str:
        return "generated embeddings (no model)"

    @property
    def fingerprint(self) -> str:
        return self.bundle.fingerprint


def timed(fn, repeats: int) -> dict:
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - start)
    return {"p50": round(statistics.median(seconds), 4),
            "p95": round(float(np.percentile(seconds, 95)), 4), "runs": repeats}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--sizes", choices=sorted(SIZES), default="vit-b16")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="build the library in this folder and keep it")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: time the operations again on the library built there before, without "
                             "building it (recall_at_100 needs the build's exact scores: not measured then)")
    args = parser.parse_args(argv)
    if args.reuse and not (args.keep and (args.keep / "library.sqlite").is_file()):
        parser.error("--reuse needs --keep FOLDER with a library built by an earlier run")
    from mkt_desktop.library import Library

    facts = machine_facts()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        photos = root / "photos"
        engine = GeneratedEngine(args.sizes, args.photos)
        files_seconds = build_seconds = None
        if args.reuse:
            lib = Library(db_path=root / "library.sqlite", engine=engine, vocabulary=False)
            assert lib.photo_count() == args.photos, f"{root} holds {lib.photo_count()} photos, not {args.photos}"
        else:
            started = time.perf_counter()
            write_photos(photos, args.photos)
            files_seconds = round(time.perf_counter() - started, 1)
            lib = Library(db_path=root / "library.sqlite", engine=engine, vocabulary=False)
            for i in range(LABELS - PROBES):
                lib.add_label(f"vocabulary word {i}")
            for i in range(PROBES):
                lib.add_label(f"probe {i}")
            started = time.perf_counter()
            report = lib.index([photos], batch_size=256)
            build_seconds = round(time.perf_counter() - started, 1)
            assert report.indexed == args.photos, report.counts()
        ids = [photo_id for photo_id, _ in lib.photos()]
        rng = np.random.default_rng(0)
        path_number = {photo_id: int(Path(path).stem) for photo_id, path in lib.photos()}

        started = time.perf_counter()
        lib.warm_up()  # as the window does once the model is loaded
        warm_up_seconds = round(time.perf_counter() - started, 3)
        operations = {
            "search_new_text": timed(lambda i: lib.search(f"never typed before {i}", limit=200), args.repeats),
            "search_saved_label": timed(lambda i: lib.search(f"probe {i % PROBES}", limit=200), args.repeats),
            "open_photo": timed(lambda i: lib.photo_labels(int(rng.choice(ids))), args.repeats),
            "label_panel": timed(lambda i: lib.labels(source=None), args.repeats),
            "set_threshold": timed(lambda i: (lib.set_threshold("probe 0", 0.5 + 0.01 * i),
                                              lib.labels(source=None, ids=[lib.labels(source=None)[0].id])),
                                   args.repeats),
            "more_like_this": timed(lambda i: lib.similar(int(rng.choice(ids))), args.repeats),
            "save_label": timed(lambda i: lib.add_label(f"a new label {os.getpid()} {i}"), args.repeats),
            "rescan_unchanged": timed(lambda i: lib.index(), max(1, args.repeats // 3)),
        }
        recalls = []
        for j in range(0 if args.reuse else PROBES):
            hits, _ = lib.search(f"probe {j}", limit=100)
            found = {path_number[h.photo_id] for h in hits}
            recalls.append(len(found & set(np.argsort(-engine.exact[:, j])[:100].tolist())) / 100)

        # A typed text (not a saved label) goes through the candidate search: its top 100 against the store's
        # exhaustive Eq. 3 over every photo (the same scores, no shortlist), in either mode.
        snapshot = lib.snapshot()
        unique, inverse = snapshot.distinct_rows()
        new_text_recalls = []
        for j in range(PROBES):
            hits, _ = lib.search(f"probe {j} typed", limit=100)
            every = lib.store.score_labels(engine.probes[j][None], rows=unique)[inverse, 0]
            truth = set(snapshot.photo_ids[np.argsort(-every, kind="stable")[:100]].tolist())
            new_text_recalls.append(len(truth & {h.photo_id for h in hits}) / 100)

        store = lib.store
        z = engine.probes[0]
        baseline_store = timed(lambda i: store.score_label(z), 3)["p50"]
        block = min(args.photos, 2000)
        g, l = engine.world.photos(block, seed=7)

        def exact_block(_):
            for start in range(0, block, 250):
                dots = l[start:start + 250] @ z
                np.partition(dots, -engine.top_k, axis=1)[:, -engine.top_k:].mean(axis=1) + g[start:start + 250] @ z

        exact = timed(exact_block, 3)["p50"] * args.photos / block
        db_bytes = sum(p.stat().st_size for p in root.glob("library.sqlite*"))
        result = {
            "benchmark": "library_scale", "photos": args.photos, "sizes": args.sizes,
            "embed_dim": engine.dim, "num_patches": engine.patches, "top_k": engine.top_k, "labels": LABELS,
            "operations": operations, "warm_up_seconds": warm_up_seconds,
            "recall_at_100": round(float(np.mean(recalls)), 4) if recalls else None,
            "recall_at_100_min": round(float(np.min(recalls)), 4) if recalls else None,
            "new_text_recall_at_100": round(float(np.mean(new_text_recalls)), 4),
            "new_text_recall_at_100_min": round(float(np.min(new_text_recalls)), 4),
            "db_bytes": db_bytes, "store_bytes": folder_bytes(store.folder),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "build_seconds": {"files": files_seconds, "index": build_seconds}, "reused_library": args.reuse,
            "baseline": {"exact_fp32_seconds": round(exact, 4), "store_score_label_seconds": baseline_store,
                         "exact_note": f"exact Eq. 3 in fp32 (numpy) timed on {block} photos in memory, scaled"},
            "machine": facts,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        }
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
