"""A grid that tells the truth at once (issue 14, item 3) and scores a person can read: real widgets (offscreen),
a real SQLite library, real JPEGs, the tiny random model (no calibration) or the demo model (calibrated)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from mkt_desktop.library.library import Library
from mkt_desktop.settings import Settings
from mkt_desktop.ui import photo_grid
from mkt_desktop.ui.confidence import NO_CALIBRATION
from mkt_desktop.ui.main_window import MainWindow
from mkt_desktop.ui.photo_grid import PhotoModel, ThumbnailJob, ThumbnailSignals, cached_thumbnail_path
from mkt_desktop.ui.settings_dialog import SettingsDialog
from mkt_desktop.ui.workers import TAGS
from tests.ui.helpers import WAIT_MS, index_through_ui, indexed_window, open_window, wait_idle


def caption(window: MainWindow, row: int) -> str:
    return window.photo_model.data(window.photo_model.index(row))


def starred(window: MainWindow) -> list[bool]:
    return [caption(window, row).startswith("★") for row in range(window.photo_model.rowCount())]


def label_row_text(window: MainWindow, text: str) -> str:
    """"red boat (3)": the label and how many photos it tags (without what it learned from decisions)."""
    return window.label_list.item(window.label_texts().index(text)).text().split(" \u00b7 ")[0]


def search(qtbot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == text):
        window.search_box.setText(text)


def saved_label_searched(qtbot, window: MainWindow, text: str) -> None:
    """`text` saved, selected in the label list (its threshold in the panel) and searched in the grid."""
    window.runner.submit(window.library.add_label, text, changes={"labels"})
    qtbot.waitUntil(lambda: text in window.label_texts(), timeout=WAIT_MS)
    with qtbot.waitSignal(window.threshold_panel.loaded, timeout=WAIT_MS):
        window.label_list.setCurrentRow(window.label_texts().index(text))
    search(qtbot, window, text)
    wait_idle(qtbot, window)


def test_a_threshold_moves_the_marks_the_count_and_the_heading_at_once(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 6)
    saved_label_searched(qtbot, window, "red boat")
    panel = window.threshold_panel
    assert "(automatic)" in panel.title.text()

    panel.spin.setValue(panel.spin.minimum())  # no waiting: the same event-loop turn
    assert starred(window) == [True] * 6
    assert label_row_text(window, "red boat") == "red boat (6)"
    assert "(set by hand)" in panel.title.text()

    panel.spin.setValue(panel.spin.maximum())
    assert starred(window) == [False] * 6
    assert label_row_text(window, "red boat") == "red boat (0)"

    with qtbot.waitSignal(window.labels_refreshed, timeout=WAIT_MS):  # saved after the pause: the library agrees
        pass
    assert next(i for i in window.library.labels() if i.text == "red boat").tagged == 0
    assert label_row_text(window, "red boat") == "red boat (0)"

    qtbot.mouseClick(panel.auto_button, Qt.MouseButton.LeftButton)
    assert "(automatic)" in panel.title.text()
    window.close()


def test_accept_reject_and_undo_mark_tiles_and_move_the_count_in_the_same_turn(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 4)
    window.library.add_label("red boat")
    window.library.set_threshold("red boat", 1e9)  # above every photo: nothing tagged until a person says so
    window.refresh_labels()
    saved_label_searched(qtbot, window, "red boat")
    assert starred(window) == [False] * 4 and label_row_text(window, "red boat") == "red boat (0)"

    seen = []  # what the window shows when the decision's job reports back, before any refresh has run

    def record(changes):
        if TAGS in changes:
            model = window.photo_model
            seen.append(([caption(window, r) for r in range(model.rowCount())],
                         [model.data(model.index(r), PhotoModel.StatusRole) for r in range(model.rowCount())],
                         label_row_text(window, "red boat")))
    window.runner.changed.connect(record)

    window.grid.setFocus()
    window.grid.setCurrentIndex(window.photo_model.index(0))
    with qtbot.waitSignal(window.runner.changed, timeout=WAIT_MS, check_params_cb=lambda c: TAGS in c):
        qtbot.keyClick(window.grid, Qt.Key.Key_Space)  # accept
    captions, statuses, count = seen[-1]
    assert captions[0].startswith("★✓") and statuses[0] == "accepted"
    assert not any(c.startswith("★") for c in captions[1:])
    assert count == "red boat (1)"
    tooltip = window.photo_model.data(window.photo_model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "Accepted by you" in tooltip
    spoken = window.photo_model.data(window.photo_model.index(0), Qt.ItemDataRole.AccessibleTextRole)
    assert spoken.startswith("photo") and "Accepted by you" in spoken  # what a screen reader says of the tile
    accepted_id = window.photo_model.items[0].photo_id
    wait_idle(qtbot, window)  # (the decision may re-rank the grid: the label learns from it)
    # visibly: a green border around the accepted tile
    row = next(r for r, item in enumerate(window.photo_model.items) if item.photo_id == accepted_id)
    rect = window.grid.visualRect(window.photo_model.index(row))
    shot = window.grid.viewport().grab().toImage()
    assert QColor(shot.pixel(rect.left() + 2, rect.center().y())).green() > 120
    assert QColor(shot.pixel(rect.left() + 2, rect.center().y())).red() < 100

    # below a threshold that tags everything, a reject takes one photo out of the count and its ★ away
    window.threshold_panel.spin.setValue(window.threshold_panel.spin.minimum())
    assert label_row_text(window, "red boat") == "red boat (4)"
    wait_idle(qtbot, window)
    window.grid.setCurrentIndex(window.photo_model.index(1))
    with qtbot.waitSignal(window.runner.changed, timeout=WAIT_MS, check_params_cb=lambda c: TAGS in c):
        qtbot.keyClick(window.grid, Qt.Key.Key_Delete)  # reject
    captions, statuses, count = seen[-1]
    assert captions[1].startswith("✗") and statuses[1] == "rejected"
    assert count == "red boat (3)"
    assert "Rejected by you" in window.photo_model.data(window.photo_model.index(1), Qt.ItemDataRole.ToolTipRole)
    wait_idle(qtbot, window)

    # Undo puts the photo back as it was, at once too
    with qtbot.waitSignal(window.runner.changed, timeout=WAIT_MS, check_params_cb=lambda c: TAGS in c):
        window.undo_action.trigger()
    captions, statuses, count = seen[-1]
    assert captions[1].startswith("★") and statuses[1] is None
    assert count == "red boat (4)"

    # the photo view's Reject marks the tile the same way
    wait_idle(qtbot, window)
    item = window.photo_model.items[2]
    with qtbot.waitSignal(window.photo_view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(2))
    with qtbot.waitSignal(window.runner.changed, timeout=WAIT_MS, check_params_cb=lambda c: TAGS in c):
        qtbot.mouseClick(window.photo_view.reject_button, Qt.MouseButton.LeftButton)
    captions, statuses, count = seen[-1]
    assert statuses[2] == "rejected" and captions[2].startswith("✗") and count == "red boat (3)"
    wait_idle(qtbot, window)
    assert {pl.label: pl.status for pl in window.library.photo_labels(item.photo_id)}["red boat"] == "rejected"
    window.close()


def write_mixed_photos(folder: Path) -> None:
    """Landscape, portrait, panorama and tall photos with long names, as a camera writes them."""
    folder.mkdir(parents=True)
    for k, (width, height) in enumerate([(400, 300), (300, 400), (500, 200), (200, 500), (320, 320)]):
        pixels = np.random.default_rng(k).integers(0, 255, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"IMG_2024061{k}_a_long_holiday_name_{k}.jpg")


def assert_no_tile_is_clipped(window: MainWindow) -> None:
    """Each tile's rectangle holds its thumbnail and every line of its caption, and all tiles are one size."""
    grid, model = window.grid, window.photo_model
    line = grid.fontMetrics().lineSpacing()
    sizes = set()
    for row in range(model.rowCount()):
        index = model.index(row)
        rect = grid.visualRect(index)
        pixmap = model.data(index, Qt.ItemDataRole.DecorationRole)
        lines = caption(window, row).count("\n") + 1
        assert rect.height() >= pixmap.height() + lines * line, (row, rect, caption(window, row))
        sizes.add(rect.size().toTuple())
    assert len(sizes) == 1, sizes


