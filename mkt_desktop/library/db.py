"""The library's SQLite database: folders, photos, models, labels, scores, tags, embeddings.

SQLAlchemy 2 over SQLite in WAL mode with foreign keys on. The schema carries a version;
`open_database` creates a new database or migrates an older one step by step.
File and folder paths are `FsPath` columns: a name that is not valid UTF-8 (any bytes are a valid
POSIX name) is kept as its exact bytes (a BLOB in the same column), every other path as text, as
before; both come back as the str Python's os functions take (surrogate-escaped, `os.fsdecode`).
The vectors themselves live in the memory-mapped embedding store (`mkt_core.runtime.store`); the
`embeddings` table maps (model, content hash) to the store's row id, so that byte-identical
photos share one embedding and a moved photo keeps its own.
"""

import os
import sqlite3
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SCHEMA_VERSION = 5


class DatabaseError(RuntimeError):
    """The library database cannot be opened or created; the message names the path and the reason."""


IN_CHUNK = 10_000  # ids in one `IN (...)`: under SQLite's limit on a statement's parameters


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class FsPath(TypeDecorator):
    """A file system path, stored losslessly: text when it is valid UTF-8, else its bytes."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates: bytes that are not UTF-8 (os.fsdecode)
                return os.fsencode(value)
        return value

    def process_result_value(self, value, dialect):
        return os.fsdecode(value) if isinstance(value, bytes) else value


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Folder(Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    added: Mapped[datetime] = mapped_column(default=utcnow)


class Photo(Base):
    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id", ondelete="SET NULL"), index=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    mtime_ns: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column()
    # "ok": indexed; "failed": could not be read (see error); "missing": gone from disk, kept
    # so that the same content reappearing elsewhere (a move) keeps its tags and scores
    status: Mapped[str] = mapped_column(String(16), default="ok", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # a failure the next run tries again: its cause may pass (a permission, a file being written, the model)
    retry: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    indexed: Mapped[datetime] = mapped_column(default=utcnow)


class Model(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default="mkt")


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text, unique=True)  # case-folded text: "Dog" and "dog" are one label
    threshold: Mapped[float | None] = mapped_column(Float)  # None: automatic (see labels.py)
    source: Mapped[str] = mapped_column(String(16), default="user")  # "user" or "vocabulary"
    created: Mapped[datetime] = mapped_column(default=utcnow)
    # "forget my corrections": the label's scores learn only from decisions made after this (feedback.py)
    learned_since: Mapped[datetime | None] = mapped_column()


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model_id", "content_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the store's row id
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))


class Tag(Base):
    """A person's decision about a label on a photo: it outranks any score."""

    __tablename__ = "tags"
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # "accepted" or "rejected"
    updated: Mapped[datetime] = mapped_column(default=utcnow)


BUSY_TIMEOUT_S = 10.0


