"""The library's indexed photos as arrays, rebuilt only when the database has changed.

Search, counts and thresholds work on every photo at once; a Python object or a SQL row per photo
per click is what made a library of 100,000 photos answer in seconds. A snapshot holds, for the
photos that are indexed ("ok") and have an embedding of the library's model, their ids and their
rows in the embedding store, in one order that every score array of the snapshot shares.

Whether the photos changed is the database's `photo_generation` (moved by triggers when photos or
their embeddings change, db.py), read on one connection kept for it whenever SQLite's own `PRAGMA
data_version` says some commit was made by another connection, this process's own included: so a
window sees what the command line indexed meanwhile (and the store is re-read with it), and a
threshold or a decision saved costs no rebuild.
"""

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Snapshot:
    version: int
    photo_ids: np.ndarray  # int64 [P]
    rows: np.ndarray  # int64 [P]: each photo's row in the embedding store
    position: dict[int, int] = field(default_factory=dict, repr=False)  # photo id -> index, built on demand
    _distinct: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)  # see distinct_rows

    def __len__(self) -> int:
        return len(self.photo_ids)

    def distinct_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(the store rows the photos use, each once and in order; each photo's index into them): copies of a
        photo share a row. Kept with the snapshot: every new text's search asks for it."""
        if self._distinct is None:
            unique, inverse = np.unique(self.rows, return_inverse=True)
            self._distinct = (unique, inverse.reshape(-1))
        return self._distinct

    def positions_of(self, photo_ids) -> np.ndarray:
        """The indices of the snapshot's photos that are among `photo_ids` (a view's), in snapshot order."""
        return np.flatnonzero(np.isin(self.photo_ids, np.asarray(list(photo_ids), dtype=np.int64)))

    def index_of(self, photo_id: int) -> int | None:
        if not self.position and len(self.photo_ids):
            self.position = {int(p): i for i, p in enumerate(self.photo_ids)}
        return self.position.get(int(photo_id))


class ChangeWatch:
    """`version()`: a number that changes whenever the photos of the database at `path` may have changed."""

    def __init__(self, path: str | Path):
        try:
            self._connection = sqlite3.connect(Path(path), check_same_thread=False)
            self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.OperationalError:  # a read-only library
            self._connection = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, check_same_thread=False)
            try:
                self._connection.execute("PRAGMA data_version").fetchone()
            except sqlite3.OperationalError:  # in a folder SQLite cannot write its -shm file into: never changes
                self._connection = sqlite3.connect(f"file:{Path(path)}?immutable=1", uri=True,
                                                   check_same_thread=False)
        self._lock = threading.Lock()
        self._local = 0
        self._data_version: int | None = None
        self._generation = 0

    def version(self) -> int:
        with self._lock:
            data_version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
            if data_version != self._data_version:  # something was committed: did the photos change?
                self._data_version = data_version
                self._generation = self._photo_generation(data_version)
            return self._generation * 1_000_000 + self._local

    def commits(self) -> int:
        """A number that changes on every commit (a decision too) and with every `bump`: what a label
        learned from decisions depends on (feedback.py)."""
        with self._lock:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0]) * 1_000_000 + self._local

    def _photo_generation(self, data_version: int) -> int:
        try:
            row = self._connection.execute("SELECT value FROM photo_generation").fetchone()
        except sqlite3.OperationalError:  # no such table (a library never opened by a writer since): any commit
            row = None
        return int(row[0]) if row else data_version

    def bump(self) -> None:
        """For changes the database does not see (a store rebuilt, a model switched)."""
        with self._lock:
            self._local += 1

    def close(self) -> None:
        self._connection.close()


def build_snapshot(version: int, pairs: Sequence[Sequence[int]], store) -> Snapshot:
    """From (photo id, embedding id) pairs: the photos whose embedding the store holds, sorted by id."""
    if not pairs:
        return Snapshot(version, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    data = np.fromiter((value for pair in pairs for value in pair), dtype=np.int64, count=2 * len(pairs)).reshape(-1, 2)
    data = data[np.argsort(data[:, 0], kind="stable")]
    stored = np.isin(data[:, 1], store.ids)
    data = data[stored]
    rows = store.rows_of(data[:, 1]) if len(data) else np.zeros(0, dtype=np.int64)
    return Snapshot(version, data[:, 0].copy(), rows)
