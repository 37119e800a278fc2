"""The first hour in the window: a guided empty grid, errors with a way out, feedback for what can fail.

Real widgets (offscreen), real SQLite libraries, real JPEGs, the tiny bundle and the shipped demo model.
"""

import gc
import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

import mkt_desktop.library.demo as demo
from mkt_desktop.settings import Settings
from mkt_desktop.ui import dialogs
from mkt_desktop.ui.main_window import start_folder
from tests.ui.helpers import WAIT_MS, index_through_ui, indexed_window, open_window, wait_idle, write_photos


@pytest.fixture(autouse=True)
def collect_windows():
    yield
    gc.collect()


def test_the_empty_grid_says_what_to_do_and_makes_demo_photos(qtbot, tmp_path, tiny_bundle, monkeypatch):
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    assert window.pages.currentWidget() is window.empty_page
    assert window.empty_title.text() == "No photos yet"
    assert window.empty_add_button.isVisible() and window.empty_demo_button.isVisible()

    asked: list[str] = []
    monkeypatch.setattr(demo, "DEMO_COUNT", 8)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda parent, title, folder: asked.append(folder) or str(tmp_path))
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(window.empty_demo_button, Qt.MouseButton.LeftButton)
    assert asked == [start_folder()]  # the dialog opens in Pictures, else home
    assert blocker.args[0].indexed == 8
    wait_idle(qtbot, window)
    assert window.folder_paths() == [str((tmp_path / demo.DEMO_FOLDER_NAME).resolve())]
    assert window.photo_model.rowCount() == 8
    assert window.pages.currentWidget() is window.grid
    window.close()


def test_folder_dialogs_open_in_pictures_or_home(qtbot, tmp_path, tiny_bundle, monkeypatch):
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda parent, title, folder: asked.append(folder) or "")
    qtbot.mouseClick(window.add_folder_button, Qt.MouseButton.LeftButton)
    assert asked and Path(asked[0]).is_dir()
    assert asked[0] in (str(Path.home()), str(Path.home() / "Pictures")) or Path(asked[0]).name == "Pictures"
    wait_idle(qtbot, window)
    window.close()


def test_a_missing_model_opens_a_dialog_whose_demo_button_switches_without_a_restart(qtbot, tmp_path):
    write_photos(tmp_path / "photos", 3)
    window = open_window(qtbot, tmp_path / "lib.sqlite", str(tmp_path / "no-such-bundle"))
    with qtbot.waitSignal(window.problem_shown, timeout=WAIT_MS) as shown:
        pass
    dialog = shown.args[0]
    assert "no-such-bundle" in dialog.informativeText()
    assert set(dialog.fix_buttons) == {dialogs.USE_DEMO, dialogs.LOCAL_CLIP, dialogs.SETTINGS}
    assert window.banner.isVisible() and window.device_label.text() == "No model"

    # Add folder with no model is not silent
    window.add_folder(str(tmp_path / "photos"))
    qtbot.waitUntil(lambda: "Cannot index" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    wait_idle(qtbot, window)

    with qtbot.waitSignal(window.library_switched, timeout=WAIT_MS):
        dialog.fix_buttons[dialogs.USE_DEMO].click()
    assert window.library.model_spec == "demo" and window.settings.model == "demo"
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as indexed:
        pass  # a new model indexes the photos for itself
    assert indexed.args[0].indexed == 3
    wait_idle(qtbot, window)
    assert not window.banner.isVisible() and window.device_label.text() != "No model"
    assert "Demo model" in window.note.text()
    assert window.photo_model.rowCount() == 3
    window.close()


def test_a_local_clip_file_is_offered_as_clip_name_path(qtbot, tmp_path, tiny_bundle, monkeypatch):
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    weights = tmp_path / "open_clip_pytorch_model.bin"
    weights.write_bytes(b"not really weights")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(weights), ""))
    with qtbot.waitSignal(window.library_switched, timeout=WAIT_MS):
        window.choose_clip_file()
    assert window.settings.model == f"clip:ViT-B-16/{weights}"  # an absolute path: clip:ViT-B-16//tmp/...
    with qtbot.waitSignal(window.problem_shown, timeout=WAIT_MS) as shown:
        pass  # the file is no CLIP: the dialog says so and names it
    assert str(weights) in shown.args[0].informativeText()
    wait_idle(qtbot, window)
    window.close()


def test_a_model_change_applies_without_a_restart(qtbot, tmp_path, tiny_bundle):
    write_photos(tmp_path / "photos", 4)
    path = tmp_path / "settings.json"
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.settings_path = path
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS) as indexed:
        window.apply_settings(Settings(model="demo", thumbnail_size=96))
    assert indexed.args[0].indexed == 4  # the demo model embedded every photo for itself
    assert window.library.model_spec == "demo"
    assert window.library.db_path == tmp_path / "lib.sqlite"  # the same library, another model
    assert json.loads(path.read_text())["model"] == "demo"
    wait_idle(qtbot, window)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "red star"):
        window.search_box.setText("red star")
    assert all(item.score is not None for item in window.photo_model.items)
    window.close()


