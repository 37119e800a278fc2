"""Open Images v4 (2018_04) in BiAM's layout (akshitac8/BiAM), the benchmark MKT reports on.

    root/
      2018_04/classes-trainable.txt    the 7,186 seen ("trainable") class ids (MIDs), one per line
      2018_04/class-descriptions.csv   "MID,Display name" rows, no header
      2018_04/unseen_labels.pkl        a pickled numpy array of the 2,594 unseen MIDs
      2018_04/top_400_unseen.csv       one integer per line, no header: the 400 evaluated unseen
                                       classes, as positions in unseen_labels.pkl
      train/<ImageID>.jpg, validation/<ImageID>.jpg, test/<ImageID>.jpg
      train_features/*.h5              "<ImageID>.jpg-seenlabels": 7,186 values per image
      val_features/*.h5                (the same, for validation)
      test_features/*.h5               "<ImageID>.jpg-seenlabels" (7,186) and
                                       "<ImageID>.jpg-unseenlabels" (all 2,594 unseen classes)

Where this comes from: BiAM's feature_extraction/extract_openimages_{train,val,test}.py read the
class files above and the images from datasets/OpenImages/{train,validation,test}/<ImageID>.jpg,
and write h5 datasets named file + "-seenlabels" / "-unseenlabels" (file = "<ImageID>.jpg") with
values 2 * Confidence - 1 (1 positive, -1 negative, 0 not annotated). Its evaluate_openimages.py
takes the image names from the test h5 keys, and the 400 unseen columns with
`labels[:, top_400_unseen]`; it concatenates seen and unseen (7,586 labels, seen first).

Ambiguities, and the reading chosen here:
- BiAM's scripts name the feature folders differently (train_features vs train_features_lesa,
  test_features vs test_features_lesa, val_features_lesa) and split the train h5 into chunks;
  every *.h5 file of the first of "<split>_features" / "<split>_features_lesa" that exists is read
  ("val" for the validation split). An image found in two files keeps its first row (files sorted).
- The README's download script saves images to image_data/<split>/; the extraction scripts, which
  produced the labels, read them from <root>/<split>/, and that is what is used.
- Label names are the display names from class-descriptions.csv (a text model needs words, not
  MIDs); a MID without a description keeps its MID as name. A few display names occur twice.
- The number of unseen classes is however many top_400_unseen.csv lists (400 for the real data).
- Evaluation in BiAM keeps only images with a positive among the evaluated labels; `keep` selects
  that set ("seen", "unseen" or "all" labels). `keep=None` keeps every image: mkt_core.train.evaluation
  then filters per setting itself, which is how ZSL (unseen) and GZSL (all) get their own image sets.
- Targets are a dense int8 matrix in memory: N x 7,186 bytes, about 12 GB for the full 1.7 M
  image train split. Subsample the name lists (or use a machine with the memory) for that split.
"""

from __future__ import annotations

import csv
import glob
import os
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from mkt_core.data.images import LabelledImages
from mkt_core.data.safe_pickle import load_name_list
from mkt_core.data.splits import MultiLabelSplit
from mkt_core.data.transforms import Transform

CLASS_DIR = "2018_04"
SEEN_FILE = "classes-trainable.txt"
DESCRIPTIONS_FILE = "class-descriptions.csv"
UNSEEN_FILE = "unseen_labels.pkl"
TOP_UNSEEN_FILE = "top_400_unseen.csv"
SEEN_SUFFIX = "-seenlabels"
UNSEEN_SUFFIX = "-unseenlabels"
SPLITS = {"train": "train", "validation": "val", "test": "test"}  # split -> feature folder prefix
Keep = Literal["seen", "unseen", "all"] | None


def read_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """MID -> display name, from "MID,Display name" rows (quoted names may contain commas)."""
    names: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0].strip():
                names[row[0].strip()] = row[1].strip()
    return names


def read_class_ids(root: str | os.PathLike) -> tuple[list[str], list[str], list[int]]:
    """(seen MIDs, all unseen MIDs, positions of the evaluated unseen MIDs among them), reference order."""
    class_dir = Path(root) / CLASS_DIR
    with open(class_dir / SEEN_FILE, encoding="utf-8") as f:
        seen = [line.strip() for line in f if line.strip()]
    all_unseen = load_name_list(class_dir / UNSEEN_FILE, allow_numpy=True)
    with open(class_dir / TOP_UNSEEN_FILE, encoding="utf-8") as f:
        top = [int(line.split(",")[0]) for line in f if line.strip()]
    bad = [i for i in top if not 0 <= i < len(all_unseen)]
    if bad:
        raise ValueError(f"{class_dir / TOP_UNSEEN_FILE}: positions {bad[:5]} are outside the "
                         f"{len(all_unseen)} classes of {UNSEEN_FILE}")
    return seen, all_unseen, top


