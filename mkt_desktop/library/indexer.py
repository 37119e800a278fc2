"""Incremental indexing: files on disk -> photos and embeddings, committed batch by batch.

- An unchanged file (same size and mtime, already embedded by this model) is not read again.
- A file whose content is already known (same hash) is not run through the model: a moved or
  renamed photo takes over its old row, keeping its tags; a byte-identical duplicate shares the
  embedding.
- No score is written here: a label's scores are computed from the store when first needed
  (`scores.py`), so a photo indexed by any process is scored for every label, saved before or after.
- A batch is one transaction: the store append (fsynced) first, then one database commit of its
  embeddings, photos and failures, under the write lock taken before reading what to write. A run
  killed at any moment loses at most the batch in flight; the next run starts where it stopped.
- A file that cannot be read is recorded with a plain reason, every path its own row, and the run
  goes on. A failure whose cause may pass (a permission, a file being written, the model's output)
  is tried again on the next run; `retry_failed` tries every failure again.
- A model output that is not finite (NaN, infinity) is refused before anything is stored.
"""

import io
import os
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mkt_desktop.library.db import IN_CHUNK, Embedding, Folder, Photo, begin_write, utcnow
from mkt_desktop.library.scanner import (
    DEFAULT_SKIPPED,
    FileChanged,
    FoundFile,
    ScanProblem,
    jpeg_problem,
    read_stable,
    scan,
    taken_at_of,
)

CHANGED = "the file changed while being read"
NOT_FINITE = "the model gave non-finite values (NaN or infinity) for this photo; it is tried again on the next run"


@dataclass
class IndexReport:
    indexed: int = 0  # photos the model embedded in this run
    reused: int = 0  # added, moved or renamed photos whose embedding was found by content hash
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    cancelled: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped_labels: list[tuple[str, str]] = field(default_factory=list)  # saved labels not scored, and why
    repairs: list[str] = field(default_factory=list)  # damage found (and mended) before the run

    def counts(self) -> dict[str, int]:
        return {"indexed": self.indexed, "reused": self.reused, "unchanged": self.unchanged,
                "failed": self.failed, "removed": self.removed}


@dataclass
class Progress:
    done: int
    total: int
    rate: float  # files per second in this run
    eta_seconds: float | None
    photos: tuple[tuple[int, str], ...] = ()  # (id, path) of the photos this batch added or updated


@dataclass
class _Failure:
    path: str
    folder_id: int
    reason: str
    retry: bool


