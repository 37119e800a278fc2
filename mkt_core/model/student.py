"""The ViT student and its two-stream heads: image -> (e_cls `[B, D]`, e_patch `[B, N, D]`)."""

import timm
import torch
from torch import nn

from mkt_core.model.config import MKTConfig
from mkt_core.model.vlp import VLP, hub_offline


class StudentWeightsUnavailable(RuntimeError):
    """timm's pretrained student weights cannot be had here."""


class Student(nn.Module):
    def __init__(self, config: MKTConfig, vlp: VLP | None = None, load_weights: bool = True):
        super().__init__()
        scfg = config.student
        self.backbone = _create_backbone(config, pretrained=scfg.pretrained and load_weights)
        width = self.backbone.embed_dim
        self.num_prefix_tokens = int(getattr(self.backbone, "num_prefix_tokens", 1))
        self.head_kind = config.head
        if config.head == "two_stream":
            hidden = config.local_head_hidden or config.embed_dim
            self.global_head = nn.Linear(width, config.embed_dim)  # Theta_G: one linear layer
            # Theta_L: two linear layers; tanh as in the local head of the authors' code
            self.local_head = nn.Sequential(
                nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, config.embed_dim)
            )
            self.projection = None
        else:
            # One projection for both streams, initialised from the VLP's (released code).
            self.global_head = self.local_head = None
            self.projection = nn.Linear(width, config.embed_dim, bias=False)
        if scfg.init_from_vlp and load_weights:
            if vlp is None:
                raise ValueError("init_from_vlp needs the VLP")
            self.load_from_clip_visual(vlp.clip.visual.state_dict())

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.backbone.patch_embed.grid_size)

    @property
    def num_patches(self) -> int:
        h, w = self.grid_size
        return h * w

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone.forward_features(images)  # x_L = [o_cls, o_patch], final norm applied
        o_cls = tokens[:, 0]
        o_patch = tokens[:, self.num_prefix_tokens:]
        if self.projection is not None:
            return self.projection(o_cls), self.projection(o_patch)
        return self.global_head(o_cls), self.local_head(o_patch)

    def load_from_clip_visual(self, visual_state: dict[str, torch.Tensor]) -> None:
        """Copy a CLIP image tower (OpenAI / open_clip key names) into the backbone and projection."""
        backbone_state, proj = clip_visual_to_timm(visual_state)
        missing, unexpected = self.backbone.load_state_dict(backbone_state, strict=False)
        missing = [k for k in missing if not k.startswith("head")]
        if missing or unexpected:
            raise ValueError(f"CLIP image weights do not fit the student {type(self.backbone).__name__}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        if proj is not None:
            if self.projection is None:
                raise ValueError("the CLIP projection can only initialise a shared_projection head")
            self.projection.weight.data.copy_(proj.t())


def _create_backbone(config: MKTConfig, pretrained: bool) -> nn.Module:
    scfg = config.student
    kwargs = dict(scfg.timm_kwargs)
    kwargs.setdefault("img_size", config.image_size)
    if pretrained and hub_offline():
        cached = _timm_weights_cached(scfg.timm_name)
        if not cached:
            raise StudentWeightsUnavailable(
                f"cannot load timm's pretrained weights for student {scfg.timm_name!r}: the Hugging Face hub is "
                "offline (HF_HUB_OFFLINE=1) and they are not in its cache. Run once on a machine with internet, "
                "or set student.pretrained = false (random init) in the config.")
    try:
        return timm.create_model(scfg.timm_name, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as exc:  # noqa: BLE001 - name the model and the reason
        if pretrained:
            raise StudentWeightsUnavailable(
                f"cannot load timm's pretrained weights for student {scfg.timm_name!r}: {exc}") from exc
        raise


def _timm_weights_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return False
    for filename in ("model.safetensors", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(hub_id, filename), str):
            return True
    return False


# -- CLIP image-tower weights in timm's names (kept with the model that loads them, as timm does) --

_BLOCK_RENAMES = {
    "ln_1": "norm1",
    "ln_2": "norm2",
    "attn.in_proj_weight": "attn.qkv.weight",
    "attn.in_proj_bias": "attn.qkv.bias",
    "attn.out_proj": "attn.proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


def clip_visual_to_timm(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """CLIP ViT image-tower keys -> timm VisionTransformer keys, plus the `[width, D]` projection."""
    out: dict[str, torch.Tensor] = {}
    proj = None
    for key, value in state.items():
        if key in ("proj", "projection_dist"):
            proj = value
        elif key == "conv1.weight":
            out["patch_embed.proj.weight"] = value
        elif key == "class_embedding":
            out["cls_token"] = value.reshape(1, 1, -1)
        elif key == "positional_embedding":
            out["pos_embed"] = value.unsqueeze(0)
        elif key.startswith("ln_pre."):
            out["norm_pre." + key[len("ln_pre."):]] = value
        elif key.startswith("ln_post."):
            out["norm." + key[len("ln_post."):]] = value
        elif key.startswith("transformer.resblocks."):
            index, rest = key[len("transformer.resblocks."):].split(".", 1)
            for old, new in _BLOCK_RENAMES.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            out[f"blocks.{index}.{rest}"] = value
    if "patch_embed.proj.weight" not in out:
        raise ValueError("not a CLIP ViT image tower: no 'conv1.weight' key")
    return out, proj
