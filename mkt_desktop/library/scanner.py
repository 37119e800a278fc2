"""Finding photos on disk: the walk, content hashes and the EXIF capture time.

The walk never stops on a bad entry. Whatever it cannot use (a folder it may not read, a
symlink that loops) comes out as a `ScanProblem` with a plain reason, so the caller can list it
under failures while every other photo is found. A name that is not valid UTF-8 is a valid POSIX
name: it is found like any other, as Python's surrogate-escaped text (`os.fsdecode`), which gives
back the exact bytes (`os.fsencode`); `printable_path` is its readable form.

Folders whose names match `DEFAULT_SKIPPED` (hidden ones, and what NAS boxes and file managers
leave about: Synology's @eaDir and #recycle, QNAP's @Recycle, Windows' $RECYCLE.BIN...) are not
walked; `scan(root, skip=...)` takes other patterns (the app's `skip_folders` setting).

Symbolic links are followed, to files and to folders, as digiKam and Immich users expect of a
library that links in an external drive. Real folders are walked first and linked folders
afterwards, so a photo reachable both ways is found once, under its real path; a folder is
never walked twice (visited folders are tracked by (st_dev, st_ino)).
"""

import errno
import fnmatch
import hashlib
import io
import os
import re
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from mkt_core.runtime.images import HEIF_SUFFIXES, RAW_SUFFIXES, heif_supported, raw_supported


def _load_heif() -> bool:
    """HEIC/HEIF photos count only when pillow-heif is installed; registering its opener here means
    every module that lists photos through the scanner can also decode them."""
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception:  # noqa: BLE001 - missing or broken native library: HEIC is simply unsupported
        return False
    return True


_HEIF = _load_heif()

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"} | ({".heic", ".heif"} if _HEIF else set())
    | (HEIF_SUFFIXES if heif_supported() else set()) | (RAW_SUFFIXES if raw_supported() else set())
)

CHUNK_SIZE = 1 << 20  # 1 MiB reads keep the per-call overhead negligible next to the hashing itself

_DirId = tuple[int, int]  # (st_dev, st_ino)

# Folder names never walked by default (case-insensitive shell patterns): hidden folders (.git,
# .thumbnails, .Trash-1000...), NAS thumbnails and recycle bins, Windows' and ext4's system folders.
DEFAULT_SKIPPED: tuple[str, ...] = (".*", "@eaDir", "#recycle", "#snapshot", "@Recycle", "@Recently-Snapshot",
                                    "$RECYCLE.BIN", "System Volume Information", "lost+found")


def skipped_folder(name: str, patterns: tuple[str, ...] | list[str]) -> bool:
    folded = name.casefold()
    return any(fnmatch.fnmatchcase(folded, pattern.casefold()) for pattern in patterns)


def heic_supported() -> bool:
    """True when pillow-heif was importable, so .heic/.heif files are listed and can be decoded."""
    return _HEIF


def is_photo_name(name: str) -> bool:
    """Photos are recognised by suffix, case-insensitively; sidecars and everything else are not photos."""
    return os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES


