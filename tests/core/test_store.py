import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mkt_core.model.scoring import two_stream_scores
from mkt_core.runtime.store import (
    LARGE_PASS_ROWS,
    EmbeddingStore,
    LocalCodec,
    StoreDamaged,
    StoreError,
    bytes_per_photo,
)

D, N, K = 64, 32, 6


def _photos(count, seed=0, rank=12):
    """Embeddings with the structure of real ones: local tokens in a low-rank space plus a little noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, D)).astype(np.float32)
    local = rng.standard_normal((count, N, rank)).astype(np.float32) @ basis / 4
    local += 0.01 * rng.standard_normal(local.shape).astype(np.float32)
    global_ = rng.standard_normal((count, D)).astype(np.float32) / 4
    return global_, local


def _labels(count, seed=1):
    z = np.random.default_rng(seed).standard_normal((count, D)).astype(np.float32)
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _exact(z, global_, local):
    return two_stream_scores(torch.from_numpy(z), torch.from_numpy(global_), torch.from_numpy(local), K).numpy()


def test_scores_track_exact_two_stream_scores(tmp_path):
    global_, local = _photos(300)
    store = EmbeddingStore.create(tmp_path / "store", D, N, K, "model-a", local_dims=16)
    store.append(np.arange(100, 400), global_, local)
    store = EmbeddingStore.open(tmp_path / "store")  # what another process sees
    assert len(store) == 300 and list(store.ids[:3]) == [100, 101, 102]
    z = _labels(3)
    exact, scores = _exact(z, global_, local), store.score_labels(z, chunk=64)
    spread = exact.std(axis=0)  # the noise outside the 16 PCA dims is what remains
    assert (np.abs(scores - exact).max(axis=0) < 0.1 * spread).all()
    for j in range(3):  # the top of each label's ranking is the exact one
        top_exact, top_store = set(np.argsort(-exact[:, j])[:30]), set(np.argsort(-scores[:, j])[:30])
        assert len(top_exact & top_store) >= 27
    assert np.allclose(store.score_label(z[1]), scores[:, 1], atol=1e-5)  # alone or with others: the same


def test_bytes_per_photo_fit_the_budget_at_vit_b16_size(tmp_path):
    assert bytes_per_photo(512, 196, 128) <= 65_536
    global_, local = _photos(10)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append(np.arange(10), global_, local)
    on_disk = sum(path.stat().st_size for path in (tmp_path / "s").glob("*.bin"))
    assert on_disk == 10 * bytes_per_photo(D, N, 16)


def test_a_torn_tail_is_ignored_and_overwritten(tmp_path):
    global_, local = _photos(15)
    z = _labels(1)[0]
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append(np.arange(10), global_[:10], local[:10])
    before = store.score_label(z)
    # a crash mid-append: half a record reached each data file, the count was never updated
    for name, size in store.row_bytes.items():
        with open(tmp_path / "s" / f"{name}.bin", "ab") as f:
            f.write(b"\x7f" * (size + size // 2))
    reopened = EmbeddingStore.open(tmp_path / "s")
    assert len(reopened) == 10 and np.array_equal(reopened.score_label(z), before)
    reopened.append(np.arange(10, 15), global_[10:], local[10:])
    again = EmbeddingStore.open(tmp_path / "s")
    assert list(again.ids) == list(range(15))
    assert np.allclose(again.score_label(z)[:10], before)
    expected = _exact(_labels(1), global_, local)[:, 0]
    assert np.abs(again.score_label(z) - expected).max() < 0.1 * expected.std()


def test_a_count_ahead_of_the_data_is_damage_named_by_its_file(tmp_path):
    global_, local = _photos(4)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append([1, 2, 3, 4], global_, local)
    (tmp_path / "s" / "count").write_text("9\n")
    with pytest.raises(StoreDamaged, match=r"ids.bin: holds 4 photos where 9 were committed \(truncated\)"):
        EmbeddingStore.open(tmp_path / "s")


def test_appending_an_id_again_replaces_its_embedding(tmp_path):
    global_, local = _photos(5)
    z = _labels(1)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append([7, 8, 9], global_[:3], local[:3])
    store.append([8], global_[4:5], local[4:5])
    assert sorted(store.ids) == [7, 8, 9] and len(store) == 3
    scores = dict(zip(store.ids.tolist(), store.score_labels(z)[:, 0].tolist(), strict=True))
    assert scores[8] == pytest.approx(float(_exact(z, global_[4:5], local[4:5])[0, 0]), abs=0.05)
    stored_global, stored_local = store.get(8)
    assert np.abs(stored_global - global_[4]).max() < 1e-2 and stored_local.shape == (N, D)


def test_empty_and_global_only_stores(tmp_path):
    empty = EmbeddingStore.create(tmp_path / "empty", D, N, K, "m")
    assert empty.score_label(_labels(1)[0]).shape == (0,)
    clip = EmbeddingStore.create(tmp_path / "clip", D, 0, 0, "clip-model")
    global_ = _photos(6)[0]
    clip.append(np.arange(6), global_, None)
    z = _labels(2)
    assert np.abs(clip.score_labels(z) - global_ @ z.T).max() < 1e-2


def test_store_refuses_bad_input(tmp_path):
    global_, local = _photos(2)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    with pytest.raises(ValueError, match="local_emb must be"):
        store.append([1, 2], global_, local[:, :5])
    with pytest.raises(FileExistsError):
        EmbeddingStore.create(tmp_path / "s", D, N, K, "m")
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    (tmp_path / "s" / "store.json").write_text(json.dumps({**meta, "version": 5}))
    with pytest.raises(StoreError, match="version 5") as error:
        EmbeddingStore.open(tmp_path / "s")
    assert "store.json" in str(error.value)
    with pytest.raises(StoreError, match="missing"):
        EmbeddingStore.open(tmp_path / "nothing")


def test_codec_round_trip_keeps_low_rank_data():
    _, local = _photos(20)
    codec = LocalCodec.fit(local, dims=16)
    codes, token_scale = codec.encode(local)
    assert codes.dtype == np.uint8 and codes.shape == (20, N, 16) and token_scale.shape == (20, N)
    error = np.linalg.norm(codec.decode(codes, token_scale) - local) / np.linalg.norm(local)
    assert error < 0.05


def test_a_store_belongs_to_one_model(tmp_path):
    model_a = SimpleNamespace(fingerprint="sha256:aaa", embed_dim=D, num_patches=N, top_k=K)
    store = EmbeddingStore.for_bundle(tmp_path / "s", model_a, local_dims=16)
    store.append([1], *_photos(1))
    assert len(EmbeddingStore.for_bundle(tmp_path / "s", model_a)) == 1  # reopened, not recreated
    model_b = SimpleNamespace(fingerprint="sha256:bbb", embed_dim=D, num_patches=N, top_k=K)
    with pytest.raises(StoreError, match="sha256:aaa"):
        EmbeddingStore.for_bundle(tmp_path / "s", model_b)


def test_photos_unlike_the_first_batch_are_not_clipped(tmp_path):
    """The codec is fitted on the first photos added; photos far outside their range keep their scores."""
    global_, local = _photos(60)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=D)  # full rank: only clipping could hurt
    store.append(np.arange(10), global_[:10] * 0.05, local[:10] * 0.05)  # a first batch of faint photos
    store.append(np.arange(10, 60), global_[10:], local[10:])
    z = _labels(4)
    exact = _exact(z, np.concatenate([global_[:10] * 0.05, global_[10:]]),
                   np.concatenate([local[:10] * 0.05, local[10:]]))
    scores = store.score_labels(z)
    assert np.abs(scores - exact).max() < 0.02 * np.abs(exact).max()
    _, decoded = store.get(42)
    assert np.linalg.norm(decoded - local[42]) < 0.02 * np.linalg.norm(local[42])


def test_scoring_some_photos_gives_the_same_numbers_as_scoring_all(tmp_path):
    global_, local = _photos(50)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append(np.arange(100, 150), global_, local)
    store.append([120], global_[:1], local[:1])  # superseded: the live row is the new one
    z = _labels(3)
    everything = dict(zip(store.ids.tolist(), store.score_labels(z), strict=True))
    some = [149, 120, 100, 133]
    assert np.allclose(store.score_labels(z, ids=some), np.stack([everything[i] for i in some]), atol=1e-5)
    with pytest.raises(KeyError):
        store.score_labels(z, ids=[100, 7])


def test_a_version_1_store_is_upgraded_and_keeps_its_scores(tmp_path):
    global_, local = _photos(12)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=16)
    store.append(np.arange(12), global_, local)
    z = _labels(2)
    # what version 1 wrote: the same codes where no token needed a factor, no scale.bin
    assert (np.asarray(np.memmap(tmp_path / "s" / "scale.bin", dtype="<f2")) == 1).all()
    before = store.score_labels(z)
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    (tmp_path / "s" / "store.json").write_text(json.dumps({**meta, "version": 1}))
    (tmp_path / "s" / "scale.bin").unlink()
    read_only = EmbeddingStore.open(tmp_path / "s", writable=False)
    assert np.array_equal(read_only.score_labels(z), before)
    upgraded = EmbeddingStore.open(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "store.json").read_text())["version"] == 2
    assert np.array_equal(upgraded.score_labels(z), before)
    upgraded.append([99], global_[:1], local[:1])
    assert len(EmbeddingStore.open(tmp_path / "s")) == 13


@pytest.mark.parametrize("local_dims", [32, 64])  # 64: candidates ranked on the summaries' first 32 dimensions
def test_the_summary_search_finds_the_exact_top_photos(tmp_path, local_dims):
    global_, local = _photos(3000, rank=24)
    store = EmbeddingStore.create(tmp_path / "s", D, N, K, "m", local_dims=local_dims)
    for start in range(0, 3000, 500):
        store.append(np.arange(start, start + 500), global_[start:start + 500], local[start:start + 500])
    z = _labels(5)
    exact = store.score_labels(z)
    for j in range(5):
        rows, scores = store.top_rows(z[j], np.arange(3000), limit=50, candidates=300)
        assert np.allclose(scores, exact[rows, j], atol=1e-5)  # what it returns are the exact scores
        truth = set(np.argsort(-exact[:, j])[:50].tolist())
        assert len(truth & set(rows.tolist())) >= 48, j
    (tmp_path / "s" / "summary.bin").unlink()  # derived data: rebuilt from the codes
    again = EmbeddingStore.open(tmp_path / "s")
    assert np.array_equal(again.top_rows(z[0], np.arange(3000), 50, 300)[0],
                          store.top_rows(z[0], np.arange(3000), 50, 300)[0])


def _file_pages_resident_bytes() -> int:
    """This process's resident file-backed memory (mapped files), from /proc/self/status."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no RssFile in /proc/self/status")


