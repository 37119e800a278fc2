import numpy as np
import onnxruntime as ort
import pytest
import torch

from mkt_core.model.config import TINY_VLP_CFG
from mkt_core.model.export import export_bundle, export_clip_bundle
from mkt_core.model.mkt import create_model
from mkt_core.model.scoring import two_stream_scores
from mkt_core.runtime.bundle import BundleError
from mkt_core.runtime.engine import Engine, cpu_count, half_precision_model

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers() and torch.cuda.is_available()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    with torch.no_grad():
        for param in model.prompt.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    return model, export_bundle(model, tmp_path_factory.mktemp("engine") / "bundle")


def test_cpu_engine_says_what_runs_and_matches_the_model(tiny):
    model, folder = tiny
    engine = Engine(folder, device="cpu")
    assert engine.device_description() == f"CPU (onnxruntime, {cpu_count()} threads)"
    images = np.random.default_rng(0).standard_normal((5, 3, 64, 64)).astype(np.float32)
    global_emb, local_emb = engine.encode_images(images)
    with torch.no_grad():
        global_ref, local_ref = model.encode_image(torch.from_numpy(images))
        labels_ref = model.encode_labels(["dog", "red car"])
    assert np.abs(global_emb - global_ref.numpy()).max() <= 1e-4
    assert np.abs(local_emb - local_ref.numpy()).max() <= 1e-4
    labels = engine.encode_labels(["dog", "red car"])
    assert np.abs(labels - labels_ref.numpy()).max() <= 1e-4
    # scores from the engine's outputs are the model's scores
    scores = two_stream_scores(torch.from_numpy(labels), torch.from_numpy(global_emb), torch.from_numpy(local_emb), 8)
    assert torch.allclose(scores, model(torch.from_numpy(images), ["dog", "red car"]), atol=1e-4)


def test_batching_does_not_change_results(tiny):
    _, folder = tiny
    images = np.random.default_rng(1).standard_normal((5, 3, 64, 64)).astype(np.float32)
    whole = Engine(folder, batch_size=64).encode_images(images)
    in_twos = Engine(folder, batch_size=2).encode_images(images)
    assert np.abs(whole[0] - in_twos[0]).max() <= 1e-5 and np.abs(whole[1] - in_twos[1]).max() <= 1e-5
    empty_global, empty_local = Engine(folder).encode_images(np.zeros((0, 3, 64, 64), np.float32))
    assert empty_global.shape == (0, 64) and empty_local.shape == (0, 64, 64)
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        Engine(folder).encode_images(np.zeros((1, 3, 32, 32), np.float32))


def test_torch_fallback_gives_the_same_embeddings(tiny):
    _, folder = tiny
    onnx_engine, torch_engine = Engine(folder), Engine(folder, backend="torch", device="cpu")
    assert torch_engine.device_description().startswith("CPU (torch, ")
    images = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    for a, b in zip(onnx_engine.encode_images(images), torch_engine.encode_images(images), strict=True):
        assert np.abs(a - b).max() <= 1e-4
    labels = ["cat", "a small boat"]
    assert np.abs(onnx_engine.encode_labels(labels) - torch_engine.encode_labels(labels)).max() <= 1e-4


def test_int8_image_encoder_is_an_option(tiny):
    _, folder = tiny
    engine = Engine(folder, device="cpu", precision="int8")
    assert engine.device_description().endswith("threads, int8)")
    images = np.random.default_rng(3).standard_normal((4, 3, 64, 64)).astype(np.float32)
    global_int8, local_int8 = engine.encode_images(images)
    assert (folder / "image_encoder.int8.onnx").is_file()  # quantised at the first image, reused after
    global_fp32, _ = Engine(folder).encode_images(images)
    assert local_int8.shape == (4, 64, 64)
    cosine = (global_int8 * global_fp32).sum(1) / np.linalg.norm(global_int8, axis=1) / np.linalg.norm(global_fp32,
                                                                                                         axis=1)
    assert cosine.min() > 0.9


def test_fp16_conversion_for_cuda_keeps_outputs_close(tiny):
    # CUDA is not here, but the converted graph runs on the CPU provider too: check what it computes
    _, folder = tiny
    half = ort.InferenceSession(half_precision_model(folder / "image_encoder.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    global_half, local_half = half.run(None, {"images": images})
    global_full, local_full = Engine(folder).encode_images(images)
    assert global_half.dtype == np.float32  # fp32 in and out: callers do not change
    assert np.abs(global_half - global_full).max() < 1e-2 and np.abs(local_half - local_full).max() < 1e-2
    assert np.abs(global_half - global_full).max() > 0  # it really is another precision


def test_unavailable_choices_are_refused(tiny):
    _, folder = tiny
    with pytest.raises(ValueError, match="fp16"):
        Engine(folder, device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="backend"):
        Engine(folder, backend="tensorflow")
    if not HAS_CUDA:
        with pytest.raises(RuntimeError, match="CUDA"):
            Engine(folder, device="cuda")


def test_clip_engine_has_no_local_stream(tmp_path):
    engine = Engine(export_clip_bundle("tiny", None, tmp_path / "clip", model_cfg=TINY_VLP_CFG, local_stream=False))
    global_emb, local_emb = engine.encode_images(np.zeros((2, 3, 64, 64), np.float32))
    assert local_emb is None and not engine.has_local
    assert np.allclose(np.linalg.norm(global_emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_engine_runs_on_the_gpu_close_to_cpu(tiny):
    _, folder = tiny
    engine = Engine(folder, device="cuda")
    assert "CUDA" in engine.device_description()
    images = np.random.default_rng(4).standard_normal((4, 3, 64, 64)).astype(np.float32)
    gpu, cpu = engine.encode_images(images)[0], Engine(folder, device="cpu").encode_images(images)[0]
    assert np.abs(gpu - cpu).max() <= (5e-2 if engine.precision == "fp16" else 1e-3)


def test_an_engine_that_only_encodes_text_never_loads_the_image_encoder(tiny, tmp_path):
    """A search needs the text encoder only: the image encoder (the larger file) is loaded at the first image."""
    import shutil

    _, folder = tiny
    copy = tmp_path / "bundle"
    shutil.copytree(folder, copy)
    (copy / "image_encoder.onnx").write_bytes(b"not an onnx file")
    engine = Engine(copy, device="cpu")
    assert engine.encode_labels(["a dog"]).shape[0] == 1
    images = np.zeros((1, 3, 64, 64), np.float32)
    with pytest.raises(BundleError, match="image_encoder.onnx: ONNX Runtime cannot load it"):
        engine.encode_images(images)