def _sqlite_pragmas(dbapi_connection, connection_record, read_only: bool = False) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")  # first: the pragmas below may wait
    if not read_only:  # a read-only library keeps the journal mode it has: changing it is a write
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor) -> None:
    """Switch to WAL, waiting for other processes. SQLite answers "database is locked" at once, without its
    busy handler, when two processes open a new library together and both ask for WAL: so retry here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def database_writable(path: str | Path) -> bool:
    """Whether the library at `path` can be written: the file, and its folder (SQLite's WAL files live there)."""
    path = Path(path)
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    return True  # a new library: creating it says whether it can be


def _add_retry(conn) -> None:
    """1 -> 2: photos.retry. Failures recorded before it are tried once more: version 1 kept every failure
    for good, a fixed permission or a file that was being copied included."""
    columns = [row[1] for row in conn.execute(text("PRAGMA table_info(photos)"))]
    if "retry" not in columns:  # another process may have just migrated it
        conn.execute(text("ALTER TABLE photos ADD COLUMN retry BOOLEAN NOT NULL DEFAULT 0"))
    conn.execute(text("UPDATE photos SET retry = 1 WHERE status = 'failed'"))


# Each migration takes the database from version i to i + 1; version 1 is create_all.
def _drop_scores(conn) -> None:
    """Scores left SQLite for columns beside the embedding store (library/scores.py): a library of
    100,000 photos held 35 million score rows. They are computed again from the store when needed."""
    conn.execute(text("DROP TABLE IF EXISTS scores"))


# What moves the photo generation: the set of indexed photos, their content, or their embeddings.
PHOTO_EVENTS = {
    "photos_inserted": "INSERT ON photos",
    "photos_deleted": "DELETE ON photos",
    "photos_changed": "UPDATE OF status, content_hash ON photos",
    "embeddings_inserted": "INSERT ON embeddings",
    "embeddings_deleted": "DELETE ON embeddings",
    "embeddings_changed": "UPDATE ON embeddings",
}


def _add_photo_generation(conn) -> None:
    """3 -> 4: `photo_generation`, a counter that triggers move when photos or embeddings change, so that
    a threshold, a label or a decision saved does not make the window rebuild its arrays of every photo
    (snapshot.py; a quarter of a second at 20,000 photos). Idempotent: new libraries run it too."""
    conn.execute(text("CREATE TABLE IF NOT EXISTS photo_generation "
                      "(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)"))
    conn.execute(text("INSERT OR IGNORE INTO photo_generation (id, value) VALUES (1, 0)"))
    for name, change in PHOTO_EVENTS.items():
        conn.execute(text(f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {change} "
                          "BEGIN UPDATE photo_generation SET value = value + 1; END"))


def _add_learned_since(conn) -> None:
    """4 -> 5: labels.learned_since, for forgetting what a label learned from decisions (feedback.py)."""
    columns = [row[1] for row in conn.execute(text("PRAGMA table_info(labels)"))]
    if "learned_since" not in columns:  # another process may have just migrated it
        conn.execute(text("ALTER TABLE labels ADD COLUMN learned_since DATETIME"))


MIGRATIONS: list = [_add_retry, _drop_scores, _add_photo_generation, _add_learned_since]


def begin_write(session: Session) -> None:
    """Take the database's write lock now, before reading what to write (BEGIN IMMEDIATE): another process
    cannot commit between this transaction's reads and its writes. Call it before anything else in the
    session. Waits up to the busy timeout for another writer."""
    session.execute(text("BEGIN IMMEDIATE"))


def open_database(path: str | Path, read_only: bool = False) -> sessionmaker[Session]:
    """Open (creating or migrating) the library database at `path`; returns a session factory.

    `read_only` opens an existing library for reading (search, browse, export elsewhere) without writing
    a byte, for a library on a read-only disk or folder. Failures raise `DatabaseError` naming the path.
    """
    path = Path(path)
    if read_only:
        if not path.is_file():
            raise DatabaseError(f"{path}: no library database there to open read-only")
        # A WAL library in a folder where SQLite cannot make its -shm file only opens as immutable.
        shared = path.with_name(path.name + "-shm")
        mode = "mode=ro" if os.access(path.parent, os.W_OK) or shared.exists() else "immutable=1"
        location = urllib.parse.quote(str(path.resolve()))
        engine = create_engine(f"sqlite:///file:{location}?{mode}&uri=true", future=True)
        event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, record, read_only=True))
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "a file is in the way" if isinstance(exc, FileExistsError | NotADirectoryError) else exc.strerror
            raise DatabaseError(f"{path}: cannot create the library's folder {path.parent}: {why or exc}") from exc
        if path.is_dir():
            raise DatabaseError(f"{path}: is a folder, not a library database file")
        engine = create_engine(f"sqlite:///{path}", future=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    for attempt in range(100):
        try:
            _migrate(engine, path, read_only)
            break
        except (IntegrityError, OperationalError) as exc:  # another process is creating it this very moment
            if attempt < 99 and ("UNIQUE" in str(exc) or "already exists" in str(exc)):
                time.sleep(0.05)
                continue
            engine.dispose()
            raise DatabaseError(f"{path}: cannot open the library database: {_reason(exc, path)}") from exc
        except DBAPIError as exc:
            engine.dispose()
            raise DatabaseError(f"{path}: cannot open the library database: {_reason(exc, path)}") from exc
    return sessionmaker(engine, expire_on_commit=False)


def _reason(exc: DBAPIError, path: Path) -> str:
    """SQLite's complaint in words a person can act on."""
    original = exc.orig
    message = str(original) if original is not None else str(exc)
    if isinstance(original, sqlite3.DatabaseError) and "file is not a database" in message:
        return "it is not a library database (not an SQLite file)"
    if "unable to open" in message or "readonly" in message or "read-only" in message:
        if not os.access(path.parent, os.W_OK):
            return f"the folder {path.parent} is read-only"
        return f"it cannot be written ({message})"
    return message


def _migrate(engine: Engine, path: Path, read_only: bool = False) -> None:
    with engine.begin() as conn:
        has_info = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_info'")).first()
        version = conn.execute(select(SchemaInfo.version)).scalar() if has_info else None
    if read_only:
        if version != SCHEMA_VERSION:
            raise DatabaseError(f"{path}: a read-only library must be at schema version {SCHEMA_VERSION}, "
                                f"not {version}; open it once where it can be written")
        return
    if version is None:
        with engine.connect() as conn:  # under the write lock: two processes creating one library make it once
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            exists = text("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_info'")
            if not conn.execute(exists).first():
                Base.metadata.create_all(conn)
                _add_photo_generation(conn)
                conn.execute(insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION))
            conn.commit()
        return
    if not isinstance(version, int) or version < 1:
        raise DatabaseError(f"{path}: schema version {version!r} was never written by this program (damaged?); "
                            "it is left as it is")
    if version > SCHEMA_VERSION:
        raise DatabaseError(f"{path}: database schema version {version} is newer than this program's "
                           f"({SCHEMA_VERSION}); update MKT Photo Tagger")
    while version < SCHEMA_VERSION:
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            version += 1
            conn.execute(text("UPDATE schema_info SET version = :v"), {"v": version})
