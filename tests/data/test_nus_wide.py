"""NUS-WIDE in the MKT / BiAM layout, built small: 5 seen and 3 unseen concepts, a handful of images."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mkt_core.data import ImageLoadError, collate_skipping_bad, eval_transform, load_nus_wide
from mkt_core.data.nus_wide import image_path
from tests.data.helpers import MEAN, STD, write_h5, write_image, write_pickle, write_random_bytes

SEEN = ["airport", "animal", "beach", "sea side", "clouds"]
UNSEEN = ["dog", "sunset", "water"]
SIZE = 16

# name -> targets; names are "<concept folder>_<a>_<b>.jpg" (the path below Flickr/ with "/" -> "_")
TRAIN = {
    "beach_0001_1111.jpg": [1, -1, 1, -1, -1],
    "sea_side_0002_2222.jpg": [-1, 1, -1, 1, 0],  # a folder name containing "_"
    "clouds_0003_3333.jpg": [-1, -1, -1, -1, 1],  # not on disk
    "animal_0004_4444.jpg": [-1, 1, -1, -1, -1],  # random bytes, not a JPEG
}
TEST = {
    "airport_0005_5555.jpg": [1, -1, -1, -1, -1, -1, 1, -1],
    "animal_0006_6666.jpg": [-1, 1, -1, -1, -1, 1, -1, 1],
    "beach_0007_7777.jpg": [-1, -1, 1, 1, -1, -1, 1, 1],
}
MISSING = "clouds_0003_3333.jpg"
CORRUPT = "animal_0004_4444.jpg"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("NUS-WIDE")
    # Concept files as released: one per line; stray spaces and Windows line ends are stripped.
    (root / "Concepts925.txt").write_bytes(("\r\n".join(SEEN) + "  \r\n").encode())
    (root / "Concepts81.txt").write_text("\n".join(UNSEEN) + "\n")
    write_pickle(root / "img_names.pkl", {"img_names": list(TRAIN)})
    write_pickle(root / "test_img_names.pkl", {"img_names": list(TEST)})
    train_h5 = {}
    for i, (name, labels) in enumerate(TRAIN.items()):
        train_h5[f"{name}-labels"] = np.array(labels, dtype=np.int8)
        train_h5[f"{name}-features"] = np.full((4, 2), i, dtype=np.float32)
    write_h5(root / "features" / "nus_wide_train.h5", train_h5)
    test_h5 = {}
    for name, labels in TEST.items():
        test_h5[f"{name}-labels"] = np.array(labels, dtype=np.int8)
        test_h5[f"{name}-labels_81"] = np.array(labels[len(SEEN):], dtype=np.int8)
    write_h5(root / "features" / "nus_wide_test.h5", test_h5)
    for k, name in enumerate(list(TRAIN) + list(TEST)):
        if name == MISSING:
            continue
        path = image_path(root, name)
        if name == CORRUPT:
            write_random_bytes(path)
        else:
            write_image(path, color=(20 * k, 100, 50))
    return root


def transform():
    return eval_transform(SIZE, MEAN, STD)


def test_names_map_to_flickr_paths_as_the_reference_does(tmp_path):
    flickr = tmp_path / "Flickr"
    assert image_path(tmp_path, "sea_side_0002_2222.jpg") == str(flickr / "sea_side" / "0002_2222.jpg")
    assert image_path(tmp_path, "actor_0001_2124494179.jpg") == str(flickr / "actor" / "0001_2124494179.jpg")
    with pytest.raises(ValueError, match="noconcept.jpg"):
        image_path(tmp_path, "noconcept.jpg")


def test_train_split_has_the_seen_labels_and_their_targets(root):
    split = load_nus_wide(root, "train", transform())
    assert split.name == "nus-wide/train"
    assert split.labels == SEEN
    assert split.unseen == []
    data = split.dataset
    assert data.labels == SEEN
    assert data.paths == [image_path(root, n) for n in TRAIN if n != MISSING]
    row = data.paths.index(image_path(root, "sea_side_0002_2222.jpg"))
    image, targets, index, ok = data[row]
    assert ok and index == row
    assert image.shape == (3, SIZE, SIZE)
    assert targets.dtype == torch.int8
    assert targets.tolist() == [-1, 1, -1, 1, 0]
    np.testing.assert_array_equal(data.targets, [TRAIN[n] for n in TRAIN if n != MISSING])


def test_a_missing_image_is_left_out_and_counted(root):
    data = load_nus_wide(root, "train", transform()).dataset
    assert data.missing == [image_path(root, MISSING)]
    assert len(data) == 3
    assert data.describe() == {"images": 3, "labels": 5, "missing": 1}


def test_test_split_has_seen_then_unseen_labels(root):
    split = load_nus_wide(root, "test", transform())
    assert split.name == "nus-wide/test"
    assert split.labels == SEEN + UNSEEN
    assert split.unseen == [5, 6, 7]
    assert [split.labels[i] for i in split.unseen] == UNSEEN
    assert split.seen == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(split.dataset.targets, list(TEST.values()))
    _, targets, _, ok = split.dataset[1]
    assert ok and targets.tolist() == TEST["animal_0006_6666.jpg"]
    assert split.dataset.missing == []


def test_a_corrupt_image_is_flagged_and_dropped_by_collate(root):
    data = load_nus_wide(root, "train", transform()).dataset
    bad_row = data.paths.index(image_path(root, CORRUPT))
    image, targets, index, ok = data[bad_row]
    assert not ok and index == bad_row
    assert image.shape == (3, SIZE, SIZE) and not image.any()
    assert targets.tolist() == TRAIN[CORRUPT]

    batches = list(DataLoader(data, batch_size=4, shuffle=False, collate_fn=collate_skipping_bad))
    assert len(batches) == 1
    images, targets, indices, bad = batches[0]
    assert bad == [bad_row]
    assert images.shape == (2, 3, SIZE, SIZE)
    assert indices.tolist() == [i for i in range(3) if i != bad_row]
    np.testing.assert_array_equal(targets.numpy(), data.targets[indices.numpy()])
    assert images.abs().sum(dim=(1, 2, 3)).min() > 0  # real pictures, not the zero stand-in


def test_strict_mode_raises_naming_the_file(root):
    # a missing image is fatal at once, naming it
    with pytest.raises(ImageLoadError, match="file not found") as info:
        load_nus_wide(root, "train", transform(), strict=True)
    assert image_path(root, MISSING) in str(info.value)
    # a corrupt one when it is read; the others still load
    write_image(Path(image_path(root, MISSING)))
    data = load_nus_wide(root, "train", transform(), strict=True).dataset
    bad_row = data.paths.index(image_path(root, CORRUPT))
    with pytest.raises(ImageLoadError) as info:
        data[bad_row]
    assert image_path(root, CORRUPT) in str(info.value)
    assert data[0][3] is True  # the good ones still load


def test_unknown_split_and_missing_label_rows_are_clear_errors(root, tmp_path):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_nus_wide(root, "val", transform())
    broken = tmp_path / "broken"
    for name in ("Concepts925.txt", "Concepts81.txt", "img_names.pkl"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes((root / name).read_bytes())
    write_h5(broken / "features" / "nus_wide_train.h5", {"beach_0001_1111.jpg-labels": np.ones(5, dtype=np.int8)})
    with pytest.raises(ValueError, match="sea_side_0002_2222.jpg-labels"):
        load_nus_wide(broken, "train", transform())


def test_mkt_train_runs_both_stages_and_eval_on_this_layout(root, tmp_path):
    """The tiny preset trains stage 1 -> stage 2 -> eval on NUS-WIDE's layout, through the CLI."""
    import json

    from trainer.cli import main as mkt_train

    config = Path(__file__).resolve().parents[2] / "trainer/configs/tiny.toml"
    common = ["--config", str(config), "--dataset", "nus-wide", "--data-root", str(root),
              "--batch-size", "2", "--workers", "0", "--eval-every", "0"]
    assert mkt_train(["stage1", *common, "--epochs", "2", "--out", str(tmp_path / "s1")]) == 0
    assert mkt_train(["stage2", *common, "--epochs", "1", "--out", str(tmp_path / "s2"),
                      "--init", str(tmp_path / "s1/checkpoints/last")]) == 0
    assert mkt_train(["eval", str(tmp_path / "s2/checkpoints/last"), *common, "--out", str(tmp_path / "ev")]) == 0
    table = json.loads((tmp_path / "ev/eval.json").read_text())
    assert table["labels"] == len(SEEN) + len(UNSEEN) and table["unseen_labels"] == len(UNSEEN)
    assert table["zsl"]["images"] == table["gzsl"]["images"] == len(TEST)  # NUS-WIDE keeps every image
    assert 0 <= table["zsl"]["map"] <= 1 and 0 <= table["gzsl"]["f1@3"] <= 1


