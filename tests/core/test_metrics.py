"""Metrics must reproduce the MKT/BiAM reference evaluation, including its tie and empty-label rules."""

import math

import numpy as np
import pytest
import torch

from mkt_core.train.metrics import (
    average_precision,
    evaluate,
    mean_average_precision,
    precision_recall_f1_at_k,
)


def col(values: list[float]) -> np.ndarray:
    """One label as a `[images, 1]` column."""
    return np.asarray(values, dtype=np.float64)[:, None]


def reference_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Loop-based re-implementation mimicking the reference compute_AP, label by label."""
    num_labels = scores.shape[1]
    ap = np.full(num_labels, np.nan)
    for j in range(num_labels):
        mask = np.abs(targets[:, j]) == 1
        if (targets[:, j] > 0).sum() == 0:
            continue
        label = np.clip(targets[mask, j], 0, 1)
        order = sorted(range(int(mask.sum())), key=lambda i: -scores[mask, j][i])
        tp = np.array([1.0 if label[i] == 1 else 0.0 for i in order])
        fp = 1.0 - tp
        cum_tp = np.cumsum(tp)
        cum_fp = np.cumsum(fp)
        prec = cum_tp / (cum_tp + cum_fp)
        ap[j] = (tp * prec).sum() / tp.sum()
    return ap


# ---------------------------------------------------------------- average precision


def test_ap_hand_computed():
    ap = average_precision(col([0.9, 0.8, 0.7, 0.6]), col([1, -1, 1, -1]))
    assert ap.dtype == np.float64
    assert ap.shape == (1,)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2, abs=1e-12)


def test_ap_ignores_unannotated_images():
    targets = col([1, 0, -1, 1, -1])
    expected = (1 / 1 + 2 / 3) / 2  # ranks among annotated: pos, neg, pos, neg
    for unannotated_score in (0.85, 0.95, 0.0, -5.0):
        scores = col([0.9, unannotated_score, 0.8, 0.7, 0.6])
        assert average_precision(scores, targets)[0] == pytest.approx(expected, abs=1e-12)
    # Had the 0 been a negative it would have lowered AP: the test can tell the difference.
    as_negative = average_precision(col([0.9, 0.85, 0.8, 0.7, 0.6]), col([1, -1, -1, 1, -1]))[0]
    assert as_negative == pytest.approx((1 / 1 + 2 / 4) / 2, abs=1e-12)


def test_ap_perfect_ranking_is_one():
    ap = average_precision(col([0.9, 0.8, 0.3, 0.1]), col([1, 1, -1, -1]))
    assert ap[0] == 1.0


def test_ap_all_positive_is_one():
    ap = average_precision(col([0.1, 0.9, 0.5]), col([1, 1, 1]))
    assert ap[0] == 1.0


def test_ap_worst_ranking():
    ap = average_precision(col([0.9, 0.8, 0.1]), col([-1, -1, 1]))
    assert ap[0] == pytest.approx(1 / 3, abs=1e-12)


def test_ap_ties_keep_input_order():
    # Images 0 and 1 tie; the one listed first is ranked first (stable descending sort).
    neg_first = average_precision(col([0.5, 0.5, 0.1]), col([-1, 1, 1]))[0]
    assert neg_first == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)
    pos_first = average_precision(col([0.5, 0.5, 0.1]), col([1, -1, 1]))[0]
    assert pos_first == pytest.approx((1 / 1 + 2 / 3) / 2, abs=1e-12)


def test_ap_tie_rule_matches_torch_stable_sort():
    scores = torch.tensor([0.3, 0.7, 0.3, 0.7, 0.3, 0.1])
    targets = torch.tensor([1, -1, -1, 1, 1, -1])
    order = torch.sort(scores, descending=True, stable=True).indices
    tp = (targets[order] == 1).double()
    expected = float(((tp.cumsum(0) / torch.arange(1, 7)) * tp).sum() / tp.sum())
    assert average_precision(scores[:, None], targets[:, None])[0] == pytest.approx(expected, abs=1e-12)


def test_ap_empty_label_is_nan():
    scores = np.array([[0.9, 0.2], [0.8, 0.4], [0.7, 0.3]])
    targets = np.array([[1, -1], [-1, 0], [1, -1]])
    ap = average_precision(scores, targets)
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)
    assert math.isnan(ap[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_ap_matches_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((50, 12))
    targets = rng.integers(-1, 2, size=(50, 12)).astype(np.float64)
    targets[:, 0] = np.where(targets[:, 0] == 1, -1, targets[:, 0])  # one label without a positive
    expected = reference_ap(scores, targets)
    got = average_precision(scores, targets)
    assert np.isnan(got[0]) and np.isnan(expected[0])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, equal_nan=True)
    assert mean_average_precision(scores, targets) == pytest.approx(np.nan_to_num(expected).mean(), abs=1e-12)
    assert mean_average_precision(scores, targets, empty_as_zero=False) == pytest.approx(
        np.nanmean(expected), abs=1e-12
    )


def test_torch_input_matches_numpy_input():
    rng = np.random.default_rng(7)
    scores = rng.standard_normal((30, 6)).astype(np.float32)
    targets = rng.integers(-1, 2, size=(30, 6))
    ap_np = average_precision(scores, targets)
    ap_torch = average_precision(torch.from_numpy(scores), torch.from_numpy(targets))
    np.testing.assert_array_equal(ap_np, ap_torch)
    assert evaluate(scores, targets) == evaluate(torch.from_numpy(scores), torch.from_numpy(targets))


def test_torch_input_with_grad_is_accepted():
    scores = torch.tensor([[0.9], [0.8], [0.7], [0.6]], requires_grad=True)
    ap = average_precision(scores, torch.tensor([[1], [-1], [1], [-1]]))
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2, abs=1e-7)


# ---------------------------------------------------------------- mAP


def test_map_empty_label_conventions():
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.4, 0.9], [0.7, 0.3, 0.1], [0.6, 0.1, 0.2]])
    targets = np.array([[1, -1, -1], [-1, 0, 1], [1, -1, -1], [-1, -1, 0]])
    ap0 = (1 + 2 / 3) / 2
    ap2 = 1.0
    assert mean_average_precision(scores, targets) == pytest.approx((ap0 + 0 + ap2) / 3, abs=1e-12)
    assert mean_average_precision(scores, targets, empty_as_zero=True) == pytest.approx(
        (ap0 + ap2) / 3, abs=1e-12
    )
    assert mean_average_precision(scores, targets, empty_as_zero=False) == pytest.approx(
        (ap0 + ap2) / 2, abs=1e-12
    )


def test_map_no_positive_anywhere():
    scores = np.array([[0.1, 0.2], [0.3, 0.4]])
    targets = np.array([[-1, 0], [-1, -1]])
    assert mean_average_precision(scores, targets) == 0.0
    assert math.isnan(mean_average_precision(scores, targets, empty_as_zero=False))


# ---------------------------------------------------------------- P / R / F1 @ k

SCORES_2X4 = np.array([[0.9, 0.1, 0.8, 0.3], [0.2, 0.7, 0.6, 0.5]])
TARGETS_2X4 = np.array([[1, 1, -1, 0], [-1, 1, 0, 1]])


def test_prf_at_k_hand_computed():
    # Image 0 predicts labels 0, 2 -> targets 1, -1: one TP. Image 1 predicts 1, 2 -> 1, 0: one TP.
    # TP = 2, predicted cells = 2 * 2 = 4, positive cells = 4.
    p, r, f1 = precision_recall_f1_at_k(SCORES_2X4, TARGETS_2X4, k=2)
    assert p == pytest.approx(2 / 4)
    assert r == pytest.approx(2 / 4)
    assert f1 == pytest.approx(0.5)


def test_prf_at_1_hand_computed():
    # Image 0 predicts label 0 (TP), image 1 predicts label 1 (TP).
    p, r, f1 = precision_recall_f1_at_k(SCORES_2X4, TARGETS_2X4, k=1)
    assert p == pytest.approx(1.0)
    assert r == pytest.approx(2 / 4)
    assert f1 == pytest.approx(2 * 1.0 * 0.5 / 1.5)


def test_prf_k_larger_than_labels_uses_all_labels():
    # k clipped to 4: every cell predicted, TP = all 4 positives, precision = 4 / (2 * 4).
    p, r, f1 = precision_recall_f1_at_k(SCORES_2X4, TARGETS_2X4, k=10)
    assert p == pytest.approx(0.5)
    assert r == pytest.approx(1.0)
    assert f1 == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_prf_ties_take_lower_label_index_first():
    scores = np.array([[0.5, 0.5, 0.5, 0.1]])
    targets = np.array([[-1, 1, 1, 1]])
    assert precision_recall_f1_at_k(scores, targets, k=1) == (0.0, 0.0, 0.0)
    p, r, _ = precision_recall_f1_at_k(scores, targets, k=2)
    assert (p, r) == pytest.approx((1 / 2, 1 / 3))


def test_prf_no_positives():
    scores = np.array([[0.9, 0.1], [0.3, 0.4]])
    targets = np.array([[-1, 0], [0, -1]])
    assert precision_recall_f1_at_k(scores, targets, k=1) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("k", [0, -1, 1.5])
def test_prf_bad_k(k):
    with pytest.raises(ValueError, match="k must"):
        precision_recall_f1_at_k(SCORES_2X4, TARGETS_2X4, k=k)


# ---------------------------------------------------------------- evaluate


def test_evaluate_collects_everything():
    results = evaluate(SCORES_2X4, TARGETS_2X4, ks=(1, 2))
    assert set(results) == {"map", "map_skip_empty", "p@1", "r@1", "f1@1", "p@2", "r@2", "f1@2"}
    assert all(type(v) is float for v in results.values())
    assert results["map"] == pytest.approx(mean_average_precision(SCORES_2X4, TARGETS_2X4))
    assert results["map_skip_empty"] == pytest.approx(
        mean_average_precision(SCORES_2X4, TARGETS_2X4, empty_as_zero=False)
    )
    assert (results["p@2"], results["r@2"], results["f1@2"]) == pytest.approx((0.5, 0.5, 0.5))


def test_evaluate_default_ks():
    rng = np.random.default_rng(3)
    results = evaluate(rng.standard_normal((10, 8)), rng.integers(-1, 2, size=(10, 8)))
    assert {"p@3", "r@3", "f1@3", "p@5", "r@5", "f1@5"} <= set(results)
    assert all(0.0 <= v <= 1.0 for v in results.values())


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "scores, targets, message",
    [
        (np.zeros(4), np.zeros(4), "scores must be 2-D"),
        (np.zeros((2, 3)), np.zeros(6), "targets must be 2-D"),
        (np.zeros((2, 3)), np.zeros((3, 2)), "same shape"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "at least one image"),
        (np.array([[0.1, np.nan]]), np.array([[1, -1]]), "non-finite"),
        (np.array([[0.1, np.inf]]), np.array([[1, -1]]), "non-finite"),
        (np.array([[0.1, 0.2]]), np.array([[1, 2]]), "targets must be 1"),
        (np.array([[0.1, 0.2]]), np.array([[1, 0.5]]), "targets must be 1"),
    ],
)
def test_input_validation(scores, targets, message):
    for fn in (
        average_precision,
        mean_average_precision,
        evaluate,
        lambda s, t: precision_recall_f1_at_k(s, t, 1),
    ):
        with pytest.raises(ValueError, match=message):
            fn(scores, targets)


def test_input_validation_torch_nan():
    with pytest.raises(ValueError, match="non-finite"):
        average_precision(torch.tensor([[float("nan")]]), torch.tensor([[1]]))