def test_scoring_every_photo_leaves_the_store_out_of_resident_memory(tmp_path):
    """A label scored over every photo reads the whole store through its memory mapping; the pages are let
    go chunk by chunk, so the app's memory does not grow by the store's size (10 GB at 1,000,000 photos)."""
    photos = LARGE_PASS_ROWS + 4_000  # a pass that large lets go; a search's shortlist keeps its pages
    store = EmbeddingStore.create(tmp_path / "store", D, N, K, "model-a", local_dims=64)
    for start in range(0, photos, 4_000):
        global_, local = _photos(4_000, seed=start)
        store.append(np.arange(start, start + 4_000), global_, local)
    store = EmbeddingStore.open(tmp_path / "store")
    local_bytes = (tmp_path / "store" / "local.bin").stat().st_size
    assert local_bytes > 40_000_000
    store.score_labels(_labels(2), ids=[0, 1])  # loads ONNX Runtime and the graph: mapped libraries count too
    before = _file_pages_resident_bytes()
    scores = store.score_labels(_labels(2), chunk=512)
    assert scores.shape == (photos, 2) and np.isfinite(scores).all()
    assert _file_pages_resident_bytes() - before < local_bytes // 4
    top, exact = store.top_rows(_labels(2)[0], np.arange(photos), 50, candidates=3_000)
    assert np.allclose(exact, scores[top, 0], atol=1e-6)  # a search's shortlist (it keeps its pages): the same scores
