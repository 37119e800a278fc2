"""Model configs and named presets, in the manner of timm and open_clip.

`MKTConfig` says everything needed to build an MKT model; `get_preset(name)` returns a
fresh copy of a named one; `mkt_core.model.mkt.create_model` builds the model from either.
Where the paper and the authors' released code differ, the choice is a field here
(see docs/paper-vs-release.md).
"""

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mkt_core.assets import TOY_TEACHER, TOY_VIT_TEACHER

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

PROMPT_TEMPLATE = "There is a {} in the scene"
HEADS = ("two_stream", "shared_projection")
PROMPT_TUNING = ("context", "token_table")
SCORE_MODES = ("paper", "released_code")
EVAL_RESIZES = ("squash", "center_crop")
DISTILL_IMAGES = ("with_positive", "all")


@dataclass
class StudentConfig:
    """The ViT student, built by timm."""

    timm_name: str = "vit_base_patch16_224"
    pretrained: bool = True  # timm's own weights for `timm_name` (downloaded by timm)
    init_from_vlp: bool = False  # copy the VLP image tower into the student (released code)
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class VLPConfig:
    """The frozen vision-language teacher and text encoder, built by open_clip."""

    model_name: str = "ViT-B-16"
    # An open_clip pretrained tag ("openai"), a local checkpoint file, a local open_clip
    # folder (open_clip_config.json + weights), or None for random weights (tests).
    pretrained: str | None = "openai"
    # An inline open_clip model config; when set it replaces the registry's `model_name` config.
    model_cfg: dict[str, Any] | None = None
    cache_dir: str | None = None


@dataclass
class MKTConfig:
    name: str = "custom"
    student: StudentConfig = field(default_factory=StudentConfig)
    vlp: VLPConfig = field(default_factory=VLPConfig)
    embed_dim: int = 512  # D_e: the VLP's joint embedding size
    image_size: int = 224
    top_k: int = 18  # k of the local stream's top-k mean (paper: 18 of 196; released code: 16)
    # "two_stream": a linear global head and a two-layer local head (paper).
    # "shared_projection": one projection, initialised from the VLP, for both streams (released code).
    head: str = "two_stream"
    local_head_hidden: int | None = None  # width of the local head's hidden layer; None = embed_dim
    prompt_template: str = PROMPT_TEMPLATE
    # "context": CoOp context vectors around the label's tokens are learned (paper).
    # "token_table": the whole token-embedding table is tuned, label tokens kept (released code).
    prompt_tuning: str = "context"
    # "paper": Eq. 3 as is. "released_code": each stream's scores L2-normalised across labels
    # and averaged (training and evaluation only; the app always uses Eq. 3).
    score_mode: str = "paper"
    streams: str = "both"  # "global" / "local" for the two-stream ablation
    # True: label embeddings are L2-normalised (CLIP's convention). The release scores with CLIP's raw
    # text features (label_emb.pt, and its prompt learner's output), which matters in its score mode.
    normalize_label_embeddings: bool = True
    distill_weight: float = 1.0  # lambda of L_rank + lambda * L_dist
    # "with_positive": distil only over images with a seen positive, as the release, which drops the
    # others before the forward pass. "all": every image of the batch is distilled.
    distill_images: str = "with_positive"
    # Evaluation pixels. "squash": the whole image resized to image_size x image_size. "center_crop":
    # the release's resize of the short side to image_size / 0.875 (256 for 224) then a centre crop.
    eval_resize: str = "squash"
    mean: tuple[float, float, float] = INCEPTION_MEAN  # what the student's input is normalised with
    std: tuple[float, float, float] = INCEPTION_STD
    # When True the teacher receives the image re-normalised with its own mean/std;
    # the released code feeds it the student's ImageNet-normalised tensor.
    teacher_own_normalisation: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.student, dict):
            self.student = StudentConfig(**self.student)
        if isinstance(self.vlp, dict):
            self.vlp = VLPConfig(**self.vlp)
        self.mean = tuple(self.mean)
        self.std = tuple(self.std)
        _check_choice("head", self.head, HEADS)
        _check_choice("prompt_tuning", self.prompt_tuning, PROMPT_TUNING)
        _check_choice("score_mode", self.score_mode, SCORE_MODES)
        _check_choice("streams", self.streams, ("both", "global", "local"))
        _check_choice("eval_resize", self.eval_resize, EVAL_RESIZES)
        _check_choice("distill_images", self.distill_images, DISTILL_IMAGES)
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if "{}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain '{{}}' for the label: {self.prompt_template!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MKTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown MKT config keys: {sorted(unknown)}")
        return cls(**copy.deepcopy(data))

    def replace(self, **changes: Any) -> "MKTConfig":
        return dataclasses.replace(copy.deepcopy(self), **changes)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# A tiny open_clip CLIP for tests: random weights, 64 px, 2 layers each side.
TINY_VLP_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_STUDENT_KWARGS: dict[str, Any] = {
    "img_size": 64, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 2,
}


