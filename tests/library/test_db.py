"""The library database: WAL, foreign keys, a schema version, migrations in order, newer schemas refused."""

import sqlite3

import pytest
from sqlalchemy import text

from mkt_desktop.library import db


def test_a_new_database_uses_wal_and_foreign_keys_and_records_its_version(tmp_path):
    path = tmp_path / "lib.sqlite"
    Session = db.open_database(path)
    with Session() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(Exception, match="FOREIGN KEY"):  # a tag on a photo that does not exist
            session.execute(text("INSERT INTO tags (photo_id, label_id, status, updated) "
                                 "VALUES (999, 999, 'accepted', '2026-01-01')"))
            session.commit()
    assert sqlite3.connect(path).execute("SELECT version FROM schema_info").fetchone() == (db.SCHEMA_VERSION,)


def test_migrations_run_in_order_and_keep_the_data(tmp_path, monkeypatch):
    path = tmp_path / "lib.sqlite"
    Session = db.open_database(path)
    with Session() as session:
        session.execute(text("INSERT INTO labels (text, key, source, created) "
                             "VALUES ('red star', 'red star', 'user', '2026-01-01')"))
        session.commit()
    ran = []

    def add_note_column(conn):
        ran.append("next")
        conn.execute(text("ALTER TABLE labels ADD COLUMN note TEXT"))

    new = db.SCHEMA_VERSION + 1
    monkeypatch.setattr(db, "SCHEMA_VERSION", new)
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, add_note_column])
    db.open_database(path)
    db.open_database(path)  # already at the new version: nothing runs again
    assert ran == ["next"]
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_info").fetchone() == (new,)
    assert con.execute("SELECT text, note FROM labels").fetchall() == [("red star", None)]


def test_a_database_from_a_newer_program_is_refused_untouched(tmp_path):
    path = tmp_path / "lib.sqlite"
    db.open_database(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_info SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(RuntimeError, match=r"lib\.sqlite: database schema version 99 is newer"):
        db.open_database(path)
    assert sqlite3.connect(path).execute("SELECT version FROM schema_info").fetchone() == (99,)


def test_a_version_1_database_migrates_and_its_failures_are_tried_once_more(tmp_path):
    path = tmp_path / "old.sqlite"
    db.open_database(path)
    con = sqlite3.connect(path)  # make it what version 1 wrote: no photos.retry
    con.execute("ALTER TABLE photos DROP COLUMN retry")
    con.execute("UPDATE schema_info SET version = 1")
    con.execute("INSERT INTO photos (path, size, mtime_ns, status, error, indexed) VALUES "
                "('/p/locked.jpg', 10, 5, 'failed', 'permission denied', '2026-01-01'), "
                "('/p/fine.jpg', 10, 5, 'ok', NULL, '2026-01-01')")
    con.commit()
    con.close()
    db.open_database(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_info").fetchone() == (db.SCHEMA_VERSION,)
    assert con.execute("SELECT path, status, retry FROM photos ORDER BY path").fetchall() == [
        ("/p/fine.jpg", "ok", 0), ("/p/locked.jpg", "failed", 1)]


def test_a_version_2_database_loses_its_score_rows_and_keeps_the_rest(tmp_path):
    """Scores moved out of SQLite (score columns beside the store): the old rows are dropped, not kept as
    dead weight (35 million rows in a library of 100,000 photos)."""
    path = tmp_path / "old.sqlite"
    db.open_database(path)
    con = sqlite3.connect(path)  # make it what version 2 wrote: a scores table full of rows
    con.execute("UPDATE schema_info SET version = 2")
    con.execute("CREATE TABLE scores (photo_id INTEGER, label_id INTEGER, model_id INTEGER, score FLOAT, "
                "PRIMARY KEY (photo_id, label_id, model_id))")
    con.executemany("INSERT INTO scores VALUES (?, 1, 1, 0.5)", [(i,) for i in range(1000)])
    con.execute("INSERT INTO labels (text, key, source, created) VALUES ('red star', 'red star', 'user', '2026-01-01')")
    con.commit()
    con.close()
    db.open_database(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_info").fetchone() == (db.SCHEMA_VERSION,)
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'scores'").fetchall() == []
    assert con.execute("SELECT text FROM labels").fetchall() == [("red star",)]
