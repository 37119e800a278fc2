"""How the embedding store's codec holds up when a library's first photos are unlike the rest.

    .venv/bin/python benchmarks/store_codec.py                 # demo model, 32 + 600 photos
    .venv/bin/python benchmarks/store_codec.py --scenes 200    # quicker

The store fits its PCA codec on the first photos appended. The demo model embeds a library of
`--ordinary` photos unlike its world (soft gradients and blobs) and `--scenes` of its world's
scenes; each design is filled in two orders (the unlike photos first, or scenes first) and
compared with exact fp32 Eq. 3 on the raw embeddings, over every label of the model's vocabulary:

- `recall_at_100`: overlap of the store's top 100 with the exact top 100 (mean and min over labels);
- `worst_error`: the largest |store - exact| score over all photos and labels, and the same
  divided by that label's score spread over the library (`worst_error_in_spreads`).

Designs: `v1_clipping` (what version 1 did: per-dimension steps from the first batch's spread,
codes clipped at +-127), `v2_token_factors` (the store today: a factor t >= 1 per token, no
clipping), `fitted_on_all` (a codec fitted on the whole library: the best a first-batch fit can
hope for). Prints one JSON object.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_facts  # noqa: E402
from mkt_core.assets import DEMO_MODEL  # noqa: E402
from mkt_core.runtime.engine import Engine  # noqa: E402
from mkt_core.runtime.image_pipeline import embed_files  # noqa: E402
from mkt_core.runtime.store import CLIP_SIGMAS, ZERO_POINT, EmbeddingStore, LocalCodec  # noqa: E402
from mkt_core.synthetic.world import write_demo_photos, write_off_world_photos  # noqa: E402


def exact_scores(z: np.ndarray, global_emb: np.ndarray, local_emb: np.ndarray, k: int) -> np.ndarray:
    dots = np.einsum("bnd,ld->bln", local_emb, z)
    top = -np.sort(-dots, axis=2)[:, :, :k]
    return global_emb @ z.T + top.mean(axis=2)


def v1_codes(codec_sample: np.ndarray, local_emb: np.ndarray, dims: int) -> tuple[LocalCodec, np.ndarray]:
    """Version 1's codec and codes: steps from the sample's spread (floor 1e-6 of the largest), clipped."""
    x = codec_sample.reshape(-1, codec_sample.shape[-1]).astype(np.float64)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh((x - mean).T @ (x - mean) / max(1, len(x) - 1))
    order = np.argsort(values)[::-1][:dims]
    components = np.ascontiguousarray(vectors[:, order].T.astype(np.float32))
    spread = np.sqrt(np.clip(values[order], 0, None)).astype(np.float32)
    scales = (np.maximum(spread, 1e-6 * max(float(spread.max()), 1e-12)) * CLIP_SIGMAS / 127.0).astype(np.float32)
    codec = LocalCodec(mean.astype(np.float32), components, scales)
    steps = ((local_emb - codec.mean) @ codec.components.T) / codec.scales
    return codec, (np.clip(np.rint(steps), -127, 127) + ZERO_POINT).astype(np.uint8)


def fill(design: str, folder: Path, order: np.ndarray, first: int, global_emb, local_emb, top_k) -> EmbeddingStore:
    n, patches, d = local_emb.shape
    g, l = global_emb[order], local_emb[order]
    ids = np.arange(n)
    if design == "fitted_on_all":
        store = EmbeddingStore.create(folder, d, patches, top_k, "bench", local_dims=d,
                                      codec=LocalCodec.fit(local_emb, d))
        store.append(ids, g, l)
    elif design == "v2_token_factors":
        store = EmbeddingStore.create(folder, d, patches, top_k, "bench", local_dims=d)
        store.append(ids[:first], g[:first], l[:first])
        store.append(ids[first:], g[first:], l[first:])
    else:
        codec, codes = v1_codes(l[:first], l, d)
        store = EmbeddingStore.create(folder, d, patches, top_k, "bench", local_dims=d, codec=codec)
        store.append_codes(ids, g, codes)
    return store


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ordinary", type=int, default=32)
    parser.add_argument("--scenes", type=int, default=600)
    parser.add_argument("--first-batch", type=int, default=16)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    engine = Engine(DEMO_MODEL)
    labels = [line.strip() for line in (DEMO_MODEL / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ordinary = write_off_world_photos(tmp / "ordinary", args.ordinary)
        write_demo_photos(tmp / "scenes", count=args.scenes, seed=7)
        scenes = sorted((tmp / "scenes").glob("*.jpg"))
        results = list(embed_files([*ordinary, *scenes], engine, batch_size=32))
        global_emb = np.stack([r.global_emb for r in results])
        local_emb = np.stack([r.local_emb for r in results])
        z = engine.encode_labels(labels)
        top_k = engine.bundle.top_k
        exact = exact_scores(z, global_emb, local_emb, top_k)
        n = len(results)
        orders = {"unlike_first": np.arange(n),  # the ordinary photos come first
                  "scenes_first": np.r_[np.arange(args.ordinary, n), np.arange(args.ordinary)]}
        out: dict = {}
        for design in ("v1_clipping", "v2_token_factors", "fitted_on_all"):
            for name, order in orders.items():
                store = fill(design, tmp / f"{design}-{name}", order, args.first_batch, global_emb, local_emb, top_k)
                scores = np.empty_like(exact)
                scores[order] = store.score_labels(z)
                recall = [len(set(np.argsort(-exact[:, j])[:100]) & set(np.argsort(-scores[:, j])[:100])) / 100
                          for j in range(len(labels))]
                error = np.abs(scores - exact)
                out[f"{design}/{name}"] = {
                    "recall_at_100": {"mean": round(float(np.mean(recall)), 4), "min": round(float(np.min(recall)), 4)},
                    "worst_error": round(float(error.max()), 5),
                    "worst_error_in_spreads": round(float((error / exact.std(axis=0)).max()), 4)}
    return {"benchmark": "store_codec", "machine": machine_facts(), "model": str(DEMO_MODEL.name),
            "photos": {"ordinary": args.ordinary, "scenes": args.scenes, "first_batch": args.first_batch},
            "labels": len(labels), "embed_dim": int(local_emb.shape[2]), "num_patches": int(local_emb.shape[1]),
            "designs": out, "seconds": round(time.perf_counter() - started, 1)}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