class Indexer:
    """One indexing run's worker. Its collaborators are given, not reached for: `sessions` (the
    library's SQLAlchemy session factory), `model_id` (the models row the embeddings belong to),
    `store` (the model's embedding store), `has_local` (whether the model has a local stream) and
    `engine` (a function that loads the model: called only when a file's content is new) and
    `skip_folders` (folder name patterns the walk leaves out; scanner.DEFAULT_SKIPPED)."""

    def __init__(self, sessions, model_id: int, store, has_local: bool, engine, batch_size: int = 16,
                 skip_folders: tuple[str, ...] = DEFAULT_SKIPPED):
        self.skip_folders = tuple(skip_folders)
        self.Session = sessions
        self.model_id = model_id
        self.store = store
        self.has_local = has_local
        self.load_engine = engine
        self.batch_size = batch_size
        self._bad_contents: dict[str, str] = {}  # hash -> reason, for content that failed for good in this run

    def run(self, folder_ids: list[int], progress=None, cancel=None, retry_failed: bool = False) -> IndexReport:
        report = IndexReport()
        with self.Session() as session:
            roots = dict(session.execute(select(Folder.id, Folder.path).where(Folder.id.in_(folder_ids))).all())
        found: dict[str, tuple[int, FoundFile]] = {}
        problems: list[_Failure] = []
        for folder_id, root in roots.items():
            for item in scan(root, self.skip_folders):
                if isinstance(item, ScanProblem):
                    problems.append(_Failure(item.path, folder_id, item.reason, True))  # the walk looks again anyway
                else:
                    found.setdefault(item.path, (folder_id, item))
        if problems:
            with self.Session() as session:
                begin_write(session)
                for failure in problems:
                    self._record_failure(session, failure, report)
                session.commit()
        with self.Session() as session:
            # plain rows, not ORM objects: a rescan of 100,000 unchanged photos spent 8 s building them
            known = {row.path: row for row in session.execute(
                select(Photo.path, Photo.size, Photo.mtime_ns, Photo.status, Photo.content_hash, Photo.retry)
                .where(Photo.folder_id.in_(roots)))}
            embedded = set(session.scalars(select(Embedding.content_hash).where(
                Embedding.model_id == self.model_id)))
        todo = []  # new and changed files, and those whose embedding was lost (a damaged store)
        for path, (folder_id, item) in found.items():
            if _unchanged(known.get(path), item, embedded, retry_failed):
                report.unchanged += 1
            else:
                todo.append((folder_id, item))
        started = time.monotonic()
        for start in range(0, len(todo), self.batch_size):
            if cancel is not None and cancel():
                report.cancelled = True
                break
            placed = self._index_batch(todo[start:start + self.batch_size], report)
            if progress is not None:
                done = min(start + self.batch_size, len(todo))
                rate = done / max(time.monotonic() - started, 1e-9)
                progress(Progress(done, len(todo), rate, (len(todo) - done) / rate if rate else None, placed))
        if not report.cancelled:
            report.removed = self._mark_missing(roots, set(found) | {p.path for p in problems})
        return report

    # -- one batch ----------------------------------------------------------------------------

    def _index_batch(self, batch: list[tuple[int, FoundFile]], report: IndexReport) -> tuple[tuple[int, str], ...]:
        """Embed and record one batch (one transaction); the (id, path) of its photos, committed."""
        failures: list[_Failure] = []
        placed: list[tuple[int, str]] = []
        hashed: list[tuple[int, FoundFile, str]] = []
        contents: dict[str, bytes] = {}  # path -> the bytes hashed: decoded, and their header read, from memory
        for folder_id, item in batch:
            try:
                digest, data = read_stable(item.path, item.size, item.mtime_ns)
                hashed.append((folder_id, item, digest))
                if data is not None:
                    contents[item.path] = data
            except FileChanged:
                failures.append(_Failure(item.path, folder_id, CHANGED, True))
            except OSError as exc:
                failures.append(_Failure(item.path, folder_id, _os_reason(exc), True))
        with self.Session() as session:
            known = dict(session.execute(select(Embedding.content_hash, Embedding.id).where(
                Embedding.model_id == self.model_id, Embedding.content_hash.in_([h for _, _, h in hashed]))).all())
        damaged = self._damaged(known)  # known content whose stored embedding is unusable: embedded again
        to_embed: dict[str, FoundFile] = {}
        for _, item, digest in hashed:
            if (digest not in known or digest in damaged) and digest not in to_embed:
                to_embed[digest] = item
        embedded, failed = self._embed(to_embed, contents)
        headers = {item.path: _header(item.path, contents.get(item.path))
                   for _, item, digest in hashed if digest not in failed}
        contents.clear()

        with self.Session() as session:
            begin_write(session)
            # Read again under the lock: another process may have embedded the same content meanwhile.
            ids = dict(session.execute(select(Embedding.content_hash, Embedding.id).where(
                Embedding.model_id == self.model_id, Embedding.content_hash.in_([h for _, _, h in hashed]))).all())
            embedded = {d: e for d, e in embedded.items() if d not in ids or d in damaged}
            new = [Embedding(model_id=self.model_id, content_hash=d) for d in embedded if d not in ids]
            if new:
                session.add_all(new)
                session.flush()  # gives the store its ids
                ids.update((row.content_hash, row.id) for row in new)
            if embedded:
                digests = list(embedded)
                global_emb = np.stack([embedded[d][0] for d in digests])
                local_emb = np.stack([embedded[d][1] for d in digests]) if self.has_local else None
                self.store.append([ids[d] for d in digests], global_emb, local_emb)  # durable before the rows
            placing = []
            for folder_id, item, digest in hashed:
                if digest in failed:
                    failures.append(_Failure(item.path, folder_id, *failed[digest]))
                    continue
                placing.append((folder_id, item, digest, headers[item.path]))
                if digest in embedded and to_embed[digest].path == item.path:
                    report.indexed += 1
                else:
                    report.reused += 1
            placed.extend((row.id, row.path) for row in self._place_photos(session, placing))
            for failure in failures:
                self._record_failure(session, failure, report)
            session.commit()
        return tuple(placed)

    def _damaged(self, known: dict[str, int]) -> set[str]:
        """Known contents whose stored embedding is missing or not finite (written by a version that let NaN
        in): they are embedded again under the same id, which supersedes the stored one."""
        if not known:
            return set()
        store = self.store
        digests = list(known)
        ids = np.asarray([known[d] for d in digests], dtype=np.int64)
        present = np.isin(ids, store.ids)
        finite = np.zeros(len(ids), dtype=bool)
        if present.any():
            stored = store.global_embeddings_of_rows(store.rows_of(ids[present]))
            finite[present] = np.isfinite(stored).all(axis=1)
        return {digest for digest, ok in zip(digests, finite, strict=True) if not ok}

    def _embed(self, to_embed: dict[str, FoundFile], contents: dict[str, bytes]):
        """Run the model on the new contents: ({hash: (global, local)}, {hash: (reason, retry)}).

        Nothing is stored here. `contents` holds the bytes that were hashed (decoded from memory, not read
        again). Refused: a damaged JPEG, a file that changed after the scan (its row would describe other
        bytes), and any output that is not finite.
        """
        from mkt_core.runtime.image_pipeline import embed_files

        failed: dict[str, tuple[str, bool]] = {}
        paths = {}
        for digest, item in to_embed.items():
            if digest in self._bad_contents:
                failed[digest] = (self._bad_contents[digest], False)
            else:
                paths[item.path] = digest
        if not paths:
            return {}, failed
        embedded = {}
        for result in embed_files(list(paths), self.load_engine(), batch_size=self.batch_size, contents=contents):
            digest = paths[result.path]
            item = to_embed[digest]
            if result.error is not None:
                failed[digest] = (result.error, _worth_retrying(result.error))
            elif problem := _jpeg_problem(contents.get(item.path, item.path)):
                failed[digest] = problem
            elif not _same_file(item):
                failed[digest] = (CHANGED, True)
            elif result.global_emb is None or not (np.isfinite(result.global_emb).all()
                      and (result.local_emb is None or np.isfinite(result.local_emb).all())):
                failed[digest] = (NOT_FINITE, True)
            else:
                embedded[digest] = (result.global_emb, result.local_emb)
        for digest, (reason, retry) in failed.items():
            if not retry:
                self._bad_contents[digest] = reason  # the same bytes elsewhere fail the same way: not decoded again
        return embedded, failed

    def _place_photos(self, session: Session, placing: list[tuple[int, FoundFile, str, tuple]]) -> list[Photo]:
        """Each photo's row, in order: its own (changed file), a moved one with the same content, or a new
        one. Read in two queries for the batch and written in one flush: a query and a flush per photo
        were half the time of indexing 100,000 photos."""
        paths = [item.path for _, item, _, _ in placing]
        by_path: dict[str, Photo] = {}
        for start in range(0, len(paths), IN_CHUNK):
            by_path.update((row.path, row) for row in session.scalars(
                select(Photo).where(Photo.path.in_(paths[start:start + IN_CHUNK]))))
        digests = sorted({digest for _, item, digest, _ in placing if item.path not in by_path})
        same_content: dict[str | None, list[Photo]] = {}
        for start in range(0, len(digests), IN_CHUNK):
            for found in session.scalars(select(Photo).where(Photo.content_hash.in_(digests[start:start + IN_CHUNK]))
                                         .order_by(Photo.id)):
                same_content.setdefault(found.content_hash, []).append(found)
        rows = []
        for folder_id, item, digest, (width, height, taken_at) in placing:
            row = by_path.get(item.path)
            if row is None:
                for candidate in same_content.get(digest, ()):
                    if candidate.status == "missing" or not os.path.exists(candidate.path):
                        row = candidate  # moved or renamed: keep its tags
                        break
            if row is None:
                row = Photo(path=item.path)
                session.add(row)
                same_content.setdefault(digest, []).append(row)
            row.path, row.folder_id, row.size, row.mtime_ns = item.path, folder_id, item.size, item.mtime_ns
            row.content_hash, row.width, row.height, row.taken_at = digest, width, height, taken_at
            row.status, row.error, row.retry, row.indexed = "ok", None, False, utcnow()
            rows.append(row)
        session.flush()
        return rows

    # -- failures and missing files -----------------------------------------------------------

    def _record_failure(self, session: Session, failure: _Failure, report: IndexReport) -> None:
        report.failed += 1
        report.failures.append((failure.path, failure.reason))
        row = session.scalar(select(Photo).where(Photo.path == failure.path))
        if row is None:
            row = Photo(path=failure.path, folder_id=failure.folder_id)
            session.add(row)
        try:
            stat = os.stat(failure.path)
            row.size, row.mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:
            row.size, row.mtime_ns = -1, -1
        row.status, row.error, row.retry, row.indexed = "failed", failure.reason, failure.retry, utcnow()
        session.flush()

    def _mark_missing(self, roots: dict[int, str], present: set[str]) -> int:
        """Photos of these folders no longer on disk leave the results (kept as 'missing' so a move
        discovered later still finds their tags)."""
        with self.Session() as session:
            rows = session.execute(select(Photo.id, Photo.path, Photo.status).where(
                Photo.folder_id.in_(roots), Photo.status != "missing")).all()
            gone = [row.id for row in rows if row.path not in present
                    and not (row.status == "failed" and os.path.lexists(row.path))]  # still broken: stays listed
            for start in range(0, len(gone), 500):
                session.execute(update(Photo).where(Photo.id.in_(gone[start:start + 500])).values(status="missing"))
            session.commit()
        return len(gone)


