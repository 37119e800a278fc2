"""Reading pickled checkpoints without running code: a leaf module every loader can import."""

import pickle
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
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"{path}: refused: the file holds pickled objects other than tensors (it could run code "
            f"when loaded). Re-save it as a plain state dict or safetensors. Details: {exc}") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: cannot read checkpoint: {exc}") from exc