def test_tiles_keep_their_layout_after_a_search_is_cleared(qtbot, tmp_path):
    write_mixed_photos(tmp_path / "photos")
    window = open_window(qtbot, tmp_path / "lib.sqlite", "demo")
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    model = window.photo_model
    qtbot.waitUntil(lambda: all(model.has_thumbnail(item.path) for item in model.items), timeout=WAIT_MS)
    assert_no_tile_is_clipped(window)
    search(qtbot, window, "red star")
    assert all("%" in caption(window, row) for row in range(model.rowCount()))
    assert_no_tile_is_clipped(window)
    search(qtbot, window, "")
    assert all("%" not in caption(window, row) for row in range(model.rowCount()))
    assert_no_tile_is_clipped(window)
    window.close()


def test_photos_appear_in_the_grid_while_indexing_runs(qtbot, tmp_path, tiny_bundle):
    from tests.ui.helpers import write_photos

    write_photos(tmp_path / "photos", 6)
    window = MainWindow(Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle, engine_options={"batch_size": 2}))
    qtbot.addWidget(window)
    window.show()
    window.add_folder(str(tmp_path / "photos"), index=False)
    wait_idle(qtbot, window)
    seen = []  # (photos done, tiles in the grid, still indexing, the grid page shown) at each progress report
    window.progress_bar.valueChanged.connect(lambda done: seen.append(
        (done, window.photo_model.rowCount(), window.indexing, window.pages.currentWidget() is window.grid)))
    index_through_ui(qtbot, window)
    during = [entry for entry in seen if entry[2]]
    assert (2, 2, True, True) in during  # after the first batch of two, two tiles, while the run goes on
    assert (4, 4, True, True) in during
    assert window.photo_model.rowCount() == 6
    window.close()