@dataclass(frozen=True, slots=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class ScanProblem:
    path: str  # always printable: undecodable bytes appear as \xNN escapes
    reason: str


class FileChanged(Exception):
    """The file was written to between the scan and the end of hashing: its hash would describe neither version."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = printable_path(path)
        super().__init__(f"{self.path}: the file changed while being read")


def printable_path(path: str | bytes | os.PathLike) -> str:
    """A path as text a person can read and search for; undecodable bytes become \\xNN instead of failing."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "not found (removed during the scan?)"
    return (exc.strerror or str(exc)).lower()


@dataclass(frozen=True, slots=True)
class _Link:
    path: str
    target: _DirId
    ancestors: tuple[_DirId, ...]  # the folders walked to reach the link, including the one holding it


def scan(root: str | bytes | os.PathLike, skip: tuple[str, ...] | list[str] = DEFAULT_SKIPPED
         ) -> Iterator[FoundFile | ScanProblem]:
    """Every photo under `root` (recursively), and a ScanProblem for everything that could not be looked at.

    Hidden files (name starting with "."), folders matching `skip` and non-photo files are skipped
    silently. Within a folder, entries come in name order, so two scans of the same tree agree.
    """
    root = os.fsdecode(root)
    skip = tuple(skip)
    try:
        st = os.stat(root)
    except OSError as exc:
        yield ScanProblem(printable_path(root), "folder not found" if isinstance(exc, FileNotFoundError)
                          else _reason(exc))
        return
    if not stat.S_ISDIR(st.st_mode):
        yield ScanProblem(printable_path(root), "not a folder")
        return
    root_id = (st.st_dev, st.st_ino)
    visited: set[_DirId] = {root_id}
    links: deque[_Link] = deque()
    yield from _walk(root, (root_id,), visited, links, skip)
    while links:
        link = links.popleft()
        if link.target in link.ancestors:
            yield ScanProblem(printable_path(link.path), "symlink loop")
        elif link.target not in visited:  # else: already walked under its real path or another link
            visited.add(link.target)
            yield from _walk(link.path, link.ancestors + (link.target,), visited, links, skip)


def _walk(top: str, top_ancestors: tuple[_DirId, ...], visited: set[_DirId],
          links: deque[_Link], skip: tuple[str, ...]) -> Iterator[FoundFile | ScanProblem]:
    """Depth-first over real folders below `top`; linked folders are queued on `links` for later."""
    stack: list[tuple[str, tuple[_DirId, ...]]] = [(top, top_ancestors)]
    while stack:
        folder, ancestors = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield ScanProblem(printable_path(folder), _reason(exc))
            continue
        subfolders: list[tuple[str, tuple[_DirId, ...]]] = []
        for entry in entries:
            if entry.name.startswith(".") and (skipped_folder(entry.name, skip) or is_photo_name(entry.name)):
                continue  # hidden: a folder the settings skip (the default), or a file like macOS' "._IMG_1.jpg"
            is_link = False
            try:
                is_link = entry.is_symlink()
                if not is_link and entry.is_dir(follow_symlinks=False):
                    kind, info = "dir", entry.stat(follow_symlinks=False)
                elif not is_link:
                    if not is_photo_name(entry.name):
                        continue
                    kind, info = "file", entry.stat(follow_symlinks=False)
                else:
                    info = entry.stat(follow_symlinks=True)
                    kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
                    if kind == "file" and not is_photo_name(entry.name):
                        continue
            except OSError as exc:
                if is_link and isinstance(exc, FileNotFoundError):
                    if is_photo_name(entry.name):
                        yield ScanProblem(printable_path(entry.path), "broken symbolic link")
                    continue
                yield ScanProblem(printable_path(entry.path), _reason(exc))
                continue

            if kind == "dir" and skipped_folder(entry.name, skip):
                continue
            if kind == "file":
                if stat.S_ISREG(info.st_mode):
                    yield FoundFile(entry.path, info.st_size, info.st_mtime_ns)
                else:  # a FIFO or device named like a photo: reading it could block forever
                    yield ScanProblem(printable_path(entry.path), "not a regular file")
                continue
            dir_id = (info.st_dev, info.st_ino)
            if is_link:
                links.append(_Link(entry.path, dir_id, ancestors))
            elif dir_id in ancestors:  # only a bind mount can make a real folder contain itself
                yield ScanProblem(printable_path(entry.path), "folder loop (bind mount)")
            elif dir_id not in visited:
                visited.add(dir_id)
                subfolders.append((entry.path, ancestors + (dir_id,)))
        stack.extend(reversed(subfolders))


def content_hash(path: str | os.PathLike, size_hint: int | None = None) -> str:
    """BLAKE2b-256 of the whole file, hex (64 characters): recognises moved, renamed and duplicate photos.

    Cryptographic strength makes an accidental collision, which would merge two photos, practically impossible,
    and BLAKE2b is as fast as MD5 on 64-bit CPUs. `size_hint` only sizes the read buffer for small files.
    """
    return _hash_file(path, size_hint)[0]


def _hash_file(path: str | os.PathLike, size_hint: int | None) -> tuple[str, int]:
    digest = hashlib.blake2b(digest_size=32)
    # One byte more than the expected size lets a small file be read, and its end seen, in one call.
    buffer = bytearray(CHUNK_SIZE if size_hint is None or size_hint < 0 else min(CHUNK_SIZE, size_hint + 1))
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            digest.update(view[:count])
            total += count
    return digest.hexdigest(), total


def hash_stable(path: str | os.PathLike, size: int, mtime_ns: int) -> str:
    """content_hash, refusing a file that differs from what the scan saw (a copy in progress, an editor saving):
    raises FileChanged if the bytes read, the size or the modification time no longer match."""
    return read_stable(path, size, mtime_ns, keep_bytes=0)[0]


# A new photo's bytes are kept from the hash to the decoding (one read of the file, not four) up to this
# size; a larger file (a long RAW, a panorama) is hashed in chunks and read again by its decoder.
KEEP_BYTES = 64 * 1024 * 1024


def read_stable(path: str | os.PathLike, size: int, mtime_ns: int, keep_bytes: int = KEEP_BYTES
                ) -> tuple[str, bytes | None]:
    """(content_hash, the file's bytes or None when larger than `keep_bytes`), read once; FileChanged when
    the bytes read, the size or the modification time differ from what the scan saw."""
    if 0 <= size <= keep_bytes:
        with open(path, "rb") as file:  # buffered: read(n) returns n bytes unless the file ends first
            data = file.read(size + 1)  # one byte over: a file that grew is seen
        digest, read = hashlib.blake2b(data, digest_size=32).hexdigest(), len(data)
    else:
        (digest, read), data = _hash_file(path, size), None
    after = os.stat(path)
    if read != size or after.st_size != size or after.st_mtime_ns != mtime_ns:
        raise FileChanged(path)
    return digest, data


_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xDA)})  # TEM, RST0-7, SOI, EOI: markers without a length
_EOI = b"\xff\xd9"