def _unchanged(row, item: FoundFile, embedded: set[str], retry_failed: bool) -> bool:
    """Whether a found file can be skipped: same size and mtime, and either indexed with this model or
    failed for a reason that will not pass by itself."""
    if row is None or row.size != item.size or row.mtime_ns != item.mtime_ns:
        return False
    if row.status == "ok":
        return row.content_hash in embedded  # another model's photo is embedded again for this one
    if row.status == "failed":
        return not (retry_failed or row.retry)
    return False


def _jpeg_problem(path: str | bytes) -> tuple[str, bool] | None:
    """A decoded JPEG (its path or its bytes) that is not whole (see scanner.jpeg_problem): (reason, retry)
    or None."""
    try:
        problem = jpeg_problem(path)
    except OSError as exc:
        return _os_reason(exc), True
    return (problem, False) if problem else None


def _same_file(item: FoundFile) -> bool:
    """The file still has the size and mtime the scan (and the hash) saw."""
    try:
        after = os.stat(item.path)
    except OSError:
        return False
    return after.st_size == item.size and after.st_mtime_ns == item.mtime_ns


def _worth_retrying(reason: str) -> bool:
    """Decoding failures that say nothing about the file's bytes: the next run tries again."""
    return (reason in ("permission denied", "file not found") or "MemoryError" in reason
            or reason.startswith("decoder failed"))


def _header(path: str, data: bytes | None = None) -> tuple[int | None, int | None, object]:
    """(width, height as shown, EXIF date taken) from one opening of the file, or of its bytes when given."""
    width: int | None
    height: int | None
    taken_at = None
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
            taken_at = taken_at_of(image)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    except Exception:  # noqa: BLE001 - the decode step already judged the file readable
        width = height = None
    return width, height, taken_at


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "the file disappeared during indexing"
    return exc.strerror or str(exc)