def test_grid_photo_view_and_threshold_panel_show_one_confidence(qtbot, tmp_path):
    window = indexed_window(qtbot, tmp_path, "demo", 4)
    saved_label_searched(qtbot, window, "red star")
    model = window.photo_model
    item = model.items[0]
    window.runner.submit(window.library.set_tag, item.photo_id, "red star", "accepted", changes={TAGS})
    wait_idle(qtbot, window)  # accepted, so that the photo view lists the label
    search(qtbot, window, "")
    search(qtbot, window, "red star")
    tile = next(r for r, shown in enumerate(model.items) if shown.photo_id == item.photo_id)  # (re-ranked)
    grid_text = caption(window, tile).split("\n")[0]  # "★✓ 12 %"
    percent = grid_text.split()[-2] + " %"
    hit = next(h for h in window.library.search("red star", limit=10).hits if h.photo_id == item.photo_id)
    assert grid_text.endswith(" %") and float(grid_text.split()[-2]) == pytest.approx(100 * hit.confidence, abs=0.5)

    with qtbot.waitSignal(window.photo_view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(model.index(tile))
    view = window.photo_view
    row = next(r for r in range(view.table.rowCount()) if view.table.item(r, 0).text() == "red star")
    cell = view.table.item(row, 1).text()  # "12 % / 50 % ✗"
    assert cell.startswith(percent + " / ")
    assert view.table.horizontalHeaderItem(1).text() == "Confidence / threshold"
    threshold_percent = cell.split(" / ")[1].rsplit(" ", 1)[0]
    panel = window.threshold_panel
    assert panel.spin.suffix() == " %"
    assert f"{panel.spin.value():.0f} %" == threshold_percent  # the panel's threshold is the view's
    assert NO_CALIBRATION not in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)

    # a threshold set in %: the marks follow at once, and the library keeps the raw score it stands for
    panel.spin.setValue(99.0)
    expected = [item.status == "accepted" or 100 * item.confidence >= 99.0 for item in model.items]
    assert starred(window) == expected and expected[tile]  # the accepted photo keeps its ★ whatever the threshold
    assert label_row_text(window, "red star") == f"red star ({sum(expected)})"
    with qtbot.waitSignal(panel.threshold_saved, timeout=WAIT_MS):
        pass
    info = next(i for i in window.library.labels() if i.text == "red star")
    assert info.threshold_confidence == pytest.approx(0.99, abs=1e-6) and info.tagged == sum(expected)
    window.close()


