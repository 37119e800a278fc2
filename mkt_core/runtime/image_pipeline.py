"""Photo files -> model input -> embeddings, with decoding overlapped with inference.

    for item in embed_files(paths, engine, batch_size=32, workers=2):
        if item.error: log(item.path, item.error)
        else: store(item.path, item.global_emb, item.local_emb)

Decoding runs in a pool of threads (PIL releases the GIL while it decodes and resizes; see
docs/performance.md for threads against processes) that works ahead of the model by a few
batches, so the model does not wait on files. A file that cannot be decoded gives an error
record naming the file and the reason; the rest of its batch is embedded as usual.

Decoding is `mkt_core.data.images.load_rgb`, the loader training uses (EXIF orientation, JPEG
draft mode down to the model's size, CMYK / 16-bit / palette / alpha, first frame); resizing
matches `mkt_core.data.transforms.eval_transform` (bicubic, whole photo squashed to a square).
"""

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mkt_core.runtime.engine import cpu_count
from mkt_core.runtime.images import ImageLoadError, load_rgb

__all__ = ["ImageLoadError", "load_rgb", "resize", "to_array", "Preprocess", "EmbeddedPhoto", "decoded_batches",
           "embed_files"]

RESIZE_MODES = ("squash", "center_crop")


def resize(image: Image.Image, size: int, mode: str = "squash") -> Image.Image:
    """To `size` x `size`: "squash" keeps the whole photo (MKT), "center_crop" crops the long side (CLIP)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    if mode == "center_crop":
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        return image.crop((left, top, left + size, top + size))
    return image.resize((size, size), Image.Resampling.BICUBIC)


def to_array(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """RGB image -> float32 [3, H, W], scaled to [0, 1] and normalised with mean/std."""
    array = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) * (1.0 / 255.0)
    mean_ = np.asarray(mean, dtype=np.float32)[:, None, None]
    std_ = np.asarray(std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((array - mean_) / std_)


@dataclass(frozen=True)
class Preprocess:
    """Everything a worker needs to turn a file into model input (picklable, for process pools)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "squash"

    @classmethod
    def from_bundle(cls, bundle) -> "Preprocess":
        return cls(bundle.image_size, bundle.mean, bundle.std, bundle.resize)

    def __call__(self, path: str | Path, data: bytes | None = None) -> np.ndarray:
        return to_array(resize(load_rgb(path, self.size, data=data), self.size, self.resize), self.mean, self.std)


def _decode(preprocess: Preprocess, path: str, data: bytes | None = None) -> np.ndarray | ImageLoadError:
    """Worker body: an array, or the error as a value, so one bad file never raises through the pool."""
    try:
        return preprocess(path, data)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - anything else a decoder throws is still that file's fault
        return ImageLoadError(path, f"cannot decode: {type(exc).__name__}: {exc}")


@dataclass
class EmbeddedPhoto:
    """One file's result: embeddings, or an error naming the file and the reason."""

    path: str
    global_emb: np.ndarray | None = None  # [D]
    local_emb: np.ndarray | None = None  # [N, D]; None for CLIP bundles
    error: str | None = None


def decoded_batches(paths: Iterable[str | Path], preprocess: Preprocess, batch_size: int, workers: int = 0,
                    pool: str = "thread", prefetch_batches: int = 2, contents: Mapping[str, bytes] | None = None
                    ) -> Iterator[list[tuple[str, np.ndarray | ImageLoadError]]]:
    """Batches of (path, array or error), in input order, decoded ahead by `workers` threads/processes;
    a path in `contents` is decoded from those bytes instead of being read again."""
    contents = contents or {}
    if pool not in ("thread", "process"):
        raise ValueError(f"pool must be 'thread' or 'process', got {pool!r}")
    workers = workers or min(8, cpu_count())
    executor: Executor = (ThreadPoolExecutor(workers, thread_name_prefix="decode") if pool == "thread"
                          else ProcessPoolExecutor(workers))
    pending: deque[tuple[str, Future]] = deque()
    ahead = batch_size * (prefetch_batches + 1)
    iterator = iter(paths)
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < ahead:
                path = next(iterator, None)
                if path is None:
                    exhausted = True
                    break
                pending.append((str(path), executor.submit(_decode, preprocess, str(path), contents.get(str(path)))))
            if not pending:
                return
            batch: list[tuple[str, np.ndarray | ImageLoadError]] = []
            while pending and len(batch) < batch_size:
                path, future = pending.popleft()
                try:
                    batch.append((path, future.result()))
                except Exception as exc:  # noqa: BLE001 - e.g. a crashed worker process
                    batch.append((path, ImageLoadError(path, f"decoder failed: {type(exc).__name__}: {exc}")))
            yield batch
    finally:
        for _, future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def embed_files(paths: Iterable[str | Path], engine, batch_size: int = 32, workers: int = 0,
                pool: str = "thread", contents: Mapping[str, bytes] | None = None) -> Iterator[EmbeddedPhoto]:
    """Embed photo files with `engine` (a `mkt_core.runtime.engine.Engine`), one result per path, in order.

    While the engine runs a batch, the pool decodes the next ones. A file that fails to decode
    yields a result with `error` set; the other files of its batch are embedded as usual.
    """
    preprocess = Preprocess.from_bundle(engine.bundle)
    for batch in decoded_batches(paths, preprocess, batch_size, workers, pool, contents=contents):
        good = [(path, array) for path, array in batch if not isinstance(array, ImageLoadError)]
        embedded: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        if good:
            global_emb, local_emb = engine.encode_images(np.stack([array for _, array in good]))
            index = 0
            for i, (_, array) in enumerate(batch):
                if not isinstance(array, ImageLoadError):
                    embedded[i] = (global_emb[index], None if local_emb is None else local_emb[index])
                    index += 1
        for i, (path, array) in enumerate(batch):
            if isinstance(array, ImageLoadError):
                yield EmbeddedPhoto(path, error=array.reason)
            else:
                yield EmbeddedPhoto(path, *embedded[i])
