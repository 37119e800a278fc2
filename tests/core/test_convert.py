"""The converter for the authors' released checkpoints, on state dicts with their names and shapes."""

import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F

from mkt_core.model.checkpoint import load_model, save_model
from mkt_core.model.config import TINY_VLP_CFG, get_preset
from mkt_core.model.convert import convert_official
from mkt_core.model.student import clip_visual_to_timm


def _released_stage1_state(clip):
    """The authors' image model: CLIP visual keys at top level, projection as `projection_dist`,
    plus their unused local head, wrapped by DistributedDataParallel ('module.')."""
    visual = clip.visual.state_dict()
    state = {k: v for k, v in visual.items() if k != "proj"}
    state["projection_dist"] = visual["proj"]
    state["projection.fc1.weight"] = torch.zeros(8, 8)
    return {"module." + k: v for k, v in state.items()}


def _released_stage2_state(clip, tuned_table):
    text = {k: v for k, v in clip.state_dict().items() if not k.startswith("visual.") and k != "logit_scale"}
    text["token_embedding.weight"] = tuned_table
    return text


def test_clip_visual_keys_map_onto_timm_vit():
    torch.manual_seed(0)
    clip = open_clip.CLIP(**TINY_VLP_CFG)
    vit = timm.create_model("vit_base_patch16_clip_224", pretrained=False, num_classes=0, img_size=64,
                            patch_size=8, embed_dim=64, depth=2, num_heads=2)
    state, proj = clip_visual_to_timm(clip.visual.state_dict())
    vit.load_state_dict(state, strict=True)
    assert proj is not None and proj.shape == (64, 64)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = vit.forward_features(images)[:, 0] @ proj
        assert torch.allclose(ours, clip.encode_image(images), atol=1e-5)
    with pytest.raises(ValueError, match="conv1"):
        clip_visual_to_timm({"foo": torch.zeros(1)})


def test_released_checkpoints_convert_to_an_equivalent_model(tmp_path):
    torch.manual_seed(1)
    clip = open_clip.CLIP(**TINY_VLP_CFG).eval()
    original_table = clip.token_embedding.weight.detach().clone()
    tuned_table = original_table + 0.05 * torch.randn_like(original_table)
    torch.save(_released_stage1_state(clip), tmp_path / "stage1.pth")
    torch.save(_released_stage2_state(clip, tuned_table), tmp_path / "stage2.pth")

    model = convert_official(tmp_path / "stage1.pth", tmp_path / "stage2.pth", get_preset("tiny-release"),
                             original_token_table=original_table).eval()
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        global_emb, local_emb = model.encode_image(images)
        assert torch.allclose(global_emb, clip.encode_image(images), atol=1e-5)
        # the local stream is the same projection applied to every patch token after ln_post
        assert local_emb.shape == (3, 64, 64)

        # the released text model: tuned table everywhere except the label's own tokens
        label = "dog"
        clip_tokens = open_clip.SimpleTokenizer(context_length=32)([f"There is a {label} in the scene"])
        label_ids = set(open_clip.SimpleTokenizer().encode(label))
        table = tuned_table.clone()
        for token_id in label_ids:
            table[token_id] = original_table[token_id]
        clip.token_embedding.weight.copy_(table)
        expected = F.normalize(clip.encode_text(clip_tokens), dim=-1)[0]
        assert torch.allclose(model.encode_labels([label])[0], expected, atol=1e-5)

    # and it survives our own checkpoint format
    save_model(model, tmp_path / "converted")
    again = load_model(tmp_path / "converted").eval()
    with torch.no_grad():
        assert torch.equal(again.encode_image(images)[0], global_emb)


def test_converter_refuses_what_is_not_a_released_checkpoint(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 8, 8)}, tmp_path / "no_proj.pth")
    with pytest.raises(ValueError, match="no projection") as error:
        convert_official(tmp_path / "no_proj.pth", config=get_preset("tiny-release"))
    assert "no_proj.pth" in str(error.value)
    torch.save({"proj": torch.zeros(64, 64), "conv1.weight": torch.zeros(64, 3, 8, 8)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth"):
        convert_official(tmp_path / "partial.pth", config=get_preset("tiny-release"))
    with pytest.raises(ValueError, match="shared_projection"):
        convert_official(tmp_path / "partial.pth", config=get_preset("tiny"))


@pytest.mark.slow
def test_vit_b16_sized_released_checkpoint_converts(tmp_path):
    """Real names and shapes of CLIP ViT-B/16 (random values): the release preset takes them."""
    torch.manual_seed(2)
    clip = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True).eval()
    torch.save(_released_stage1_state(clip), tmp_path / "stage1.pth")
    model = convert_official(tmp_path / "stage1.pth", config=get_preset("release-vit-b16")).eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        global_emb, local_emb = model.encode_image(images)
        assert local_emb.shape == (1, 196, 512)
        assert torch.allclose(global_emb, clip.encode_image(images), atol=1e-4)
