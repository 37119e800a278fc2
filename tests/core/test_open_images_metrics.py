"""Open Images metrics follow BiAM's evaluate_openimages.py: a re-statement in loops must agree."""

import math

import numpy as np
import pytest

from mkt_core.train.metrics import open_images_metrics


def _biam_ap(scores: list[list[float]], targets: list[list[int]], column: int) -> float:
    """compute_AP for one column: annotated images only, ranked by score (ties: input order)."""
    annotated = [(scores[i][column], targets[i][column]) for i in range(len(scores)) if targets[i][column] != 0]
    num_pos = sum(1 for _, t in annotated if t == 1)
    if num_pos == 0:
        return 0.0  # the reference leaves such a label at 0
    ranked = sorted(range(len(annotated)), key=lambda i: -annotated[i][0])  # sorted() is stable
    hits, total = 0, 0.0
    for rank, i in enumerate(ranked, start=1):
        if annotated[i][1] == 1:
            hits += 1
            total += hits / rank
    return total / num_pos


def _biam_f1(scores: list[list[float]], targets: list[list[int]], k: int) -> tuple[float, float, float]:
    """compute_F1 'overall': each image predicts its top k labels (ties: lower index first)."""
    tp = 0
    for row_s, row_t in zip(scores, targets, strict=True):
        top = sorted(range(len(row_s)), key=lambda j: -row_s[j])[:k]
        tp += sum(1 for j in top if row_t[j] == 1)
    num_pos = sum(1 for row in targets for t in row if t == 1)
    p = tp / (len(scores) * k)
    r = tp / num_pos
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def _biam_setting(scores, targets, ks, mask_columns: bool) -> dict[str, float]:
    keep = [i for i in range(len(scores)) if any(t == 1 for t in targets[i])]
    scores = [list(scores[i]) for i in keep]
    targets = [list(targets[i]) for i in keep]
    columns = list(range(len(targets[0])))
    if mask_columns:
        columns = [j for j in columns if any(row[j] != 0 for row in targets)]
    aps = [_biam_ap(scores, targets, j) for j in columns]
    positives = [sum(1 for row in targets if row[j] == 1) for j in columns]
    out = {"images": len(keep), "map": sum(aps) / len(aps),
           "wmap": sum(n * ap for n, ap in zip(positives, aps, strict=True)) / sum(positives)}
    for k in ks:
        out[f"p@{k}"], out[f"r@{k}"], out[f"f1@{k}"] = _biam_f1(scores, targets, k)
    return out


def biam_reference(scores: np.ndarray, targets: np.ndarray, unseen: list[int], ks) -> dict[str, dict]:
    s, t = scores.tolist(), targets.astype(int).tolist()
    zsl_s = [[row[j] for j in unseen] for row in s]
    zsl_t = [[row[j] for j in unseen] for row in t]
    return {"zsl": _biam_setting(zsl_s, zsl_t, ks, mask_columns=False),
            "gzsl": _biam_setting(s, t, ks, mask_columns=True)}


def _random_case(seed: int, images: int = 60, labels: int = 14):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=(images, labels)), 1)  # rounded: many ties
    targets = rng.choice([1, -1, 0], size=(images, labels), p=[0.15, 0.45, 0.4]).astype(np.int8)
    targets[:, 3] = np.where(targets[:, 3] == 1, -1, targets[:, 3])  # a seen label with no positive
    targets[:, 11] = np.where(targets[:, 11] == 1, 0, targets[:, 11])  # an unseen label with no positive
    targets[:, 5] = 0  # a seen label never annotated
    targets[:5] = np.where(targets[:5] == 1, -1, targets[:5])  # images without any positive
    targets[5:10, 9:] = np.where(targets[5:10, 9:] == 1, -1, targets[5:10, 9:])  # no unseen positive
    return scores, targets, list(range(9, labels))


