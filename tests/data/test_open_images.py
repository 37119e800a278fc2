"""Open Images v4 in BiAM's layout, built small: 5 seen classes, 6 unseen of which 3 are evaluated."""

from pathlib import Path

import numpy as np
import pytest

from mkt_core.data import eval_transform, load_open_images
from tests.data.helpers import MEAN, STD, write_h5, write_image, write_pickle

SEEN_IDS = ["/m/0s1", "/m/0s2", "/m/0s3", "/m/0s4", "/m/0s5"]
UNSEEN_IDS = ["/m/0u0", "/m/0u1", "/m/0u2", "/m/0u3", "/m/0u4", "/m/0u5"]
TOP_UNSEEN = [4, 1, 5]  # positions in UNSEEN_IDS, in evaluation order
NAMES = {"/m/0s1": "Cat", "/m/0s2": "Dog", "/m/0s3": "Tulip, Sprenger's", "/m/0s4": "Sky",
         "/m/0u0": "U zero", "/m/0u1": "U one", "/m/0u4": "U four", "/m/0u5": "U five"}  # /m/0s5 has no name
SEEN_NAMES = ["Cat", "Dog", "Tulip, Sprenger's", "Sky", "/m/0s5"]
UNSEEN_NAMES = ["U four", "U one", "U five"]

TRAIN = {  # image -> (h5 chunk, seen labels)
    "000aa.jpg": (1, [1, -1, 0, 0, 0]),
    "000bb.jpg": (2, [0, 0, 0, -1, 0]),  # no positive
    "000cc.jpg": (2, [0, 1, 1, 0, -1]),
}
TEST = {  # image -> (seen labels, labels of all 6 unseen classes)
    "1aaa.jpg": ([1, 0, 0, 0, 0], [0, 0, 0, 0, -1, 0]),  # positive among seen only
    "1bbb.jpg": ([-1, 0, 0, 0, 0], [1, 0, 0, 0, 0, -1]),  # its only positive is an unseen class not evaluated
    "1ccc.jpg": ([0, 0, 0, 0, -1], [0, 1, 0, 0, 0, 1]),  # positives among evaluated unseen only
    "1ddd.jpg": ([0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]),  # both
}


def evaluated(unseen: list[int]) -> list[int]:
    return [unseen[i] for i in TOP_UNSEEN]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("OpenImages")
    classes = root / "2018_04"
    classes.mkdir()
    (classes / "classes-trainable.txt").write_text("\n".join(SEEN_IDS) + "\n")
    (classes / "class-descriptions.csv").write_text(
        "".join(f'{mid},"{name}"\n' if "," in name else f"{mid},{name}\n" for mid, name in NAMES.items()))
    write_pickle(classes / "unseen_labels.pkl", np.array(UNSEEN_IDS))  # a numpy array, as BiAM's
    (classes / "top_400_unseen.csv").write_text("\n".join(map(str, TOP_UNSEEN)) + "\n")
    for chunk in (1, 2):
        write_h5(root / "train_features" / f"CHUNK_{chunk}_CONV5_4_NO_CENTERCROP.h5", {
            **{f"{n}-seenlabels": np.array(lab, dtype=np.int8) for n, (c, lab) in TRAIN.items() if c == chunk},
            **{f"{n}-features": np.zeros(3, dtype=np.float32) for n, (c, _) in TRAIN.items() if c == chunk},
        })
    test_h5 = {}
    for name, (seen, unseen) in TEST.items():
        test_h5[f"{name}-seenlabels"] = np.array(seen, dtype=np.int8)
        test_h5[f"{name}-unseenlabels"] = np.array(unseen, dtype=np.int8)
        test_h5[f"{name}-features"] = np.zeros(3, dtype=np.float32)
    write_h5(root / "test_features" / "OPENIMAGES_TEST_CONV5_4_NO_CENTERCROP.h5", test_h5)
    for name in TRAIN:
        write_image(root / "train" / name)
    for name in TEST:
        write_image(root / "test" / name)
    return root


def transform():
    return eval_transform(16, MEAN, STD)


def test_train_split_reads_seen_labels_from_every_chunk(root):
    split = load_open_images(root, "train", transform())
    assert split.name == "open-images/train"
    assert split.labels == SEEN_NAMES
    assert split.unseen == []
    data = split.dataset
    assert data.paths == [str(root / "train" / n) for n in sorted(TRAIN)]
    np.testing.assert_array_equal(data.targets, [TRAIN[n][1] for n in sorted(TRAIN)])
    assert data.missing == []
    image, targets, _, ok = data[2]
    assert ok and image.shape == (3, 16, 16) and targets.tolist() == [0, 1, 1, 0, -1]


