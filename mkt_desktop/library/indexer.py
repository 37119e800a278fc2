"""Incremental indexing: files on disk -> photos and embeddings, committed batch by batch.

- An unchanged file (same size and mtime) is not read again.
- A file whose content is already known (same hash) is not run through the model: a moved or
  renamed photo takes over its old row, keeping its tags; a byte-identical duplicate shares the
  embedding.
- No score is written here: a label's scores are computed from the store when first needed
  (`scores.py`), so a photo indexed by any process is scored for every label, saved before or after.
- Work is committed in small batches (store append, fsync, then the database commit): a run
  killed at any moment loses at most the batch in flight; the next run starts where it stopped.
- A file that cannot be read is recorded with a plain reason and the run goes on.
"""

import os
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from mkt_desktop.library.db import Embedding, Folder, Photo, utcnow
from mkt_desktop.library.scanner import FileChanged, FoundFile, ScanProblem, exif_taken_at, hash_stable, scan


@dataclass
class IndexReport:
    indexed: int = 0  # photos the model embedded in this run
    reused: int = 0  # added, moved or renamed photos whose embedding was found by content hash
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    cancelled: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"indexed": self.indexed, "reused": self.reused, "unchanged": self.unchanged,
                "failed": self.failed, "removed": self.removed}


@dataclass
class Progress:
    done: int
    total: int
    rate: float  # files per second in this run
    eta_seconds: float | None


