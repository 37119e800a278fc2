"""The tensors of a TorchScript archive (OpenAI's `ViT-B-16.pt`), read without running anything from it.

OpenAI distributes CLIP as a TorchScript archive, a zip holding the module's code (`code/`) and its
attribute tree (`data.pkl`, a pickle whose objects are `__torch__.*` modules) with one file per tensor
storage (`data/<n>`). `torch.jit.load` compiles and runs that code; `torch.load(weights_only=True)`
refuses it. Here `data.pkl` is read by a restricted unpickler: `__torch__.*` classes become inert
records of their attributes, the only callables are a tensor rebuilder and OrderedDict, and storages
are read from the archive as bytes of a declared dtype. Anything else in the pickle is refused.
"""

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mkt_core.model.safe_load import UnsafeCheckpointError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


def is_torchscript_archive(path: str | Path) -> bool:
    """A zip with a top folder holding `data.pkl`, `constants.pkl` and `code/`: what torch.jit.save writes."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _archive_prefix(archive) is not None
    except (zipfile.BadZipFile, OSError):
        return False


def _archive_prefix(archive: zipfile.ZipFile) -> str | None:
    names = set(archive.namelist())
    for name in names:
        if name.endswith("data.pkl") and name.count("/") == 1:
            prefix = name[: -len("data.pkl")]
            if prefix + "constants.pkl" in names and any(n.startswith(prefix + "code/") for n in names):
                return prefix
    return None


class _ScriptObject:
    """An inert stand-in for a TorchScript class instance: it only keeps its attributes."""

    def __init__(self, class_name: str):
        self.class_name = class_name
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.attributes = state


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class _WeightsUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a TorchScript weights file")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if len(raw) != int(numel) * itemsize:
                raise pickle.UnpicklingError(f"storage {key}: {len(raw)} bytes for {numel} values")
            self.storages[key] = torch.frombuffer(bytearray(raw), dtype=storage_type.dtype) if raw else \
                torch.empty(0, dtype=storage_type.dtype)
        return self.storages[key]


def _script_class(qualified_name: str) -> type:
    """A class whose instances record their attributes; NEWOBJ calls `cls.__new__(cls)`."""

    class Record(_ScriptObject):
        def __new__(cls, *args: Any) -> "_ScriptObject":
            obj = object.__new__(cls)
            _ScriptObject.__init__(obj, qualified_name)
            return obj

        def __init__(self, *args: Any) -> None:  # called by nothing but REDUCE: keep the record inert
            pass

    return Record


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_ignored: Any) -> torch.Tensor:
    """A tensor view of a storage, copied: as_strided checks that it stays inside the storage."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor without a storage")
    return storage.as_strided(tuple(size), tuple(stride), int(offset)).clone()


def _collect(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix[:-1]] = obj
    elif isinstance(obj, _ScriptObject):
        for name, value in obj.attributes.items():
            _collect(value, f"{prefix}{name}.", out)


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree, by dotted name (like a state dict).

    Besides parameters and buffers this holds plain tensor attributes (e.g. an attention mask);
    the caller keeps the names its model expects.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive)
            if prefix is None:
                raise ValueError(f"{path}: not a TorchScript archive")
            unpickler = _WeightsUnpickler(archive.read(prefix + "data.pkl"), archive, prefix)
            root = unpickler.load()
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(f"{path}: refused: {exc}") from exc
    except (zipfile.BadZipFile, KeyError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the TorchScript archive: {exc}") from exc
    out: dict[str, torch.Tensor] = {}
    _collect(root, "", out)
    if not out:
        raise ValueError(f"{path}: the TorchScript archive holds no tensors")
    return out
