"""The converter for the authors' released checkpoints, on state dicts with their names and shapes."""

import copy
import pickle
import warnings
import zipfile

import open_clip
import pytest
import timm
import torch

from mkt_core.model.checkpoint import load_model, save_model
from mkt_core.model.config import TINY_VLP_CFG, get_preset
from mkt_core.model.convert import convert_official
from mkt_core.model.safe_load import UnsafeCheckpointError
from mkt_core.model.student import clip_visual_to_timm
from mkt_core.model.torchscript_weights import read_torchscript_tensors
from trainer.cli import main as mkt_train


def _released_stage1_state(clip):
    """The authors' image model: CLIP visual keys at top level, projection as `projection_dist`,
    plus their unused local head, wrapped by DistributedDataParallel ('module.')."""
    visual = clip.visual.state_dict()
    state = {k: v for k, v in visual.items() if k != "proj"}
    state["projection_dist"] = visual["proj"]
    state["projection.fc1.weight"] = torch.zeros(8, 8)
    return {"module." + k: v for k, v in state.items()}


def _clip_file(tmp_path, seed: int):
    """A tiny CLIP with random weights, saved as a plain state dict: the CLIP the checkpoints were trained from."""
    torch.manual_seed(seed)
    clip = open_clip.CLIP(**TINY_VLP_CFG).eval()
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    return clip, tmp_path / "clip.pt"


def _torchscript_clip(clip, path):
    """The form OpenAI ships CLIP in: a traced module saved by torch.jit.save (float16, like ViT-B-16.pt)."""
    dtype = next(clip.parameters()).dtype
    inputs = (torch.randn(1, 3, 64, 64, dtype=dtype), torch.zeros(1, 32, dtype=torch.long))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(clip, inputs, check_trace=False), str(path))
    return path


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

    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    model = convert_official(tmp_path / "stage1.pth", tmp_path / "stage2.pth", get_preset("tiny-release"),
                             clip_weights=tmp_path / "clip.pt").eval()
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
        expected = clip.encode_text(clip_tokens)[0]  # the release's raw text features
        assert torch.allclose(model.encode_labels([label])[0], expected, atol=1e-5)

    # and it survives our own checkpoint format
    save_model(model, tmp_path / "converted")
    again = load_model(tmp_path / "converted").eval()
    with torch.no_grad():
        assert torch.equal(again.encode_image(images)[0], global_emb)


def test_a_stage1_checkpoint_alone_gives_clips_text_features_and_clips_teacher(tmp_path):
    """The authors evaluate their stage-1 checkpoint with CLIP's untuned text features (label_emb.pt);
    the teacher is CLIP's image tower. Neither is in the checkpoint: both come from the CLIP file."""
    clip, clip_path = _clip_file(tmp_path, seed=3)
    torch.save(_released_stage1_state(clip), tmp_path / "stage1.pth")
    torch.manual_seed(99)  # whatever a random initialisation would draw, it is not CLIP
    model = convert_official(tmp_path / "stage1.pth", config=get_preset("tiny-release"), clip_weights=clip_path).eval()
    labels = ["dog", "sea side", "birthday cake"]
    tokens = open_clip.SimpleTokenizer(context_length=32)([f"There is a {label} in the scene" for label in labels])
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.encode_labels(labels), clip.encode_text(tokens), atol=1e-5)
        assert torch.allclose(model.teacher_features(images), clip.encode_image(images), atol=1e-5)
    assert model.config.eval_resize == "center_crop"  # evaluated the release's way

    # OpenAI's TorchScript archive gives the same model, read without running the archive's code:
    # its code/ is replaced by garbage that torch.jit.load could not compile.
    half = copy.deepcopy(clip).half()
    archive = _torchscript_clip(half, tmp_path / "ViT-tiny.pt")
    broken = tmp_path / "no-code.pt"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"this is not TorchScript (" if "/code/" in item.filename else data)
    from_archive = convert_official(tmp_path / "stage1.pth", config=get_preset("tiny-release"),
                                    clip_weights=broken).eval()
    with torch.no_grad():
        expected = half.float()  # the archive holds float16 weights
        assert torch.allclose(from_archive.encode_labels(labels), expected.encode_text(tokens), atol=1e-4)
        assert torch.allclose(from_archive.teacher_features(images), expected.encode_image(images), atol=1e-4)


