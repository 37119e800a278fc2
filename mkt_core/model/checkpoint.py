"""MKT checkpoints: safetensors weights + a JSON config, and safe reading of pickled files.

A checkpoint is a folder with `model.safetensors` and `config.json`. The config is made
self-contained (the VLP's architecture is written inline), so loading never downloads
anything and gives back exactly the saved tensors.
"""

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from mkt_core.model.config import MKTConfig
from mkt_core.runtime.files import read_json_object

FORMAT = "mkt-checkpoint"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def portable_config(model) -> MKTConfig:
    """The model's config with everything needed to rebuild it offline written inline."""
    config = model.config.replace()
    config.vlp.model_cfg = model.vlp.model_cfg
    config.vlp.pretrained = None
    config.student.pretrained = False
    config.student.init_from_vlp = False
    return config


def save_model(model, folder: str | Path, extra: dict[str, Any] | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": VERSION, "config": portable_config(model).to_dict(),
            "vlp_mean": list(model.vlp.mean), "vlp_std": list(model.vlp.std), "extra": extra or {}}
    tmp_weights = folder / (WEIGHTS_FILE + ".tmp")
    st_save_model(model, str(tmp_weights))
    tmp_weights.replace(folder / WEIGHTS_FILE)
    tmp_config = folder / (CONFIG_FILE + ".tmp")
    tmp_config.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    tmp_config.replace(folder / CONFIG_FILE)
    return folder


def read_checkpoint_config(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing: not an MKT checkpoint folder")
    meta = read_json_object(path, ValueError)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an MKT checkpoint config (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {meta.get('version')!r}; this code reads version {VERSION}")
    return meta


def load_model(folder: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a saved model (no download) and load its weights strictly."""
    from mkt_core.model.mkt import create_model

    folder = Path(folder)
    meta = read_checkpoint_config(folder)
    config = MKTConfig.from_dict(meta["config"])
    model = create_model(config, load_weights=False)
    model.vlp.mean = tuple(meta.get("vlp_mean", model.vlp.mean))
    model.vlp.std = tuple(meta.get("vlp_std", model.vlp.std))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing: the checkpoint has no weights")
    try:
        st_load_model(model, str(weights), strict=True, device=str(device))
    except Exception as exc:  # noqa: BLE001 - corrupt or mismatched file: name it
        raise ValueError(f"{weights}: cannot load: {exc}") from exc
    return model.to(device)