def test_zsl_targets_are_read_from_labels_81_and_must_match_the_unseen_columns(root, tmp_path):
    """The reference takes ZSL targets from "-labels_81": a file where they disagree with "-labels" is refused."""
    broken = tmp_path / "broken"
    for name in ("Concepts925.txt", "Concepts81.txt", "test_img_names.pkl"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_bytes((root / name).read_bytes())
    datasets = {}
    for name, labels in TEST.items():
        datasets[f"{name}-labels"] = np.array(labels, dtype=np.int8)
        datasets[f"{name}-labels_81"] = np.array(labels[len(SEEN):], dtype=np.int8)
    datasets["animal_0006_6666.jpg-labels_81"] = np.array([-1, -1, 1], dtype=np.int8)  # not columns 5: of -labels
    h5 = broken / "features" / "nus_wide_test.h5"
    write_h5(h5, datasets)
    with pytest.raises(ValueError, match="labels_81") as error:
        load_nus_wide(broken, "test", transform())
    assert str(h5) in str(error.value) and "animal_0006_6666.jpg" in str(error.value)
    del datasets["animal_0006_6666.jpg-labels_81"]
    write_h5(h5, datasets)
    with pytest.raises(ValueError, match="animal_0006_6666.jpg-labels_81"):
        load_nus_wide(broken, "test", transform())
