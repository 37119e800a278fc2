import json
import shutil

import numpy as np
import onnxruntime as ort
import open_clip
import pytest
import torch
import torch.nn.functional as F

from mkt_core.model.checkpoint import save_model
from mkt_core.model.config import TINY_VLP_CFG, get_preset
from mkt_core.model.export import cli_export, export_bundle, export_clip_bundle
from mkt_core.model.mkt import create_model
from mkt_core.runtime.bundle import MANIFEST_FILE, BundleError, load_bundle

LABELS = ["dog", "a red fire truck parked by the road", "x", "snow covered mountain"]


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _tuned_tiny(prompt_tuning):
    """A tiny model whose prompt has moved away from the plain template, as stage 2 leaves it."""
    model = create_model("tiny", prompt_tuning=prompt_tuning).eval()
    with torch.no_grad():
        for param in model.prompt.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    return model


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tuned tiny model and its bundle, exported once for the tests that only read it."""
    torch.manual_seed(0)
    model = _tuned_tiny("context")
    return model, export_bundle(model, tmp_path_factory.mktemp("tuned") / "bundle")


def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


@pytest.mark.parametrize("prompt_tuning", ["context", "token_table"])
def test_onnx_encoders_match_torch(tmp_path, prompt_tuning):
    model = _tuned_tiny(prompt_tuning)
    bundle = load_bundle(export_bundle(model, tmp_path / "bundle"))
    assert bundle.kind == "mkt" and bundle.num_patches == 64 and bundle.top_k == model.config.top_k

    images = torch.randn(3, 3, 64, 64)  # not the export's batch of 2: the batch axis is dynamic
    global_onnx, local_onnx = _session(bundle.file("image_encoder")).run(None, {"images": images.numpy()})
    with torch.no_grad():
        global_torch, local_torch = model.encode_image(images)
        labels_torch = model.encode_labels(LABELS).numpy()
    assert np.abs(global_onnx - global_torch.numpy()).max() <= 1e-4
    assert np.abs(local_onnx - local_torch.numpy()).max() <= 1e-4

    ids, lengths = bundle.tokenize(LABELS)
    labels_onnx = _session(bundle.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    assert np.abs(labels_onnx - labels_torch).max() <= 1e-4
    # the learned prompt really is in the graph: the plain template gives other embeddings
    plain = create_model("tiny", prompt_tuning=prompt_tuning).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prompt.")}, strict=False)
    with torch.no_grad():
        assert np.abs(plain.encode_labels(LABELS).numpy() - labels_onnx).max() > 1e-2


def test_tokenize_lays_out_labels_like_the_prompt_learner(tuned):
    model, folder = tuned
    bundle = load_bundle(folder)
    ids, lengths = bundle.tokenize(LABELS)
    expected = model.prompt.tokenize(LABELS, model.vlp.tokenizer)
    assert np.array_equal(ids, expected.ids.numpy()) and np.array_equal(lengths, expected.label_lengths.numpy())


def test_clip_bundle_is_global_only_with_the_plain_prompt(tmp_path):
    bundle = load_bundle(export_clip_bundle("tiny", None, tmp_path / "clip", model_cfg=TINY_VLP_CFG,
                                            local_stream=False))
    assert bundle.kind == "clip" and bundle.num_patches == 0
    session = _session(bundle.file("image_encoder"))
    assert [output.name for output in session.get_outputs()] == ["global"]

    clip = bundle.load_torch().image.clip  # the same weights, rebuilt from weights.safetensors
    images = torch.randn(3, 3, 64, 64)
    (global_onnx,) = session.run(None, {"images": images.numpy()})
    tokenizer = open_clip.SimpleTokenizer(context_length=32)
    with torch.no_grad():
        assert np.abs(global_onnx - F.normalize(clip.encode_image(images), dim=-1).numpy()).max() <= 1e-4
        # open_clip's own text path over "a photo of a {label}."
        reference = F.normalize(clip.encode_text(tokenizer([f"a photo of a {x}." for x in LABELS])), dim=-1)
    ids, lengths = bundle.tokenize(LABELS)
    labels_onnx = _session(bundle.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    assert np.abs(labels_onnx - reference.numpy()).max() <= 1e-4


def test_fingerprint_follows_the_weights(tmp_path, tuned):
    original, folder = tuned
    model = _tuned_tiny("context")  # another object with the same weights
    model.load_state_dict(original.state_dict())
    first = load_bundle(shutil.copytree(folder, tmp_path / "a"))
    again = load_bundle(export_bundle(model, tmp_path / "b"))
    assert first.fingerprint == again.fingerprint and first.fingerprint.startswith("sha256:")
    with torch.no_grad():
        model.student.global_head.bias.add_(1e-3)
    changed = load_bundle(export_bundle(model, tmp_path / "c"))
    assert changed.fingerprint != first.fingerprint
    # a weights file swapped under the manifest is caught by verify
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "c" / "weights.safetensors").read_bytes())
    load_bundle(tmp_path / "a")  # the cheap check reads the manifest only
    with pytest.raises(BundleError, match="fingerprint"):
        load_bundle(tmp_path / "a", verify=True)


def test_export_from_a_saved_checkpoint_is_the_same_model(tmp_path, tuned):
    model, folder = tuned
    direct = load_bundle(folder)
    from_checkpoint = load_bundle(cli_export(save_model(model, tmp_path / "ckpt"), tmp_path / "exported"))
    assert from_checkpoint.fingerprint == direct.fingerprint
    ids, lengths = from_checkpoint.tokenize(LABELS)
    labels_onnx = _session(from_checkpoint.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    with torch.no_grad():
        assert np.abs(labels_onnx - model.encode_labels(LABELS).numpy()).max() <= 1e-4


def test_half_weights_make_a_compact_bundle_whose_encoders_agree(tmp_path, tuned):
    from safetensors import safe_open

    model, folder = tuned
    full = load_bundle(folder)
    half = load_bundle(export_bundle(model, tmp_path / "half", half_weights=True))
    assert half.manifest["weights_dtype"] == "float16"
    with safe_open(str(half.file("weights")), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    for role in ("weights", "text_encoder"):  # the token table is most of both
        assert half.file(role).stat().st_size < 0.6 * full.file(role).stat().st_size
    images = torch.randn(2, 3, 64, 64)
    ids, lengths = half.tokenize(LABELS)
    onnx_global = _session(half.file("image_encoder")).run(None, {"images": images.numpy()})[0]
    onnx_labels = _session(half.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    fallback = half.load_torch()  # the float16 copy loaded into float32 modules
    with torch.no_grad():
        exact_global = model.encode_image(images)[0].numpy()
        exact_labels = model.encode_labels(LABELS).numpy()
        fallback_global = fallback.image(images)[0].numpy()
        fallback_labels = fallback.text(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    assert np.abs(onnx_global - exact_global).max() <= 1e-4  # the image encoder stays float32
    assert 0 < np.abs(onnx_labels - exact_labels).max() <= 2e-2  # the rounded token table, no more
    for got in (fallback_labels, fallback_global):  # every weight rounded to float16, no more
        want = exact_labels if got is fallback_labels else exact_global
        assert np.abs(got - want).max() <= 2e-2


def test_export_does_not_overwrite_by_accident(tmp_path, tuned):
    model, folder = tuned
    target = _copy(folder, tmp_path)
    with pytest.raises(FileExistsError, match="already exists"):
        export_bundle(model, target)
    export_bundle(model, target, overwrite=True)
    assert load_bundle(target).fingerprint == load_bundle(folder).fingerprint
    assert not (tmp_path / "copy.partial").exists()


def test_bad_bundles_are_refused_naming_the_file_and_reason(tmp_path, tuned):
    folder = _copy(tuned[1], tmp_path)
    manifest_path = folder / MANIFEST_FILE
    good = json.loads(manifest_path.read_text())

    def refused(match):
        with pytest.raises(BundleError, match=match) as error:
            load_bundle(folder)
        return str(error.value)

    manifest_path.write_text(json.dumps({**good, "version": 2}))
    message = refused("version 2")
    assert str(manifest_path) in message and "reads version 1" in message
    manifest_path.write_text("{ this is not json")
    assert str(manifest_path) in refused("malformed JSON")
    manifest_path.write_text(json.dumps({**good, "format": "something-else"}))
    refused("not a model bundle")
    manifest_path.write_text(json.dumps({k: v for k, v in good.items() if k != "embed_dim"}))
    refused("missing field 'embed_dim'")
    manifest_path.write_text(json.dumps({**good, "top_k": "eight"}))
    refused("'top_k' should be int")
    manifest_path.write_text(json.dumps(good))
    (folder / "text_encoder.onnx").unlink()
    assert str(folder / "text_encoder.onnx") in refused("missing")
    manifest_path.unlink()
    assert str(manifest_path) in refused("missing")
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.slow
def test_the_dynamo_exporter_gives_the_same_parity(tmp_path, tuned):
    model, _ = tuned
    bundle = load_bundle(export_bundle(model, tmp_path / "bundle", dynamo=True))
    images = torch.randn(3, 3, 64, 64)
    global_onnx, local_onnx = _session(bundle.file("image_encoder")).run(None, {"images": images.numpy()})
    ids, lengths = bundle.tokenize(LABELS)
    labels_onnx = _session(bundle.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    with torch.no_grad():
        global_torch, local_torch = model.encode_image(images)
        assert np.abs(global_onnx - global_torch.numpy()).max() <= 1e-4
        assert np.abs(local_onnx - local_torch.numpy()).max() <= 1e-4
        assert np.abs(labels_onnx - model.encode_labels(LABELS).numpy()).max() <= 1e-4


@pytest.mark.slow
def test_vit_b16_sized_bundle_matches_torch(tmp_path):
    config = get_preset("paper-vit-b16")
    config.student.pretrained = False
    config.vlp.pretrained = None
    model = create_model(config, load_weights=False).eval()
    bundle = load_bundle(export_bundle(model, tmp_path / "bundle"))
    assert bundle.num_patches == 196 and bundle.embed_dim == 512

    images = torch.randn(2, 3, 224, 224)
    global_onnx, local_onnx = _session(bundle.file("image_encoder")).run(None, {"images": images.numpy()})
    with torch.no_grad():
        global_torch, local_torch = model.encode_image(images)
        labels_torch = model.encode_labels(LABELS).numpy()
    assert np.abs(global_onnx - global_torch.numpy()).max() <= 1e-4
    assert np.abs(local_onnx - local_torch.numpy()).max() <= 1e-4
    ids, lengths = bundle.tokenize(LABELS)
    labels_onnx = _session(bundle.file("text_encoder")).run(None, {"ids": ids, "label_lengths": lengths})[0]
    assert np.abs(labels_onnx - labels_torch).max() <= 1e-4
