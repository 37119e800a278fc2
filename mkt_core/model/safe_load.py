"""Reading pickled checkpoints without running code: a leaf module every loader can import."""

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(ValueError):
    """A pickled checkpoint holds something other than tensors and plain containers."""


def safe_torch_load(path: str | Path) -> Any:
    """`torch.load` with `weights_only=True`: a checkpoint that carries code is refused, not run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if not _looks_like_a_checkpoint(path):
        raise ValueError(f"{path}: not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused: the file holds pickled objects other than tensors (it could run code "
            f"when loaded). Re-save it as a plain state dict or safetensors. Details: {exc}") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: cannot read checkpoint: {exc}") from exc


def _looks_like_a_checkpoint(path: Path) -> bool:
    """torch.save writes a zip archive (a pickle, protocol 2, before PyTorch 1.6): any other file is none, and
    saying so is clearer than torch's complaint about what it could not unpickle."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read checkpoint: {exc.strerror or exc}") from exc
    return start == b"\x80" or zipfile.is_zipfile(path)
