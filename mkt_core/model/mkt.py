"""The MKT model: a ViT student with two streams, a frozen VLP teacher and a prompt learner.

    images -> student -> (e_cls [B, D], e_patch [B, N, D])
    labels -> prompt learner -> VLP text encoder -> z [L, D]
    scores = two_stream_scores(z, e_cls, e_patch, k)                     (Eq. 3)
    stage 1: L_rank(scores, targets) + lambda * L1(e_cls, teacher(images))  (Eqs. 4, 5)
    stage 2: L_rank only; only the prompt's context trains.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mkt_core.model.config import MKTConfig, get_preset
from mkt_core.model.losses import distillation_loss, ranking_loss
from mkt_core.model.prompt import PromptLearner
from mkt_core.model.scoring import released_code_scores, two_stream_scores
from mkt_core.model.student import Student
from mkt_core.model.vlp import load_vlp


@dataclass
class TrainingLoss:
    total: torch.Tensor
    rank: torch.Tensor
    distill: torch.Tensor | None
    scores: torch.Tensor


class MKT(nn.Module):
    def __init__(self, config: MKTConfig, load_weights: bool = True):
        super().__init__()
        self.config = config
        self.vlp = load_vlp(config.vlp, load_weights=load_weights)
        if self.vlp.hf_text:
            raise ValueError("MKT needs a CLIP model with open_clip's built-in text tower (its prompt tuning "
                             "edits the token table); this model's text tower is a Hugging Face encoder")
        if self.vlp.embed_dim != config.embed_dim:
            raise ValueError(f"embed_dim {config.embed_dim} does not match the VLP's joint embedding size "
                             f"{self.vlp.embed_dim}")
        self.student = Student(config, self.vlp, load_weights=load_weights)
        self.prompt = PromptLearner(self.vlp, config.prompt_template, config.prompt_tuning)
        self._label_cache: dict[str, torch.Tensor] = {}
        self._label_cache_key: tuple | None = None
        self.stage = 1
        self.set_stage(1)

    # -- training stages ------------------------------------------------------------------

    def set_stage(self, stage: int) -> None:
        """Stage 1: the student and heads train. Stage 2: only the prompt context trains."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.stage = stage
        self.vlp.requires_grad_(False)
        self.student.requires_grad_(stage == 1)
        self.prompt.requires_grad_(stage == 2)

    def train(self, mode: bool = True) -> "MKT":
        super().train(mode)
        self.vlp.eval()  # the teacher and the text encoder are frozen: no dropout, ever
        return self

    # -- the three encoders ---------------------------------------------------------------

    def encode_image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(global `[B, D]`, local `[B, N, D]`) embeddings of images normalised with config.mean/std."""
        return self.student(images)

    def encode_labels(self, labels: list[str]) -> torch.Tensor:
        """Label embeddings `[L, D]`, L2-normalised unless config.normalize_label_embeddings is off
        (the release's raw text features); cached while the prompt is not being trained."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.prompt.parameters()):
            return self._normalised(self.prompt(labels, self.vlp))
        key = tuple((p.data_ptr(), p._version) for p in self.prompt.parameters()) + (
            str(self.vlp.clip.token_embedding.weight.device),)
        if key != self._label_cache_key:
            self._label_cache = {}
            self._label_cache_key = key
        missing = [label for label in dict.fromkeys(labels) if label not in self._label_cache]
        if missing:
            with torch.no_grad():
                for label, emb in zip(missing, self.prompt(missing, self.vlp), strict=True):
                    self._label_cache[label] = emb
        return self._normalised(torch.stack([self._label_cache[label] for label in labels]))

    def _normalised(self, label_emb: torch.Tensor) -> torch.Tensor:
        return F.normalize(label_emb, dim=-1) if self.config.normalize_label_embeddings else label_emb

    @torch.no_grad()
    def teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        """o_dist: the frozen VLP's image embedding of the same images."""
        return self.vlp.encode_image(self.teacher_input(images))

    def teacher_input(self, images: torch.Tensor) -> torch.Tensor:
        """The student's input as the VLP wants it: its own mean / std (unless the release's quirk) and size."""
        if self.config.teacher_own_normalisation:
            mean = torch.tensor(self.config.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
            std = torch.tensor(self.config.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
            vmean = torch.tensor(self.vlp.mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
            vstd = torch.tensor(self.vlp.std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
            images = (images * std + mean - vmean) / vstd
        size = self.vlp.image_size
        if images.shape[-1] != size or images.shape[-2] != size:
            images = nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
        return images

    # -- scores and losses ----------------------------------------------------------------

    def score(self, label_emb: torch.Tensor, global_emb: torch.Tensor, local_emb: torch.Tensor) -> torch.Tensor:
        """Scores for training and evaluation, following config.score_mode and config.streams."""
        if self.config.score_mode == "released_code" and self.config.streams == "both":
            return released_code_scores(label_emb, global_emb, local_emb, self.config.top_k)
        return two_stream_scores(label_emb, global_emb, local_emb, self.config.top_k, self.config.streams)

    def forward(self, images: torch.Tensor, labels: list[str] | torch.Tensor) -> torch.Tensor:
        """Scores `[B, L]` of images for labels (names, or label embeddings `[L, D]`)."""
        label_emb = self.encode_labels(labels) if isinstance(labels, list) else labels
        global_emb, local_emb = self.encode_image(images)
        return self.score(label_emb, global_emb, local_emb)

    def training_loss(self, images: torch.Tensor, targets: torch.Tensor,
                      labels: list[str] | torch.Tensor) -> TrainingLoss:
        """The loss of the current stage; targets are 1 / -1 / 0 per (image, label)."""
        label_emb = self.encode_labels(labels) if isinstance(labels, list) else labels
        global_emb, local_emb = self.encode_image(images)
        scores = self.score(label_emb, global_emb, local_emb)
        rank = ranking_loss(scores, targets)
        if self.stage == 2 or self.config.distill_weight == 0:
            return TrainingLoss(rank, rank, None, scores)
        if self.config.distill_images == "with_positive":
            # the release drops images without a seen positive before the forward pass: no distillation either
            keep = (targets == 1).any(dim=1).to(images.device)
            images, global_emb = images[keep], global_emb[keep]
        if images.shape[0] == 0:
            distill = global_emb.sum() * 0  # nothing to distil; keeps the graph for backward()
        else:
            distill = distillation_loss(global_emb, self.teacher_features(images))
        return TrainingLoss(rank + self.config.distill_weight * distill, rank, distill, scores)


def create_model(config: MKTConfig | str, load_weights: bool = True, **overrides) -> MKT:
    """Build an MKT model from a preset name or a config, with top-level fields overridden."""
    if isinstance(config, str):
        config = get_preset(config, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return MKT(config, load_weights=load_weights)
