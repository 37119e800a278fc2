"""Photo tags out to CSV and JSON, and the atomic file writer the exports share.

A row is `{"path": str, "labels": [{"label": str, "score": float | None, "status": str}]}` with status
"accepted", "rejected" or "auto". Rows are checked before they are written; a bad row is a
ValueError naming the photo, and the file already at the destination is left as it was.
"""

import csv
import io
import json
import math
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

CSV_COLUMNS = ("path", "label", "score", "status")
STATUSES = frozenset({"accepted", "rejected", "auto"})
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); such a text cell
# gets a leading apostrophe, which spreadsheets show as plain text (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# .<name>.<pid>-<8 hex>.tmp: the writing process is in the name, so a later run can tell a killed
# writer's leftover from a file another export is writing right now. (.<name>.<8 hex>.tmp: before that.)
_TEMPORARY = re.compile(r"\..+\.(?:(\d+)-)?[0-9a-f]{8}\.tmp")


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces `path` only when the block finishes without an error.

    Written to a hidden temporary file beside the destination, flushed to disk, then renamed over it
    (os.replace), so a reader or a crash never sees half a file. An existing file keeps its permissions;
    a new one gets the usual ones (0666 less the umask). The temporary name starts with "." so the
    scanner never mistakes it for a photo; a killed writer's one is removed by remove_stale_temporaries.
    A symbolic link is followed: the file it points to is replaced and the link stays a link. A link
    to nothing (or to a folder) is refused, never replaced by a regular file.
    """
    path = Path(path)
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_file():
            raise FileNotFoundError(f"{path}: a symbolic link to {target}, which is not a file; not replaced")
        path = target
    try:
        mode: int | None = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove the temporary files of atomic_file that a killed export left in `folder`; returns how many.

    Only files named as atomic_file names them, and only those whose writing process is gone (so a
    concurrent export's file is left alone; where that cannot be told, as on Windows, pid-named ones stay).
    """
    removed = 0
    try:
        entries = list(os.scandir(os.fspath(folder)))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMPORARY.fullmatch(entry.name)
        if match is None or (match.group(1) and _process_alive(int(match.group(1)))):
            continue
        with suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
    return removed


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) is not a probe there
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


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
            score = item.get("score")
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                    raise ValueError(f"{where}: label {item['label']!r} has score {score!r}, not a finite number")
                score = float(score)
            status = item.get("status")
            if status not in STATUSES:
                raise ValueError(f"{where}: label {item['label']!r} has status {status!r}; "
                                 f"expected one of {', '.join(sorted(STATUSES))}")
            clean.append({"label": item["label"], "score": score, "status": status})
        yield {"path": row["path"], "labels": clean}


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
    """One line per (photo, label): path,label,score,status. UTF-8 without BOM, RFC 4180 quoting.

    A missing score is an empty cell; scores are written in full precision so they read back exactly.
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
                writer.writerow((neutralise_cell(row["path"]), neutralise_cell(item["label"]), score,
                                 item["status"]))


def write_json(rows: Iterable[Mapping], path: str | os.PathLike) -> None:
    """A JSON list of the rows, UTF-8 with labels in their own script (no \\u escapes); a missing score is null."""
    data = list(_checked(rows))
    remove_stale_temporaries(Path(path).parent)
    with atomic_file(path) as file, _text(file) as text:
        json.dump(data, text, ensure_ascii=False, indent=2, allow_nan=False)
        text.write("\n")
