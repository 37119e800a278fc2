"""Each label's score for every photo, kept beside the embedding store instead of in SQLite.

A score is a function of the photo's stored embeddings and the label's text (Eq. 3 through the
store's one scoring graph), so it never needs to be written down to be right: this cache only
saves computing it again. A label's column holds its score for every row of the store, in row
order, as float32; a column shorter than the store is completed from the store on first use, so
photos indexed by another process, or a label saved while indexing, are never left unscored.

    scores/<key>.z.npy   the label's embedding [D] (the text encoder is needed once per label), or
                         for a label adapted to a person's decisions its (global, local) queries [2, D]
    scores/<key>.f32     its scores, one float32 per store row (append only)

`key` is a hash of the column's name: the label's text, or for an adapted label the text and what it
learned from (feedback.py). Renaming a label or deciding on a photo is a new column, and two
libraries of one model could share one. A torn tail (a crash while appending) is cut to whole floats and completed
again; nothing here is the only copy of anything.
"""

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mkt_core.runtime.files import atomic_file


def column_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class ScoreColumns:
    """The score columns of one embedding store (one model)."""

    def __init__(self, store, folder: str | Path):
        self.store = store
        self.folder = Path(folder)
        self._columns: dict[str, np.ndarray] = {}  # key -> scores held in memory (float32 [rows])
        self._z: dict[str, np.ndarray] = {}

    def columns(self, texts: list[str], embed: Callable[[list[str]], list[np.ndarray]]) -> list[np.ndarray]:
        """Each column's scores for every store row `[rows]` (read-only arrays), completed in one pass.

        `embed(names) -> [L, D]` (or one `[2, D]` pair of global and local queries per name) is called
        only for names this cache has never seen.
        """
        rows = self.store.row_count
        keys = [column_key(t) for t in texts]
        missing = [(k, t) for k, t in zip(keys, texts, strict=True) if self._load(k).shape[0] < rows]
        if missing:
            self._complete(missing, rows, embed)
        return [self._columns[k] for k in keys]

    def knows(self, text: str) -> bool:
        """Whether the label's embedding is kept here: the model has read it once (its tokenizer found a
        word, its embedding is finite), so listing saved labels needs no tokenizer."""
        z = self._label_embedding(column_key(text))
        return z is not None and bool(np.isfinite(z).all())

    def queries(self, name: str) -> np.ndarray | None:
        """The (global, local) queries `[2, D]` a column was scored with, once it has been."""
        z = self._label_embedding(column_key(name))
        return None if z is None else np.broadcast_to(z, (2, self.store.embed_dim))

    def forget(self, text: str) -> None:
        key = column_key(text)
        self._columns.pop(key, None)
        self._z.pop(key, None)
        for path in (self._scores_path(key), self._z_path(key)):
            path.unlink(missing_ok=True)

    # -- inside ---------------------------------------------------------------------------------

    def _scores_path(self, key: str) -> Path:
        return self.folder / f"{key}.f32"

    def _z_path(self, key: str) -> Path:
        return self.folder / f"{key}.z.npy"

    def _load(self, key: str) -> np.ndarray:
        column = self._columns.get(key)
        if column is None:
            path = self._scores_path(key)
            column = np.zeros(0, dtype=np.float32)
            if path.is_file():
                data = path.read_bytes()
                column = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")
            self._columns[key] = column
        return column

    def _label_embedding(self, key: str) -> np.ndarray | None:
        if key not in self._z and self._z_path(key).is_file():
            try:
                z = np.load(self._z_path(key), allow_pickle=False)
            except (OSError, ValueError):
                z = None  # damaged: embed the text again
            if z is not None and z.shape in ((self.store.embed_dim,), (2, self.store.embed_dim)):
                self._z[key] = z.astype(np.float32)
        return self._z.get(key)

    def _complete(self, missing: list[tuple[str, str]], rows: int, embed) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        unknown = [(k, t) for k, t in missing if self._label_embedding(k) is None]
        if unknown:
            for (key, _), z in zip(unknown, embed([t for _, t in unknown]), strict=True):
                self._z[key] = np.asarray(z, dtype=np.float32)
                with atomic_file(self._z_path(key)) as f:
                    np.save(f, self._z[key])
        start = min(self._load(k).shape[0] for k, _ in missing)
        pairs = np.stack([np.broadcast_to(self._z[k], (2, self.store.embed_dim)) for k, _ in missing])
        # [rows - start, L]: one pass for every label
        scores = self.store.score_row_range(pairs[:, 0], start, rows, local_emb=pairs[:, 1])
        unusable = start + np.flatnonzero(~np.isfinite(scores).all(axis=1))
        # a superseded row may hold what an older version let in (NaN), embedded again since: never read
        if np.isin(unusable, self.store.rows_of(self.store.ids)).any():
            raise ValueError(f"{self.store.folder}: the stored embeddings give non-finite scores "
                             f"(rows {start} to {rows}); run `mkt-desktop check`")
        for j, (key, _) in enumerate(missing):
            have = self._load(key).shape[0]
            tail = np.ascontiguousarray(scores[have - start:, j], dtype="<f4")
            with open(self._scores_path(key), "ab") as f:
                f.truncate(have * 4)  # a torn tail goes
                f.write(tail.tobytes())
            self._columns[key] = np.concatenate([self._columns[key], tail])

