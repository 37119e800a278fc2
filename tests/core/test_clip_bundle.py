"""Two-stream CLIP bundles: any open_clip ViT gives Eq. 3 scores and heat maps without training."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from mkt_core.assets import TOY_TEACHER
from mkt_core.model.config import TINY_VLP_CFG
from mkt_core.model.export import ClipTwoStreamGraph, clip_top_k, export_clip_bundle
from mkt_core.runtime.bundle import load_bundle
from mkt_core.runtime.engine import Engine


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clip")
    return {path: load_bundle(export_clip_bundle("tiny", None, folder / path, model_cfg=TINY_VLP_CFG,
                                                 patch_path=path))
            for path in ("value", "plain")}


def _images(n=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 64, 64)).astype(np.float32)


def test_a_vit_clip_bundle_has_both_streams_with_mkts_top_k(bundles):
    bundle = bundles["value"]
    assert bundle.kind == "clip" and bundle.manifest["patch_grid"] == [8, 8] and bundle.num_patches == 64
    assert bundle.top_k == clip_top_k(64) == 6  # 18 of 196, the same ratio
    assert clip_top_k(196) == 18 and clip_top_k(49) == 4
    outputs = ort.InferenceSession(str(bundle.file("image_encoder")), providers=["CPUExecutionProvider"]).get_outputs()
    assert [o.name for o in outputs] == ["global", "local"]
    # the last-block switch changes what the encoder computes, so the stored embeddings cannot mix
    assert bundles["value"].fingerprint != bundles["plain"].fingerprint


@pytest.mark.parametrize("patch_path", ["value", "plain"])
def test_onnx_and_the_torch_fallback_agree_and_the_global_stream_is_clips(bundles, patch_path):
    bundle = bundles[patch_path]
    images = _images()
    onnx_global, onnx_local = Engine(bundle, backend="onnx", device="cpu").encode_images(images)
    torch_global, torch_local = Engine(bundle, backend="torch", device="cpu").encode_images(images)
    assert onnx_local.shape == (3, 64, 64)
    assert np.abs(onnx_global - torch_global).max() <= 1e-4 and np.abs(onnx_local - torch_local).max() <= 1e-4
    assert np.allclose(np.linalg.norm(onnx_local, axis=-1), 1.0, atol=1e-5)  # each patch dot is a cosine
    clip = bundle.load_torch().image.clip
    x = torch.from_numpy(images)
    with torch.no_grad():
        assert np.abs(onnx_global - F.normalize(clip.encode_image(x), dim=-1).numpy()).max() <= 1e-4
        clip.visual.output_tokens = True
        _, tokens = clip.visual(x)  # open_clip's own patch tokens, after ln_post
        clip.visual.output_tokens = False
        plain = F.normalize(tokens @ clip.visual.proj, dim=-1).numpy()
    if patch_path == "plain":
        assert np.abs(onnx_local - plain).max() <= 1e-4
    else:
        assert np.abs(onnx_local - plain).max() > 1e-2  # the value path really replaced the last attention


def test_the_value_path_skips_the_last_attention(tmp_path):
    """In a one-block ViT the value path is the only place tokens could mix, and it does not: changing
    one patch of the image moves that patch's token and no other; the plain tokens all move."""
    cfg = {**TINY_VLP_CFG, "vision_cfg": {**TINY_VLP_CFG["vision_cfg"], "layers": 1}}
    images = torch.from_numpy(_images(1))
    changed = images.clone()
    changed[:, :, 8:16, 16:24] += 3.0  # patch (row 1, col 2)
    moved = {}
    for path in ("value", "plain"):
        graph = load_bundle(export_clip_bundle("tiny", None, tmp_path / path, model_cfg=cfg, patch_path=path)
                            ).load_torch().image
        with torch.no_grad():
            moved[path] = (graph(changed)[1] - graph(images)[1]).norm(dim=-1)[0].reshape(8, 8)
    assert moved["value"][1, 2] > 1e-2
    moved["value"][1, 2] = 0
    assert moved["value"].max() <= 1e-5
    assert (moved["plain"] > 1e-4).all()


def test_a_resnet_tower_stays_global_only(tmp_path):
    bundle = load_bundle(export_clip_bundle("toy", str(TOY_TEACHER), tmp_path / "toy"))
    assert bundle.num_patches == 0 and bundle.top_k == 0 and "patch_path" not in bundle.manifest
    with pytest.raises(ValueError, match="ViT"):
        ClipTwoStreamGraph(bundle.load_torch().image.clip)