def test_a_model_without_calibration_shows_raw_scores_and_says_why(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 3)
    saved_label_searched(qtbot, window, "red boat")
    model = window.photo_model
    first_line = caption(window, 0).split("\n")[0]
    assert "%" not in first_line
    assert float(first_line.split()[-1]) == pytest.approx(model.items[0].score, abs=1e-3)
    assert NO_CALIBRATION in model.data(model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert window.threshold_panel.spin.toolTip() == NO_CALIBRATION
    with qtbot.waitSignal(window.photo_view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(model.index(0))
    header = window.photo_view.table.horizontalHeaderItem(1)
    assert header.text() == "Score / threshold" and header.toolTip() == NO_CALIBRATION
    window.close()


def test_a_label_the_model_does_not_know_is_said_above_the_grid(qtbot, tmp_path):
    window = indexed_window(qtbot, tmp_path, "demo", 4)
    note = window.library.search("dog").note
    assert note and "does not seem to know" in note
    search(qtbot, window, "dog")
    assert window.search_note.isVisible()
    assert "does not seem to know 'dog'" in window.search_note.text()
    assert starred(window) == [False] * 4
    search(qtbot, window, "")
    assert not window.search_note.isVisible()
    window.close()


def test_settings_dialog_keeps_skip_folders(qtbot, tmp_path, tiny_bundle):
    settings = Settings(model=tiny_bundle, skip_folders=["@eaDir", "Private*"])
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.settings() == settings  # OK without a change changes nothing
    dialog.skip_edit.setText("@eaDir, Private*, Old scans")
    assert dialog.settings().skip_folders == ["@eaDir", "Private*", "Old scans"]

    # applied in the window: saved, and the next index run skips the folder
    (tmp_path / "photos" / "Old scans").mkdir(parents=True)
    from tests.ui.helpers import write_photos

    write_photos(tmp_path / "photos", 2)
    write_photos(tmp_path / "photos" / "Old scans", 1)
    path = tmp_path / "settings.json"
    library = Library(db_path=tmp_path / "lib.sqlite", model=tiny_bundle, **settings.library_options)
    window = MainWindow(library, settings=settings, settings_path=path)
    qtbot.addWidget(window)
    window.show()
    window.apply_settings(dialog.settings())
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    assert window.photo_model.rowCount() == 2
    assert "Old scans" in path.read_text(encoding="utf-8")
    window.close()


def test_a_name_that_is_not_utf8_is_shown_readably(qtbot, tmp_path, tiny_bundle):
    folder = os.path.join(os.fsencode(tmp_path), b"photos")
    os.makedirs(folder)
    name = os.path.join(folder, b"caf\xe9-menu.jpg")  # Latin-1, as an old camera or Windows share wrote it
    try:
        Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(os.fsdecode(name))
    except OSError as exc:
        pytest.skip(f"this file system does not take non-UTF-8 names: {exc}")
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(os.fsdecode(folder), index=False)
    index_through_ui(qtbot, window)
    item = window.photo_model.items[0]
    assert os.fsencode(item.path) == name  # stored as the file system has it
    shown = caption(window, 0)
    assert shown == "caf\ufffd-menu.jpg" and "\\x" not in shown
    tooltip = window.photo_model.data(window.photo_model.index(0), Qt.ItemDataRole.ToolTipRole)
    assert "\\x" not in tooltip and "caf\ufffd-menu.jpg" in tooltip
    with qtbot.waitSignal(window.photo_view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(0))
    assert window.photo_view.path_label.text().endswith("caf\ufffd-menu.jpg")
    qtbot.waitUntil(window.photo_view.has_image, timeout=WAIT_MS)  # and the photo itself is read
    qtbot.waitUntil(lambda: window.photo_model.has_thumbnail(item.path), timeout=WAIT_MS)  # its thumbnail too
    window.close()


def test_a_decoder_change_redraws_cached_thumbnails(qtbot, tmp_path, monkeypatch):
    photo = tmp_path / "grey.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photo)
    cache = tmp_path / "thumbs"
    old = cached_thumbnail_path(cache, str(photo), 64)
    old.parent.mkdir(parents=True)
    red = QImage(64, 64, QImage.Format.Format_RGB32)
    red.fill(QColor("red"))  # what a broken decoder once cached
    assert red.save(str(old), "JPEG")
    monkeypatch.setattr(photo_grid, "DECODER_VERSION", "a fixed decoder")
    assert cached_thumbnail_path(cache, str(photo), 64) != old

    signals = ThumbnailSignals()
    with qtbot.waitSignal(signals.loaded, timeout=WAIT_MS) as blocker:
        ThumbnailJob(str(photo), signals, 64, cache).run()
    pixel = QColor(blocker.args[2].pixel(32, 32))
    assert abs(pixel.red() - 128) < 10 and abs(pixel.green() - 128) < 10  # the photo, not the stale red
    window_cache = cached_thumbnail_path(cache, str(photo), 64)
    assert window_cache.is_file()