def test_test_split_has_seen_then_the_evaluated_unseen_labels(root):
    split = load_open_images(root, "test", transform())
    assert split.labels == SEEN_NAMES + UNSEEN_NAMES
    assert split.unseen == [5, 6, 7]
    data = split.dataset
    assert [Path(p).name for p in data.paths] == sorted(TEST)
    expected = [TEST[n][0] + evaluated(TEST[n][1]) for n in sorted(TEST)]
    np.testing.assert_array_equal(data.targets, expected)


@pytest.mark.parametrize("keep, kept", [
    (None, ["1aaa.jpg", "1bbb.jpg", "1ccc.jpg", "1ddd.jpg"]),
    ("seen", ["1aaa.jpg", "1ddd.jpg"]),
    ("unseen", ["1ccc.jpg", "1ddd.jpg"]),
    ("all", ["1aaa.jpg", "1ccc.jpg", "1ddd.jpg"]),
])
def test_evaluation_keeps_images_with_a_positive_in_the_evaluated_labels(root, keep, kept):
    split = load_open_images(root, "test", transform(), keep=keep)
    assert [Path(p).name for p in split.dataset.paths] == kept
    np.testing.assert_array_equal(split.dataset.targets, [TEST[n][0] + evaluated(TEST[n][1]) for n in kept])
    assert split.labels == SEEN_NAMES + UNSEEN_NAMES  # filtering rows never changes the columns


def test_train_split_filters_on_seen_labels_and_refuses_unseen(root):
    kept = load_open_images(root, "train", transform(), keep="seen").dataset
    assert [Path(p).name for p in kept.paths] == ["000aa.jpg", "000cc.jpg"]
    with pytest.raises(ValueError, match="unseen"):
        load_open_images(root, "train", transform(), keep="unseen")
    with pytest.raises(ValueError, match="keep"):
        load_open_images(root, "test", transform(), keep="everything")


def test_lesa_feature_folder_and_missing_images(root, tmp_path):
    copy = tmp_path / "oi"
    (copy / "2018_04").mkdir(parents=True)
    for f in (root / "2018_04").iterdir():
        (copy / "2018_04" / f.name).write_bytes(f.read_bytes())
    (copy / "test_features_lesa").mkdir()
    (copy / "test_features_lesa" / "t.h5").write_bytes(
        (root / "test_features" / "OPENIMAGES_TEST_CONV5_4_NO_CENTERCROP.h5").read_bytes())
    write_image(copy / "test" / "1ccc.jpg")
    data = load_open_images(copy, "test", transform()).dataset
    assert [Path(p).name for p in data.paths] == ["1ccc.jpg"]
    assert sorted(Path(p).name for p in data.missing) == ["1aaa.jpg", "1bbb.jpg", "1ddd.jpg"]
    with pytest.raises(FileNotFoundError, match="val_features"):
        load_open_images(copy, "validation", transform())


def test_mkt_train_runs_both_stages_and_eval_on_this_layout(root, tmp_path):
    """Stage 1 -> stage 2 -> eval with the tiny preset; evaluation keeps images with a positive, per setting."""
    import json

    from trainer.cli import main as mkt_train

    config = Path(__file__).resolve().parents[2] / "trainer/configs/tiny.toml"
    common = ["--config", str(config), "--dataset", "open-images", "--data-root", str(root),
              "--batch-size", "2", "--workers", "0", "--eval-every", "0", "--f1-k", "2", "4"]
    assert mkt_train(["stage1", *common, "--epochs", "2", "--out", str(tmp_path / "s1")]) == 0
    assert mkt_train(["stage2", *common, "--epochs", "1", "--out", str(tmp_path / "s2"),
                      "--init", str(tmp_path / "s1/checkpoints/last")]) == 0
    assert mkt_train(["eval", str(tmp_path / "s2/checkpoints/last"), *common, "--out", str(tmp_path / "ev")]) == 0
    table = json.loads((tmp_path / "ev/eval.json").read_text())
    assert table["labels"] == len(SEEN_NAMES) + len(UNSEEN_NAMES)
    assert table["zsl"]["images"] == 2  # 1ccc and 1ddd have a positive among the evaluated unseen labels
    assert table["gzsl"]["images"] == 3  # 1bbb's only positive is an unseen class that is not evaluated
    assert "f1@4" in table["zsl"]
    # BiAM's protocol: WmAP (the paper's Table 1) in both settings, and in the Markdown table
    assert all(0 <= table[s]["wmap"] <= 1 for s in ("zsl", "gzsl"))
    header = next(line for line in (tmp_path / "ev/eval.md").read_text().splitlines() if line.startswith("| setting"))
    assert "| WmAP |" in header
