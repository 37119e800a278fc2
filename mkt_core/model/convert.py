"""Converters: CLIP image-tower weights to a timm ViT, and the authors' released MKT checkpoints.

The released stage-1 checkpoint is the image model of the authors' code: CLIP ViT-B/16
visual keys (`conv1`, `class_embedding`, `positional_embedding`, `ln_pre`,
`transformer.resblocks.*`, `ln_post`, and the projection as `proj` or `projection_dist`).
The released stage-2 checkpoint is the text model: CLIP text keys with the tuned
`token_embedding`. Both are read with `weights_only=True`: no pickled code runs. Neither holds
the frozen teacher (nor, for stage 1, a text tower): those are CLIP's own weights, loaded first.
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
    clip_weights: str | Path | None = None,
):
    """Build an MKT model (released-code preset by default) from the authors' checkpoints.

    The checkpoints hold the student (stage 1) and the tuned token table (stage 2) only: the frozen
    teacher and the text tower are CLIP's, as in the authors' code, which loads CLIP first. They come
    from `clip_weights` (a CLIP file: open_clip's safetensors or bin, a plain state dict, OpenAI's
    TorchScript ViT-B-16.pt read without running it; or an open_clip folder), else from the preset's
    VLP weights (open_clip's cache by model name). Without them the teacher and the label embeddings
    would be random, so that is an error. Label tokens keep CLIP's untuned table; a stage-2 checkpoint's
    tuned table becomes the prompt's. A stage-1 checkpoint alone gives CLIP's untuned text features,
    which is how the authors evaluate it.
    """
    from mkt_core.model.mkt import create_model
    from mkt_core.model.vlp import VLPWeightsUnavailable

    config = (config or get_preset("release-vit-b16")).replace()
    if config.head != "shared_projection":
        raise ValueError("the released checkpoints have one shared projection: use head='shared_projection'")
    if clip_weights is not None:
        config.vlp.pretrained = str(clip_weights)
    if config.vlp.pretrained is None:
        raise ValueError("the released checkpoints need CLIP's own weights for the teacher and the text tower "
                         "(they would be random): pass the CLIP file (--original-clip PATH)")
    config.student.pretrained = False  # the student comes from the stage-1 checkpoint
    config.student.init_from_vlp = False
    image_state = _read_state(image_checkpoint)
    if "proj" not in image_state and "projection_dist" not in image_state:
        raise ValueError(f"{image_checkpoint}: no projection ('proj' or 'projection_dist') in the checkpoint")
    text_state = _read_text_state(text_checkpoint) if text_checkpoint is not None else None
    try:
        model = create_model(config)
    except VLPWeightsUnavailable as exc:
        raise VLPWeightsUnavailable(f"the teacher and the text tower need CLIP's weights, else they stay random. "
                                    f"Pass the CLIP file with --original-clip PATH. {exc}") from exc
    try:
        model.student.load_from_clip_visual(image_state)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{image_checkpoint}: {exc}") from exc
    if text_state is not None:
        _load_text_state(model, text_state, text_checkpoint)
    return model


def _read_text_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = {k: v for k, v in _read_state(path).items() if k.startswith(TEXT_KEYS)}
    if "token_embedding.weight" not in state:
        raise ValueError(f"{path}: no 'token_embedding.weight': not a CLIP text checkpoint")
    return state


def _load_text_state(model, text_state: dict[str, torch.Tensor], path: str | Path) -> None:
    """The tuned table into the prompt; the rest of the text tower (unchanged by stage 2) over CLIP's."""
    tuned = text_state.pop("token_embedding.weight")
    clip_state = model.vlp.clip.state_dict()
    for key, value in {"token_embedding.weight": tuned, **text_state}.items():
        if key not in clip_state or clip_state[key].shape != value.shape:
            raise ValueError(f"{path}: key {key!r} with shape {tuple(value.shape)} does not fit the VLP text tower")
    model.vlp.clip.load_state_dict(text_state, strict=False)  # the VLP's own table stays CLIP's, untuned
    if model.prompt.token_table is not None:
        model.prompt.token_table.weight.data.copy_(tuned)
    else:
        model.prompt.ctx_prefix.data.copy_(tuned[model.prompt.prefix_ids])
        model.prompt.ctx_suffix.data.copy_(tuned[model.prompt.suffix_ids])
    model._label_cache_key = None  # the prompt changed in place
