"""The photo library: one object the CLI and the GUI both stand on.

    lib = Library(db_path="~/photos.sqlite", model="demo")
    lib.add_folder("~/Pictures"); lib.index()
    lib.add_label("black dog"); lib.search("foggy harbour", limit=50)

It owns the SQLite database (`db.py`), the model (an `mkt_core` engine over a bundle) and the
embedding store of that model, kept in a folder beside the database. Nothing here imports Qt.
See docs/reliability.md for what holds under kill -9, concurrent use, damaged files and bad input.
"""

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mkt_core.assets import DEFAULT_VOCABULARY
from mkt_core.runtime.calibration import NULL_TEXTS
from mkt_desktop.library.db import (
    Embedding,
    Folder,
    Label,
    Model,
    Photo,
    Tag,
    begin_write,
    database_writable,
    open_database,
    utcnow,
)
from mkt_desktop.library.labels import (
    NOT_XML,
    LabelError,
    NullScores,
    automatic_threshold,
    check_threshold,
    fallback_calibration,
    label_key,
    normalise_label,
    null_scores,
)
from mkt_desktop.library.model_source import model_vocabulary, resolve_model
from mkt_desktop.library.scanner import DEFAULT_SKIPPED, printable_path
from mkt_desktop.library.scores import ScoreColumns
from mkt_desktop.library.snapshot import ChangeWatch, Snapshot, build_snapshot
from mkt_desktop.paths import default_data_dir

if TYPE_CHECKING:  # the store module is imported when a library first needs it
    from mkt_core.runtime.store import EmbeddingStore


def read_only_store(folder: Path, bundle):
    """The store of a library that cannot be written: opened for reading, or an empty one in a temporary folder."""
    import tempfile

    from mkt_core.runtime.store import EmbeddingStore

    if (folder / "store.json").is_file():
        return EmbeddingStore.open(folder, writable=False)
    empty = Path(tempfile.mkdtemp(prefix="mkt-empty-store-"))
    return EmbeddingStore.create(empty, bundle.embed_dim, bundle.num_patches, bundle.top_k, bundle.fingerprint)


@dataclass
class SearchHit:
    photo_id: int
    path: str
    score: float  # the raw Eq. 3 score (cosine similarity for `similar`)
    confidence: float | None = None  # the calibrated confidence of `score`, 0 to 1 (None for `similar`)


class SearchResult(tuple):
    """`hits, threshold = lib.search(...)` as before, plus `note`: a sentence for a person when no
    photo clearly matches (None when some do), `threshold_confidence`, and `warning`: the store
    lacks some indexed photos' embeddings (damaged or deleted; the next index run embeds them)."""

    note: str | None
    threshold_confidence: float | None
    warning: str | None

    def __new__(cls, hits: list[SearchHit], threshold: float | None, note: str | None = None,
                threshold_confidence: float | None = None, warning: str | None = None):
        result = super().__new__(cls, (hits, threshold))
        result.note, result.threshold_confidence, result.warning = note, threshold_confidence, warning
        return result

    @property
    def hits(self) -> list[SearchHit]:
        return self[0]

    @property
    def threshold(self) -> float | None:
        return self[1]


@dataclass
class LabelInfo:
    id: int
    text: str
    threshold: float | None  # None: automatic
    effective_threshold: float | None
    above_threshold: int
    source: str
    threshold_confidence: float | None = None  # the effective threshold as a confidence, 0 to 1
    learned_from: int = 0  # the person's decisions its scores learned from (feedback.py)
    tagged: int = 0  # photos the label tags: above the threshold and not rejected, or accepted


@dataclass
class PhotoLabel:
    label: str
    score: float | None
    threshold: float | None
    status: str  # "accepted", "rejected" or "auto"
    confidence: float | None = None  # the calibrated confidence of `score`, 0 to 1


UNIT_GLOBALS_BYTES = 512 * 1024 * 1024  # "more like this" keeps the unit global embeddings up to this size
KEPT_COLUMNS = 3  # a label's latest adapted score columns kept (feedback.py): the last two undos are instant
EXACT_SEARCH_PHOTOS = 5_000  # above this, a new text is searched through candidates (store.top_rows)
NOT_FINITE = "the model gives non-finite values (NaN or infinity) for it"


def store_folder_name(fingerprint: str) -> str:
    """A model's store folder name from its fingerprint: letters, digits, '-' and '_' only, as every file
    system (Windows, FAT/exFAT) takes: "sha256:0123..." -> "sha256-0123456789abcdef"."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", fingerprint)[:23].strip("-") or "model"


class _UnusableLabel(Exception):
    """A label's embedding turned out not finite while its column was being completed."""


