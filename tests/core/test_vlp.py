import json
import time

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from mkt_core.model.config import TINY_VLP_CFG, VLPConfig
from mkt_core.model.vlp import VLPWeightsUnavailable, load_vlp


def test_offline_without_cached_weights_fails_at_once_with_guidance(tmp_path):
    config = VLPConfig(model_name="ViT-B-16", pretrained="openai", cache_dir=str(tmp_path / "empty-cache"))
    started = time.monotonic()
    with pytest.raises(VLPWeightsUnavailable) as error:
        load_vlp(config)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "ViT-B-16" in message and "openai" in message
    assert str(tmp_path / "empty-cache") in message  # where it looked
    assert "local" in message and "checkpoint file" in message  # how to give a local file


def test_unknown_tag_is_named(tmp_path):
    with pytest.raises(VLPWeightsUnavailable, match="no-such-tag"):
        load_vlp(VLPConfig(model_name="ViT-B-16", pretrained="no-such-tag"))


def _tiny_clip_state():
    torch.manual_seed(3)
    return open_clip.CLIP(**TINY_VLP_CFG).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_loads_a_local_checkpoint_file(tmp_path, suffix):
    state = _tiny_clip_state()
    path = tmp_path / f"clip{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)
    vlp = load_vlp(VLPConfig(model_name="tiny", pretrained=str(path), model_cfg=TINY_VLP_CFG))
    for key, value in vlp.clip.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_loads_a_local_open_clip_folder(tmp_path):
    state = _tiny_clip_state()
    folder = tmp_path / "my-clip"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "open_clip_model.safetensors"))
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": TINY_VLP_CFG, "preprocess_cfg": {"mean": mean, "std": std}}))
    vlp = load_vlp(VLPConfig(model_name="anything", pretrained=str(folder)))
    assert vlp.embed_dim == 64 and vlp.image_size == 64 and vlp.context_length == 32
    assert vlp.mean == tuple(mean) and vlp.std == tuple(std)
    assert torch.equal(vlp.clip.state_dict()["text_projection"], state["text_projection"])
    # open_clip itself reads the same folder the same way
    reference = open_clip.create_model(f"local-dir:{folder}")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(vlp.encode_image(images), reference.encode_image(images), atol=1e-6)


def test_a_folder_without_weights_is_refused_clearly(tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_VLP_CFG}))
    with pytest.raises(VLPWeightsUnavailable, match="no VLP weights in"):
        load_vlp(VLPConfig(model_name="x", pretrained=str(tmp_path)))


def test_random_weights_need_no_files():
    vlp = load_vlp(VLPConfig(model_name="tiny", pretrained=None, model_cfg=TINY_VLP_CFG))
    assert vlp.encode_image(torch.randn(1, 3, 64, 64)).shape == (1, 64)
