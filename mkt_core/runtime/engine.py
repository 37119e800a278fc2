"""The inference engine over a model bundle: ONNX Runtime (CUDA when it really runs, else CPU), or torch.

    engine = Engine("path/to/bundle")
    global_emb, local_emb = engine.encode_images(batch)   # float32 [B, 3, H, W] -> [B, D], [B, N, D]
    label_emb = engine.encode_labels(["dog", "red car"])  # [L, D], L2-normalised
    engine.device_description()                           # "CPU (onnxruntime, 2 threads)"

ONNX Runtime lists CUDAExecutionProvider among the available providers whenever the GPU build
is installed, GPU or not; the engine creates the session and then asks it which providers it
really got. On CUDA the image encoder runs in fp16 where the conversion works. On CPU an int8
(dynamically quantised) image encoder is available with `precision="int8"`; it is not the
default because it did not keep fp32's ranking quality (docs/performance.md).
"""

import glob
import logging
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from mkt_core.runtime.bundle import Bundle, BundleError, load_bundle

BACKENDS = ("auto", "onnx", "torch")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Engine:
    """Image and text encoders of one bundle; the text encoder is only loaded when first needed."""

    def __init__(self, bundle: Bundle | str | Path, backend: str = "auto", device: str = "auto",
                 precision: str = "auto", threads: int | None = None, batch_size: int = 32):
        for name, value, choices in (("backend", backend, BACKENDS), ("device", device, DEVICES),
                                     ("precision", precision, PRECISIONS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.threads = threads or cpu_count()
        self.batch_size = batch_size
        self.backend = ("onnx" if _has_onnxruntime() else "torch") if backend == "auto" else backend
        self._text = None
        if self.backend == "onnx":
            self._init_onnx(device, precision)
        else:
            self._init_torch(device, precision)

    # -- set-up -------------------------------------------------------------------------------

    def _init_onnx(self, device: str, precision: str) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.device = "cpu"
        self.precision = "fp32"
        self._image = None
        self._image_lock = threading.Lock()
        if device == "cuda" and precision == "int8":
            raise ValueError("precision 'int8' is the CPU's option; on CUDA use 'fp16' or 'fp32'")
        wants_cuda = (device in ("auto", "cuda") and precision != "int8"  # int8 is the CPU's option
                      and "CUDAExecutionProvider" in ort.get_available_providers()
                      and cuda_device_present())
        if wants_cuda:
            self._image, self.precision = self._cuda_image_session(precision)
            if self._image is not None:
                self.device = "cuda"
        if device == "cuda" and self.device != "cuda":
            raise RuntimeError("device='cuda' was asked for, but ONNX Runtime's CUDA provider does not run here "
                               f"(available providers: {', '.join(ort.get_available_providers())})")
        if self._image is None:
            if precision == "fp16":
                raise ValueError("precision 'fp16' needs the CUDA provider; on CPU use 'fp32' or 'int8'")
            self.precision = "int8" if precision == "int8" else "fp32"
            # The CPU session is made when the first image comes: a search never needs it, and loading
            # ViT-B/16's image encoder takes longer than the search itself.

    def _cpu_image_session(self):
        with self._image_lock:
            if self._image is None:
                model = (self._int8_image_model() if self.precision == "int8"
                         else str(self.bundle.file("image_encoder")))
                self._image = self._session(model, ["CPUExecutionProvider"])
            return self._image

    def _session(self, model: str | bytes, providers: list[str]):
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the CUDA provider's failures are handled here
        try:
            return self._ort.InferenceSession(model, options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - a damaged file: name it
            where = model if isinstance(model, str) else f"{self.bundle.path} (converted image encoder)"
            raise BundleError(f"{where}: ONNX Runtime cannot load it: {exc}") from exc

    def _cuda_image_session(self, precision: str):
        """A CUDA session if one really runs, in fp16 unless fp32 was asked for; (None, _) otherwise."""
        path = str(self.bundle.file("image_encoder"))
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if precision in ("auto", "fp16"):
            try:
                session = self._session(half_precision_model(path), providers)
                if "CUDAExecutionProvider" in session.get_providers():
                    return session, "fp16"
            except Exception:  # noqa: BLE001 - no fp16 here: fall back to fp32 on the same device
                if precision == "fp16":
                    raise
        try:
            session = self._session(path, providers)
        except BundleError:  # the CUDA provider failed to start: the caller falls back to the CPU
            return None, "fp32"
        if "CUDAExecutionProvider" in session.get_providers():
            return session, "fp32"
        return None, "fp32"

    def _int8_image_model(self) -> bytes:
        """The image encoder with int8 weights (per channel), quantised once and kept beside the bundle."""
        cached = self.bundle.path / "image_encoder.int8.onnx"
        if cached.is_file():
            return cached.read_bytes()
        data = quantize_image_encoder(self.bundle.file("image_encoder"))
        try:
            tmp = cached.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(cached)
        except OSError:
            pass  # a read-only bundle: quantise again next time
        return data

    def _init_torch(self, device: str, precision: str) -> None:
        import torch

        if precision not in ("auto", "fp32"):
            raise ValueError(f"the torch backend runs in fp32 only, not {precision!r}")
        self._torch = torch
        self.precision = "fp32"
        self.device = "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        if device == "cuda" and self.device != "cuda":
            raise RuntimeError("device='cuda' was asked for, but torch sees no CUDA GPU")
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        models = self.bundle.load_torch()
        self._torch_image = models.image.to(self.device)
        self._torch_text = models.text.to(self.device)

    # -- what runs ----------------------------------------------------------------------------

    def device_description(self) -> str:
        """What really runs, in words: "CPU (onnxruntime, 2 threads)", "NVIDIA H100 (onnxruntime CUDA, fp16)"."""
        precision = "" if self.precision == "fp32" else f", {self.precision}"
        if self.device == "cuda":
            return f"{_gpu_name()} ({self.backend if self.backend == 'torch' else 'onnxruntime'} CUDA{precision})"
        runtime = "torch" if self.backend == "torch" else "onnxruntime"
        return f"CPU ({runtime}, {self.threads} threads{precision})"

    @property
    def fingerprint(self) -> str:
        return self.bundle.fingerprint

    @property
    def has_local(self) -> bool:
        return self.bundle.num_patches > 0

    # -- encoders -----------------------------------------------------------------------------

    def encode_images(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(global [B, D], local [B, N, D] or None for CLIP bundles) for a normalised float32 batch."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        size = self.bundle.image_size
        if images.ndim != 4 or images.shape[1:] != (3, size, size):
            raise ValueError(f"images must be [B, 3, {size}, {size}], got {list(images.shape)}")
        globals_, locals_ = [], []
        for start in range(0, len(images), self.batch_size):
            g, l = self._run_image(images[start:start + self.batch_size])
            globals_.append(g)
            locals_.append(l)
        if not globals_:
            d, n = self.bundle.embed_dim, self.bundle.num_patches
            return np.zeros((0, d), np.float32), (np.zeros((0, n, d), np.float32) if self.has_local else None)
        local = np.concatenate([l for l in locals_ if l is not None]) if self.has_local else None
        return np.concatenate(globals_), local

    def _run_image(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.backend == "torch":
            torch = self._torch
            with torch.inference_mode():
                out = self._torch_image(torch.from_numpy(batch).to(self.device))
            out = out if isinstance(out, tuple) else (out,)
            arrays = [o.float().cpu().numpy() for o in out]
        else:
            session = self._image or self._cpu_image_session()
            arrays = [np.asarray(o, dtype=np.float32) for o in session.run(None, {"images": batch})]
        return arrays[0], (arrays[1] if len(arrays) > 1 else None)

    def encode_labels(self, labels: list[str]) -> np.ndarray:
        """L2-normalised label embeddings [L, D] (prompt template and learned context applied)."""
        if not labels:
            return np.zeros((0, self.bundle.embed_dim), np.float32)
        ids, lengths = self.bundle.tokenize(list(labels))
        if self.backend == "torch":
            torch = self._torch
            with torch.inference_mode():
                out = self._torch_text(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths).to(self.device))
            return out.float().cpu().numpy()
        text = self._text
        if text is None:  # CPU is plenty for a few labels, and keeps GPU memory for images
            text = self._text = self._session(str(self.bundle.file("text_encoder")), ["CPUExecutionProvider"])
        # a Hugging Face text tower's graph takes the ids alone (its attention mask is "id != pad")
        feeds = {name: value for name, value in (("ids", ids), ("label_lengths", lengths))
                 if name in {i.name for i in text.get_inputs()}}
        return text.run(None, feeds)[0].astype(np.float32)


def cuda_device_present() -> bool:
    """Whether a CUDA GPU is really there. Asked before any CUDA session is made: the GPU build of
    ONNX Runtime lists its CUDA provider everywhere, and creating a CUDA session on a machine with
    no GPU crashed the process (segmentation fault, onnxruntime-gpu 1.31 here). On Linux, no NVIDIA device
    node means no GPU: answered at once, without loading torch (seconds) to be told so."""
    if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no usable torch CUDA: look for the driver's device node
        return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")


def quantize_image_encoder(onnx_path: str | Path) -> bytes:
    """int8 dynamic quantisation (per-channel weights) of an image encoder; returns the model's bytes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice through the root logger
    try:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "int8.onnx"
            quantize_dynamic(str(onnx_path), str(out), weight_type=QuantType.QInt8, per_channel=True)
            return out.read_bytes()
    finally:
        root.setLevel(level)


def half_precision_model(onnx_path: str | Path) -> bytes:
    """The model with fp16 weights and arithmetic, fp32 inputs and outputs (for the CUDA provider)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True).SerializeToString()


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _gpu_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - naming the card is a nicety
        pass
    return "CUDA GPU"
