"""Converters: CLIP image-tower weights to a timm ViT, and the authors' released MKT checkpoints.

The released stage-1 checkpoint is the image model of the authors' code: CLIP ViT-B/16
visual keys (`conv1`, `class_embedding`, `positional_embedding`, `ln_pre`,
`transformer.resblocks.*`, `ln_post`, and the projection as `proj` or `projection_dist`).
The released stage-2 checkpoint is the text model: CLIP text keys with the tuned
`token_embedding`. Both are read with `weights_only=True`: no pickled code runs.
"""

from pathlib import Path

import torch

from mkt_core.model.config import MKTConfig, get_preset
from mkt_core.model.safe_load import safe_torch_load


def _strip_prefixes(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    data = safe_torch_load(path)
    for wrapper in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: not a state dict of tensors")
    return _strip_prefixes(data, ("module.", "visual."))


TEXT_KEYS = ("token_embedding.weight", "positional_embedding", "ln_final.", "text_projection", "transformer.")


def convert_official(
    image_checkpoint: str | Path,
    text_checkpoint: str | Path | None = None,
    config: MKTConfig | None = None,
    original_token_table: torch.Tensor | None = None,
):
    """Build an MKT model (released-code preset by default) from the authors' checkpoints.

    The stage-2 checkpoint's tuned table becomes the prompt's token table. Label tokens use
    the VLP's original table: pass `original_token_table` (CLIP's untuned table) for an exact
    conversion; without it the tuned table stands in for it too.
    """
    from mkt_core.model.mkt import create_model

    config = config or get_preset("release-vit-b16")
    if config.head != "shared_projection":
        raise ValueError("the released checkpoints have one shared projection: use head='shared_projection'")
    model = create_model(config, load_weights=False)
    image_state = _read_state(image_checkpoint)
    if "proj" not in image_state and "projection_dist" not in image_state:
        raise ValueError(f"{image_checkpoint}: no projection ('proj' or 'projection_dist') in the checkpoint")
    try:
        model.student.load_from_clip_visual(image_state)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{image_checkpoint}: {exc}") from exc

    if text_checkpoint is not None:
        text_state = {k: v for k, v in _read_state(text_checkpoint).items() if k.startswith(TEXT_KEYS)}
        if "token_embedding.weight" not in text_state:
            raise ValueError(f"{text_checkpoint}: no 'token_embedding.weight': not a CLIP text checkpoint")
        tuned = text_state.pop("token_embedding.weight")
        original = original_token_table if original_token_table is not None else tuned
        text_state["token_embedding.weight"] = original
        clip_state = model.vlp.clip.state_dict()
        for key, value in text_state.items():
            if key not in clip_state or clip_state[key].shape != value.shape:
                raise ValueError(f"{text_checkpoint}: key {key!r} with shape {tuple(value.shape)} does not fit "
                                 f"the VLP text tower")
        model.vlp.clip.load_state_dict(text_state, strict=False)
        if model.prompt.token_table is not None:
            model.prompt.token_table.weight.data.copy_(tuned)
        else:
            model.prompt.ctx_prefix.data.copy_(tuned[model.prompt.prefix_ids])
            model.prompt.ctx_suffix.data.copy_(tuned[model.prompt.suffix_ids])
    return model