class Indexer:
    def __init__(self, library, batch_size: int = 16):
        self.lib = library
        self.batch_size = batch_size

    def run(self, folder_ids: list[int], progress=None, cancel=None) -> IndexReport:
        report = IndexReport()
        with self.lib.Session() as session:
            roots = dict(session.execute(select(Folder.id, Folder.path).where(Folder.id.in_(folder_ids))).all())
        found: dict[str, tuple[int, FoundFile]] = {}
        problems: set[str] = set()
        for folder_id, root in roots.items():
            for item in scan(root):
                if isinstance(item, ScanProblem):
                    self._record_failure(item.path, item.reason, folder_id, report)
                    problems.add(item.path)
                else:
                    found.setdefault(item.path, (folder_id, item))
        with self.lib.Session() as session:
            known = {p.path: p for p in session.scalars(select(Photo).where(Photo.folder_id.in_(roots)))}
            # content this model has embedded: a photo indexed by another model only is not unchanged for this one
            embedded = set(session.scalars(
                select(Embedding.content_hash).where(Embedding.model_id == self.lib.model_id)))
        todo = []
        for path, (folder_id, item) in found.items():
            row = known.get(path)
            if (row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns and row.status != "missing"
                    and (row.status == "failed" or row.content_hash in embedded)):
                report.unchanged += 1
            else:
                todo.append((folder_id, item))
        started = time.monotonic()
        for start in range(0, len(todo), self.batch_size):
            if cancel is not None and cancel():
                report.cancelled = True
                break
            self._index_batch(todo[start:start + self.batch_size], report)
            if progress is not None:
                done = min(start + self.batch_size, len(todo))
                rate = done / max(time.monotonic() - started, 1e-9)
                progress(Progress(done, len(todo), rate, (len(todo) - done) / rate if rate else None))
        if not report.cancelled:
            report.removed = self._mark_missing(roots, set(found) | problems)
        return report

    # -- one batch ----------------------------------------------------------------------------

    def _index_batch(self, batch: list[tuple[int, FoundFile]], report: IndexReport) -> None:
        lib = self.lib
        model_id = lib.model_id
        hashed: list[tuple[int, FoundFile, str]] = []
        for folder_id, item in batch:
            try:
                hashed.append((folder_id, item, hash_stable(item.path, item.size, item.mtime_ns)))
            except FileChanged:
                self._record_failure(item.path, "the file changed while being read", folder_id, report)
            except OSError as exc:
                self._record_failure(item.path, _os_reason(exc), folder_id, report)
        with lib.Session() as session:
            known_hashes = set(session.scalars(select(Embedding.content_hash).where(
                Embedding.model_id == model_id, Embedding.content_hash.in_([h for _, _, h in hashed]))))
        to_embed = {}
        for _, item, digest in hashed:
            if digest not in known_hashes and digest not in to_embed:
                to_embed[digest] = item.path
        embedded = self._embed(to_embed, report, batch_folders={item.path: f for f, item, _ in hashed})
        with lib.Session() as session:
            for folder_id, item, digest in hashed:
                if digest in embedded or digest in known_hashes:
                    self._place_photo(session, folder_id, item, digest)
                    if digest in embedded and to_embed.get(digest) == item.path:
                        report.indexed += 1
                    else:
                        report.reused += 1
            session.commit()

    def _embed(self, to_embed: dict[str, str], report: IndexReport, batch_folders: dict[str, int]):
        """Run the model on the new contents, append them to the store; {hash: embedding id}."""
        from mkt_core.runtime.image_pipeline import embed_files

        lib = self.lib
        if not to_embed:
            return {}
        results = list(embed_files(list(to_embed.values()), lib.engine, batch_size=self.batch_size))
        by_path = {r.path: r for r in results}
        good = []
        for digest, path in to_embed.items():
            result = by_path[str(path)]
            if result.error is not None:
                self._record_failure(path, result.error, batch_folders[path], report)
            else:
                good.append((digest, result))
        if not good:
            return {}
        with lib.Session() as session:
            rows = [Embedding(model_id=lib.model_id, content_hash=digest) for digest, _ in good]
            session.add_all(rows)
            session.flush()
            ids = [row.id for row in rows]
            global_emb = np.stack([r.global_emb for _, r in good])
            local_emb = np.stack([r.local_emb for _, r in good]) if good[0][1].local_emb is not None else None
            lib.store.append(ids, global_emb, local_emb)  # durable before the rows that point to it
            session.commit()
        return {digest: eid for eid, (digest, _) in zip(ids, good, strict=True)}

    def _place_photo(self, session: Session, folder_id: int, item: FoundFile, digest: str) -> Photo:
        """The photo's row: its own (changed file), a moved one with the same content, or a new one."""
        row = session.scalar(select(Photo).where(Photo.path == item.path))
        if row is None:
            for candidate in session.scalars(select(Photo).where(Photo.content_hash == digest)):
                if candidate.status == "missing" or not os.path.exists(candidate.path):
                    row = candidate  # moved or renamed: keep its tags and scores
                    break
        if row is None:
            row = Photo(path=item.path)
            session.add(row)
        width, height, taken_at = _header(item.path)
        row.path, row.folder_id, row.size, row.mtime_ns = item.path, folder_id, item.size, item.mtime_ns
        row.content_hash, row.width, row.height, row.taken_at = digest, width, height, taken_at
        row.status, row.error, row.indexed = "ok", None, utcnow()
        session.flush()
        return row

    # -- failures and missing files -----------------------------------------------------------

    def _record_failure(self, path: str, reason: str, folder_id: int, report: IndexReport) -> None:
        report.failed += 1
        report.failures.append((path, reason))
        with self.lib.Session() as session:
            row = session.scalar(select(Photo).where(Photo.path == path))
            if row is None:
                row = Photo(path=path, folder_id=folder_id)
                session.add(row)
            try:
                stat = os.stat(path)
                row.size, row.mtime_ns = stat.st_size, stat.st_mtime_ns
            except OSError:
                row.size, row.mtime_ns = -1, -1
            row.status, row.error, row.indexed = "failed", reason, utcnow()
            session.commit()

    def _mark_missing(self, roots: dict[int, str], present: set[str]) -> int:
        """Photos of these folders no longer on disk leave the results (kept as 'missing' so a move
        discovered later still finds their tags)."""
        with self.lib.Session() as session:
            rows = session.scalars(select(Photo).where(Photo.folder_id.in_(roots), Photo.status != "missing")).all()
            count = 0
            for row in rows:
                if row.path in present:
                    continue
                if row.status == "failed" and os.path.lexists(row.path):
                    continue  # still there, still broken: stays listed under failures
                row.status = "missing"
                count += 1
            session.commit()
        return count


def _header(path: str) -> tuple[int | None, int | None, object]:
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    except Exception:  # noqa: BLE001 - the decode step already judged the file readable
        width = height = None
    return width, height, exif_taken_at(path)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "the file disappeared during indexing"
    return exc.strerror or str(exc)