def test_accept_and_reject_name_the_current_label_and_ctrl_z_undoes(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 4)
    view = window.photo_view
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "red boat"):
        window.search_box.setText("red boat")
    item = window.photo_model.items[0]
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(0))
    # no row of the label table clicked: the buttons act on the searched words, and say so
    assert view.accept_button.isEnabled() and view.reject_button.isEnabled()
    assert view.accept_button.text() == "Accept \u201cred boat\u201d"
    assert view.reject_button.text() == "Reject \u201cred boat\u201d"
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        qtbot.mouseClick(view.accept_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert {pl.label: pl.status for pl in window.library.photo_labels(item.photo_id)}["red boat"] == "accepted"
    assert window.undo_action.isEnabled() and "red boat" in window.undo_action.text()

    # a selected row is the current label instead
    view.table.selectRow(view.table.rowCount() - 1)
    row_label = view.labels[view.table.rowCount() - 1].label
    assert view.reject_button.text().startswith("Reject \u201c") and row_label[:10] in view.reject_button.text()

    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    window.grid.setFocus()
    with qtbot.waitSignal(window.undone, timeout=WAIT_MS):
        qtbot.keyClick(window.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)
    assert "red boat" not in {pl.label: pl.status for pl in window.library.photo_labels(item.photo_id)
                              if pl.status != "auto"}
    assert not window.undo_action.isEnabled()
    window.close()


def test_space_tags_several_photos_and_undo_restores_each_earlier_decision(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 4)
    first, second = window.photo_model.items[0].photo_id, window.photo_model.items[1].photo_id
    window.library.set_tag(first, "boat", "rejected")  # an earlier decision that the undo must bring back
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "boat"):
        window.search_box.setText("boat")
    rows = {item.photo_id: row for row, item in enumerate(window.photo_model.items)}
    window.grid.setFocus()
    window.grid.setCurrentIndex(window.photo_model.index(rows[first]))
    window.grid.selectionModel().select(window.photo_model.index(rows[second]),
                                        window.grid.selectionModel().SelectionFlag.Select)
    qtbot.keyClick(window.grid, Qt.Key.Key_Space)
    wait_idle(qtbot, window)
    status = {pid: {pl.label: pl.status for pl in window.library.photo_labels(pid)}.get("boat")
              for pid in (first, second)}
    assert status == {first: "accepted", second: "accepted"}
    with qtbot.waitSignal(window.undone, timeout=WAIT_MS):
        window.undo_action.trigger()
    wait_idle(qtbot, window)
    status = {pid: {pl.label: pl.status for pl in window.library.photo_labels(pid)}.get("boat")
              for pid in (first, second)}
    assert status[first] == "rejected" and status[second] in (None, "auto")
    window.close()


def test_ctrl_q_quits(qtbot, tmp_path, tiny_bundle):
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"
    assert window.quit_action in window.menuBar().actions()[0].menu().actions()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=WAIT_MS)


