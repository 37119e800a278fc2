"""A damaged store is noticed, named in one line, and rebuilt from what is whole."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mkt_core.runtime.store import EmbeddingStore, StoreDamaged

D, N, K = 32, 16, 4
BUNDLE = SimpleNamespace(embed_dim=D, num_patches=N, top_k=K, fingerprint="m")


def _store(folder, batches=(4, 4, 2)):
    rng = np.random.default_rng(0)
    store = EmbeddingStore.create(folder, D, N, K, "m", local_dims=8)
    start = 0
    for rows in batches:
        store.append(np.arange(start, start + rows), rng.standard_normal((rows, D)) / 4,
                     rng.standard_normal((rows, N, D)) / 4)
        start += rows
    return store


def _scores(store):
    return dict(zip(store.ids.tolist(), store.score_label(np.ones(D, np.float32) / D ** 0.5).tolist(), strict=True))


def _repaired(folder):
    store, problems = EmbeddingStore.repair(folder, BUNDLE)
    assert problems and problems[-1].startswith(f"{folder}: rebuilt with the ")
    assert list(folder.parent.glob(f"{folder.name}.damaged-*"))  # kept aside, never deleted
    return store, problems


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / "count").unlink(), "count: missing"),
    (lambda f: (f / "count").write_text("-3\n"), "count: negative record count -3"),
    (lambda f: (f / "count").write_text("many\n"), "count: malformed record count"),
])
def test_a_lost_or_bad_count_is_named_and_every_row_comes_back(tmp_path, damage, message):
    folder = tmp_path / "s"
    before = _scores(_store(folder))
    damage(folder)
    with pytest.raises(StoreDamaged, match=message):
        EmbeddingStore.open(folder)
    store, problems = _repaired(folder)
    assert message in problems[0] and "10 of 10" in problems[-1]
    assert _scores(store) == before


def test_a_truncated_ids_file_keeps_the_blocks_that_are_whole(tmp_path):
    folder = tmp_path / "s"
    before = _scores(_store(folder))
    with open(folder / "ids.bin", "r+b") as f:
        f.truncate(5 * 8)  # rows 0-4 of 10: the first block is whole, the second is cut
    with pytest.raises(StoreDamaged, match=r"ids.bin: holds 5 photos where 10 were committed \(truncated\)"):
        EmbeddingStore.open(folder)
    store, _ = _repaired(folder)
    assert _scores(store) == {i: before[i] for i in range(4)}


@pytest.mark.parametrize("name", ["local.bin", "global.bin", "scale.bin", "ids.bin"])
def test_random_bytes_are_found_by_their_checksum_and_only_their_block_is_dropped(tmp_path, name):
    folder = tmp_path / "s"
    before = _scores(_store(folder))
    size = (folder / name).stat().st_size
    with open(folder / name, "r+b") as f:
        f.seek(size // 2)  # inside the second block (rows 4-7)
        f.write(np.random.default_rng(1).bytes(8))
    found = EmbeddingStore.open(folder).verify()  # opening stays cheap (sizes are right); verify reads it all
    assert found == [f"{folder / name}: photos 4 to 7 do not match their checksum (damaged)"]
    repaired, problems = _repaired(folder)
    assert problems[0] == found[0] and repaired.verify() == []
    assert _scores(repaired) == {i: s for i, s in before.items() if not 4 <= i <= 7}


@pytest.mark.parametrize(("damage", "message"), [
    (lambda f: (f / "codec.npz").unlink(), "codec.npz: missing"),
    (lambda f: (f / "codec.npz").write_bytes((f / "codec.npz").read_bytes()[:100]), "codec.npz: unreadable"),
    (lambda f: (f / "store.json").write_text(json.dumps({**json.loads((f / "store.json").read_text()), "version": 0})),
     "store.json: store version 0 was never written"),
    (lambda f: (f / "store.json").write_text("{"), "store.json: malformed JSON"),
])
def test_a_store_without_its_codec_or_description_is_named_and_started_again(tmp_path, damage, message):
    folder = tmp_path / "s"
    _store(folder)
    damage(folder)
    with pytest.raises(Exception, match=message):
        EmbeddingStore.open(folder)
    store, problems = EmbeddingStore.repair(folder, BUNDLE)
    assert message in problems[0] and len(store) in (0, 10)
    assert list(tmp_path.glob("s.damaged-*"))


def test_store_json_gone_is_damage_not_a_new_store(tmp_path):
    folder = tmp_path / "s"
    _store(folder)
    (folder / "store.json").unlink()
    with pytest.raises(StoreDamaged, match="store.json: missing, but .* holds embeddings"):
        EmbeddingStore.for_bundle(folder, BUNDLE)
    store, problems = EmbeddingStore.repair(folder, BUNDLE)
    assert len(store) == 0 and "0 of 0" in problems[-1]


def test_a_healthy_store_is_left_alone_and_an_old_one_gets_checksums(tmp_path):
    folder = tmp_path / "s"
    _store(folder)
    store, problems = EmbeddingStore.repair(folder, BUNDLE)
    assert problems == [] and not list(tmp_path.glob("s.damaged-*"))
    (folder / "blocks").unlink()  # what a store written before checksums looks like
    old = EmbeddingStore.open(folder)
    assert old.unverified_rows() == 10 and old.verify() == []
    assert old.cover_unverified() == 10 and EmbeddingStore.open(folder).unverified_rows() == 0