def jpeg_problem(path: str | os.PathLike | bytes) -> str | None:
    """Why a JPEG is damaged in a way its decoder does not notice, or None (also for any other file).

    Pillow refuses a JPEG that ends early, but one whose image data goes on as zeros or garbage (a header
    followed by 1 GiB of zeros, a download preallocated and never finished) decodes as a grey or noisy
    photo. A whole JPEG has its end-of-image marker after the image data: that is what is checked,
    searching from the end of the file, where it nearly always is. `path` may be the file's bytes.
    """
    with io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb") as file:
        if file.read(3) != b"\xff\xd8\xff":
            return None
        position = 2
        while True:  # the segments before the image data carry their lengths
            file.seek(position)
            head = file.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return None  # malformed headers: the decoder names the problem
            if head[1] == 0xFF:  # fill byte
                position += 1
                continue
            if head[1] in _JPEG_NO_LENGTH:
                position += 2
                continue
            position += 2 + int.from_bytes(head[2:4], "big")
            if head[1] == 0xDA:  # start of scan: the image data follows
                break
        size = end = file.seek(0, os.SEEK_END)
        while end > position:
            start = max(position, end - CHUNK_SIZE)
            file.seek(start)
            if _EOI in file.read(min(end + 1, size) - start):  # one byte over: a marker across two chunks
                return None
            end = start
    return "damaged JPEG: no end-of-image marker after the image data (truncated, then padded with zeros or garbage)"


_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_EXIF_DATE = re.compile(r"\s*(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def exif_taken_at(path: str | os.PathLike) -> datetime | None:
    """When the photo was taken, from EXIF DateTimeOriginal, else the IFD0 DateTime; None when absent or unreadable.

    The result is naive (camera local time), as EXIF stores it. Broken files, placeholder dates such as
    "0000:00:00 00:00:00" and any other garbage give None rather than an error.
    """
    try:
        with Image.open(path) as image:
            return taken_at_of(image)
    except Exception:  # noqa: BLE001 - any decoder failure just means "no date"
        return None


def taken_at_of(image: Image.Image) -> datetime | None:
    """exif_taken_at of an image already open (the indexer reads a file once)."""
    try:
        exif = image.getexif()
        original = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
        fallback = exif.get(_DATETIME)
    except Exception:  # noqa: BLE001 - any decoder failure just means "no date"
        return None
    return parse_exif_datetime(original) or parse_exif_datetime(fallback)


def parse_exif_datetime(value: object) -> datetime | None:
    """'YYYY:MM:DD HH:MM:SS' and the variants cameras and editors really write; None for anything else."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATE.match(value.replace("\x00", ""))
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:  # year 0, month 13, second 60...
        return None
