"""Eq. 3 of the paper: the one scoring function used by training, evaluation and the app."""

import torch

STREAMS = ("both", "global", "local")


def top_k_mean(patch_scores: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k largest values along the patch axis: `[B, N, L] -> [B, L]`.

    k = 1 is max pooling, k = N is mean pooling; k larger than N is clipped to N.
    """
    n = patch_scores.shape[1]
    if k < 1:
        raise ValueError(f"top-k must be at least 1, got {k}")
    k = min(k, n)
    if k == n:
        return patch_scores.mean(dim=1)
    return patch_scores.topk(k, dim=1).values.mean(dim=1)


def two_stream_scores(
    label_emb: torch.Tensor,
    global_emb: torch.Tensor | None,
    local_emb: torch.Tensor | None,
    k: int,
    streams: str = "both",
) -> torch.Tensor:
    """s_i = <z_i, e_cls> + TopKMean_j <z_i, e_j>.

    Shapes: label_emb `[L, D]`, global_emb `[B, D]`, local_emb `[B, N, D]` -> scores `[B, L]`.
    Each label's score depends only on that label's embedding and the image: nothing is
    normalised across labels, so scores stay valid when the vocabulary grows.
    `streams` selects the two-stream ablations ("global" or "local" only).
    """
    if streams not in STREAMS:
        raise ValueError(f"streams must be one of {STREAMS}, got {streams!r}")
    label_emb = label_emb.to(_dtype_of(global_emb, local_emb))
    scores = None
    if streams in ("both", "global"):
        if global_emb is None:
            raise ValueError("the global stream needs global_emb")
        scores = global_emb @ label_emb.t()
    if streams in ("both", "local"):
        if local_emb is None:
            raise ValueError("the local stream needs local_emb")
        local = top_k_mean(torch.einsum("bnd,ld->bnl", local_emb, label_emb), k)
        scores = local if scores is None else scores + local
    return scores


def released_code_scores(
    label_emb: torch.Tensor, global_emb: torch.Tensor, local_emb: torch.Tensor, k: int
) -> torch.Tensor:
    """The authors' released training/evaluation score: each stream's score vector is
    L2-normalised across the labels of the image, then the two are averaged.

    It makes a score depend on the other labels scored with it, so it is a training and
    evaluation switch only; the app always uses `two_stream_scores`.
    """
    parts = [two_stream_scores(label_emb, global_emb, local_emb, k, streams=s) for s in ("local", "global")]
    parts = [p / p.norm(dim=-1, keepdim=True).clamp_min(1e-12) for p in parts]
    return (parts[0] + parts[1]) / 2


def _dtype_of(*tensors: torch.Tensor | None) -> torch.dtype:
    for t in tensors:
        if t is not None:
            return t.dtype
    raise ValueError("two_stream_scores needs at least one image embedding")