def feature_files(root: str | os.PathLike, split: str) -> list[str]:
    """The h5 label files of a split: every *.h5 of the first feature folder that has any."""
    prefix = SPLITS[split]
    for folder in (f"{prefix}_features", f"{prefix}_features_lesa"):
        files = sorted(glob.glob(os.path.join(os.fspath(root), folder, "*.h5")))
        if files:
            return files
    raise FileNotFoundError(f"no *.h5 label files in {root}/{prefix}_features or {root}/{prefix}_features_lesa")


def read_split_labels(files: list[str], seen_width: int,
                      unseen_positions: list[int] | None) -> tuple[list[str], np.ndarray]:
    """Image names (sorted) and int8 targets: the seen columns, then (if positions are given) those unseen ones.

    Two passes (find the names, then fill one preallocated matrix), because the train split is big.
    """
    where: dict[str, str] = {}
    for path in files:
        with h5py.File(path, "r") as h5:
            for key in h5.keys():
                if key.endswith(SEEN_SUFFIX):
                    where.setdefault(key[: -len(SEEN_SUFFIX)], path)
    names = sorted(where)
    width = seen_width + len(unseen_positions or [])
    targets = np.zeros((len(names), width), dtype=np.int8)
    rows_of: dict[str, list[tuple[int, str]]] = {path: [] for path in files}
    for row, name in enumerate(names):
        rows_of[where[name]].append((row, name))
    for path in files:
        with h5py.File(path, "r") as h5:
            for row, name in rows_of[path]:
                seen = np.asarray(h5[name + SEEN_SUFFIX]).reshape(-1)
                if seen.shape[0] != seen_width:
                    raise ValueError(f"{path}: {name + SEEN_SUFFIX!r} has {seen.shape[0]} values, "
                                     f"expected {seen_width}")
                targets[row, :seen_width] = np.sign(seen)
                if unseen_positions is None:
                    continue
                key = name + UNSEEN_SUFFIX
                if key not in h5:
                    raise ValueError(f"{path}: no dataset {key!r} next to {name + SEEN_SUFFIX!r}")
                unseen = np.asarray(h5[key]).reshape(-1)
                if unseen_positions and max(unseen_positions) >= unseen.shape[0]:
                    raise ValueError(f"{path}: {key!r} has only {unseen.shape[0]} values")
                targets[row, seen_width:] = np.sign(unseen[unseen_positions])
    return names, targets


def load_open_images(root: str | os.PathLike, split: Literal["train", "validation", "test"], transform: Transform,
                     strict: bool = False, keep: Keep = None, decode_size: int | None = None) -> MultiLabelSplit:
    """Train / validation: the seen labels. Test: seen + the 400 evaluated unseen labels, seen first.

    `keep` drops images without a positive among the seen, the unseen or all labels (BiAM's
    evaluation protocol); None keeps every image.
    """
    if split not in SPLITS:
        raise ValueError(f"Open Images split must be one of {sorted(SPLITS)}, got {split!r}")
    if keep not in (None, "seen", "unseen", "all"):
        raise ValueError(f"keep must be None, 'seen', 'unseen' or 'all', got {keep!r}")
    root = Path(root)
    with_unseen = split == "test"
    if keep == "unseen" and not with_unseen:
        raise ValueError(f"keep='unseen' needs unseen labels, which only the test split has (got {split!r})")
    seen_ids, all_unseen_ids, top_unseen = read_class_ids(root)
    names, targets = read_split_labels(feature_files(root, split), len(seen_ids), top_unseen if with_unseen else None)

    n_seen = len(seen_ids)
    if keep is not None:
        columns = {"seen": slice(0, n_seen), "unseen": slice(n_seen, None), "all": slice(None)}[keep]
        has_positive = (targets[:, columns] == 1).any(axis=1)
        names = [n for n, ok in zip(names, has_positive, strict=True) if ok]
        targets = targets[has_positive]

    descriptions = read_descriptions(root / CLASS_DIR / DESCRIPTIONS_FILE)
    ids = seen_ids + ([all_unseen_ids[i] for i in top_unseen] if with_unseen else [])
    labels = [descriptions.get(mid, mid) for mid in ids]
    paths = [os.path.join(os.fspath(root), split, name) for name in names]
    dataset = LabelledImages(paths, targets, labels, transform, strict=strict, decode_size=decode_size)
    unseen_columns = list(range(n_seen, len(labels))) if with_unseen else []
    name = f"open-images/{split}" + (f"[{keep}]" if keep else "")
    return MultiLabelSplit(dataset=dataset, labels=labels, unseen=unseen_columns, name=name)
