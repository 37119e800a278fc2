"""LabelledImages and collate_skipping_bad on their own."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mkt_core.data import ImageLoadError, LabelledImages, collate_skipping_bad, eval_transform
from tests.data.helpers import MEAN, STD, write_image, write_random_bytes

LABELS = ["a", "b", "c"]


@pytest.fixture
def files(tmp_path):
    good = write_image(tmp_path / "good.jpg", color=(255, 255, 255))
    bad = write_random_bytes(tmp_path / "bad.jpg")
    return good, bad, str(tmp_path / "missing.jpg")


def test_targets_must_match_paths_labels_and_values(files):
    good, _, _ = files
    transform = eval_transform(8, MEAN, STD)
    with pytest.raises(ValueError, match="shape"):
        LabelledImages([good], np.zeros((2, 3), dtype=np.int8), LABELS, transform)
    with pytest.raises(ValueError, match="only 1"):
        LabelledImages([good], np.array([[2, 0, 0]]), LABELS, transform)
    data = LabelledImages([good], np.array([[1, 0, -1]], dtype=np.int64), LABELS, transform)
    assert data.targets.dtype == np.int8


def test_items_and_a_batch_with_only_bad_images(files):
    good, bad, missing = files
    targets = np.array([[1, -1, 0], [0, 1, -1], [-1, -1, 1]], dtype=np.int8)
    data = LabelledImages([good, bad, missing], targets, LABELS, eval_transform(8, MEAN, STD))
    assert data.paths == [good, bad] and data.missing == [missing]
    np.testing.assert_array_equal(data.targets, targets[:2])
    image, target, index, ok = data[0]
    assert ok and index == 0 and target.dtype == torch.int8
    torch.testing.assert_close(image, torch.full((3, 8, 8), (1 - 0.5) / 0.25))  # white, normalised

    images, batch_targets, indices, bad_indices = collate_skipping_bad([data[1], data[1]])
    assert bad_indices == [1, 1]
    assert images.shape == (0, 3, 8, 8) and batch_targets.shape == (0, 3) and indices.shape == (0,)


def test_strict_errors_keep_their_type_through_dataloader_workers(files):
    good, bad, _ = files
    data = LabelledImages([good, bad], np.zeros((2, 3), dtype=np.int8), LABELS, eval_transform(8, MEAN, STD),
                          strict=True)
    loader = DataLoader(data, batch_size=2, num_workers=1, collate_fn=collate_skipping_bad)
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        next(iter(loader))
