"""Any failure as one line a person can act on: the path and the reason, never a traceback.

The CLI prints it (or `{"error": ...}` under --json); the window shows it in its status bar and dialogs.
"""

from pathlib import Path


def describe_error(exc: BaseException, db_path: str | Path | None = None) -> str:
    """One line for `exc`; `db_path` names the library when SQLite refuses to write it."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        message = str(exc.orig) if exc.orig is not None else str(exc)
        if "readonly database" in message or "read-only" in message:
            where = f"{db_path}: " if db_path else ""
            return (f"{where}the library is read-only (opened for reading: search, browse and export elsewhere "
                    "work; indexing, labels and tags need a library that can be written)")
        return f"{str(db_path) + ': ' if db_path else ''}database error: {message}"
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        return f"{exc.filename}: {reason}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split()) if "\n" in text else text
