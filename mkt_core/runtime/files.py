"""Files replaced whole or not at all: the one atomic writer of the store, the score columns, the
sidecars and the exports; and the one reader of the JSON objects that describe a bundle, a store
or a checkpoint.

A reader or a crash never sees half a file: the bytes go to a hidden temporary file beside the
destination, are flushed to disk, then renamed over it, and the folder's entry is flushed too.
"""

import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

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
        fsync_dir(path.parent)
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


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """`data` as the whole of `path` (see atomic_file)."""
    with atomic_file(path) as file:
        file.write(data)


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename or a new file in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json_object(path: Path, error: type[Exception]) -> dict:
    """The JSON object in `path`, or `error` naming the file and what is wrong with it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{path}: malformed: expected a JSON object, not {type(value).__name__}")
    return value
