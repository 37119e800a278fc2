import pytest
import torch

from mkt_core.model.scoring import released_code_scores, top_k_mean, two_stream_scores


def _embeddings(b=3, n=7, l=5, d=4):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(l, d, generator=g), torch.randn(b, d, generator=g), torch.randn(b, n, d, generator=g))


def test_top_k_one_is_max_and_top_n_is_mean():
    z, _, local = _embeddings()
    patch_scores = torch.einsum("bnd,ld->bnl", local, z)
    assert torch.allclose(top_k_mean(patch_scores, 1), patch_scores.max(dim=1).values)
    assert torch.allclose(top_k_mean(patch_scores, 7), patch_scores.mean(dim=1))
    assert torch.allclose(top_k_mean(patch_scores, 99), patch_scores.mean(dim=1))
    with pytest.raises(ValueError):
        top_k_mean(patch_scores, 0)


def test_two_stream_scores_match_equation_3_by_hand():
    z, g, local = _embeddings()
    k = 3
    scores = two_stream_scores(z, g, local, k)
    assert scores.shape == (3, 5)
    for b in range(3):
        for i in range(5):
            patch = sorted((float(local[b, j] @ z[i]) for j in range(7)), reverse=True)
            expected = float(g[b] @ z[i]) + sum(patch[:k]) / k
            assert scores[b, i].item() == pytest.approx(expected, abs=1e-5)


def test_streams_ablation_adds_up_to_both():
    z, g, local = _embeddings()
    both = two_stream_scores(z, g, local, 2)
    only_g = two_stream_scores(z, g, None, 2, streams="global")
    only_l = two_stream_scores(z, None, local, 2, streams="local")
    assert torch.allclose(both, only_g + only_l)
    with pytest.raises(ValueError):
        two_stream_scores(z, g, local, 2, streams="neither")


def test_a_label_score_does_not_depend_on_the_other_labels():
    z, g, local = _embeddings(l=6)
    all_scores = two_stream_scores(z, g, local, 3)
    alone = two_stream_scores(z[2:3], g, local, 3)
    assert torch.allclose(alone[:, 0], all_scores[:, 2], atol=1e-6, rtol=0)


def test_released_code_scores_are_normalised_across_labels():
    z, g, local = _embeddings(l=6)
    scores = released_code_scores(z, g, local, 3)
    local_part = two_stream_scores(z, None, local, 3, streams="local")
    global_part = two_stream_scores(z, g, None, 3, streams="global")
    expected = (local_part / local_part.norm(dim=1, keepdim=True) + global_part / global_part.norm(dim=1,
                                                                                                  keepdim=True)) / 2
    assert torch.allclose(scores, expected)
    # ...which is why the app never uses them: a label's score moves when labels are added
    assert not torch.allclose(released_code_scores(z[:3], g, local, 3), scores[:, :3])
