"""The vision-language model (CLIP) that MKT distils from and whose text encoder names the labels.

A thin wrapper over open_clip. Weights come from one of: an open_clip pretrained tag
(open_clip's own download and cache, on a machine with internet), a local checkpoint file,
a local open_clip folder (`open_clip_config.json` + weights), or nowhere (random, for tests).
Checkpoints are loaded without unpickling code (`weights_only=True` or safetensors); OpenAI's
TorchScript `ViT-B-16.pt` (the file the authors' code loads) is read by
`mkt_core.model.torchscript_weights`, which never runs the archive's code.
"""

import copy
import json
import os
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from mkt_core.model.config import CLIP_MEAN, CLIP_STD, VLPConfig
from mkt_core.model.torchscript_weights import is_torchscript_archive, read_torchscript_tensors

WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)


class VLPWeightsUnavailable(RuntimeError):
    """The VLP's pretrained weights cannot be had here (offline, or the download failed)."""


class VLP(nn.Module):
    """An open_clip CLIP model plus what MKT needs around it: its tokenizer and preprocessing."""

    def __init__(self, clip: nn.Module, tokenizer: Any, model_cfg: dict[str, Any],
                 mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.model_cfg = model_cfg
        self.mean = tuple(mean)
        self.std = tuple(std)

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def image_size(self) -> int:
        size = self.model_cfg["vision_cfg"].get("image_size", 224)
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def hf_text(self) -> bool:
        """Whether the text tower is a Hugging Face encoder (multilingual CLIPs): CLIP bundles take it, MKT not."""
        return not hasattr(self.clip, "token_embedding")

    @property
    def context_length(self) -> int:
        # a Hugging Face tower's own length is its position table (514 for XLM-R); open_clip tokenizes to 77
        return int(self.tokenizer.context_length if self.hf_text else self.clip.context_length)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's global feature o_dist: the projected, un-normalised image embedding."""
        return self.clip.encode_image(images, normalize=False)

    def encode_text_embeddings(self, token_embeds: torch.Tensor, eot_positions: torch.Tensor) -> torch.Tensor:
        """Run the text tower from token embeddings `[L, C, W]`, pooling at `eot_positions`.

        The same computation as open_clip's `CLIP.encode_text`, but starting after the token
        lookup, so that prompt context vectors can be learned.
        """
        clip = self.clip
        cast_dtype = clip.transformer.get_cast_dtype()
        x = token_embeds.to(cast_dtype) + clip.positional_embedding.to(cast_dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_positions]
        if clip.text_projection is not None:
            x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
        return x


def load_vlp(config: VLPConfig, load_weights: bool = True) -> VLP:
    """Build the VLP of `config`; with `load_weights=False` only its architecture (random weights)."""
    model_cfg, source = _resolve_model_cfg(config)
    checkpoint, mean, std = None, CLIP_MEAN, CLIP_STD
    if load_weights and config.pretrained is not None:
        checkpoint, mean, std = _locate_weights(config, source)  # fail fast, before building
    clip = build_clip(model_cfg)
    if checkpoint is not None:
        try:
            if is_torchscript_archive(checkpoint):
                load_torchscript_clip(clip, checkpoint)
            else:
                open_clip.load_checkpoint(clip, str(checkpoint), weights_only=True)
        except Exception as exc:  # noqa: BLE001 - name the file and the reason for any failure
            raise ValueError(f"cannot load VLP weights from {checkpoint}: {exc}") from exc
    tokenizer = _tokenizer(model_cfg, source)
    return VLP(clip.eval(), tokenizer, model_cfg, mean, std)


def load_torchscript_clip(clip: nn.Module, path: str | Path) -> None:
    """Every weight of `clip` from an OpenAI TorchScript CLIP archive (same key names), without running it.

    A weight the archive lacks, or with another shape, is an error: nothing stays random silently.
    """
    tensors = read_torchscript_tensors(path)
    expected = clip.state_dict()
    missing = [key for key in expected if key not in tensors]
    if missing:
        raise ValueError(f"the TorchScript archive lacks {len(missing)} weights of the model, e.g. {missing[:5]}")
    wrong = [key for key, value in expected.items() if tensors[key].shape != value.shape]
    if wrong:
        raise ValueError(f"shapes differ for {wrong[:5]}: the archive is another CLIP architecture")
    clip.load_state_dict({key: tensors[key] for key in expected}, strict=True)


def _resolve_model_cfg(config: VLPConfig) -> tuple[dict[str, Any], Path | None]:
    """The open_clip model config, and the local open_clip folder when the weights are one."""
    folder = None
    if config.pretrained is not None and Path(config.pretrained).is_dir():
        folder = Path(config.pretrained)
    if config.model_cfg is not None:
        return copy.deepcopy(config.model_cfg), folder
    if folder is not None and (folder / "open_clip_config.json").is_file():
        data = json.loads((folder / "open_clip_config.json").read_text(encoding="utf-8"))
        if "model_cfg" not in data:
            raise ValueError(f"{folder / 'open_clip_config.json'} has no 'model_cfg'")
        return data["model_cfg"], folder
    model_cfg = open_clip.get_model_config(config.model_name)
    if model_cfg is None:
        raise ValueError(f"unknown open_clip model {config.model_name!r}; see open_clip.list_models()")
    model_cfg = copy.deepcopy(model_cfg)
    tag_cfg = _tag_cfg(config)
    if tag_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True  # e.g. OpenAI's weights were trained with QuickGELU
    return model_cfg, folder


def _tag_cfg(config: VLPConfig) -> dict[str, Any]:
    if config.pretrained is None or config.model_cfg is not None:
        return {}
    return open_clip.get_pretrained_cfg(config.model_name, config.pretrained) or {}


def build_clip(model_cfg: dict[str, Any]) -> nn.Module:
    cfg = copy.deepcopy(model_cfg)
    cfg.pop("custom_text", None)
    if "hf_model_name" in cfg.get("text_cfg", {}):
        # the text tower's weights come with the CLIP checkpoint (or stay random): only its config is read
        cfg["text_cfg"]["hf_model_pretrained"] = False
        return open_clip.CustomTextCLIP(**cfg)
    return open_clip.CLIP(**cfg)


def _locate_weights(config: VLPConfig, folder: Path | None) -> tuple[Path, tuple, tuple]:
    """Where the VLP's weights are, with the mean/std they were trained with."""
    pretrained = str(config.pretrained)
    if folder is not None:
        preprocess = {}
        cfg_file = folder / "open_clip_config.json"
        if cfg_file.is_file():
            preprocess = json.loads(cfg_file.read_text(encoding="utf-8")).get("preprocess_cfg", {})
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                return (folder / name, tuple(preprocess.get("mean", CLIP_MEAN)),
                        tuple(preprocess.get("std", CLIP_STD)))
        raise VLPWeightsUnavailable(f"no VLP weights in {folder}: expected one of {', '.join(WEIGHT_FILES)}")
    if Path(pretrained).is_file():
        return Path(pretrained), CLIP_MEAN, CLIP_STD
    tag_cfg = _tag_cfg(config)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(config.model_name)
        raise VLPWeightsUnavailable(
            f"{pretrained!r} is neither a local file or folder nor a pretrained tag of open_clip model "
            f"{config.model_name!r} (known tags: {', '.join(tags) or 'none'})")
    mean, std = tuple(tag_cfg.get("mean", CLIP_MEAN)), tuple(tag_cfg.get("std", CLIP_STD))
    offline = ("the Hugging Face hub is offline (HF_HUB_OFFLINE=1)" if hub_offline()
               else None if hub_reachable() else "the Hugging Face hub cannot be reached (no network)")
    if offline:  # the cache or a clear error at once, never a download's retries
        cached = _cached_hub_file(tag_cfg, config.cache_dir)
        if cached is None:
            raise VLPWeightsUnavailable(_how_to_get_weights(config, tag_cfg, f"{offline} and they are not in "
                                                            "the cache"))
        return cached, mean, std
    try:
        path = open_clip.download_pretrained(tag_cfg, cache_dir=config.cache_dir)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same guidance
        raise VLPWeightsUnavailable(_how_to_get_weights(config, tag_cfg, f"the download failed: {exc}")) from exc
    if not path:
        raise VLPWeightsUnavailable(_how_to_get_weights(config, tag_cfg, "open_clip found no download for it"))
    return Path(path), mean, std


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (checked before any download)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether a connection to the Hugging Face hub opens within `timeout` seconds (asked before a download,
    so that a machine without network gets its answer at once instead of after a minute of retries)."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_cache_dir(cache_dir: str | None = None) -> str:
    if cache_dir:
        return cache_dir
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hub_candidates(tag_cfg: dict[str, Any]) -> tuple[str, list[str]]:
    # open_clip's form: "org/repo/filename", or "org/repo/" for its default file names
    repo_id, filename = os.path.split(tag_cfg.get("hf_hub", ""))
    names = [filename] if filename else list(WEIGHT_FILES)
    return repo_id, names


def _cached_hub_file(tag_cfg: dict[str, Any], cache_dir: str | None) -> Path | None:
    if not tag_cfg.get("hf_hub"):
        return None
    from huggingface_hub import try_to_load_from_cache

    repo_id, names = _hub_candidates(tag_cfg)
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=hub_cache_dir(cache_dir))
        if isinstance(found, str):
            return Path(found)
    return None


