"""Training losses of MKT: the ranking loss (Eq. 4) and the knowledge-distillation loss.

Targets use 1 = positive, -1 = negative, 0 = unannotated (never paired, never penalised).
"""

import torch
import torch.nn.functional as F

EPS = 1e-8


def ranking_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise hinge ranking loss, computed as the authors' released code (from BiAM) does.

    For each image, over every (positive p, negative m) pair: max(0, 1 + s_m - s_p). The sum is
    divided by the number of violating pairs (hinge > 0) plus 1e-8, so only violations set the
    scale and an image with none contributes 0. Images without any positive are dropped before
    the batch mean, as the released training loop removes them; if none is left the result is
    a zero that still carries a graph so `backward()` works.

    Shapes: scores and targets `[B, L]`.
    """
    if scores.dim() != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both be [B, L] with the same shape, "
            f"got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    targets = targets.to(device=scores.device, dtype=torch.float32)
    has_positive = (targets == 1).any(dim=1)
    if not bool(has_positive.any()):
        return scores.sum() * 0
    scores = scores[has_positive]
    targets = targets[has_positive]

    positive = targets == 1
    negative = targets == -1
    pairs = positive[:, :, None] & negative[:, None, :]  # [B, L, L]: [b, p, m]
    margin_violation = 1 + scores[:, None, :] - scores[:, :, None]  # 1 + s_m - s_p at [b, p, m]
    hinge = F.relu(margin_violation) * pairs
    # Counted in float32 (not the scores' dtype) so half-precision scores cannot overflow it.
    num_violations = (hinge > 0).sum(dim=(1, 2)).to(torch.float32)
    per_image = hinge.sum(dim=(1, 2)) / (num_violations + EPS)
    return per_image.mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L1 between the student's global feature and the frozen VLP teacher's.

    The teacher is detached so the loss can only move the student.
    """
    if student.shape != teacher.shape:
        raise ValueError(
            f"student and teacher features must have the same shape, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    return F.l1_loss(student, teacher.detach())
