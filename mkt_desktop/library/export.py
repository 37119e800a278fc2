"""Photo tags out to CSV and JSON, written with the runtime's one atomic writer.

A row is `{"path": str, "labels": [{"label": str, "score": float | None, "confidence": float | None,
"status": str}]}` (confidence: the calibrated 0-to-1 one the window shows, optional in a row) with status
"accepted", "rejected" or "auto". Rows are checked before they are written; a bad row is a
ValueError naming the photo, and the file already at the destination is left as it was.
"""

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mkt_core.runtime.files import atomic_file, remove_stale_temporaries

CSV_COLUMNS = ("path", "label", "score", "confidence", "status")
STATUSES = frozenset({"accepted", "rejected", "auto"})
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); such a text cell
# gets a leading apostrophe, which spreadsheets show as plain text (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(text: str) -> str:
    """A text cell as a spreadsheet shows it and never runs it: `=1+1` -> `'=1+1`."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _checked(rows: Iterable[Mapping]) -> Iterator[dict]:
    """Each row as a plain dict with exactly the documented keys; ValueError for anything else."""
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping) or not isinstance(row.get("path"), str):
            raise ValueError(f"export row {index}: needs a 'path' string")
        where = f"export row {index} ({row['path']})"
        labels = row.get("labels", [])
        if isinstance(labels, str | bytes) or not isinstance(labels, Iterable):
            raise ValueError(f"{where}: 'labels' must be a list")
        clean = []
        for item in labels:
            if not isinstance(item, Mapping) or not isinstance(item.get("label"), str):
                raise ValueError(f"{where}: each label needs a 'label' string")
            score = _number(item.get("score"), f"{where}: label {item['label']!r} has score")
            confidence = _number(item.get("confidence"), f"{where}: label {item['label']!r} has confidence")
            status = item.get("status")
            if status not in STATUSES:
                raise ValueError(f"{where}: label {item['label']!r} has status {status!r}; "
                                 f"expected one of {', '.join(sorted(STATUSES))}")
            clean.append({"label": item["label"], "score": score, "confidence": confidence, "status": status})
        yield {"path": row["path"], "labels": clean}


def _number(value, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} {value!r}, not a finite number")
    return float(value)


@contextmanager
def _text(file: BinaryIO) -> Iterator[io.TextIOWrapper]:
    """UTF-8 text over the atomic binary file, detached afterwards so atomic_file still owns (and syncs) it."""
    text = io.TextIOWrapper(file, encoding="utf-8", newline="")
    try:
        yield text
        text.flush()
    finally:
        text.detach()


def write_csv(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """One line per (photo, label): path,label,score,confidence,status. UTF-8 without BOM, RFC 4180 quoting.

    A missing score or confidence is an empty cell; scores are written in full precision so they read back exactly.
    A photo with no labels has no line. A path or label starting with = + - @ (a spreadsheet formula)
    is written with a leading apostrophe (`neutralise_cell`); scores are numbers and stay as they are.
    """
    remove_stale_temporaries(Path(path).parent)
    with atomic_file(path) as file, _text(file) as text:
        writer = csv.writer(text)
        writer.writerow(CSV_COLUMNS)
        for row in _checked(rows):
            for item in row["labels"]:
                score = "" if item["score"] is None else repr(item["score"])
                confidence = "" if item["confidence"] is None else repr(item["confidence"])
                writer.writerow((neutralise_cell(row["path"]), neutralise_cell(item["label"]), score, confidence,
                                 item["status"]))


def write_json(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """A JSON list of the rows, UTF-8 with labels in their own script (no \\u escapes); a missing score or
    confidence is null."""
    data = list(_checked(rows))
    remove_stale_temporaries(Path(path).parent)
    with atomic_file(path) as file, _text(file) as text:
        json.dump(data, text, ensure_ascii=False, indent=2, allow_nan=False)
        text.write("\n")
