"""What the window tests share: photos on disk, a window on a library, waiting for its background work."""

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

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
