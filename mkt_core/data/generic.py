"""Your own photos: an annotation file plus a label file, for training or testing on anything.

Label file (UTF-8 text): one label per line, optionally followed by a TAB and `seen` or `unseen`
(no flag means seen; `unseen-<kind>`, e.g. `unseen-category`, is unseen too, the kind a note for
benchmarks that report kinds apart). Blank lines and lines starting with "#" are ignored. Order is kept.

    cat
    dog
    red panda<TAB>unseen

Annotations, either
- CSV with a header row naming the columns `path` and `labels`, and optionally `negatives`;
  several labels in a cell are separated by "|" or ";":

      path,labels
      photos/a.jpg,cat|dog

- or JSON Lines, one object per line:

      {"path": "photos/a.jpg", "labels": ["cat"], "negatives": ["dog"]}

Relative paths are relative to the annotation file's folder. A label a record does not list is a
negative (-1), unless the record lists its negatives explicitly (a `negatives` key, or a non-empty
`negatives` cell): then only those are negatives and the labels it names nowhere are unannotated (0).
The train split's targets cover the seen labels only; the test split's cover all labels, seen
first, then unseen.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mkt_core.data.images import LabelledImages
from mkt_core.data.splits import MultiLabelSplit
from mkt_core.data.transforms import Transform

_SEPARATORS = re.compile(r"[|;]")


def read_label_list(path: str | os.PathLike) -> list[str]:
    """The labels of a label file in file order, its flags ignored: one a line, whatever follows a TAB
    dropped, blank lines and lines starting with "#" skipped (a vocabulary to embed or ship)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    labels = (line.split("\t")[0].strip() for line in lines if not line.lstrip().startswith("#"))
    return [label for label in labels if label]


def read_label_file(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(seen labels, unseen labels), each in file order."""
    seen: list[str] = []
    unseen: list[str] = []
    where: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.rstrip("\r\n")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            label, _, flag = text.partition("\t")
            label, flag = label.strip(), flag.strip().lower() or "seen"
            if flag != "seen" and flag != "unseen" and not flag.startswith("unseen-"):
                raise ValueError(f"{path}:{number}: the flag after the TAB must be 'seen', 'unseen' or "
                                 f"'unseen-<kind>', got {flag!r}")
            if label in where:
                raise ValueError(f"{path}:{number}: label {label!r} is listed twice (first on line {where[label]})")
            where[label] = number
            (seen if flag == "seen" else unseen).append(label)
    if not seen and not unseen:
        raise ValueError(f"{path}: no labels in the file")
    return seen, unseen


def _split_cell(cell: str | None) -> list[str]:
    return [part.strip() for part in _SEPARATORS.split(cell or "") if part.strip()]


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns or "labels" not in columns:
            raise ValueError(f"{path}:1: the header must name the columns 'path' and 'labels', got {columns}")
        reader.fieldnames = columns
        for row in reader:
            record: dict[str, Any] = {"path": (row.get("path") or "").strip(), "labels": _split_cell(row["labels"])}
            negatives = _split_cell(row.get("negatives"))
            if negatives:
                record["negatives"] = negatives
            yield reader.line_num, record


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            for key in ("labels", "negatives"):
                value = record.get(key)
                if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise ValueError(f"{path}:{number}: {key!r} must be a list of strings")
            yield number, record


def read_annotations(path: str | os.PathLike, labels: list[str],
                     label_file: str | os.PathLike = "the label file") -> tuple[list[str], np.ndarray]:
    """Image paths (resolved against the annotation file's folder) and int8 targets over `labels`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _csv_records(path)
    elif suffix in (".jsonl", ".ndjson"):
        records = _jsonl_records(path)
    else:
        raise ValueError(f"{path}: annotations must be a .csv or .jsonl file")
    column = {label: i for i, label in enumerate(labels)}
    base = path.parent
    paths: list[str] = []
    rows: list[np.ndarray] = []

    def columns_of(names: list[str], number: int) -> list[int]:
        unknown = [name for name in names if name not in column]
        if unknown:
            raise ValueError(f"{path}:{number}: unknown label {unknown[0]!r} (not in {label_file})")
        return [column[name] for name in names]

    for number, record in records:
        image = record.get("path")
        if not isinstance(image, str) or not image.strip():
            raise ValueError(f"{path}:{number}: the record has no image path")
        positives = columns_of([s.strip() for s in record.get("labels") or []], number)
        explicit = record.get("negatives")
        row = np.full(len(labels), -1 if explicit is None else 0, dtype=np.int8)
        if explicit is not None:
            negatives = columns_of([s.strip() for s in explicit], number)
            both = sorted(set(positives) & set(negatives))
            if both:
                raise ValueError(f"{path}:{number}: label {labels[both[0]]!r} is both a label and a negative")
            row[negatives] = -1
        row[positives] = 1
        paths.append(os.path.normpath(base / image.strip()))
        rows.append(row)
    targets = np.stack(rows) if rows else np.zeros((0, len(labels)), dtype=np.int8)
    return paths, targets


def load_generic(annotations: str | os.PathLike, label_file: str | os.PathLike, transform: Transform,
                 split: Literal["train", "test"] = "train", strict: bool = False,
                 decode_size: int | None = None) -> MultiLabelSplit:
    """Train: targets over the seen labels. Test: seen then unseen labels, `unseen` their columns."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    seen, unseen = read_label_file(label_file)
    all_labels = seen + unseen
    paths, targets = read_annotations(annotations, all_labels, label_file)
    if split == "train":
        if not seen:
            raise ValueError(f"{label_file}: a training split needs at least one seen label")
        labels, targets, unseen_columns = seen, targets[:, : len(seen)], []
    else:
        labels, unseen_columns = all_labels, list(range(len(seen), len(all_labels)))
    dataset = LabelledImages(paths, targets, labels, transform, strict=strict, decode_size=decode_size)
    return MultiLabelSplit(dataset=dataset, labels=labels, unseen=unseen_columns,
                           name=f"{Path(annotations).stem}/{split}")
