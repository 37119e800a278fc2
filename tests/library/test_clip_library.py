"""A two-stream CLIP bundle in the library: indexed, searched and shown like an MKT bundle, heat map included."""

import numpy as np
import pytest
import torch

from mkt_core.model.config import TINY_VLP_CFG
from mkt_core.model.export import export_clip_bundle
from mkt_core.synthetic.world import write_demo_photos
from mkt_desktop.library.library import Library
from tests.library.test_one_score import _check_one_score


@pytest.fixture(scope="module")
def clip_bundle(tmp_path_factory):
    torch.manual_seed(0)
    return export_clip_bundle("tiny", None, tmp_path_factory.mktemp("clip") / "tiny-clip", model_cfg=TINY_VLP_CFG)


def test_a_two_stream_clip_library_searches_and_shows_where_a_label_is(tmp_path, clip_bundle):
    photos = tmp_path / "photos"
    write_demo_photos(photos, count=12, seed=5)
    lib = Library(db_path=tmp_path / "library.sqlite", model=str(clip_bundle), vocabulary=False)
    report = lib.index([photos])
    assert report.indexed == 12 and not report.failed
    hits, _ = lib.search("red star", limit=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    photo = hits[0].photo_id
    global_emb, local_emb = lib.embeddings(photo)
    assert local_emb.shape == (64, 64)  # the store keeps the local stream, as for an MKT bundle

    grid = lib.patch_scores(photo, "red star")
    assert grid.shape == (8, 8)
    # Eq. 3 rebuilt from the heat map: global dot + mean of the k best patch scores = the score shown
    z = lib.label_embeddings(["red star"])[0]
    rebuilt = float(global_emb @ z) + float(np.sort(grid.ravel())[::-1][:lib.bundle.top_k].mean())
    assert rebuilt == pytest.approx(hits[0].score, abs=1e-4)

    lib.add_label("red star")
    _check_one_score(lib, "red star")
    lib.add_label("Blue Circle")  # saved after indexing: scored from the store
    _check_one_score(lib, "blue circle")


def test_clip_from_a_local_open_clip_folder_gets_both_streams(tmp_path):
    """`clip:NAME//folder`: an open_clip folder on disk (config + safetensors), the offline way to any CLIP."""
    import json

    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(2)
    folder = tmp_path / "my-clip"
    folder.mkdir()
    save_file(open_clip.CLIP(**TINY_VLP_CFG).state_dict(), str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_VLP_CFG}))
    write_demo_photos(tmp_path / "photos", count=4, seed=6)
    lib = Library(db_path=tmp_path / "db" / "library.sqlite", model=f"clip:tiny/{folder}", vocabulary=False)
    assert lib.bundle.kind == "clip" and lib.bundle.num_patches == 64
    assert lib.index([tmp_path / "photos"]).indexed == 4
    hits, _ = lib.search("green ring", limit=2)
    assert lib.patch_scores(hits[0].photo_id, "green ring").shape == (8, 8)
