"""Your own photos: CSV and JSONL annotations with a label file marking unseen labels."""

import json
from pathlib import Path

import numpy as np
import pytest

from mkt_core.data import eval_transform, load_generic
from mkt_core.data.generic import read_label_file
from tests.data.helpers import MEAN, STD, write_image

LABEL_FILE = "# my labels\ncat\ndog\n\nbird\tseen\nred panda\tunseen\nfox\tUNSEEN\n"
SEEN = ["cat", "dog", "bird"]
UNSEEN = ["red panda", "fox"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """Annotations in project/ann/, photos in project/ann/photos/, the cwd somewhere else."""
    (tmp_path / "labels.txt").write_text(LABEL_FILE)
    for name in ("a.jpg", "b.png", "c.jpg"):
        write_image(tmp_path / "ann" / "photos" / name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def transform():
    return eval_transform(16, MEAN, STD)




def test_label_file_marks_unseen_labels(project):
    assert read_label_file(project / "labels.txt") == (SEEN, UNSEEN)


def test_label_file_unseen_kinds_count_as_unseen(tmp_path):
    # what the synthetic world's write_multilabel_set writes: unseen labels of two kinds
    path = tmp_path / "labels.tsv"
    path.write_text("red star\tseen\nred moon\tunseen-category\nred heart\tunseen-composition\n")
    assert read_label_file(path) == (["red star"], ["red moon", "red heart"])
    path.write_text("red star\tsometimes\n")
    with pytest.raises(ValueError, match="labels.tsv:1"):
        read_label_file(path)


def test_csv_train_and_test_splits(project):
    csv_path = project / "ann" / "train.csv"
    csv_path.write_text("path,labels\n"
                        "photos/a.jpg,cat|dog\n"
                        "photos/b.png,bird; red panda\n"
                        "photos/c.jpg,\n"
                        "photos/gone.jpg,cat\n")
    train = load_generic(csv_path, project / "labels.txt", transform(), split="train")
    assert train.labels == SEEN and train.unseen == []
    assert train.name == "train/train"
    data = train.dataset
    photos = project / "ann" / "photos"
    assert data.paths == [str(photos / "a.jpg"), str(photos / "b.png"), str(photos / "c.jpg")]
    assert data.missing == [str(photos / "gone.jpg")]
    np.testing.assert_array_equal(data.targets, [[1, 1, -1], [-1, -1, 1], [-1, -1, -1]])
    image, targets, _, ok = data[1]
    assert ok and image.shape == (3, 16, 16) and targets.tolist() == [-1, -1, 1]

    test = load_generic(csv_path, project / "labels.txt", transform(), split="test")
    assert test.labels == SEEN + UNSEEN
    assert test.unseen == [3, 4]
    np.testing.assert_array_equal(test.dataset.targets,
                                  [[1, 1, -1, -1, -1], [-1, -1, 1, 1, -1], [-1, -1, -1, -1, -1]])


def test_jsonl_with_explicit_negatives(project):
    path = project / "ann" / "test.jsonl"
    records = [
        {"path": "photos/a.jpg", "labels": ["cat"]},  # others negative
        {"path": "photos/b.png", "labels": ["fox"], "negatives": ["dog"]},  # others unannotated
        {"path": str(project / "ann" / "photos" / "c.jpg"), "labels": [], "negatives": []},  # absolute path
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    split = load_generic(path, project / "labels.txt", transform(), split="test")
    np.testing.assert_array_equal(split.dataset.targets, [[1, -1, -1, -1, -1],
                                                          [0, -1, 0, 0, 1],
                                                          [0, 0, 0, 0, 0]])
    assert split.dataset.paths[2] == str(project / "ann" / "photos" / "c.jpg")
    train = load_generic(path, project / "labels.txt", transform(), split="train")
    np.testing.assert_array_equal(train.dataset.targets, [[1, -1, -1], [0, -1, 0], [0, 0, 0]])


def test_csv_negatives_column(project):
    path = project / "ann" / "n.csv"
    path.write_text("path,labels,negatives\nphotos/a.jpg,cat,dog|fox\nphotos/b.png,dog,\n")
    split = load_generic(path, project / "labels.txt", transform(), split="test")
    np.testing.assert_array_equal(split.dataset.targets, [[1, -1, 0, 0, -1], [-1, 1, -1, -1, -1]])


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_an_unknown_label_names_itself_the_file_and_the_line(project, suffix):
    path = project / "ann" / f"bad.{suffix}"
    if suffix == "csv":
        path.write_text("path,labels\nphotos/a.jpg,cat\nphotos/b.png,dog|unicorn\n")
        line = 3
    else:
        path.write_text('{"path": "photos/a.jpg", "labels": ["cat"]}\n\n'
                        '{"path": "photos/b.png", "labels": ["dog"], "negatives": ["unicorn"]}\n')
        line = 3
    with pytest.raises(ValueError) as info:
        load_generic(path, project / "labels.txt", transform())
    message = str(info.value)
    assert "'unicorn'" in message
    assert f"{path}:{line}:" in message
    assert "labels.txt" in message


def test_other_mistakes_are_clear_errors(project):
    labels = project / "labels.txt"
    both = project / "ann" / "both.jsonl"
    both.write_text('{"path": "photos/a.jpg", "labels": ["cat"], "negatives": ["cat"]}\n')
    with pytest.raises(ValueError, match="both a label and a negative"):
        load_generic(both, labels, transform())
    header = project / "ann" / "header.csv"
    header.write_text("file,tags\nphotos/a.jpg,cat\n")
    with pytest.raises(ValueError, match="'path' and 'labels'"):
        load_generic(header, labels, transform())
    twice = project / "twice.txt"
    twice.write_text("cat\ndog\ncat\n")
    with pytest.raises(ValueError, match="line 1"):
        read_label_file(twice)
    flag = project / "flag.txt"
    flag.write_text("cat\tmaybe\n")
    with pytest.raises(ValueError, match="flag.txt:1"):
        read_label_file(flag)
    other = project / "ann" / "a.txt"
    other.write_text("x")
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        load_generic(other, labels, transform())
