"""The main window with real widgets (offscreen), a real SQLite library, real JPEGs and a tiny model bundle."""


from PySide6.QtCore import Qt, QTimer

from mkt_desktop.library.xmp import read_photo_subjects, sidecar_path
from mkt_desktop.ui.photo_grid import PhotoModel
from tests.ui.helpers import WAIT_MS, UiThreadAnswer, index_through_ui, open_window, wait_idle, write_photos


def test_search_label_tag_export_and_reopen(qtbot, tmp_path, tiny_bundle):
    photos = write_photos(tmp_path / "photos", 6)
    db = tmp_path / "lib.sqlite"
    window = open_window(qtbot, db, tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)  # in the background, like every library call
    qtbot.waitUntil(lambda: window.folder_paths() == [str((tmp_path / "photos").resolve())], timeout=WAIT_MS)
    assert window.folder_list.item(0).text() == "All folders"
    index_through_ui(qtbot, window)
    assert window.photo_model.rowCount() == len(photos)
    qtbot.waitUntil(lambda: window.device_label.text() not in ("", "Loading the model…"), timeout=WAIT_MS)
    assert not window.banner.isVisible()

    # typing searches after the debounce, in the background; the grid shows every photo, best first
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "red boat"):
        qtbot.keyClicks(window.search_box, "red boat")
    model = window.photo_model
    scores = [model.data(model.index(row), PhotoModel.ScoreRole) for row in range(model.rowCount())]
    assert len(scores) == len(photos)
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert "red boat" not in window.label_texts()
    # thumbnails come in lazily, off the UI thread
    qtbot.waitUntil(lambda: all(model.has_thumbnail(item.path) for item in model.items), timeout=WAIT_MS)

    # Enter saves the text as a label
    qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "red boat" in window.label_texts(), timeout=WAIT_MS)

    # Space on a selected photo accepts the text as a tag
    photo_id = model.items[-1].photo_id
    photo_path = model.items[-1].path
    window.grid.setFocus()
    window.grid.setCurrentIndex(model.index(model.rowCount() - 1))
    assert window.grid.selected_photo_ids() == [photo_id]
    qtbot.keyClick(window.grid, Qt.Key.Key_Space)
    wait_idle(qtbot, window)
    statuses = {pl.label: pl.status for pl in window.library.photo_labels(photo_id)}
    assert statuses.get("red boat") == "accepted"

    # Delete rejects it on another photo
    other_id = model.items[0].photo_id
    window.grid.setCurrentIndex(model.index(0))
    qtbot.keyClick(window.grid, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    assert {pl.label: pl.status for pl in window.library.photo_labels(other_id)}.get("red boat") == "rejected"

    # Ctrl+E writes the XMP sidecars
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    qtbot.keyClick(window.grid, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    assert sidecar_path(photo_path).is_file()
    assert "red boat" in read_photo_subjects(photo_path)
    assert "XMP" in window.statusBar().currentMessage()

    # everything is in the database: a new window on it shows the folder and the label
    window.close()
    again = open_window(qtbot, db, tiny_bundle)
    wait_idle(qtbot, again)
    assert again.folder_paths() == [str((tmp_path / "photos").resolve())]
    assert "red boat" in again.label_texts()
    assert again.photo_model.rowCount() == len(photos)
    again.close()


def test_event_loop_keeps_running_while_indexing(qtbot, tmp_path, tiny_bundle):
    """Each batch of the model waits until the UI thread has handled an event posted after it began:
    if indexing ran on the UI thread, that event could never run and the batch would wait in vain.
    No clock is involved, so a loaded machine cannot make this pass or fail."""
    write_photos(tmp_path / "many", 40)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)  # the model is loaded by the device description job
    window.add_folder(str(tmp_path / "many"), index=False)
    engine = window.library.engine
    encode = engine.encode_images
    ui = UiThreadAnswer()
    engine.encode_images = ui.off_the_ui_thread(encode)
    shown: list[str] = []
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS):
        window.start_indexing()
        qtbot.waitUntil(lambda: shown.append(window.progress_label.text()) or not window.indexing, timeout=WAIT_MS)
    engine.encode_images = encode
    assert ui.calls and all(off_ui and answered for _, off_ui, answered in ui.calls), ui.calls
    assert any(text.startswith("Indexing ") and "/40" in text and "ETA" in text for text in shown), shown
    wait_idle(qtbot, window)
    assert window.photo_model.rowCount() == 40
    window.close()


def test_cancel_stops_indexing(qtbot, tmp_path, tiny_bundle):
    write_photos(tmp_path / "many", 40)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    window.add_folder(str(tmp_path / "many"), index=False)
    window.cancel_flag.set()  # cancelled before the first batch: start_indexing clears it, so cancel after
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as blocker:
        window.start_indexing()
        window.cancel_indexing()
    assert blocker.args[0].cancelled
    assert window.library.photo_count() < 40
    window.close()


def test_missing_model_shows_a_banner(qtbot, tmp_path):
    write_photos(tmp_path / "photos", 2)
    window = open_window(qtbot, tmp_path / "lib.sqlite", str(tmp_path / "no-such-bundle"))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    assert "cannot be loaded" in window.banner.text()
    assert "no-such-bundle" in window.banner.text()
    window.add_folder(str(tmp_path / "photos"), index=False)
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS):
        window.start_indexing()
    assert window.rescan_button.isEnabled()
    window.close()


def test_app_main_runs_and_quits(qtbot, tmp_path, tiny_bundle):
    from PySide6.QtWidgets import QApplication

    from mkt_desktop.app import main

    QTimer.singleShot(1500, QApplication.instance().closeAllWindows)
    assert main(["--db", str(tmp_path / "lib.sqlite"), "--model", tiny_bundle,
                 "--settings", str(tmp_path / "settings.json")]) == 0
    assert (tmp_path / "lib.sqlite").is_file()
