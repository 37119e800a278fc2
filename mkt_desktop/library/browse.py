"""Browsing the library: photos of one folder, taken in a date range, sorted by date taken, name or best match.

"Date taken" is EXIF's (DateTimeOriginal, else DateTime) and, for a photo without one, the file's modification
time: every photo has a date, and a scan or a screenshot sorts where it was made. Filters apply to the plain
photo list and to search results alike, so the window and the CLI share one meaning of "newest" and "in 2023".
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from mkt_desktop.library.db import IN_CHUNK, Folder, Photo

SORTS = ("best", "newest", "oldest", "name")  # "best": search score (the path for a plain photo list)


@dataclass(frozen=True)
class View:
    """What the grid shows: one folder or all, a date range (inclusive days) or any, and an order."""

    folder: str | None = None
    taken_from: date | None = None
    taken_to: date | None = None
    sort: str = "best"

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")

    @property
    def filtered(self) -> bool:
        return self.folder is not None or self.taken_from is not None or self.taken_to is not None


@dataclass
class PhotoRow:
    photo_id: int
    path: str
    taken: datetime  # EXIF date taken, else the file's modification time
    score: float | None = None
    confidence: float | None = None  # the search's calibrated confidence of `score`, 0 to 1


def year_range(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year, 12, 31)


def photo_rows(lib, view: View = View()) -> list[PhotoRow]:  # noqa: B008 - View is frozen
    """The library's indexed photos that `view` keeps, in its order (best = by path)."""
    return arrange(lib, None, view)


def arrange(lib, hits, view: View) -> list[PhotoRow]:
    """Search hits (best first; None: every photo) filtered and ordered by `view`. Only the hits' own rows
    are read: a search over 100,000 photos must not read 100,000 rows to show 500."""
    rows = _facts(lib, view.folder, None if hits is None else [hit.photo_id for hit in hits])
    if hits is None:
        kept = [row for row in rows.values() if _in_range(row.taken, view)]
        kept.sort(key=lambda row: row.path)
    else:
        kept = []
        for hit in hits:
            row = rows.get(hit.photo_id)
            if row is not None and _in_range(row.taken, view):
                kept.append(PhotoRow(row.photo_id, row.path, row.taken, hit.score, getattr(hit, "confidence", None)))
    if view.sort == "newest":
        kept.sort(key=lambda row: (row.taken, row.path), reverse=True)
    elif view.sort == "oldest":
        kept.sort(key=lambda row: (row.taken, row.path))
    elif view.sort == "name":
        kept.sort(key=lambda row: (Path(row.path).name.casefold(), row.path))
    return kept


def taken_years(lib) -> list[int]:
    """The years photos were taken in, newest first (for the window's date filter)."""
    return sorted({row.taken.year for row in _facts(lib, None).values()}, reverse=True)


def view_photo_ids(lib, view: View) -> list[int] | None:
    """The ids of the photos a filtered view keeps (a search looks among these only); None: every photo."""
    if not view.filtered:
        return None
    query = select(Photo.id, Photo.taken_at, Photo.mtime_ns).where(Photo.status == "ok")
    if view.folder is not None:
        query = query.where(Photo.folder_id == _folder_id(lib, view.folder))
    with lib.Session() as session:
        rows = session.execute(query).all()
    return [photo_id for photo_id, taken_at, mtime_ns in rows if _in_range(taken_at or _from_ns(mtime_ns), view)]


def _facts(lib, folder: str | None, photo_ids: list[int] | None = None) -> dict[int, PhotoRow]:
    """Path and date taken of the photos of `folder` (None: all), only those of `photo_ids` when given."""
    query = select(Photo.id, Photo.path, Photo.taken_at, Photo.mtime_ns).where(Photo.status == "ok")
    if folder is not None:
        query = query.where(Photo.folder_id == _folder_id(lib, folder))
    chunks = [query] if photo_ids is None else [query.where(Photo.id.in_(photo_ids[i:i + IN_CHUNK]))
                                                for i in range(0, len(photo_ids), IN_CHUNK)]
    facts = {}
    with lib.Session() as session:
        for chunk in chunks:
            for photo_id, path, taken_at, mtime_ns in session.execute(chunk):
                facts[photo_id] = PhotoRow(photo_id, path, taken_at or _from_ns(mtime_ns))
    return facts


def _folder_id(lib, folder: str) -> int:
    resolved = str(Path(folder).expanduser().resolve())
    with lib.Session() as session:
        folder_id = session.scalar(select(Folder.id).where(Folder.path.in_([resolved, folder])))
    if folder_id is None:
        raise KeyError(f"{folder}: not a library folder (see `mkt-desktop folders`)")
    return folder_id


def _from_ns(mtime_ns: int | None) -> datetime:
    return datetime.fromtimestamp(max(mtime_ns or 0, 0) / 1e9)


def _in_range(taken: datetime, view: View) -> bool:
    if view.taken_from is not None and taken < datetime.combine(view.taken_from, datetime.min.time()):
        return False
    if view.taken_to is not None and taken >= datetime.combine(view.taken_to + timedelta(days=1), datetime.min.time()):
        return False
    return True


def parse_day(text: str) -> date:
    """'2023', '2023-06' or '2023-06-14': the first day meant (for --taken-from)."""
    return _parse(text, last=False)


def parse_last_day(text: str) -> date:
    """'2023', '2023-06' or '2023-06-14': the last day meant (for --taken-to)."""
    return _parse(text, last=True)


def _parse(text: str, last: bool) -> date:
    parts = text.strip().split("-")
    try:
        numbers = [int(part) for part in parts]
        if len(numbers) == 1:
            return date(numbers[0], 12, 31) if last else date(numbers[0], 1, 1)
        if len(numbers) == 2:
            first = date(numbers[0], numbers[1], 1)
            if not last:
                return first
            return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if len(numbers) == 3:
            return date(*numbers)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a date: give YYYY, YYYY-MM or YYYY-MM-DD")
