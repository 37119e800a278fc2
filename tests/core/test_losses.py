"""Ranking loss must equal the released (BiAM-derived) computation; distillation must not move the teacher."""

import pytest
import torch

from mkt_core.model.losses import distillation_loss, ranking_loss


def brute_force_ranking_loss(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Double loop over (positive, negative) pairs, image by image, as the reference defines it."""
    per_image = []
    for s, t in zip(scores.tolist(), targets.tolist(), strict=True):
        positives = [i for i, v in enumerate(t) if v == 1]
        negatives = [i for i, v in enumerate(t) if v == -1]
        if not positives:
            continue
        total = 0.0
        violations = 0
        for p in positives:
            for m in negatives:
                hinge = max(0.0, 1.0 + s[m] - s[p])
                total += hinge
                violations += hinge > 0
        per_image.append(total / (violations + 1e-8))
    return sum(per_image) / len(per_image)


def random_batch(seed: int, batch: int = 8, labels: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, labels, generator=gen, dtype=torch.float64)
    targets = torch.randint(-1, 2, (batch, labels), generator=gen)
    targets[0] = torch.where(targets[0] == 1, torch.tensor(-1), targets[0])  # an image without positive
    targets[1] = torch.where(targets[1] == 1, torch.tensor(0), targets[1])  # and another one
    targets[2, 0] = 1  # make sure a kept image exists
    return scores, targets


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_ranking_loss_matches_brute_force(seed):
    scores, targets = random_batch(seed)
    got = ranking_loss(scores, targets)
    assert got.dim() == 0
    assert got.item() == pytest.approx(brute_force_ranking_loss(scores, targets), abs=1e-6)
    assert got.item() > 0


def test_ranking_loss_hand_computed():
    # One image: positive s=0.5, negatives s=0.2 and s=-2.0, one unannotated s=3.0 (never paired).
    # Hinges: max(0, 1 + 0.2 - 0.5) = 0.7 and max(0, 1 - 2.0 - 0.5) = 0 -> 0.7 / 1 violating pair.
    scores = torch.tensor([[0.5, 0.2, -2.0, 3.0]])
    targets = torch.tensor([[1, -1, -1, 0]])
    assert ranking_loss(scores, targets).item() == pytest.approx(0.7, abs=1e-6)


def test_ranking_loss_accepts_any_target_dtype():
    scores, targets = random_batch(11)
    expected = ranking_loss(scores, targets).item()
    assert ranking_loss(scores, targets.double()).item() == pytest.approx(expected, abs=1e-12)
    assert ranking_loss(scores.float(), targets.float()).item() == pytest.approx(expected, abs=1e-5)


def test_images_without_positive_are_dropped():
    scores, targets = random_batch(3)
    base = ranking_loss(scores, targets).item()
    extra_scores = torch.tensor([[5.0, -3.0, 2.0, 0.0, 1.0, 4.0, -1.0, 0.5, 0.2, 3.0]], dtype=torch.float64)
    extra_targets = torch.tensor([[-1, -1, 0, -1, 0, -1, -1, 0, -1, -1]])
    bigger = ranking_loss(torch.cat([scores, extra_scores]), torch.cat([targets, extra_targets])).item()
    assert bigger == pytest.approx(base, abs=1e-12)


def test_image_with_positive_but_no_violation_counts_in_the_mean():
    # Image 0: one violating pair with hinge 0.7. Image 1: perfectly ranked, contributes 0 but
    # is not dropped, so the mean halves.
    scores = torch.tensor([[0.5, 0.2], [3.0, 0.0]])
    targets = torch.tensor([[1, -1], [1, -1]])
    assert ranking_loss(scores, targets).item() == pytest.approx(0.35, abs=1e-6)


def test_well_separated_batch_has_zero_loss():
    scores = torch.tensor([[3.0, 1.5, -0.1, -2.0, 9.0], [0.0, 2.5, -1.5, 1.0, -9.0]])
    targets = torch.tensor([[1, 1, -1, -1, 0], [-1, 1, -1, 0, -1]])
    assert ranking_loss(scores, targets).item() == 0.0


def test_gradient_flows_when_pairs_violate():
    scores, targets = random_batch(5)
    scores.requires_grad_(True)
    loss = ranking_loss(scores, targets)
    loss.backward()
    assert scores.grad is not None
    assert scores.grad.abs().sum().item() > 0
    # Images without positives and unannotated cells get no gradient.
    assert torch.all(scores.grad[:2] == 0)
    assert torch.all(scores.grad[targets == 0] == 0)


def test_hand_computed_gradient():
    # loss = (1 + s_m - s_p) / 1: d/ds_p = -1, d/ds_m = +1.
    scores = torch.tensor([[0.5, 0.2]], requires_grad=True)
    ranking_loss(scores, torch.tensor([[1, -1]])).backward()
    assert scores.grad[0].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)


def test_no_positive_in_batch_gives_zero_with_grad():
    scores = torch.randn(3, 4, requires_grad=True)
    targets = torch.tensor([[-1, -1, 0, -1], [0, 0, 0, 0], [-1, 0, -1, -1]])
    loss = ranking_loss(scores, targets)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.all(scores.grad == 0)


def test_ranking_loss_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        ranking_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        ranking_loss(torch.zeros(3), torch.zeros(3))


# ---------------------------------------------------------------- distillation


def test_distillation_loss_is_mean_absolute_difference():
    student = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    teacher = torch.tensor([[0.0, -1.0, 0.5], [2.0, 1.0, -1.5]])
    # |1| + |-1| + 0 + |-2| + |2| + |0.5| = 6.5 over 6 elements.
    assert distillation_loss(student, teacher).item() == pytest.approx(6.5 / 6)


def test_distillation_loss_does_not_update_teacher():
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(4, 8, generator=gen, requires_grad=True)
    teacher = torch.randn(4, 8, generator=gen, requires_grad=True)
    loss = distillation_loss(student, teacher)
    loss.backward()
    assert teacher.grad is None
    expected_grad = torch.sign(student.detach() - teacher.detach()) / student.numel()
    torch.testing.assert_close(student.grad, expected_grad)


def test_distillation_loss_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 8\).*\(4, 7\)"):
        distillation_loss(torch.zeros(4, 8), torch.zeros(4, 7))
