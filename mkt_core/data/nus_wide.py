"""NUS-WIDE in the layout of the MKT release (sunanhe/MKT, utils/dataset.py), which follows BiAM.

    root/
      Flickr/<concept>/<a>_<b>.jpg        the images, as NUS-WIDE distributes them
      Concepts925.txt                      the 925 seen labels, one per line
      Concepts81.txt                       the 81 unseen labels, one per line
      img_names.pkl                        {"img_names": [name, ...]}   training images
      test_img_names.pkl                   {"img_names": [name, ...]}   test images
      features/nus_wide_train.h5           "<name>-labels": 925 values per image
      features/nus_wide_test.h5            "<name>-labels": 1006 values (925 seen, then 81 unseen),
                                           "<name>-labels_81": the 81 unseen values again

An image name is its path below Flickr/ with "/" replaced by "_" (BiAM's extraction script writes
`filename.replace('/', '_')`), e.g. "actor_0001_2124494179.jpg". The reference maps it back by
splitting at "_": the last two parts are the file name, everything before them the concept folder
(concept names may themselves contain "_"). The label order is the reference's: MKT builds its label
list as Concepts925 + Concepts81. The reference's ZSL targets are the "-labels_81" datasets; they
are read and checked equal to columns 925: of the test "-labels" (an error names the file if not),
so that ZSL and GZSL score the same annotations. The big "-features" datasets (BiAM's precomputed
VGG features) are not needed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from mkt_core.data.images import LabelledImages
from mkt_core.data.safe_pickle import load_name_list
from mkt_core.data.splits import MultiLabelSplit
from mkt_core.data.transforms import Transform

SEEN_FILE = "Concepts925.txt"
UNSEEN_FILE = "Concepts81.txt"
NAME_FILES = {"train": "img_names.pkl", "test": "test_img_names.pkl"}
LABEL_FILES = {"train": os.path.join("features", "nus_wide_train.h5"),
               "test": os.path.join("features", "nus_wide_test.h5")}
LABELS_SUFFIX = "-labels"
UNSEEN_LABELS_SUFFIX = "-labels_81"


def read_concepts(path: str | os.PathLike) -> list[str]:
    """One label per line, whitespace stripped, blank lines ignored, file order kept."""
    with open(path, encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    if not labels:
        raise ValueError(f"{path}: no labels in the file")
    return labels


def image_path(root: str | os.PathLike, name: str) -> str:
    """Image name -> file: "<concept>_<a>_<b>.jpg" -> root/Flickr/<concept>/<a>_<b>.jpg (as the reference)."""
    parts = name.split("_")
    if len(parts) < 3:
        raise ValueError(f"NUS-WIDE image name {name!r} is not of the form <concept>_<number>_<id>.jpg")
    return os.path.join(os.fspath(root), "Flickr", "_".join(parts[:-2]), parts[-2] + "_" + parts[-1])


def read_targets(h5_path: str | os.PathLike, names: list[str], width: int,
                 suffix: str = LABELS_SUFFIX) -> np.ndarray:
    """The "<name><suffix>" row of every image as int8 {1, -1, 0} (sign of the stored value)."""
    targets = np.zeros((len(names), width), dtype=np.int8)
    with h5py.File(h5_path, "r") as h5:
        for row, name in enumerate(names):
            key = name + suffix
            if key not in h5:
                raise ValueError(f"{h5_path}: no dataset {key!r} for image {name!r}")
            values = np.asarray(h5[key]).reshape(-1)
            if values.shape[0] != width:
                raise ValueError(f"{h5_path}: {key!r} has {values.shape[0]} values, expected {width}")
            targets[row] = np.sign(values).astype(np.int8)
    return targets


def check_unseen_targets(h5_path: str | os.PathLike, names: list[str], targets: np.ndarray, n_seen: int) -> None:
    """The reference's ZSL targets ("-labels_81") must be the unseen columns of "-labels"."""
    unseen = read_targets(h5_path, names, targets.shape[1] - n_seen, suffix=UNSEEN_LABELS_SUFFIX)
    differs = np.flatnonzero((unseen != targets[:, n_seen:]).any(axis=1))
    if differs.size:
        name = names[differs[0]]
        raise ValueError(f"{h5_path}: {name + UNSEEN_LABELS_SUFFIX!r} differs from columns {n_seen}: of "
                         f"{name + LABELS_SUFFIX!r} ({differs.size} images differ): the ZSL and GZSL targets "
                         f"would disagree")


def load_nus_wide(root: str | os.PathLike, split: Literal["train", "test"], transform: Transform,
                  strict: bool = False, decode_size: int | None = None) -> MultiLabelSplit:
    """The train split (925 seen labels) or the test split (925 seen + 81 unseen, seen first)."""
    if split not in NAME_FILES:
        raise ValueError(f"NUS-WIDE split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    seen = read_concepts(root / SEEN_FILE)
    unseen = read_concepts(root / UNSEEN_FILE)
    labels = seen if split == "train" else seen + unseen
    names = load_name_list(root / NAME_FILES[split])
    targets = read_targets(root / LABEL_FILES[split], names, len(labels))
    if split == "test":
        check_unseen_targets(root / LABEL_FILES[split], names, targets, len(seen))
    paths = [image_path(root, name) for name in names]
    dataset = LabelledImages(paths, targets, labels, transform, strict=strict, decode_size=decode_size)
    unseen_columns = [] if split == "train" else list(range(len(seen), len(labels)))
    return MultiLabelSplit(dataset=dataset, labels=labels, unseen=unseen_columns, name=f"nus-wide/{split}")
