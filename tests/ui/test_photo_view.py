"""The photo view and the threshold control, with real widgets (offscreen), a real library and real JPEGs."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mkt_desktop.ui.main_window import MainWindow
from tests.ui.helpers import WAIT_MS, index_through_ui, open_window, wait_idle, write_photos


def indexed_window(qtbot, tmp_path: Path, tiny_bundle: str, count: int = 6) -> MainWindow:
    write_photos(tmp_path / "photos", count)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    assert window.photo_model.rowCount() == count
    return window


def test_photo_view_shows_labels_and_accepts_one(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle)
    view = window.photo_view
    item = window.photo_model.items[2]

    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS, check_params_cb=lambda pid: pid == item.photo_id):
        window.grid.setCurrentIndex(window.photo_model.index(2))
    assert view.path_label.text() == item.path
    assert view.table.rowCount() >= 1
    score_cell = view.table.item(0, 1).text()
    score, rest = score_cell.split(" / ")
    assert float(score) == pytest.approx(view.labels[0].score, abs=1e-3)
    assert rest.endswith(("✓", "✗"))
    assert view.table.item(0, 2).text() == "auto"
    qtbot.waitUntil(view.has_image, timeout=WAIT_MS)
    assert not view.accept_button.isEnabled()

    label = view.table.item(0, 0).text()
    view.table.selectRow(0)
    assert view.accept_button.isEnabled()
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        qtbot.mouseClick(view.accept_button, Qt.MouseButton.LeftButton)
    statuses = {pl.label: pl.status for pl in window.library.photo_labels(item.photo_id)}
    assert statuses[label] == "accepted"
    row = next(r for r in range(view.table.rowCount()) if view.table.item(r, 0).text() == label)
    assert view.table.item(row, 2).text() == "accepted"
    wait_idle(qtbot, window)
    assert label in window.label_texts()  # accepting a label saves it

    # selecting two photos clears the view
    window.grid.selectAll()
    assert view.photo_id is None
    assert view.table.rowCount() == 0
    window.close()


def test_threshold_control_sets_and_resets_a_label_threshold(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle)
    window.library.add_label("red boat")
    window.refresh_labels()
    qtbot.waitUntil(lambda: "red boat" in window.label_texts(), timeout=WAIT_MS)
    panel = window.threshold_panel
    assert not panel.spin.isEnabled()

    row = window.label_texts().index("red boat")
    with qtbot.waitSignal(panel.loaded, timeout=WAIT_MS):
        window.label_list.setCurrentRow(row)
    assert panel.spin.isEnabled()
    info = next(i for i in window.library.labels() if i.text == "red boat")
    assert info.threshold is None
    assert panel.spin.value() == pytest.approx(info.effective_threshold, abs=1e-3)
    assert len(panel.scores) == 6
    assert panel.spin.maximum() > max(panel.scores)

    # a threshold above every score: nothing is above it, once the debounce has saved it
    above_all = panel.spin.maximum()
    with qtbot.waitSignal(window.labels_refreshed, timeout=WAIT_MS):
        panel.spin.setValue(above_all)
    assert window.label_list.item(row).text() == "red boat (0)"
    assert window.label_list.currentRow() == row  # still selected after the refresh
    assert "0 of 6 photos" in panel.count_label.text()
    info = next(i for i in window.library.labels() if i.text == "red boat")
    assert info.threshold == pytest.approx(above_all)
    assert info.above_threshold == 0

    # the slider moves the spin box too
    panel.slider.setValue(0)
    assert panel.spin.value() == pytest.approx(panel.spin.minimum(), abs=1e-3)
    assert "6 of 6 photos" in panel.count_label.text()

    # Auto forgets the threshold (and drops the one the slider was about to save)
    with qtbot.waitSignal(panel.loaded, timeout=WAIT_MS):
        qtbot.mouseClick(panel.auto_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    info = next(i for i in window.library.labels() if i.text == "red boat")
    assert info.threshold is None
    assert panel.spin.value() == pytest.approx(info.effective_threshold, abs=1e-3)
    assert window.label_list.item(row).text() == f"red boat ({info.above_threshold})"
    window.close()
