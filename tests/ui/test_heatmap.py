"""The heat map, opening a photo and dragging photos out, with real widgets (offscreen), a real library and JPEGs."""

import gc
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QImage

from mkt_desktop.ui.main_window import MainWindow
from tests.ui.helpers import WAIT_MS, index_through_ui, open_window, wait_idle, write_photos


@pytest.fixture(autouse=True)
def collect_windows():
    """Free each test's closed window and library at once, so no later test pays for a big garbage collection."""
    yield
    gc.collect()


def indexed_window(qtbot, tmp_path: Path, tiny_bundle: str, count: int = 6) -> MainWindow:
    write_photos(tmp_path / "photos", count)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    assert window.photo_model.rowCount() == count
    return window


def pixels(image: QImage) -> bytes:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    return bytes(image.constBits())[: image.sizeInBytes()]


def test_heat_map_draws_over_the_photo_and_toggles_off(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle)
    view = window.photo_view
    item = window.photo_model.items[1]
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(1))
    qtbot.waitUntil(view.has_image, timeout=WAIT_MS)
    assert view.heat_checkbox.isChecked()
    assert not view.heat_map_shown()  # no label selected yet
    plain = view.image_label.pixmap().toImage()
    assert pixels(plain) == pixels(view.plain_pixmap().toImage())

    grid = window.library.patch_scores(item.photo_id, view.labels[0].label)
    assert grid is not None and grid.ndim == 2
    view.table.selectRow(0)
    qtbot.waitUntil(view.heat_map_shown, timeout=WAIT_MS)
    shown = view.image_label.pixmap().toImage()
    assert shown.size() == plain.size()
    assert pixels(shown) != pixels(plain)

    view.heat_checkbox.setChecked(False)
    assert not view.heat_map_shown()
    assert pixels(view.image_label.pixmap().toImage()) == pixels(plain)

    view.heat_checkbox.setChecked(True)  # the grid is cached: drawn again at once
    assert view.heat_map_shown()
    view.table.clearSelection()
    assert not view.heat_map_shown()
    wait_idle(qtbot, window)
    window.close()


def test_heat_map_follows_a_searched_label(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle)
    window.library.add_label("red boat")
    window.refresh_labels()
    qtbot.waitUntil(lambda: "red boat" in window.label_texts(), timeout=WAIT_MS)
    view = window.photo_view
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(0))
    qtbot.waitUntil(view.has_image, timeout=WAIT_MS)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.search_box.setText("red boat")
    assert view.search_label == "red boat"
    if view.photo_id is None:  # the search reordered the grid: select a photo again
        with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
            window.grid.setCurrentIndex(window.photo_model.index(0))
        qtbot.waitUntil(view.has_image, timeout=WAIT_MS)
    qtbot.waitUntil(view.heat_map_shown, timeout=WAIT_MS)
    assert pixels(view.image_label.pixmap().toImage()) != pixels(view.plain_pixmap().toImage())
    wait_idle(qtbot, window)
    window.close()


def test_double_click_opens_the_photo_in_the_system_viewer(qtbot, tmp_path, tiny_bundle, monkeypatch):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, count=3)
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    index = window.photo_model.index(2)
    window.grid.doubleClicked.emit(index)
    assert opened == [QUrl.fromLocalFile(window.photo_model.items[2].path)]
    window.grid.open_index(window.photo_model.index(0))  # what the context menu's "Open" calls
    assert opened[-1].toLocalFile() == window.photo_model.items[0].path
    wait_idle(qtbot, window)
    window.close()


def test_dragging_photos_out_gives_their_file_urls(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, count=3)
    model = window.photo_model
    assert window.grid.dragEnabled()
    assert window.grid.dragDropMode() == window.grid.DragDropMode.DragOnly
    assert model.flags(model.index(0)) & Qt.ItemFlag.ItemIsDragEnabled
    data = model.mimeData([model.index(1)])
    assert data.urls() == [QUrl.fromLocalFile(model.items[1].path)]
    data = model.mimeData([model.index(2), model.index(0)])
    assert [url.toLocalFile() for url in data.urls()] == [model.items[0].path, model.items[2].path]
    assert Path(data.urls()[0].toLocalFile()).is_file()
    wait_idle(qtbot, window)
    window.close()
