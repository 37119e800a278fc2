"""What other photo tools have, in the window: sort and filter by date taken, More like this, and the heat map
following a saved label whatever its case; and the one "what changed" signal the panels refresh from."""

import gc
import os
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mkt_desktop.ui.main_window import MainWindow
from tests.ui.helpers import WAIT_MS, index_through_ui, indexed_window, open_window, wait_idle, write_photos


@pytest.fixture(autouse=True)
def collect_windows():
    yield
    gc.collect()


def dated_window(qtbot, tmp_path: Path, tiny_bundle: str) -> MainWindow:
    """Four photos without EXIF, modified in 2020, 2021, 2022 and 2022: their date taken is that time."""
    paths = write_photos(tmp_path / "photos", 4)
    for path, year in zip(paths, (2021, 2020, 2022, 2022), strict=True):
        stamp = datetime(year, 6, 1 + paths.index(path)).timestamp()
        os.utime(path, (stamp, stamp))
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    return window


def names(window: MainWindow) -> list[str]:
    return [Path(item.path).name for item in window.photo_model.items]


def test_sort_and_filter_by_date_taken(qtbot, tmp_path, tiny_bundle):
    window = dated_window(qtbot, tmp_path, tiny_bundle)
    assert names(window) == ["photo000.jpg", "photo001.jpg", "photo002.jpg", "photo003.jpg"]
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.sort_box.setCurrentIndex(window.sort_box.findData("newest"))
    assert names(window) == ["photo003.jpg", "photo002.jpg", "photo000.jpg", "photo001.jpg"]
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.sort_box.setCurrentIndex(window.sort_box.findData("oldest"))
    assert names(window) == ["photo001.jpg", "photo000.jpg", "photo002.jpg", "photo003.jpg"]

    assert [window.taken_box.itemData(i) for i in range(window.taken_box.count())] == [None, 2022, 2021, 2020]
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.taken_box.setCurrentIndex(window.taken_box.findData(2022))
    assert names(window) == ["photo002.jpg", "photo003.jpg"]

    # a search keeps the filter; "best match" orders it by score
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.sort_box.setCurrentIndex(window.sort_box.findData("best"))
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == "red boat"):
        window.search_box.setText("red boat")
    assert sorted(names(window)) == ["photo002.jpg", "photo003.jpg"]
    scores = [item.score for item in window.photo_model.items]
    assert scores == sorted(scores, reverse=True)
    wait_idle(qtbot, window)
    window.close()


def test_more_like_this_from_the_context_menu(qtbot, tmp_path, tiny_bundle):
    window = dated_window(qtbot, tmp_path, tiny_bundle)
    source = window.photo_model.items[1]
    menu = window.grid.context_menu(window.photo_model.index(1))
    actions = {action.text(): action for action in menu.actions()}
    assert set(actions) == {"Open", "More like this"}
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        actions["More like this"].trigger()
    assert window.similar_chip.isVisible() and "photo001.jpg" in window.similar_chip.text()
    assert source.photo_id not in [item.photo_id for item in window.photo_model.items]
    assert window.photo_model.rowCount() == 3
    similarity = [item.score for item in window.photo_model.items]
    assert similarity == sorted(similarity, reverse=True)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        qtbot.mouseClick(window.similar_chip, Qt.MouseButton.LeftButton)
    assert not window.similar_chip.isVisible() and window.photo_model.rowCount() == 4
    wait_idle(qtbot, window)
    window.close()


def test_the_heat_map_follows_a_saved_label_whatever_its_case(qtbot, tmp_path, tiny_bundle):
    window = indexed_window(qtbot, tmp_path, tiny_bundle, 3)
    window.library.add_label("red boat")
    window.refresh_labels()
    qtbot.waitUntil(lambda: "red boat" in window.label_texts(), timeout=WAIT_MS)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS):
        window.search_box.setText("Red  Boat")
    assert window.photo_view.search_label == "red boat"
    view = window.photo_view
    with qtbot.waitSignal(view.labels_shown, timeout=WAIT_MS):
        window.grid.setCurrentIndex(window.photo_model.index(0))
    qtbot.waitUntil(view.has_image, timeout=WAIT_MS)
    qtbot.waitUntil(view.heat_map_shown, timeout=WAIT_MS)
    wait_idle(qtbot, window)
    window.close()


def test_panels_refresh_from_the_one_changed_signal(qtbot, tmp_path, tiny_bundle):
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    wait_idle(qtbot, window)
    seen: list[frozenset] = []
    window.runner.changed.connect(seen.append)
    # a library call that says it changed the labels: the label list refreshes, nobody asked it to
    with qtbot.waitSignal(window.labels_refreshed, timeout=WAIT_MS):
        window.runner.submit(window.library.add_label, "sunset", changes={"labels"})
    assert seen == [frozenset({"labels"})]
    assert "sunset" in window.label_texts()
    write_photos(tmp_path / "photos", 2)
    with qtbot.waitSignal(window.folders_refreshed, timeout=WAIT_MS):
        window.runner.submit(window.library.add_folder, str(tmp_path / "photos"), changes={"folders"})
    assert window.folder_paths() == [str((tmp_path / "photos").resolve())]
    wait_idle(qtbot, window)
    window.close()
