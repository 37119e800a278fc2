"""A bundle the app uses -> an MKT model that trains further (a person's own tags, `mkt-train --init BUNDLE`).

Two kinds of bundle, two starts:

- an MKT bundle (the demo, the authors' model, one trained here): the same model, every weight from the
  bundle. A bundle does not carry the teacher (CLIP's image tower is only needed to distil), so stage 1
  distils only when the teacher's weights are given (`teacher`), and otherwise must run with lambda 0.
- a CLIP bundle (`clip:NAME/TAG`): the release variant, as the authors' released student is made: the
  student is a copy of CLIP's image tower and its projection (one shared projection for both streams),
  the teacher is that same tower, frozen. Only a ViT tower can be copied (it has patch tokens).
"""

from pathlib import Path
from typing import Any

import torch

from mkt_core.model.config import MKTConfig, StudentConfig, VLPConfig
from mkt_core.model.mkt import MKT, create_model
from mkt_core.runtime.bundle import MANIFEST_FILE, MKT_SKIPPED_PREFIX, Bundle, BundleError, load_bundle


def is_bundle(folder: str | Path) -> bool:
    """Whether `folder` is a bundle (a manifest.json) rather than a training checkpoint."""
    return (Path(folder) / MANIFEST_FILE).is_file()


def model_from_bundle(folder: str | Path, teacher: str | None = None) -> MKT:
    """The MKT model of a bundle folder, ready to train; `teacher` (an open_clip tag, file or folder) gives an
    MKT bundle's teacher. `model.has_teacher` says whether stage 1 can distil."""
    bundle = load_bundle(folder)
    state = bundle_weights(bundle)
    if bundle.kind == "mkt":
        return mkt_model(bundle, state, teacher)
    if bundle.kind == "clip":
        return _release_model(bundle, state)
    raise BundleError(f"{bundle.path / MANIFEST_FILE}: a bundle of kind {bundle.kind!r} cannot be trained")


def bundle_weights(bundle: Bundle) -> dict[str, torch.Tensor]:
    """A bundle's weights.safetensors in float32 (a float16 bundle trains, and the torch fallback reads it)."""
    from safetensors.torch import load_file

    path = bundle.file("weights")
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - a corrupt file: name it
        raise BundleError(f"{path}: cannot read weights: {exc}") from exc
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def mkt_model(bundle: Bundle, state: dict[str, torch.Tensor], teacher: str | None = None) -> MKT:
    """An MKT bundle's model from its weights (its teacher only when `teacher` is given)."""
    info = bundle.manifest["torch"]
    config = MKTConfig.from_dict(info["config"])
    model = create_model(config, load_weights=False)
    model.vlp.mean, model.vlp.std = tuple(info["vlp_mean"]), tuple(info["vlp_std"])
    skipped = info.get("skipped_prefix", MKT_SKIPPED_PREFIX)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(skipped)]
    if missing or unexpected:
        raise BundleError(f"{bundle.file('weights')}: weights do not fit the model in {bundle.path / MANIFEST_FILE}: "
                          f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.has_teacher = False
    if teacher:
        from mkt_core.model.vlp import load_vlp

        source = load_vlp(VLPConfig(model_name=config.vlp.model_name, pretrained=teacher,
                                    model_cfg=config.vlp.model_cfg))
        try:
            model.vlp.clip.visual.load_state_dict(source.clip.visual.state_dict(), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{teacher}: its image tower does not fit this model's teacher: {exc}") from exc
        model.vlp.mean, model.vlp.std = source.mean, source.std
        model.has_teacher = True
    model.config = model.config.replace(name=bundle.name)
    return model


def load_clip_weights(bundle: Bundle, clip: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """A CLIP bundle's weights into the CLIP model its manifest describes: every one, or an error naming the file."""
    try:
        clip.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BundleError(f"{bundle.file('weights')}: weights do not fit the CLIP model in the manifest: "
                          f"{exc}") from exc


def release_config(bundle: Bundle) -> MKTConfig:
    """The release variant's config for a CLIP bundle: a timm CLIP ViT the size of CLIP's image tower."""
    info = bundle.manifest["torch"]
    model_cfg: dict[str, Any] = info["model_cfg"]
    vision = model_cfg.get("vision_cfg", {})
    if isinstance(vision.get("layers"), (list, tuple)) or "timm_model_name" in vision or not bundle.num_patches:
        raise BundleError(f"{bundle.path / MANIFEST_FILE}: {bundle.name} has no ViT image tower with patch tokens; "
                          "MKT's student is a copy of one (use a ViT CLIP, e.g. clip:ViT-B-16/openai)")
    width = int(vision["width"])
    kwargs: dict[str, Any] = {
        "img_size": int(vision.get("image_size", bundle.image_size)), "patch_size": int(vision["patch_size"]),
        "embed_dim": width, "depth": int(vision["layers"]), "num_heads": width // int(vision.get("head_width", 64)),
        "mlp_ratio": float(vision.get("mlp_ratio", 4.0)),
    }
    if model_cfg.get("quick_gelu"):
        kwargs["act_layer"] = "quick_gelu"  # OpenAI's towers were trained with QuickGELU
    return MKTConfig(
        name=f"MKT from {bundle.name}",
        student=StudentConfig(timm_name="vit_base_patch16_clip_224", pretrained=False, init_from_vlp=True,
                              timm_kwargs=kwargs),
        vlp=VLPConfig(model_name=info["model_name"], pretrained=None, model_cfg=model_cfg),
        embed_dim=bundle.embed_dim, image_size=bundle.image_size, top_k=bundle.top_k or 1,
        head="shared_projection", prompt_template=bundle.prompt.template,
        mean=tuple(bundle.manifest["mean"]), std=tuple(bundle.manifest["std"]), eval_resize="center_crop",
    )


def _release_model(bundle: Bundle, state: dict[str, torch.Tensor]) -> MKT:
    if bundle.manifest.get("tokenizer"):
        raise BundleError(f"{bundle.path / MANIFEST_FILE}: {bundle.name} has a Hugging Face text tower; MKT's prompt "
                          "tuning needs open_clip's own text tower")
    model = create_model(release_config(bundle), load_weights=False)
    load_clip_weights(bundle, model.vlp.clip, state)
    model.vlp.mean, model.vlp.std = tuple(bundle.manifest["mean"]), tuple(bundle.manifest["std"])
    model.student.load_from_clip_visual(model.vlp.clip.visual.state_dict())
    model.has_teacher = True
    return model