class Library:
    def __init__(self, db_path: str | Path | None = None, model: str = "demo", engine_options: dict | None = None,
                 vocabulary: bool = True, engine=None, skip_folders: list[str] | tuple[str, ...] | None = None):
        """`engine`: an engine already made (anything with `bundle`, `encode_images`, `encode_labels`),
        used instead of loading `model`; benchmarks give a generated one. `skip_folders`: folder name
        patterns indexing does not walk (default: scanner.DEFAULT_SKIPPED, hidden and NAS folders)."""
        self.db_path = Path(db_path).expanduser() if db_path else default_data_dir() / "library.sqlite"
        self.read_only = not database_writable(self.db_path)  # search, browse and export still work
        self.Session = open_database(self.db_path, read_only=self.read_only)
        self.model_spec = model
        self.skip_folders = tuple(DEFAULT_SKIPPED if skip_folders is None else skip_folders)
        self.engine_options = engine_options or {}
        self._engine = engine
        self._bundle = None
        self._store: EmbeddingStore | None = None
        self._model_id: int | None = None
        self._label_cache: dict[str, np.ndarray] = {}
        self._label_problems: dict[str, str | None] = {}
        self._watch = ChangeWatch(self.db_path)
        self._snapshot: Snapshot | None = None
        self._unstored = 0  # indexed photos whose embedding the store does not hold (damage)
        self._columns: ScoreColumns | None = None
        self._null: tuple[int, NullScores | None] | None = None  # (snapshot version, random texts' scores)
        self._unit: tuple[int, np.ndarray] | None = None  # (snapshot version, unit global embeddings)
        self._learning: tuple[tuple, dict] = ((), {})  # (database version, {text: feedback.Learned or None})
        self._learned_of: dict[str, tuple] = {}  # adapted column name -> (text, feedback.Learned)
        self._column_of: dict[str, str] = {}  # text -> the column it was last scored through
        self._kept: dict[str, list[str]] = {}  # text -> its latest adapted columns, newest last
        self._lock = threading.RLock()  # the window's runner calls from several threads
        if vocabulary and not self.read_only:
            self._seed_vocabulary()

    def close(self) -> None:
        """Close the database's connections. SQLite folds its WAL file into the database file when the
        last one closes, so a library copied as its one .sqlite file afterwards holds every change."""
        with self._lock:
            self._watch.close()
            self.Session.kw["bind"].dispose()

    # -- the model and its embedding store ---------------------------------------------------

    @property
    def bundle(self):
        """The model's bundle (its manifest: sizes, fingerprint); reading it loads no model."""
        if self._bundle is None:
            self._bundle = (self._engine.bundle if self._engine is not None
                            else resolve_model(self.model_spec, self.cache_dir))
        return self._bundle

    @property
    def engine(self):
        """The model itself (ONNX Runtime sessions), loaded on first use."""
        if self._engine is None:
            from mkt_core.runtime.engine import Engine

            self._engine = Engine(self.bundle, **self.engine_options)
        return self._engine

    @property
    def store_folder(self) -> Path:
        return self._store_folder()

    @property
    def store(self):
        """This model's embedding store as committed now: what other processes appended is seen.
        StoreDamaged (one line, naming the file) when it is damaged: `check` or an index run repairs it."""
        from mkt_core.runtime.store import EmbeddingStore, StoreDamaged

        try:
            if self._store is None:
                if self.read_only:
                    self._store = read_only_store(self._store_folder(), self.bundle)
                else:
                    self._store = EmbeddingStore.for_bundle(self._store_folder(), self.bundle)
            else:
                self._store.refresh()  # one small read when nothing changed
        except StoreDamaged as exc:
            self._store = None
            raise StoreDamaged(f"{exc}; `mkt-desktop check` or the next index run repairs it") from None
        return self._store

    def _store_folder(self) -> Path:
        """`<db>-embeddings/sha256-<16 hex>`: a name every file system takes. Before, the folder was named
        after the fingerprint's first 16 characters, `sha256:<9 hex>`, which Windows and FAT/exFAT drives
        refuse; such a folder is renamed once, with everything in it."""
        base = self.db_path.parent / f"{self.db_path.stem}-embeddings"
        fingerprint = self.bundle.fingerprint
        folder = base / store_folder_name(fingerprint)
        old = base / fingerprint[:16]
        if self.read_only and not folder.exists() and (old / "store.json").is_file():
            return old  # nothing is renamed in a library that cannot be written
        if (old != folder and old.parent == base and old.name not in (".", "..") and not folder.exists()
                and (old / "store.json").is_file()):
            try:
                os.rename(old, folder)
            except OSError:
                if not folder.exists():  # (another process may have just moved it)
                    return old  # cannot be renamed here: keep using it where it is
        return folder

    @property
    def score_columns(self) -> ScoreColumns:
        if self._columns is None:
            folder = self.store.folder / "scores"
            if self.read_only:  # a cache it cannot write beside the store: kept in a temporary folder
                import tempfile

                folder = Path(tempfile.mkdtemp(prefix="mkt-scores-"))
            self._columns = ScoreColumns(self.store, folder)
        return self._columns

    def snapshot(self) -> Snapshot:
        """The indexed photos as arrays, rebuilt when anything committed since (see snapshot.py)."""
        with self._lock:
            version = self._watch.version()
            if self._snapshot is None or self._snapshot.version != version:
                store = self.store
                store.refresh()  # another process may have appended
                with self.Session() as session:
                    pairs = session.execute(
                        select(Photo.id, Embedding.id)
                        .join(Embedding, (Embedding.content_hash == Photo.content_hash)
                              & (Embedding.model_id == self.model_id))
                        .where(Photo.status == "ok")).all()
                self._snapshot = build_snapshot(version, pairs, store)
                self._unstored = len(pairs) - len(self._snapshot)
            return self._snapshot

    def label_scores(self, texts: list[str]) -> tuple[Snapshot, list[np.ndarray | None]]:
        """Each saved or typed text's score for every photo of the snapshot, in its order: the one
        score search, the photo view, counts, thresholds and exports all show. None for a text the
        model cannot score (see label_problem): one such label never stops the others."""
        with self._lock:
            snapshot = self.snapshot()
            usable = [t for t in dict.fromkeys(texts) if self.label_problem(t) is None]
            if not len(snapshot):
                return snapshot, [np.zeros(0, dtype=np.float32) if t in usable else None for t in texts]
            while True:
                names = self._column_names(usable)
                try:
                    columns = dict(zip(usable, self.score_columns.columns([names[t] for t in usable], self._queries),
                                       strict=True))
                    break
                except _UnusableLabel:
                    usable = [t for t in usable if self.label_problem(t) is None]
            return snapshot, [columns[t][snapshot.rows] if t in columns else None for t in texts]

    def _column_names(self, texts: list[str]) -> dict[str, str]:
        """Each text's score column: its own, or that of the label adapted to the person's decisions
        (feedback.py). A label keeps its KEPT_COLUMNS latest adapted columns (undoing the last decisions
        finds its scores ready) and drops older ones."""
        from mkt_desktop.library.feedback import learned

        version = (self.snapshot().version, self._watch.commits())  # a decision moves the second
        if self._learning[0] != version:
            self._learning = (version, {})
        cache = self._learning[1]
        unknown = [t for t in texts if t not in cache]
        if unknown:
            found = learned(self, unknown)
            cache.update({t: found.get(t) for t in unknown})
        names = {}
        for text in texts:
            what = cache[text]
            name = text if what is None else what.column_name(text)
            if what is not None:
                self._learned_of[name] = (text, what)
                kept = [n for n in self._kept.get(text, []) if n != name] + [name]
                for old in kept[:-KEPT_COLUMNS]:
                    self.score_columns.forget(old)
                    self._learned_of.pop(old, None)
                self._kept[text] = kept[-KEPT_COLUMNS:]
            self._column_of[text] = names[text] = name
        return names

    def _queries(self, names: list[str]) -> list[np.ndarray]:
        """Score columns' queries: a text's embedding `[D]`, an adapted label's (global, local) `[2, D]`."""
        from mkt_desktop.library.feedback import queries

        plain = [n for n in names if n not in self._learned_of]
        z = dict(zip(plain, self._finite_embeddings(plain), strict=True))
        for text in {self._learned_of[n][0] for n in names if n not in z}:
            kept = self.score_columns.queries(text)  # the text's own column keeps its embedding
            z[text] = kept[0] if kept is not None else self._finite_embeddings([text])[0]
        return [queries(self.store, z[self._learned_of[n][0]], self._learned_of[n][1]) if n not in plain else z[n]
                for n in names]

    def learned_from(self, texts: list[str]) -> dict[str, int]:
        """How many of the person's decisions each saved label's scores learned from."""
        with self._lock:
            self._column_names([t for t in texts if self.label_problem(t) is None])
            cache = self._learning[1]
            return {t: len(cache[t]) if cache.get(t) is not None else 0 for t in texts}

    def label_queries(self, text: str) -> np.ndarray:
        """The (global, local) queries `[2, D]` a text is scored with: its embedding in both streams, or
        for a saved label that learned from decisions, the adapted ones (the heat map uses the local)."""
        with self._lock:
            name = self._column_names([text])[text]
            if name == text:
                return np.broadcast_to(self.label_embeddings([text])[0], (2, self.bundle.embed_dim))
            self.label_scores([text])  # its adapted column, made if new
            queries = self.score_columns.queries(name)
            if queries is None:  # label_scores has just kept them: only a vanished scores folder gets here
                raise LabelError(f"label {text!r}: its learned scores could not be kept in {self.score_columns.folder}")
            return queries

    def forget_corrections(self, text: str) -> None:
        """The label's scores stop learning from the decisions made so far (which stay, as tags)."""
        from mkt_desktop.library.feedback import forget

        forget(self, text)

    def _finite_embeddings(self, texts: list[str]) -> np.ndarray:
        z = self.label_embeddings(texts)
        finite = np.isfinite(z).all(axis=1)
        if not finite.all():
            for text, ok in zip(texts, finite, strict=True):
                if not ok:
                    self._label_problems[text] = NOT_FINITE
            raise _UnusableLabel
        return z

    def label_problem(self, text: str) -> str | None:
        """Why the model cannot score this (saved or typed) label, or None. The tokenizer must find a word
        in it, and its embedding must be finite (known once it was computed)."""
        if text not in self._label_problems and self._store is not None and self.score_columns.knows(text):
            self._label_problems[text] = None
        if text not in self._label_problems:
            try:
                tokens = self.bundle.tokenizer().encode(text)
                problem = None if tokens else "the model's tokenizer finds no word in it (invisible characters only?)"
            except Exception as exc:  # noqa: BLE001 - whatever the tokenizer chokes on, the label is unusable
                problem = f"the model's tokenizer fails on it ({type(exc).__name__}: {exc})"
            self._label_problems[text] = problem
        return self._label_problems[text]

    def check_label(self, text: str, encode: bool = False) -> str:
        """The label as it will be saved, or LabelError: the one rule for labels, applied when one is typed.

        normalise_label (text every export can hold), then the model: its tokenizer must find a word in
        it and (`encode`, for a label about to be saved: it runs the text encoder) its text encoder must
        give finite numbers. Whatever reads labels later applies the same test and skips (and reports) a
        saved label that fails it, so no label can break the others.
        """
        text = normalise_label(text)
        if encode and self.label_problem(text) is None and not np.isfinite(self.label_embeddings([text])).all():
            self._label_problems[text] = NOT_FINITE
        problem = self.label_problem(text)
        if problem:
            raise LabelError(f"label {text!r} cannot be used with this model: {problem}")
        return text

    def unusable_labels(self) -> list[tuple[str, str]]:
        """Saved labels the model cannot score, with the reason (saved by an older version, or a vocabulary
        file's line): they are skipped everywhere and listed here."""
        return [(text, problem) for text in self.vocabulary_labels() if (problem := self.label_problem(text))]

    def null_scores(self) -> NullScores | None:
        """Random texts' scores over this library (score columns like any label's), kept until it changes."""
        with self._lock:
            snapshot = self.snapshot()
            if self._null is None or self._null[0] != snapshot.version:
                _, columns = self.label_scores(list(NULL_TEXTS))
                self._null = (snapshot.version, null_scores(columns))
            return self._null[1]

    @property
    def calibration(self):
        """The model's score -> confidence map from its bundle, None when the bundle has none."""
        return self.bundle.calibration

    @property
    def calibrated(self) -> bool:
        """Whether confidences are measured (the bundle's calibration) rather than how far above random text."""
        return self.calibration is not None

    def automatic_threshold(self) -> float | None:
        """Every label's threshold unless a person set one (labels.py says why it is one number)."""
        return automatic_threshold(self.null_scores(), self.calibration)

    def confidence(self, scores) -> np.ndarray:
        """Raw scores -> calibrated confidences (0 to 1); without a bundle calibration, how far above
        random text on this library (labels.fallback_calibration). Strictly increasing in the score."""
        calibration = self.calibration
        if calibration is None:
            null = self.null_scores()
            if null is None:
                return np.full(np.shape(scores), np.nan)
            calibration = fallback_calibration(null)
        return calibration.confidence(scores)

    def score_at(self, confidence: float) -> float:
        """The raw score a confidence (0 to 1) stands for: thresholds set as a confidence."""
        calibration = self.calibration
        if calibration is None:
            null = self.null_scores()
            if null is None:
                raise ValueError("the library has no indexed photos to set a confidence against")
            calibration = fallback_calibration(null)
        return calibration.score_at(confidence)

    def _confidence_of(self, score: float | None) -> float | None:
        return None if score is None else float(self.confidence(score))

    @property
    def model_id(self) -> int:
        if self._model_id is None:
            with self.Session() as session:
                row = session.scalar(select(Model).where(Model.fingerprint == self.bundle.fingerprint))
                if row is None and self.read_only:
                    return 0  # nothing of this model in a library that cannot be written: no row matches
                if row is None:  # under the write lock: two processes opening a new model make one row
                    session.rollback()
                    begin_write(session)
                    row = session.scalar(select(Model).where(Model.fingerprint == self.bundle.fingerprint))
                    if row is None:
                        row = Model(fingerprint=self.bundle.fingerprint, name=self.bundle.name,
                                    kind=self.bundle.kind)
                        session.add(row)
                    session.commit()
                self._model_id = row.id
        return self._model_id

    @property
    def cache_dir(self) -> Path:
        """Where the library keeps the models it makes (CLIP bundles, the authors' MKT) and their speeds."""
        return self.db_path.parent / "cache"

    @property
    def thumbnail_dir(self) -> Path:
        """Where the app keeps its thumbnails of this library's photos."""
        return self.db_path.parent / f"{self.db_path.stem}-thumbnails"

    def device_description(self) -> str:
        return self.engine.device_description()

    def warm_up(self) -> None:
        """Load what the first new text's search would wait for (the photos' arrays, the store's summary
        tokens, its scoring graphs: seconds at 100,000 photos), so that it answers at once; the window
        runs it in the background once the model is loaded."""
        with self._lock:
            snapshot = self.snapshot()
            if not len(snapshot):
                return
            self.null_scores()  # every search's threshold and note
            if len(snapshot) > EXACT_SEARCH_PHOTOS and self.bundle.num_patches:
                unique, _ = snapshot.distinct_rows()
                self.store.top_rows(np.zeros(self.bundle.embed_dim, dtype=np.float32), unique, 1)

    def label_embeddings(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._label_cache]
        if missing:
            for text, emb in zip(missing, self.engine.encode_labels(missing), strict=True):
                self._label_cache[text] = emb
        if not texts:
            return np.zeros((0, self.bundle.embed_dim), np.float32)
        return np.stack([self._label_cache[t] for t in texts])

    # -- folders ------------------------------------------------------------------------------

    def add_folder(self, path: str | Path) -> int:
        folder = Path(path).expanduser().resolve()
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder")
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder (a file)")
        with self.Session() as session:
            row = session.scalar(select(Folder).where(Folder.path == str(folder)))
            if row is None:  # under the write lock: two processes adding one folder make one row
                session.rollback()
                begin_write(session)
                row = session.scalar(select(Folder).where(Folder.path == str(folder)))
                if row is None:
                    row = Folder(path=str(folder))
                    session.add(row)
                session.commit()
            return row.id

    def remove_folder(self, path: str | Path) -> None:
        """Forget a folder and its photos' results (the files themselves are never touched)."""
        folder = str(Path(path).expanduser().resolve())
        with self.Session() as session:
            row = session.scalar(select(Folder).where(Folder.path == folder))
            if row is None:
                raise KeyError(f"{folder}: not a library folder")
            session.execute(delete(Photo).where(Photo.folder_id == row.id))
            session.delete(row)
            session.commit()

    def folders(self) -> list[str]:
        with self.Session() as session:
            return list(session.scalars(select(Folder.path).order_by(Folder.path)))

    def index(self, folders: list[str | Path] | None = None, progress=None, cancel=None,
              batch_size: int | None = None, retry_failed: bool = False):
        """Index the given folders (added if new), or all library folders; see indexer.py.

        `batch_size` photos are embedded per model call and committed together (a killed run loses at
        most one batch); default: the engine options' batch size (the app's setting), else 16.
        `retry_failed` reads every failed file again, not only those whose failure may have passed.
        The run first repairs a damaged store (its report's `repairs` says what was found).
        """
        from mkt_desktop.library.indexer import Indexer

        batch_size = batch_size or self.engine_options.get("batch_size") or 16
        if folders:
            roots = [self.add_folder(f) for f in folders]
        else:
            with self.Session() as session:
                roots = list(session.scalars(select(Folder.id)))
        repairs = self._heal()  # before the indexer takes the store: a damaged one is rebuilt first
        indexer = Indexer(self.Session, self.model_id, self.store, self.bundle.num_patches > 0,
                          engine=lambda: self.engine, batch_size=batch_size, skip_folders=self.skip_folders)
        report = indexer.run(roots, progress=progress, cancel=cancel, retry_failed=retry_failed)
        report.repairs = repairs
        self.score_saved_labels()
        report.skipped_labels = self.unusable_labels()
        return report

    def check(self) -> list[str]:
        """Check the database and the embedding store against each other and repair what can be
        repaired: one line per problem found and what was done."""
        with self.Session() as session:
            result = session.execute(sql("PRAGMA quick_check")).scalars().all()
        problems = [f"{self.db_path}: {line}" for line in result if line != "ok"]
        return problems + self._heal(full=True)

    def _heal(self, full: bool = False) -> list[str]:
        """Repair the store (store.py) and forget the database's embeddings it does not hold, so
        that the photos they belonged to are embedded again by the index run. Checksums are read
        in `full`, or when a data file changed since this program last wrote or verified it. Done
        under the database's write lock, which every store append also holds: nothing is appended
        to a store while it is rebuilt."""
        from mkt_core.runtime.store import EmbeddingStore

        if self.read_only:
            return []
        model_id = self.model_id
        with self._lock, self.Session() as session:
            begin_write(session)
            store, problems = EmbeddingStore.repair(self.store_folder, self.bundle, full=full)
            store.cover_unverified()
            if problems or self._store is None:  # rebuilt: what was computed from the old one goes
                self._store, self._columns, self._snapshot, self._null = store, None, None, None
                self._watch.bump()
            else:  # nothing repaired: the photo arrays and score columns stay valid (a rescan stays cheap)
                self._store = store
                if self._columns is not None:
                    self._columns.store = store
            live = set(store.ids.tolist())
            ids = session.scalars(select(Embedding.id).where(Embedding.model_id == model_id)).all()
            lost = [i for i in ids if i not in live]
            for start in range(0, len(lost), 500):
                session.execute(delete(Embedding).where(Embedding.id.in_(lost[start:start + 500])))
            session.commit()
        if lost:
            problems.append(f"{self.store_folder}: {len(lost)} indexed photos had no embedding there; "
                            "they are embedded again by this index run (or the next one)")
        return problems

    def score_saved_labels(self) -> None:
        """Every saved label's scores for the photos indexed since, in one pass over the new rows
        (else each label's first use would make its own pass)."""
        self.label_scores(self.vocabulary_labels() + list(NULL_TEXTS))

    def failures(self) -> list[tuple[str, str]]:
        with self.Session() as session:
            rows = session.execute(select(Photo.path, Photo.error).where(Photo.status == "failed").order_by(Photo.path))
            return [(path, error or "unknown error") for path, error in rows]

    def photo_count(self) -> int:
        with self.Session() as session:
            return session.scalar(select(func.count()).select_from(Photo).where(Photo.status == "ok")) or 0

    def photos(self, limit: int | None = None) -> list[tuple[int, str]]:
        with self.Session() as session:
            query = select(Photo.id, Photo.path).where(Photo.status == "ok").order_by(Photo.path)
            return [(i, p) for i, p in session.execute(query.limit(limit) if limit else query)]

    def photo_id(self, path: str | Path) -> int:
        resolved = str(Path(path).expanduser().resolve())
        with self.Session() as session:
            found = session.scalar(select(Photo.id).where(Photo.path.in_([resolved, str(path)])))
        if found is None:
            raise KeyError(f"{path}: not in the library (index its folder first)")
        return found

    # -- labels -------------------------------------------------------------------------------

    def _seed_vocabulary(self) -> None:
        """A new library's labels: the ones its model brings (a demo of one world), else the general list."""
        with self.Session() as session:
            if session.scalar(select(func.count()).select_from(Label)):
                return
            session.rollback()
            begin_write(session)  # two processes opening one new library seed it once
            if session.scalar(select(func.count()).select_from(Label)):
                return
            vocabulary = model_vocabulary(self.model_spec) or DEFAULT_VOCABULARY
            if not vocabulary.is_file():
                return
            seen = set()
            for line in vocabulary.read_text(encoding="utf-8", errors="replace").splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                try:
                    text = normalise_label(line)
                except LabelError:
                    continue  # a line no label could be; one the model cannot read is skipped later
                if text.casefold() not in seen:
                    seen.add(text.casefold())
                    session.add(Label(text=text, key=text.casefold(), source="vocabulary"))
            try:
                session.commit()
            except IntegrityError:  # another process opening the new library seeded it first
                session.rollback()

    def add_label(self, text: str, threshold: float | None = None) -> int:
        """Save a label and score every indexed photo for it from the embedding store (no image is read)."""
        return self.add_labels([text], threshold)[0]

    def add_labels(self, texts: list[str], threshold: float | None = None) -> list[int]:
        """Save labels (one transaction) and score them. All are checked first: one bad label saves none.

        Scores are the store's, completed whenever a label is used (scores.py), so a kill between the
        saving and the scoring, or a failure while scoring, leaves nothing unscored for good.
        """
        threshold = check_threshold(threshold)
        clean = list({text.casefold(): text for text in (self.check_label(t) for t in texts)}.values())
        with self.Session() as session:
            known = set(session.scalars(select(Label.key).where(Label.key.in_([t.casefold() for t in clean]))))
        for text in clean:
            if text.casefold() not in known:
                self.check_label(text, encode=True)  # a new label: its embedding must be finite too
        with self.Session() as session:
            begin_write(session)
            rows = []
            for text in clean:
                row = session.scalar(select(Label).where(Label.key == text.casefold()))
                if row is None:
                    row = Label(text=text, key=text.casefold(), threshold=threshold, source="user")
                    session.add(row)
                else:
                    row.source = "user"
                    if threshold is not None:
                        row.threshold = threshold
                rows.append(row)
            session.commit()
            saved = [(row.id, row.text) for row in rows]
        for label_id, text in saved:
            self.score_label_everywhere(label_id, text)
        return [label_id for label_id, _ in saved]

    def score_label_everywhere(self, label_id: int, text: str) -> int:
        """Compute a label's scores for every photo now (else its first use would); returns how many."""
        snapshot, _ = self.label_scores([text])
        return len(snapshot)

    def rename_label(self, old: str, new: str) -> None:
        new_text = self.check_label(new, encode=True)
        with self.Session() as session:
            row = self._label(session, old)
            clash = session.scalar(select(Label).where(Label.key == new_text.casefold(), Label.id != row.id))
            if clash is not None:
                raise LabelError(f"a label {clash.text!r} already exists")
            old_text = row.text
            row.text, row.key = new_text, new_text.casefold()
            session.commit()
            label_id = row.id
        self._forget_columns(old_text)  # new words, new scores
        self.score_label_everywhere(label_id, new_text)

    def remove_label(self, text: str) -> None:
        with self.Session() as session:
            row = self._label(session, text)
            removed = row.text
            session.delete(row)
            session.commit()
        self._forget_columns(removed)

    def _forget_columns(self, text: str) -> None:
        """Drop a label's score column, and the one it learned from decisions, if any (feedback.py)."""
        with self._lock:
            self.score_columns.forget(text)
            self._column_of.pop(text, None)
            for adapted in self._kept.pop(text, []):
                self.score_columns.forget(adapted)
                self._learned_of.pop(adapted, None)

    def set_threshold(self, text: str, threshold: float | None) -> None:
        threshold = check_threshold(threshold)
        with self.Session() as session:
            self._label(session, text).threshold = threshold
            session.commit()

    def _label(self, session: Session, text: str) -> Label:
        row = session.scalar(select(Label).where(Label.key == label_key(text)))
        if row is None:
            raise LabelError(f"no label {' '.join(str(text).split())!r} (see `labels list`)")
        return row

    def labels(self, source: str | None = "user", ids: list[int] | None = None) -> list[LabelInfo]:
        """Saved labels with their thresholds and how many photos are above them (counted over the
        score columns, every photo at once)."""
        with self.Session() as session:
            query = select(Label).order_by(Label.text)
            if source:
                query = query.where(Label.source == source)
            if ids is not None:
                query = query.where(Label.id.in_(ids))
            labels = session.scalars(query).all()
            decided: dict[int, list[tuple[int, str]]] = {}
            for label_id, photo_id, status in session.execute(select(Tag.label_id, Tag.photo_id, Tag.status).where(
                    Tag.label_id.in_([label.id for label in labels]))):
                decided.setdefault(label_id, []).append((photo_id, status))
        if not labels:
            return []
        with self._lock:
            snapshot, columns = self.label_scores([label.text for label in labels])
            automatic = self.automatic_threshold()
            learned = self.learned_from([label.text for label in labels])
            result = []
            for label, scores in zip(labels, columns, strict=True):
                if scores is None:  # the model cannot score it: listed, with nothing above its threshold
                    result.append(LabelInfo(label.id, label.text, label.threshold, label.threshold, 0, label.source))
                    continue
                effective = label.threshold if label.threshold is not None else automatic
                above = int(np.count_nonzero(scores >= effective)) if effective is not None else 0
                result.append(LabelInfo(label.id, label.text, label.threshold, effective, above, label.source,
                                        self._confidence_of(effective), learned[label.text],
                                        _tagged(snapshot, scores, effective, decided.get(label.id, []))))
        return result

    def vocabulary_labels(self) -> list[str]:
        with self.Session() as session:
            return list(session.scalars(select(Label.text).order_by(Label.id)))

    # -- search -------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50, among: list[int] | None = None) -> SearchResult:
        """Top photos for any text (saved or not), best first, and the threshold that applies.

        A saved label ranks its score column. A text typed for the first time is scored over every
        photo of a small library; over a large one (more than EXACT_SEARCH_PHOTOS) the store's
        summary tokens pick candidates that are then scored exactly. `among`: the photo ids to look
        among (a folder's, a date range's: browse.view_photo_ids), None: every photo. The result's
        `note` says so when no photo is above the threshold, and whether the text looks unknown.
        """
        text = normalise_label(text)
        with self.Session() as session:
            saved = session.scalar(select(Label).where(Label.key == text.casefold()))
        with self._lock:
            snapshot = self.snapshot()
            text = self.check_label(text)  # after the store opens: a saved label's column needs no tokenizer
            positions = None if among is None else snapshot.positions_of(among)
            count = len(snapshot) if positions is None else len(positions)
            if not count:
                return SearchResult([], None, warning=self.unstored_warning())
            text = saved.text if saved is not None else text
            if saved is not None or count <= EXACT_SEARCH_PHOTOS:
                if saved is not None:
                    _, (scores,) = self.label_scores([text])
                    if scores is None:  # a saved label the model cannot score (check_label let it through)
                        raise LabelError(f"label {text!r} cannot be used with this model: "
                                         f"{self.label_problem(text)}")
                    ids = snapshot.photo_ids
                    if positions is not None:
                        scores, ids = scores[positions], ids[positions]
                else:
                    ids, scores = self._typed_scores(snapshot, text, positions)
                top = _top(scores, ids, limit)
                found = list(zip(ids[top].tolist(), scores[top].tolist(), strict=True))
                best: float | None = float(scores.max())
            else:
                found = self._candidate_search(snapshot, text, limit, positions)
                best = found[0][1] if found else None
            threshold = saved.threshold if saved is not None and saved.threshold is not None else None
            if threshold is None:
                threshold = self.automatic_threshold()
            note = self._no_match_note(text, best, threshold)
            confidences = self.confidence([score for _, score in found]).tolist()
            threshold_confidence = self._confidence_of(threshold)
        with self.Session() as session:
            paths = dict(session.execute(select(Photo.id, Photo.path).where(
                Photo.id.in_([photo_id for photo_id, _ in found]))).all())
        hits = [SearchHit(photo_id, paths[photo_id], score, confidence)
                for (photo_id, score), confidence in zip(found, confidences, strict=True)]
        return SearchResult(hits, threshold, note, threshold_confidence, self.unstored_warning())

    def unstored_warning(self) -> str | None:
        """One line when indexed photos lack their embedding (a damaged or deleted store), else None."""
        if not self._unstored:
            return None
        return (f"{self.store_folder}: {self._unstored} indexed photos have no embedding here (the store was "
                "damaged or deleted); they are left out until the next index run embeds them again")

    def _no_match_note(self, text: str, best: float | None, threshold: float | None) -> str | None:
        """None when some photo is at or above the threshold; else what a person should be told."""
        if best is None or threshold is None or best >= threshold:
            return None
        null = self.null_scores()
        if null is not None and best <= null.best:
            return (f"this model does not seem to know {text!r}: no photo scores above what random text "
                    "scores here")
        return (f"no photo clearly matches {text!r} (the best is {self._confidence_of(best):.0%}, "
                f"the threshold {self._confidence_of(threshold):.0%})")

    def _typed_scores(self, snapshot: Snapshot, text: str, positions: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """A text that is not a saved label, scored over the snapshot's photos (those at `positions` when
        given), not kept on disk: (photo ids, scores)."""
        z = self.label_embeddings([text])
        if positions is None:
            unique, inverse = snapshot.distinct_rows()
            return snapshot.photo_ids, self.store.score_labels(z, rows=unique)[inverse, 0]
        unique, inverse = np.unique(snapshot.rows[positions], return_inverse=True)
        return snapshot.photo_ids[positions], self.store.score_labels(z, rows=unique)[inverse.reshape(-1), 0]

    def _candidate_search(self, snapshot: Snapshot, text: str, limit: int,
                          positions: np.ndarray | None = None) -> list[tuple[int, float]]:
        """[(photo id, exact score)] of the best photos (of those at `positions`), through the store's
        summary tokens."""
        z = self.label_embeddings([text])
        unique = snapshot.distinct_rows()[0] if positions is None else np.unique(snapshot.rows[positions])
        rows, exact = self.store.top_rows(z[0], unique, limit)
        score_of = dict(zip(rows.tolist(), exact.tolist(), strict=True))
        picked = np.flatnonzero(np.isin(snapshot.rows, rows))
        if positions is not None:
            picked = np.intersect1d(picked, positions)
        return sorted(((int(snapshot.photo_ids[i]), score_of[int(snapshot.rows[i])]) for i in picked),
                      key=lambda item: (-item[1], item[0]))[:limit]

    def photo_labels(self, photo: int | str | Path, limit: int = 10, source: str | None = None) -> list[PhotoLabel]:
        """A photo's best labels with scores, thresholds and a person's decisions."""
        photo_id = photo if isinstance(photo, int) else self.photo_id(photo)
        with self.Session() as session:
            query = select(Label.id, Label.text)
            if source:
                query = query.where(Label.source == source)
            labels = session.execute(query.order_by(Label.id)).all()
            tags = dict(session.execute(select(Tag.label_id, Tag.status).where(Tag.photo_id == photo_id)).all())
            texts = dict(session.execute(select(Label.id, Label.text).where(Label.id.in_(tags))).all())
        snapshot, columns = self.label_scores([text for _, text in labels])
        index = snapshot.index_of(photo_id)
        score_of = {} if index is None else {label_id: float(column[index])
                                             for (label_id, _), column in zip(labels, columns, strict=True)
                                             if column is not None}
        best = sorted(labels, key=lambda item: -score_of.get(item[0], -np.inf))[:limit]
        infos = {info.id: info for info in self.labels(source=None, ids=[*tags, *(i for i, _ in best)])}
        result = [PhotoLabel(texts[label_id], score_of.get(label_id), infos[label_id].effective_threshold, status,
                             self._confidence_of(score_of.get(label_id)))
                  for label_id, status in tags.items()]
        for label_id, text in best:
            if label_id not in tags and len(result) < limit and label_id in score_of:
                result.append(PhotoLabel(text, score_of[label_id], infos[label_id].effective_threshold, "auto",
                                         self._confidence_of(score_of[label_id])))
        return result

    def _unit_globals(self, snapshot: Snapshot) -> np.ndarray:
        """The snapshot's global embeddings at unit length, float32, in its order; kept for the snapshot
        while they fit in UNIT_GLOBALS_BYTES (then "more like this" is one matrix-vector product)."""
        if self._unit is not None and self._unit[0] == snapshot.version:
            return self._unit[1]
        matrix = self.store.global_embeddings_of_rows(snapshot.rows)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)
        self._unit = (snapshot.version, matrix) if matrix.nbytes <= UNIT_GLOBALS_BYTES else None
        return matrix

    def similar(self, photo: int | str | Path, limit: int = 20, among: list[int] | None = None) -> list[SearchHit]:
        """More like this: cosine of global embeddings; `among` as for `search`."""
        photo_id = photo if isinstance(photo, int) else self.photo_id(photo)
        snapshot = self.snapshot()
        index = snapshot.index_of(photo_id)
        if index is None:
            raise KeyError(f"photo {photo_id} has no embedding for this model")
        matrix = self._unit_globals(snapshot)
        similarity = matrix @ matrix[index]
        similarity[index] = -np.inf  # not the photo itself
        if among is not None:
            outside = np.ones(len(snapshot), dtype=bool)
            outside[snapshot.positions_of(among)] = False
            similarity[outside] = -np.inf
        kept = int(np.isfinite(similarity).sum())
        top = _top(similarity, snapshot.photo_ids, min(limit, kept))
        with self.Session() as session:
            paths = dict(session.execute(select(Photo.id, Photo.path).where(
                Photo.id.in_(snapshot.photo_ids[top].tolist()))).all())
        return [SearchHit(int(snapshot.photo_ids[i]), paths[int(snapshot.photo_ids[i])], float(similarity[i]))
                for i in top]

    def _embedding_id(self, photo: int | str | Path) -> int:
        photo_id = photo if isinstance(photo, int) else self.photo_id(photo)
        with self.Session() as session:
            embedding_id = session.scalar(
                select(Embedding.id).join(Photo, (Embedding.content_hash == Photo.content_hash)
                                          & (Embedding.model_id == self.model_id)).where(Photo.id == photo_id))
        if embedding_id is None:
            raise KeyError(f"photo {photo_id} has no embedding for this model")
        return embedding_id

    def embeddings(self, photo: int | str | Path) -> tuple[np.ndarray, np.ndarray | None]:
        """A photo's stored (global [D], local [N, D] or None) embeddings for this model."""
        return self.store.get(self._embedding_id(photo))

    def patch_scores(self, photo: int | str | Path, label: str) -> np.ndarray | None:
        """Where in the photo a label is: each patch's score `<z, e_j>` on the patch grid `[rows, cols]`
        (the local stream of Eq. 3, as the store computes it); None for a model without a local stream."""
        if not self.bundle.num_patches:
            return None
        embedding_id = self._embedding_id(photo)
        rows, cols = self.bundle.manifest["patch_grid"]
        local = self.label_queries(self.check_label(label))[1]  # adapted to the person's decisions, if any
        return self.store.patch_dots(embedding_id, local).reshape(rows, cols)

    # -- tags and export ----------------------------------------------------------------------

    def set_tag(self, photo: int | str | Path, label: str, status: str | None) -> None:
        """Accept or reject a label on a photo (None forgets the decision). The label is saved if new."""
        self.set_tags([photo], label, status)

    def set_tags(self, photos: list[int | str | Path], label: str, status: str | None) -> None:
        """Set one label's status on several photos in one transaction: a label that learns from
        decisions (feedback.py) is adapted once for all of them, not once per photo."""
        photo_ids = [photo if isinstance(photo, int) else self.photo_id(photo) for photo in photos]
        self.put_tags(label, {photo_id: (status, None) for photo_id in photo_ids})

    def put_tags(self, label: str, tags: dict[int, tuple[str | None, object]]) -> None:
        """{photo id: (status, when it was set, None: now)} for one label, in one transaction (an undo)."""
        if any(status not in ("accepted", "rejected", None) for status, _ in tags.values()):
            raise ValueError("a tag's status is 'accepted', 'rejected' or None")
        label_id = self.add_label(label)
        now = utcnow()
        with self.Session() as session:
            session.execute(delete(Tag).where(Tag.photo_id.in_(list(tags)), Tag.label_id == label_id))
            session.add_all([Tag(photo_id=photo_id, label_id=label_id, status=status, updated=updated or now)
                             for photo_id, (status, updated) in tags.items() if status])
            session.commit()

    def photo_tags(self) -> dict[str, list[PhotoLabel]]:
        """Each photo's tags for export: accepted ones, and saved labels above threshold not rejected."""
        infos = self.labels(source="user")
        with self.Session() as session:
            photos = dict(session.execute(select(Photo.id, Photo.path).where(Photo.status == "ok")).all())
            tags = session.execute(select(Tag.photo_id, Tag.label_id, Tag.status)).all()
            texts = dict(session.execute(select(Label.id, Label.text)).all())
        decided = {(p, lab): s for p, lab, s in tags}
        snapshot, columns = self.label_scores([info.text for info in infos])
        by_id = {info.id: (info, column) for info, column in zip(infos, columns, strict=True)}
        result: dict[str, list[PhotoLabel]] = {}
        for info, scores in by_id.values():
            if info.effective_threshold is None or scores is None:
                continue
            for i in np.flatnonzero(scores >= info.effective_threshold):
                photo_id = int(snapshot.photo_ids[i])
                if (photo_id, info.id) not in decided and photo_id in photos:
                    result.setdefault(photos[photo_id], []).append(
                        PhotoLabel(info.text, float(scores[i]), info.effective_threshold, "auto",
                                   self._confidence_of(float(scores[i]))))
        for (photo_id, label_id), status in decided.items():
            if photo_id in photos:
                decided_info, decided_scores = by_id.get(label_id, (None, None))
                index = snapshot.index_of(photo_id)
                score = (float(decided_scores[index]) if decided_scores is not None and index is not None
                         else None)
                threshold = decided_info.effective_threshold if decided_info else None
                result.setdefault(photos[photo_id], []).append(PhotoLabel(texts[label_id], score, threshold, status,
                                                                          self._confidence_of(score)))
        return result

    def export_xmp(self) -> tuple[int, list[tuple[str, str]]]:
        """Bring every photo's XMP sidecar in line with the person's decisions: accepted and
        above-threshold labels as dc:subject keywords; keywords this app wrote before that are now
        rejected, below threshold or deleted are taken out (other programs' keywords stay).
        Returns (sidecars rewritten, [(path, problem)])."""
        from mkt_core.runtime.files import remove_stale_temporaries
        from mkt_desktop.library.xmp import SidecarError, existing_sidecars, sync_subjects

        tags = self.photo_tags()
        with self.Session() as session:
            paths = list(session.scalars(select(Photo.path).where(Photo.status == "ok").order_by(Photo.path)))
        written, problems, cleaned = 0, [], set()
        for path in paths:
            subjects = []
            for pl in tags.get(path, []):
                bad = NOT_XML.search(pl.label) if pl.status != "rejected" else None
                if bad:  # saved by a version that let it in: the photo's other labels are still written
                    problems.append((path, f"label {pl.label!r} left out: XMP cannot store U+{ord(bad.group()):04X}"))
                elif pl.status != "rejected":
                    subjects.append(pl.label)
            if not subjects and not existing_sidecars(path):
                continue
            folder = os.path.dirname(path)
            if folder not in cleaned:
                cleaned.add(folder)
                remove_stale_temporaries(folder)
            try:
                if sync_subjects(path, subjects) is not None:
                    written += 1
            except (SidecarError, OSError, ValueError) as exc:
                problems.append((path, str(exc)))
        return written, problems

    def export_rows(self) -> list[dict]:
        """CSV / JSON rows; a path that is not UTF-8 is written in its readable form (\\xNN escapes)."""
        return [{"path": printable_path(path),
                 "labels": [{"label": pl.label, "score": pl.score, "confidence": pl.confidence, "status": pl.status}
                            for pl in labels]}
                for path, labels in sorted(self.photo_tags().items())]

    def forget_missing(self) -> int:
        """Drop photos that have been gone from disk (and were not found moved) from the database."""
        with self.Session() as session:
            deleted = cast(CursorResult, session.execute(delete(Photo).where(Photo.status == "missing")))
            count = deleted.rowcount
            session.commit()
            return count

    # -- browsing, undoable decisions, where a label is (each in its own module) -------------

    def browse(self, view=None, hits=None):
        """Photos (or search hits) of one folder / date range, ordered by date taken, name or best match."""
        from mkt_desktop.library.browse import View, arrange

        return arrange(self, hits, view or View())

    def view_photo_ids(self, view) -> list[int] | None:
        """The photos a filtered view keeps, for `search(among=...)`; None when it keeps every photo."""
        from mkt_desktop.library.browse import view_photo_ids

        return view_photo_ids(self, view)

    def taken_years(self) -> list[int]:
        from mkt_desktop.library.browse import taken_years

        return taken_years(self)

    def label_column(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """A saved label's score for every indexed photo and those photos' ids, `[P]` each in one order:
        the threshold panel's range and counts, with no SQL row or Python object per photo (search's
        hits fetch a path each: 100,000 of them for a panel)."""
        text = self.check_label(text)
        with self._lock:
            snapshot, (scores,) = self.label_scores([text])
        if scores is None:
            raise LabelError(f"label {text!r} cannot be used with this model: {self.label_problem(text)}")
        return snapshot.photo_ids, scores

    def label_statuses(self, label: str) -> dict[int, str]:
        """Photo id -> "accepted" or "rejected": a person's decisions about one label."""
        from mkt_desktop.library.decisions import label_statuses

        return label_statuses(self, label)

    def decide(self, photo_ids: list[int], label: str, status: str | None):
        """Accept / reject a label on photos, as a Decision that `undo` can take back."""
        from mkt_desktop.library.decisions import decide

        return decide(self, photo_ids, label, status)

    def undo(self, decision) -> None:
        from mkt_desktop.library.decisions import undo

        undo(self, decision)

    def where(self, photo: int | str | Path, label: str) -> dict:
        """The label's score on each patch of the photo, as numbers (the heat map)."""
        from mkt_desktop.library.where import where

        return where(self, photo, label)

def _tagged(snapshot: Snapshot, scores: np.ndarray, threshold: float | None,
            decided: list[tuple[int, str]]) -> int:
    """How many photos a label tags: those above its threshold a person did not reject, and those accepted."""
    count = int(np.count_nonzero(scores >= threshold)) if threshold is not None else 0
    for photo_id, status in decided:
        index = snapshot.index_of(photo_id)
        above = threshold is not None and index is not None and bool(scores[index] >= threshold)
        count += int(status == "accepted" and not above) - int(status == "rejected" and above)
    return count


def _top(scores: np.ndarray, photo_ids: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` best scores, best first; ties go to the older photo (smaller id)."""
    limit = max(0, min(limit, len(scores)))
    if limit == 0:
        return np.zeros(0, dtype=np.int64)
    if limit < len(scores):
        cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        candidates = np.flatnonzero(scores >= cut)
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((photo_ids[candidates], -scores[candidates]))
    return candidates[order][:limit]
