"""Indexing speed end to end (JPEG files on disk -> embeddings in the store) against the bare model.

    .venv/bin/python benchmarks/index_throughput.py                           # tiny model, 256 photos
    .venv/bin/python benchmarks/index_throughput.py --model vit-b16 --photos 64
    .venv/bin/python benchmarks/index_throughput.py --model vit-b16 --photos 512 --photo-size 4000x3000  # GPU

Prints one JSON object: `photos_per_second` (decode in a worker pool overlapped with inference,
then the store append), `model_only_photos_per_second` (the same engine and batch size on
tensors already in memory), their `ratio` (1.0 = the model never waits on files), and `device`.
The model has random weights (the speed of a trained one is the same); the photos are generated
JPEGs with smooth content, so they compress and decode like photographs rather than noise.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from mkt_core.runtime.engine import Engine, cpu_count  # noqa: E402
from mkt_core.runtime.image_pipeline import Preprocess, embed_files  # noqa: E402
from mkt_core.runtime.store import EmbeddingStore  # noqa: E402


def make_photo(path: Path, width: int, height: int, seed: int) -> None:
    """A photo-like JPEG: a gradient sky, a few blurred shapes, mild sensor noise."""
    rng = np.random.default_rng(seed)
    small_w, small_h = max(64, width // 8), max(48, height // 8)
    y = np.linspace(0, 1, small_h)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = (top * (1 - y) + bottom * y) * np.ones((1, small_w, 1))
    image = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, small_w), rng.integers(0, small_h)
        x1, y1 = x0 + rng.integers(8, small_w // 2), y0 + rng.integers(8, small_h // 2)
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    image = image.filter(ImageFilter.GaussianBlur(1.5)).resize((width, height), Image.BILINEAR)
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_bundle(model: str, folder: Path) -> Path:
    from mkt_core.model.config import get_preset
    from mkt_core.model.export import export_bundle
    from mkt_core.model.mkt import create_model

    if model == "tiny":
        net = create_model("tiny")
    else:
        config = get_preset("paper-vit-b16")
        config.student.pretrained = False
        config.vlp.pretrained = None
        net = create_model(config, load_weights=False)
    return export_bundle(net, folder / "bundle")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def compare_int8(engine: Engine, paths: list[Path], batch_size: int, labels: int = 50) -> dict:
    """Model-only speed of the int8 image encoder and how well its rankings agree with fp32.

    Agreement: for random unit label vectors, Eq. 3 scores of all photos under both encoders;
    Spearman correlation per label across photos, and the overlap of each label's top 10.
    """
    import torch

    from mkt_core.model.scoring import two_stream_scores

    preprocess = Preprocess.from_bundle(engine.bundle)
    images = np.stack([preprocess(p) for p in paths])
    int8 = Engine(engine.bundle, device="cpu", precision="int8", batch_size=batch_size)
    speeds, embeddings = {}, {}
    for name, eng in (("fp32", engine), ("int8", int8)):
        eng.encode_images(images[:batch_size])
        start = time.perf_counter()
        embeddings[name] = eng.encode_images(images)
        speeds[name] = len(images) / (time.perf_counter() - start)
    z = np.random.default_rng(0).standard_normal((labels, engine.bundle.embed_dim)).astype(np.float32)
    z = torch.from_numpy(z / np.linalg.norm(z, axis=1, keepdims=True))
    k = max(1, engine.bundle.top_k)
    scores = {}
    for name, (global_emb, local_emb) in embeddings.items():
        local = None if local_emb is None else torch.from_numpy(local_emb)
        scores[name] = two_stream_scores(z, torch.from_numpy(global_emb), local, k,
                                         "both" if local is not None else "global").numpy()
    top = min(10, len(images))
    overlap = [len(set(np.argsort(-scores["fp32"][:, j])[:top]) & set(np.argsort(-scores["int8"][:, j])[:top])) / top
               for j in range(labels)]
    return {"fp32_model_only_photos_per_second": round(speeds["fp32"], 2),
            "int8_model_only_photos_per_second": round(speeds["int8"], 2),
            "speedup": round(speeds["int8"] / speeds["fp32"], 2),
            "spearman_mean": round(float(np.mean([spearman(scores["fp32"][:, j], scores["int8"][:, j])
                                                  for j in range(labels)])), 4),
            f"top{top}_overlap_mean": round(float(np.mean(overlap)), 4),
            "note": "random-weight model and random label vectors: agreement on a trained model is unmeasured"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "vit-b16"], default="tiny")
    parser.add_argument("--bundle", help="an existing bundle folder instead of a random model")
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--photo-size", default="1600x1200", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="decode workers (0: one per core)")
    parser.add_argument("--pools", nargs="+", default=["thread", "process"], choices=["thread", "process"],
                        help="decode pools to time; the first is the headline")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"])
    parser.add_argument("--compare-int8", action="store_true",
                        help="also time the int8 image encoder and its ranking agreement with fp32 (CPU)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.photo_size.lower().split("x"))
    facts = machine_facts()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle = Path(args.bundle) if args.bundle else make_bundle(args.model, tmp)
        engine = Engine(bundle, backend=args.backend, precision=args.precision, batch_size=args.batch_size)
        start = time.perf_counter()
        paths = []
        for i in range(args.photos):
            paths.append(tmp / f"photo_{i:05d}.jpg")
            make_photo(paths[-1], width, height, seed=i)
        generate_seconds = time.perf_counter() - start
        workers = args.workers or cpu_count()

        # the bare model: the same engine and batch size on tensors already in memory
        preprocess = Preprocess.from_bundle(engine.bundle)
        batch = np.stack([preprocess(p) for p in paths[: args.batch_size]])
        engine.encode_images(batch)  # warm up: allocations, kernel choice
        start = time.perf_counter()
        done = 0
        while done < args.photos:
            engine.encode_images(batch[: min(args.batch_size, args.photos - done)])
            done += min(args.batch_size, args.photos - done)
        model_only = args.photos / (time.perf_counter() - start)

        int8 = compare_int8(engine, paths, args.batch_size) if args.compare_int8 else None

        end_to_end = {}
        for pool in args.pools:
            store = EmbeddingStore.for_bundle(tmp / f"store_{pool}", engine.bundle)
            os.sync()  # the photos were just written: flush them so that decode reads like any file would
            start = time.perf_counter()
            ids, globals_, locals_, errors = [], [], [], 0
            for i, item in enumerate(embed_files(paths, engine, args.batch_size, workers, pool)):
                if item.error:
                    errors += 1
                    continue
                ids.append(i)
                globals_.append(item.global_emb)
                locals_.append(item.local_emb)
                if len(ids) == args.batch_size:
                    store.append(ids, np.stack(globals_), np.stack(locals_) if engine.has_local else None)
                    ids, globals_, locals_ = [], [], []
            if ids:
                store.append(ids, np.stack(globals_), np.stack(locals_) if engine.has_local else None)
            end_to_end[pool] = {"photos_per_second": round(args.photos / (time.perf_counter() - start), 2),
                                "errors": errors, "stored": len(store)}
        head = end_to_end[args.pools[0]]
        result = {
            "benchmark": "index_throughput", "model": "bundle" if args.bundle else args.model,
            "photos": args.photos, "photo_size": [width, height],
            "jpeg_megabytes_mean": round(sum(p.stat().st_size for p in paths) / len(paths) / 1e6, 3),
            "batch_size": args.batch_size, "workers": workers, "pool": args.pools[0],
            "photos_per_second": head["photos_per_second"],
            "model_only_photos_per_second": round(model_only, 2),
            "ratio": round(head["photos_per_second"] / model_only, 3),
            "by_pool": end_to_end, "device": engine.device_description(),
            "int8": int8, "generate_seconds": round(generate_seconds, 1), **facts,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
