"""Reading the image-name lists that data sets ship as pickles, without letting a pickle run code.

`pickle.load` executes whatever a file asks for (any importable function, with any arguments),
so a downloaded `img_names.pkl` could just as well delete files. The unpickler here only builds
plain containers and strings: every global a file names must be on a short allow-list (the
builtin container, string and number types, and `_codecs.encode` restricted to latin1, which
protocols 0-2 use to write bytes).

The NUS-WIDE lists (img_names.pkl, test_img_names.pkl) of the MKT / BiAM release are a dict
{"img_names": [str, ...]} and need no global at all. BiAM's Open Images `unseen_labels.pkl` is a
numpy array of class ids; for that case only, `allow_numpy=True` also admits the few numpy
functions that rebuild an array from raw bytes (`_reconstruct`, `ndarray`, `dtype`, `_frombuffer`).
They allocate and fill an array but call nothing else; an object array's elements still pass
through this same allow-list.
"""

from __future__ import annotations

import builtins
import importlib
import os
import pickle
from typing import Any

_BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "str", "int", "float", "bool", "bytes"})

# (module, name) a numpy array pickle refers to; numpy 2 writes numpy._core, numpy 1 numpy.core.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
}


class UnsafePickleError(ValueError):
    """A pickle that asks for a global outside the allow-list; nothing it asked for was run."""

    def __init__(self, path: str | os.PathLike, refused: str):
        self.path = str(path)
        self.refused = refused
        super().__init__(f"refusing to load {self.path}: it asks for {refused}, which is not a plain container, "
                         f"string or number (a pickle can run code; only plain data is accepted)")


def _numpy_global(submodule: str, name: str) -> Any:
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stands in for `_codecs.encode`, which protocols 0-2 use to write bytes (always as latin1)."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"bytes encoded as {encoding!r}; only latin1 is accepted")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: str, allow_numpy: bool):
        super().__init__(file)
        self._path = path
        self._allow_numpy = allow_numpy

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if self._allow_numpy:
            if (module, name) in _NUMPY_GLOBALS:
                return _numpy_global(*_NUMPY_GLOBALS[(module, name)])
            if module == "numpy" and name in ("ndarray", "dtype"):
                import numpy

                return getattr(numpy, name)
        raise UnsafePickleError(self._path, f"{module}.{name}")


def safe_load(path: str | os.PathLike, allow_numpy: bool = False) -> Any:
    """Unpickle plain data (containers, strings, numbers; numpy arrays only if allowed)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, path, allow_numpy).load()
        except UnsafePickleError:
            raise
        except Exception as exc:  # a damaged pickle can fail in many ways; report them all the same
            raise ValueError(f"{path} is not a readable pickle: {exc}") from exc


def load_name_list(path: str | os.PathLike, key: str = "img_names", allow_numpy: bool = False) -> list[str]:
    """A list of names from a pickle: a list/tuple of strings, or a dict holding one under `key`.

    The dict form is what the NUS-WIDE release ships ({"img_names": [...]}). Bytes are decoded as
    UTF-8. A 1-D numpy array of strings is accepted when `allow_numpy` is set.
    """
    data = safe_load(path, allow_numpy=allow_numpy)
    if isinstance(data, dict):
        if key not in data:
            raise ValueError(f"{path}: expected a list of names or a dict with key {key!r}, "
                             f"got a dict with keys {sorted(map(str, data))[:10]}")
        data = data[key]
    if allow_numpy:
        import numpy as np

        if isinstance(data, np.ndarray):
            if data.ndim != 1 or data.dtype.kind not in "USO":
                raise ValueError(f"{path}: expected a 1-D array of strings, got {data.dtype} with shape {data.shape}")
            data = data.tolist()
    if not isinstance(data, (list, tuple)):
        raise ValueError(f"{path}: expected a list of names, got {type(data).__name__}")
    names = []
    for i, item in enumerate(data):
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str):
            raise ValueError(f"{path}: entry {i} is a {type(item).__name__}, not a string")
        names.append(item)
    return names
