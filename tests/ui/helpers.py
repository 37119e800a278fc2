"""What the window tests share: photos on disk, a window on a library, waiting for its background work."""

import threading
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Qt, Signal, Slot

from mkt_desktop.library.library import Library
from mkt_desktop.ui.main_window import MainWindow

WAIT_MS = 30_000


def write_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        pixels[:, : 8 * (seed % 7 + 1)] = (seed * 37) % 255
        path = folder / f"photo{seed:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def open_window(qtbot, db: Path, model: str) -> MainWindow:
    window = MainWindow(Library(db_path=db, model=model))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.runner.busy(), timeout=WAIT_MS)


def index_through_ui(qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.rescan_button, Qt.MouseButton.LeftButton)
    assert not isinstance(blocker.args[0], Exception), blocker.args[0]
    wait_idle(qtbot, window)


def indexed_window(qtbot, tmp_path: Path, model: str, photos: int) -> MainWindow:
    """A window on a new library of `photos` photos in tmp_path/photos, indexed through the Rescan button."""
    write_photos(tmp_path / "photos", photos)
    window = open_window(qtbot, tmp_path / "lib.sqlite", model)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    return window


class UiThreadAnswer(QObject):
    """`off_the_ui_thread(fn)`: fn, made to wait until the UI thread has handled an event posted when it
    was called. Run on the UI thread, that event could never run while fn waits: the call records
    (ran off the UI thread, the UI answered meanwhile). No clock is involved."""

    asked = Signal(object)

    def __init__(self):
        super().__init__()
        self.asked.connect(self.answer, Qt.ConnectionType.QueuedConnection)  # never a direct call
        self.calls: list[tuple[str, bool, bool]] = []

    @Slot(object)
    def answer(self, event: threading.Event) -> None:
        assert threading.current_thread() is threading.main_thread()
        event.set()

    def off_the_ui_thread(self, fn):
        def waiting(*args, **kwargs):
            answered = threading.Event()
            self.asked.emit(answered)
            off_ui = threading.current_thread() is not threading.main_thread()
            self.calls.append((fn.__name__, off_ui, answered.wait(timeout=20) if off_ui else False))
            return fn(*args, **kwargs)
        return waiting