def _paper_vit_b16() -> MKTConfig:
    return MKTConfig(
        name="paper-vit-b16",
        # ImageNet-1k ViT-B/16 as the paper says. timm's default tag for this model is ImageNet-21k
        # pretrained (augreg2_in21k_ft_in1k); augreg_in1k is trained on ImageNet-1k alone. Both use 0.5/0.5.
        student=StudentConfig(timm_name="vit_base_patch16_224.augreg_in1k", pretrained=True),
        vlp=VLPConfig(model_name="ViT-B-16", pretrained="openai"),
        embed_dim=512, image_size=224, top_k=18,
        mean=INCEPTION_MEAN, std=INCEPTION_STD,
    )


def _release_vit_b16() -> MKTConfig:
    return MKTConfig(
        name="release-vit-b16",
        # CLIP's own image tower (QuickGELU, as OpenAI trained it), copied from the teacher.
        student=StudentConfig(timm_name="vit_base_patch16_clip_quickgelu_224", pretrained=False,
                              init_from_vlp=True),
        vlp=VLPConfig(model_name="ViT-B-16", pretrained="openai"),
        embed_dim=512, image_size=224, top_k=16,
        head="shared_projection", prompt_tuning="token_table", score_mode="released_code",
        normalize_label_embeddings=False, eval_resize="center_crop",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, teacher_own_normalisation=False,
    )


def _tiny() -> MKTConfig:
    return MKTConfig(
        name="tiny",
        student=StudentConfig(timm_name="vit_tiny_patch16_224", pretrained=False,
                              timm_kwargs=dict(TINY_STUDENT_KWARGS)),
        vlp=VLPConfig(model_name="tiny", pretrained=None, model_cfg=copy.deepcopy(TINY_VLP_CFG)),
        embed_dim=64, image_size=64, top_k=8,
        mean=CLIP_MEAN, std=CLIP_STD,
    )


# The offline proving ground's teacher (TOY_TEACHER): a small CLIP pretrained on the synthetic world
# (docs/proving-ground.md).


def _toy() -> MKTConfig:
    """MKT on the synthetic world: a 4-block ViT with a convolutional stem (a timm hybrid), 64 px, 8x8 patches.

    Nothing pretrained exists for the student here, and a plain ViT trained from scratch learns shapes
    slowly; the ResNet stem of `vit_tiny_r_s16_p8` (stride 4, then 2x2 patches) is timm's own remedy.
    k = 6 of 64 patches keeps the paper's ratio (18 of 196).
    """
    return MKTConfig(
        name="toy",
        student=StudentConfig(timm_name="vit_tiny_r_s16_p8_224", pretrained=False,
                              timm_kwargs={"img_size": 64, "patch_size": 2, "embed_dim": 128, "depth": 4,
                                           "num_heads": 4}),
        vlp=VLPConfig(model_name="toy", pretrained=str(TOY_TEACHER)),
        embed_dim=128, image_size=64, top_k=6,
        mean=CLIP_MEAN, std=CLIP_STD,
    )


# The toy ViT teacher's image tower (pretrain preset "toy-vit") in timm's terms, for a student that starts
# as a copy of it.
TOY_VIT_TOWER: dict[str, Any] = {"img_size": 64, "patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3,
                                 "mlp_ratio": 2.0}


def _toy_release() -> MKTConfig:
    """The release variant on the synthetic world: the student is a copy of the toy ViT teacher's image
    tower and its projection (one shared projection for both streams), as the authors' released student
    is CLIP's own image tower. Which blocks train is the training config's (`fix_layer`)."""
    return MKTConfig(
        name="toy-release",
        student=StudentConfig(timm_name="vit_base_patch16_clip_224", pretrained=False, init_from_vlp=True,
                              timm_kwargs=dict(TOY_VIT_TOWER)),
        vlp=VLPConfig(model_name="toy-vit", pretrained=str(TOY_VIT_TEACHER)),
        embed_dim=128, image_size=64, top_k=6, head="shared_projection",
        mean=CLIP_MEAN, std=CLIP_STD,
    )


def _tiny_release() -> MKTConfig:
    """The released-code variant at test size: the student is a CLIP-style ViT copied from the VLP."""
    return MKTConfig(
        name="tiny-release",
        student=StudentConfig(timm_name="vit_base_patch16_clip_224", pretrained=False, init_from_vlp=True,
                              timm_kwargs=dict(TINY_STUDENT_KWARGS)),
        vlp=VLPConfig(model_name="tiny", pretrained=None, model_cfg=copy.deepcopy(TINY_VLP_CFG)),
        embed_dim=64, image_size=64, top_k=8,
        head="shared_projection", prompt_tuning="token_table", score_mode="released_code",
        normalize_label_embeddings=False, eval_resize="center_crop",
        mean=IMAGENET_MEAN, std=IMAGENET_STD, teacher_own_normalisation=False,
    )


_PRESETS = {
    "paper-vit-b16": _paper_vit_b16,
    "release-vit-b16": _release_vit_b16,
    "tiny": _tiny,
    "tiny-release": _tiny_release,
    "toy": _toy,
    "toy-release": _toy_release,
}


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, **overrides: Any) -> MKTConfig:
    """A fresh copy of a named preset, with top-level fields replaced by `overrides`."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(list_presets())}")
    config = _PRESETS[name]()
    return config.replace(**overrides) if overrides else config