def _how_to_get_weights(config: VLPConfig, tag_cfg: dict[str, Any], reason: str) -> str:
    repo_id, names = _hub_candidates(tag_cfg)
    where = f"Hugging Face cache {hub_cache_dir(config.cache_dir)}"
    if repo_id:
        where += f" (repository {repo_id}, files {', '.join(names)})"
    fetch = (f" (e.g. `huggingface-cli download {repo_id} {names[0]}` on a machine with internet)"
             if repo_id else "")
    return (
        f"cannot load the weights of open_clip model {config.model_name!r} with pretrained tag "
        f"{config.pretrained!r}: {reason}. Looked in the {where}. To use a local copy, pass the "
        f"checkpoint file or open_clip folder instead of the tag: --vlp-pretrained PATH for mkt-train, "
        f"--model clip:{config.model_name}/PATH for mkt-desktop (an absolute PATH: "
        f"clip:{config.model_name}//home/me/open_clip_pytorch_model.bin){fetch}. OpenAI's TorchScript .pt "
        f"files are read too, without running their code."
    )


def _tokenizer(model_cfg: dict[str, Any], folder: Path | None = None) -> Any:
    context_length = int(model_cfg.get("text_cfg", {}).get("context_length", 77))
    tokenizer_name = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if tokenizer_name:  # a Hugging Face text tower: its tokenizer, by hub name or local folder
        if folder is not None and (folder / "tokenizer_config.json").is_file():
            tokenizer_name = str(folder)  # as open_clip reads a local open_clip folder: its own tokenizer files
        return open_clip.tokenizer.HFTokenizer(tokenizer_name, context_length=context_length)
    return open_clip.SimpleTokenizer(context_length=context_length)
