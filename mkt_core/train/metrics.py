"""Evaluation metrics, matching the MKT / BiAM reference evaluation (NUS-WIDE and Open Images protocols).

Conventions: `scores` and `targets` are `[images, labels]`; a target is 1 (positive),
-1 (negative) or 0 (unannotated). Both numpy arrays and torch tensors are accepted.

Tie rules (the reference leaves them to `torch.sort` / `torch.topk`, whose tie order is not
guaranteed; we pin them so results are reproducible):
- average precision ranks images with a stable descending sort: tied images keep their
  input order, the same as `torch.sort(descending=True, stable=True)`;
- top-k predictions rank labels the same way: tied labels are taken lower index first.
"""

import math
from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Torch tensors are copied to CPU float64 so every metric runs on one numpy code path."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {type(x).__name__}") from exc


def _check_inputs(scores: ArrayLike, targets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Fail loudly on inputs that would otherwise give a silently wrong number."""
    s = _to_numpy(scores, "scores")
    t = _to_numpy(targets, "targets")
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D [images, labels], got shape {s.shape}")
    if t.ndim != 2:
        raise ValueError(f"targets must be 2-D [images, labels], got shape {t.shape}")
    if s.shape != t.shape:
        raise ValueError(f"scores and targets must have the same shape, got {s.shape} and {t.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"need at least one image and one label, got shape {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"scores contain {int(bad.sum())} non-finite values (NaN or inf)")
    invalid = (t != 1) & (t != -1) & (t != 0)
    if invalid.any():
        raise ValueError(
            f"targets must be 1 (positive), -1 (negative) or 0 (unannotated); "
            f"found {int(invalid.sum())} other values"
        )
    return s, t


def _average_precision(s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """AP per label on already-validated arrays."""
    # One contiguous row per label: column slicing of a row-major array is several times slower.
    s_by_label = np.ascontiguousarray(s.T)
    t_by_label = np.ascontiguousarray(t.T)
    num_labels = s.shape[1]
    ap = np.full(num_labels, np.nan, dtype=np.float64)
    for j in range(num_labels):
        annotated = t_by_label[j] != 0
        is_pos = t_by_label[j, annotated] == 1
        num_pos = int(is_pos.sum())
        if num_pos == 0:
            continue
        # Negating and sorting stably = descending order with ties kept in input order.
        order = np.argsort(-s_by_label[j, annotated], kind="stable")
        tp = is_pos[order].astype(np.float64)
        ranks = np.arange(1, tp.size + 1, dtype=np.float64)
        precision = np.cumsum(tp) / ranks
        ap[j] = np.sum(precision * tp) / num_pos
    return ap


def average_precision(scores: ArrayLike, targets: ArrayLike) -> np.ndarray:
    """Non-interpolated AP per label over annotated images only; NaN for a label with no positive.

    AP = mean over the label's positives of the precision at that positive's rank, with images
    ranked by score descending (stable: tied images keep their input order).
    """
    s, t = _check_inputs(scores, targets)
    return _average_precision(s, t)


def _mean_ap(ap: np.ndarray, empty_as_zero: bool) -> float:
    if empty_as_zero:
        return float(np.mean(np.nan_to_num(ap, nan=0.0)))
    present = ap[~np.isnan(ap)]
    if present.size == 0:
        return math.nan
    return float(np.mean(present))


def mean_average_precision(scores: ArrayLike, targets: ArrayLike, empty_as_zero: bool = True) -> float:
    """mAP over labels.

    The reference (NUS-WIDE) code counts a label with no positive as AP 0 and averages over
    all labels; that is the default so numbers compare with the paper. With
    `empty_as_zero=False` such labels are skipped instead; if no label has a positive the
    result is NaN, since there is nothing to average.
    """
    s, t = _check_inputs(scores, targets)
    return _mean_ap(_average_precision(s, t), empty_as_zero)


def _top_k_mask(s: np.ndarray, k: int) -> np.ndarray:
    """Boolean `[images, labels]` mask of each image's top-k labels, ties taken lower index first.

    Selects the same set as the first k of a stable descending sort, without sorting every row:
    all labels scoring above the k-th largest value, then the lowest-index labels equal to it.
    """
    kth = np.partition(s, s.shape[1] - k, axis=1)[:, s.shape[1] - k, None]
    above = s > kth
    tied = s == kth
    free_slots = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= free_slots))


def _precision_recall_f1_at_k(s: np.ndarray, t: np.ndarray, k: int) -> tuple[float, float, float]:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    num_images, num_labels = s.shape
    k = min(int(k), num_labels)
    tp = int(np.sum(_top_k_mask(s, k) & (t == 1)))
    num_pos = int(np.sum(t == 1))
    precision = tp / (num_images * k)
    recall = tp / num_pos if num_pos > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1


def precision_recall_f1_at_k(scores: ArrayLike, targets: ArrayLike, k: int) -> tuple[float, float, float]:
    """Overall (micro) precision, recall and F1 when every image predicts its top-k labels.

    Precision = TP / (images * k), recall = TP / (cells with target 1); recall is 0 when there
    is no positive at all and F1 is 0 when precision + recall is 0. Tied labels are taken lower
    index first; k larger than the number of labels is clipped to it (all labels predicted).
    """
    s, t = _check_inputs(scores, targets)
    return _precision_recall_f1_at_k(s, t, k)


def evaluate(scores: ArrayLike, targets: ArrayLike, ks: Sequence[int] = (3, 5)) -> dict[str, float]:
    """All reported metrics at once, as plain floats in [0, 1] (validating the inputs only once)."""
    s, t = _check_inputs(scores, targets)
    ap = _average_precision(s, t)
    results = {
        "map": _mean_ap(ap, empty_as_zero=True),
        "map_skip_empty": _mean_ap(ap, empty_as_zero=False),
    }
    for k in ks:
        p, r, f1 = _precision_recall_f1_at_k(s, t, k)
        results[f"p@{k}"] = p
        results[f"r@{k}"] = r
        results[f"f1@{k}"] = f1
    return results


def _open_images_setting(s: np.ndarray, t: np.ndarray, ks: Sequence[int], annotated_columns_only: bool,
                         ) -> dict[str, float]:
    """One setting of BiAM's evaluate_openimages.py on already-validated arrays."""
    keep = (t == 1).any(axis=1)
    s, t = s[keep], t[keep]
    result: dict[str, float] = {"images": int(keep.sum())}
    if not keep.any():  # nothing to rank: every metric is undefined
        return {**result, "map": math.nan, "wmap": math.nan,
                **{f"{m}@{k}": math.nan for k in ks for m in ("p", "r", "f1")}}
    columns = (t != 0).any(axis=0) if annotated_columns_only else np.ones(t.shape[1], dtype=bool)
    ap = np.nan_to_num(_average_precision(s[:, columns], t[:, columns]), nan=0.0)  # no positive: AP 0
    positives = (t[:, columns] == 1).sum(axis=0)
    result["map"] = float(ap.mean()) if ap.size else math.nan
    result["wmap"] = float((positives * ap).sum() / positives.sum())
    for k in ks:
        p, r, f1 = _precision_recall_f1_at_k(s, t, k)  # over every column of the setting
        result.update({f"p@{k}": p, f"r@{k}": r, f"f1@{k}": f1})
    return result


def open_images_metrics(scores: ArrayLike, targets: ArrayLike, unseen_columns: Sequence[int],
                        ks: Sequence[int] = (10, 20), zsl_scores: ArrayLike | None = None) -> dict[str, dict]:
    """ZSL and GZSL metrics of Open Images as BiAM's evaluate_openimages.py computes them.

    `scores` and `targets` cover every label (seen and unseen); a target of 0 means "not annotated".
    In each setting only images with a positive among its labels are kept. AP is over annotated
    images only; a label without a positive counts 0. ZSL: the `unseen_columns`, mAP over all of
    them. GZSL: every column, mAP over the columns with at least one annotated entry among the kept
    images. `wmap` weights each label's AP by its number of positives (the paper's Table 1 reports
    it). P / R / F1 at K are micro, over all columns of the setting. `zsl_scores` are the unseen
    labels' scores when they were ranked without the seen ones (a score mode that normalises across
    labels); by default the unseen columns of `scores`.
    """
    s, t = _check_inputs(scores, targets)
    unseen = [int(j) for j in unseen_columns]
    if not unseen:
        raise ValueError("open_images_metrics needs the unseen columns (ZSL)")
    bad = [j for j in unseen if not 0 <= j < s.shape[1]]
    if bad:
        raise ValueError(f"unseen columns {bad[:5]} are outside the {s.shape[1]} labels")
    if zsl_scores is None:
        zsl_s = s[:, unseen]
    else:
        zsl_s, _ = _check_inputs(zsl_scores, t[:, unseen])
    return {"zsl": _open_images_setting(zsl_s, t[:, unseen], ks, annotated_columns_only=False),
            "gzsl": _open_images_setting(s, t, ks, annotated_columns_only=True)}
