"""The library's SQLite database: folders, photos, models, labels, scores, tags, embeddings.

SQLAlchemy 2 over SQLite in WAL mode with foreign keys on. The schema carries a version;
`open_database` creates a new database or migrates an older one step by step.
The vectors themselves live in the memory-mapped embedding store (`mkt_core.runtime.store`); the
`embeddings` table maps (model, content hash) to the store's row id, so that byte-identical
photos share one embedding and a moved photo keeps its own.
"""

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class SchemaInfo(Base):
    __tablename__ = "schema_info"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class Folder(Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    added: Mapped[datetime] = mapped_column(default=utcnow)


class Photo(Base):
    __tablename__ = "photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
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


class Embedding(Base):
    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("model_id", "content_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the store's row id
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (Index("ix_scores_top", "label_id", "model_id", "score"),)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)


class Tag(Base):
    """A person's decision about a label on a photo: it outranks any score."""

    __tablename__ = "tags"
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # "accepted" or "rejected"
    updated: Mapped[datetime] = mapped_column(default=utcnow)


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commit
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


# Each migration takes the database from version i to i + 1; version 1 is create_all.
MIGRATIONS: list = []


def open_database(path: str | Path) -> sessionmaker[Session]:
    """Open (creating or migrating) the library database at `path`; returns a session factory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    _migrate(engine, path)
    return sessionmaker(engine, expire_on_commit=False)


def _migrate(engine: Engine, path: Path) -> None:
    with engine.begin() as conn:
        has_info = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_info'")).first()
        version = conn.execute(select(SchemaInfo.version)).scalar() if has_info else None
    if version is None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
            session.commit()
        return
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path}: database schema version {version} is newer than this program's "
                           f"({SCHEMA_VERSION}); update MKT Photo Tagger")
    while version < SCHEMA_VERSION:
        with engine.begin() as conn:
            MIGRATIONS[version - 1](conn)
            version += 1
            conn.execute(text("UPDATE schema_info SET version = :v"), {"v": version})
