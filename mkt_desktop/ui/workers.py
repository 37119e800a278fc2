"""Background work for the UI: library calls run one at a time off the UI thread, results come back as signals.

The `Library` keeps lazy state (the engine, the embedding store), so every call to it goes through one
`LibraryRunner`, whose pool has a single thread: calls never overlap and the UI thread never waits on them.

A call that changes the library says what it changed (`changes=`: "folders", "photos", "labels", "tags",
"library"); once it is done (or has failed) the runner emits `changed` with that set, and each panel
refreshes what it shows from it. No panel refreshes another by hand.
"""

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class JobSignals(QObject):
    """What a job reports back; emitted from the worker thread, delivered on the UI thread."""

    done = Signal(object)
    failed = Signal(object)
    progress = Signal(object)


class Job(QRunnable):
    """Runs `fn(*args, **kwargs)`; if `wants_progress`, `fn` also gets `progress=` a callable emitting signals."""

    def __init__(self, fn: Callable[..., Any], *args, wants_progress: bool = False, **kwargs):
        super().__init__()
        self.setAutoDelete(False)
        self.signals = JobSignals()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        if wants_progress:
            self.kwargs["progress"] = self.signals.progress.emit

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the UI as a message
            self.signals.failed.emit(exc)
        else:
            self.signals.done.emit(result)


FOLDERS, PHOTOS, LABELS, TAGS, LIBRARY = "folders", "photos", "labels", "tags", "library"
EVERYTHING = frozenset({FOLDERS, PHOTOS, LABELS, TAGS, LIBRARY})  # another library or model


class LibraryRunner(QObject):
    """A queue of library calls run in order on one background thread."""

    changed = Signal(object)  # a frozenset of what a finished call changed (see the module's doc)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._jobs: set[Job] = set()
        self._closed = False

    def _live(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """`fn`, dropped once the runner is closed: a result queued when its window closed finds no window."""
        return lambda value: None if self._closed else fn(value)

    def submit(self, fn: Callable[..., Any], *args, on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[Exception], None] | None = None,
               on_progress: Callable[[Any], None] | None = None, changes: set[str] | frozenset | None = None,
               **kwargs) -> Job:
        """Run `fn(*args, **kwargs)` in the background; `changes`: what it changes, announced when it is done."""
        job = Job(fn, *args, wants_progress=on_progress is not None, **kwargs)
        if on_done is not None:
            job.signals.done.connect(self._live(on_done))
        if on_error is not None:
            job.signals.failed.connect(self._live(on_error))
        if changes:  # a failed call may have changed part of it (an indexing run stopped mid-way): said too
            announce = self._live(lambda _value: self.changed.emit(frozenset(changes)))
            job.signals.done.connect(announce)
            job.signals.failed.connect(announce)
        if on_progress is not None:
            job.signals.progress.connect(self._live(on_progress))
        job.signals.done.connect(lambda _result: self._jobs.discard(job))
        job.signals.failed.connect(lambda _exc: self._jobs.discard(job))
        self._jobs.add(job)
        self.pool.start(job)
        return job

    def busy(self) -> bool:
        return bool(self._jobs)

    def wait(self, msecs: int = -1) -> bool:
        return self.pool.waitForDone(msecs)

    def close(self) -> None:
        """Wait for the calls in flight, then deliver no more results (the window is going)."""
        self.wait()
        self._closed = True


def clock(seconds: float) -> str:
    """A duration as a person reads a time left or taken: m:ss."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}:{seconds:02d}"


class CancelFlag:
    """A flag the UI sets and the indexer's `cancel` callable reads."""

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def __call__(self) -> bool:
        return self._event.is_set()