@pytest.mark.parametrize("seed", range(6))
def test_matches_a_loop_restatement_of_biam_on_random_data(seed):
    scores, targets, unseen = _random_case(seed)
    ours = open_images_metrics(scores, targets, unseen, ks=(3, 5))
    reference = biam_reference(scores, targets, unseen, ks=(3, 5))
    for setting in ("zsl", "gzsl"):
        assert set(ours[setting]) == set(reference[setting])
        for key, value in reference[setting].items():
            assert ours[setting][key] == pytest.approx(value, abs=1e-5), (setting, key)
            assert 0 <= ours[setting][key] <= 1 or key == "images"
    # the two settings keep different images: those with a positive among their own labels
    assert ours["zsl"]["images"] < ours["gzsl"]["images"] < len(scores)


def test_hand_computed_case():
    # labels 0, 1 seen; 2, 3 unseen. Image 3 has no positive at all; image 2 none among the unseen.
    scores = np.array([[0.9, 0.1, 0.8, 0.3],
                       [0.2, 0.7, 0.4, 0.6],
                       [0.6, 0.5, 0.9, 0.1],
                       [0.5, 0.5, 0.5, 0.5]])
    targets = np.array([[1, -1, 1, 0],
                        [-1, 1, -1, 1],
                        [1, 0, -1, -1],
                        [-1, -1, -1, 0]])
    result = open_images_metrics(scores, targets, [2, 3], ks=(1,))
    zsl, gzsl = result["zsl"], result["gzsl"]
    # ZSL keeps images 0, 1. Label 2: image 0 (0.8, +) above image 1 (0.4, -): AP 1.
    # Label 3: only image 1 is annotated (+): AP 1. mAP 1, WmAP 1.
    assert zsl["images"] == 2 and zsl["map"] == pytest.approx(1.0) and zsl["wmap"] == pytest.approx(1.0)
    # top-1 of the unseen labels: image 0 -> label 2 (+), image 1 -> label 3 (+): P 1, R 2/2.
    assert (zsl["p@1"], zsl["r@1"], zsl["f1@1"]) == pytest.approx((1.0, 1.0, 1.0))
    # GZSL keeps images 0, 1, 2. Label 0: image 0 (0.9, +), image 2 (0.6, +), image 1 (0.2, -): AP 1.
    # Label 1: image 1 (0.7, +) above image 0 (0.1, -); image 2 unannotated: AP 1.
    # Label 2: image 2 (0.9, -), image 0 (0.8, +), image 1 (0.4, -): AP 1/2.
    # Label 3: image 1 (0.6, +), image 2 (0.1, -): AP 1.
    assert gzsl["images"] == 3
    assert gzsl["map"] == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    # positives per label 2, 1, 1, 1 -> WmAP (2 * 1 + 1 + 0.5 + 1) / 5
    assert gzsl["wmap"] == pytest.approx(4.5 / 5)
    # top-1: image 0 -> label 0 (+), image 1 -> label 1 (+), image 2 -> label 2 (-): P 2/3, R 2/5
    assert gzsl["p@1"] == pytest.approx(2 / 3) and gzsl["r@1"] == pytest.approx(2 / 5)


def test_gzsl_map_skips_labels_never_annotated_but_zsl_counts_them_as_zero():
    scores = np.array([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3]])
    targets = np.array([[1, 0, 0], [-1, 1, 0]])  # label 2 (unseen) is annotated nowhere
    result = open_images_metrics(scores, targets, [1, 2], ks=(1,))
    assert result["gzsl"]["map"] == pytest.approx(1.0)  # labels 0 and 1 only
    assert result["zsl"]["map"] == pytest.approx(0.5)  # label 2 counts 0
    assert result["zsl"]["wmap"] == pytest.approx(1.0)  # it has no positive: weight 0


def test_unseen_labels_ranked_alone_and_nothing_to_rank():
    scores, targets, unseen = _random_case(0)
    alone = scores[:, unseen][:, ::-1].copy()  # any other scores for the unseen labels
    result = open_images_metrics(scores, targets, unseen, ks=(3,), zsl_scores=alone)
    assert result["zsl"] == open_images_metrics(np.hstack([scores[:, :9], alone]), targets, unseen, ks=(3,))["zsl"]
    empty = open_images_metrics(scores[:2], -np.ones((2, scores.shape[1])), unseen, ks=(3,))
    assert empty["zsl"]["images"] == 0 and math.isnan(empty["zsl"]["map"])
    with pytest.raises(ValueError, match="outside"):
        open_images_metrics(scores, targets, [99])