def test_torchscript_reader_refuses_anything_but_tensors(tmp_path):
    clip, _ = _clip_file(tmp_path, seed=4)
    archive = _torchscript_clip(clip, tmp_path / "clip-ts.pt")
    tensors = read_torchscript_tensors(archive)
    assert all(torch.equal(tensors[k], v) for k, v in clip.state_dict().items())
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = pickle.dumps(Payload()) if item.filename.endswith("/data.pkl") else src.read(item)
            dst.writestr(item, data)
    with pytest.raises(UnsafeCheckpointError, match="not allowed"):
        read_torchscript_tensors(evil)
    assert not marker.exists()


def test_converter_refuses_to_leave_the_teacher_or_the_text_tower_random(tmp_path, capsys):
    clip, clip_path = _clip_file(tmp_path, seed=5)
    torch.save(_released_stage1_state(clip), tmp_path / "stage1.pth")
    with pytest.raises(ValueError, match="--original-clip"):
        convert_official(tmp_path / "stage1.pth", config=get_preset("tiny-release"))  # no CLIP weights at all
    text_only = {k: v for k, v in clip.state_dict().items() if not k.startswith("visual.")}
    torch.save(text_only, tmp_path / "text-only.pt")
    with pytest.raises(ValueError, match="text-only.pt"):  # the teacher would stay random
        convert_official(tmp_path / "stage1.pth", config=get_preset("tiny-release"),
                         clip_weights=tmp_path / "text-only.pt")
    # the release preset's CLIP comes from open_clip's cache by name; offline and not cached, it says how to get it
    code = mkt_train(["convert-official", str(tmp_path / "stage1.pth"), "--out", str(tmp_path / "out")])
    message = capsys.readouterr().err
    assert code == 1 and "--original-clip" in message and "timm/vit_base_patch16_clip_224.openai" in message
    assert not (tmp_path / "out").exists()
    # with the CLIP file it converts
    assert mkt_train(["convert-official", str(tmp_path / "stage1.pth"), "--preset", "tiny-release",
                      "--original-clip", str(clip_path), "--out", str(tmp_path / "out")]) == 0
    converted = load_model(tmp_path / "out").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(converted.teacher_features(images), clip.encode_image(images), atol=1e-5)


def test_converter_refuses_what_is_not_a_released_checkpoint(tmp_path):
    _, clip_path = _clip_file(tmp_path, seed=6)
    torch.save({"conv1.weight": torch.zeros(64, 3, 8, 8)}, tmp_path / "no_proj.pth")
    with pytest.raises(ValueError, match="no projection") as error:
        convert_official(tmp_path / "no_proj.pth", config=get_preset("tiny-release"), clip_weights=clip_path)
    assert "no_proj.pth" in str(error.value)
    torch.save({"proj": torch.zeros(64, 64), "conv1.weight": torch.zeros(64, 3, 8, 8)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="partial.pth"):
        convert_official(tmp_path / "partial.pth", config=get_preset("tiny-release"), clip_weights=clip_path)
    with pytest.raises(ValueError, match="shared_projection"):
        convert_official(tmp_path / "partial.pth", config=get_preset("tiny"), clip_weights=clip_path)


@pytest.mark.slow
def test_vit_b16_sized_released_checkpoint_converts(tmp_path):
    """Real names and shapes of CLIP ViT-B/16 (random values): the release preset takes them."""
    torch.manual_seed(2)
    clip = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True).eval()
    torch.save(_released_stage1_state(clip), tmp_path / "stage1.pth")
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    model = convert_official(tmp_path / "stage1.pth", config=get_preset("release-vit-b16"),
                             clip_weights=tmp_path / "clip.pt").eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        global_emb, local_emb = model.encode_image(images)
        assert local_emb.shape == (1, 196, 512)
        assert torch.allclose(global_emb, clip.encode_image(images), atol=1e-4)