def test_clicking_a_folder_shows_only_its_photos_and_a_folder_can_be_removed(qtbot, tmp_path, tiny_bundle,
                                                                            monkeypatch):
    write_photos(tmp_path / "one", 3)
    write_photos(tmp_path / "two", 2)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(str(tmp_path / "one"), index=False)
    window.add_folder(str(tmp_path / "two"), index=False)
    index_through_ui(qtbot, window)
    assert window.photo_model.rowCount() == 5
    two = str((tmp_path / "two").resolve())
    assert window.folder_paths() == [str((tmp_path / "one").resolve()), two]
    assert not window.remove_folder_button.isEnabled()  # "All folders" is selected

    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.folder_list.setCurrentRow(2)
    assert {Path(item.path).parent for item in window.photo_model.items} == {Path(two)}
    assert window.photo_model.rowCount() == 2
    assert window.remove_folder_button.isEnabled()

    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.folders_refreshed, timeout=WAIT_MS):
        qtbot.mouseClick(window.remove_folder_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    assert window.folder_paths() == [str((tmp_path / "one").resolve())]
    assert window.folder_list.currentRow() == 0  # back to all folders
    assert window.photo_model.rowCount() == 3
    assert (tmp_path / "two" / "photo000.jpg").is_file()  # the files stay
    window.close()


def test_files_that_could_not_be_read_are_listed_in_the_window(qtbot, tmp_path, tiny_bundle):
    write_photos(tmp_path / "photos", 2)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    assert "Files that could not be read" in window.statusBar().currentMessage()
    qtbot.waitUntil(window.failures_button.isVisible, timeout=WAIT_MS)
    assert window.failures_button.text() == "1 file could not be read…"
    qtbot.mouseClick(window.failures_button, Qt.MouseButton.LeftButton)
    table = window.failures_dialog.table
    qtbot.waitUntil(lambda: table.rowCount() == 1, timeout=WAIT_MS)
    assert table.item(0, 0).text() == str((tmp_path / "photos" / "broken.jpg").resolve())
    assert table.item(0, 1).text()  # the reason
    window.failures_dialog.close()
    window.close()


def test_actions_that_fail_say_so(qtbot, tmp_path, tiny_bundle, monkeypatch):
    write_photos(tmp_path / "photos", 2)
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    with qtbot.waitSignal(window.indexing_finished, timeout=WAIT_MS):
        qtbot.mouseClick(window.rescan_button, Qt.MouseButton.LeftButton)  # Rescan with no folder
    assert "No folders to scan yet" in window.statusBar().currentMessage()

    window.add_folder(str(tmp_path / "missing"), index=False)
    qtbot.waitUntil(lambda: "no such folder" in window.statusBar().currentMessage(), timeout=WAIT_MS)

    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: False)  # no system viewer
    window.grid.doubleClicked.emit(window.photo_model.index(0))
    assert "No program opened" in window.statusBar().currentMessage()
    assert window.photo_model.items[0].path in window.statusBar().currentMessage()
    wait_idle(qtbot, window)
    window.close()


def _click_when_shown(key: str, clicked: list[str]) -> QTimer:
    """Press a button of the start-up problem dialog once it is up (it runs its own event loop)."""
    timer = QTimer()

    def press() -> None:
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, dialogs.ProblemDialog):
            timer.stop()
            clicked.append(dialog.informativeText())
            dialog.fix_buttons[key].click()

    timer.timeout.connect(press)
    timer.start(50)
    return timer


def test_a_bad_database_in_the_settings_offers_another_at_start(qtbot, tmp_path, tiny_bundle, monkeypatch):
    from mkt_desktop.app import main

    bad = tmp_path / "a-folder.sqlite"
    bad.mkdir()  # a folder where the database should be
    settings = tmp_path / "settings.json"
    Settings(model=tiny_bundle, database=str(bad)).save(settings)
    chosen = tmp_path / "chosen.sqlite"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(chosen), ""))
    clicked: list[str] = []
    timer = _click_when_shown(dialogs.OTHER_DATABASE, clicked)
    closer = QTimer()
    closer.timeout.connect(lambda: QApplication.instance().closeAllWindows() if clicked else None)
    closer.start(1500)
    assert main(["--settings", str(settings)]) == 0  # the window opened on the chosen database
    closer.stop()
    timer.stop()
    assert str(bad) in clicked[0] and "is a folder" in clicked[0]
    assert chosen.is_file()
    assert json.loads(settings.read_text())["database"] == str(chosen)


def test_a_read_only_library_opens_for_reading(qtbot, tmp_path, tiny_bundle, monkeypatch):
    import mkt_desktop.library.library as library_module

    write_photos(tmp_path / "photos", 3)
    db = tmp_path / "lib.sqlite"
    window = open_window(qtbot, db, tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    window.close()

    monkeypatch.setattr(library_module, "database_writable", lambda path: False)  # as on a read-only disk
    again = open_window(qtbot, db, tiny_bundle)
    wait_idle(qtbot, again)
    assert again.library.read_only
    assert "read-only" in again.note.text() and str(db) in again.note.text()
    assert not again.add_folder_button.isEnabled() and not again.rescan_button.isEnabled()
    assert again.photo_model.rowCount() == 3  # browsing works
    with qtbot.waitSignal(again.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "red boat"):
        again.search_box.setText("red boat")
    assert all(item.score is not None for item in again.photo_model.items)  # and search
    qtbot.keyClick(again.search_box, Qt.Key.Key_Return)  # saving a label cannot work: it says why
    qtbot.waitUntil(lambda: "read-only" in again.statusBar().currentMessage(), timeout=WAIT_MS)
    wait_idle(qtbot, again)
    again.close()


def test_mkt_desktop_with_db_and_model_and_no_command_opens_the_window(qtbot, tmp_path, tiny_bundle):
    from mkt_desktop.cli import main

    QTimer.singleShot(1500, QApplication.instance().closeAllWindows)
    assert main(["--db", str(tmp_path / "lib.sqlite"), "--model", tiny_bundle,
                 "--settings", str(tmp_path / "settings.json")]) == 0
    assert (tmp_path / "lib.sqlite").is_file()
