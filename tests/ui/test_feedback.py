"""Learning from decisions in the window: accepting and rejecting photos for a label re-ranks the grid,
the label panel says how many decisions the label learned from, and Ctrl+Z takes the learning back."""

import csv
import gc
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mkt_core.synthetic.world import write_demo_photos
from tests.ui.helpers import WAIT_MS, index_through_ui, open_window, wait_idle

LABEL = "red moon"


@pytest.fixture(autouse=True)
def collect_windows():
    yield
    gc.collect()


def _order(window) -> list[int]:
    return [item.photo_id for item in window.photo_model.items]


def _select(window, photo_ids: list[int]) -> None:
    rows = {item.photo_id: row for row, item in enumerate(window.photo_model.items)}
    selection = window.grid.selectionModel()
    selection.clearSelection()
    for photo_id in photo_ids:
        selection.select(window.photo_model.index(rows[photo_id]), selection.SelectionFlag.Select)


def _decide(qtbot, window, photo_ids: list[int], status: str) -> None:
    """Select the photos in the grid, accept or reject the searched label, wait for the grid to re-rank."""
    _select(window, photo_ids)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == LABEL):
        window.tag_selected(status)
    wait_idle(qtbot, window)


def _label_item(window) -> str:
    return next(window.label_list.item(i).text() for i in range(window.label_list.count())
                if window.label_list.item(i).data(Qt.ItemDataRole.UserRole) == LABEL)


def test_decisions_rerank_the_grid_and_ctrl_z_gives_the_ranking_back(qtbot, tmp_path):
    csv_path = write_demo_photos(tmp_path / "photos", count=60, seed=41)
    with csv_path.open(newline="", encoding="utf-8") as f:
        truth = {str((csv_path.parent / row["path"]).resolve()): LABEL in row["labels"].split("|")
                 for row in csv.DictReader(f)}
    window = open_window(qtbot, tmp_path / "lib.sqlite", "demo")
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == LABEL):
        window.search_box.setText(LABEL)
    with qtbot.waitSignal(window.labels_refreshed, timeout=WAIT_MS):
        window.save_label()
    wait_idle(qtbot, window)
    original = _order(window)
    assert "learned from" not in _label_item(window)

    top = window.photo_model.items[:8]  # what a person looks at: the best photos
    right = [item.photo_id for item in top if truth[str(Path(item.path).resolve())]]
    wrong = [item.photo_id for item in top if not truth[str(Path(item.path).resolve())]]
    assert wrong, "the demo model does not know this label well: some of its best photos are wrong"
    if right:
        _decide(qtbot, window, right, "accepted")
    _decide(qtbot, window, wrong, "rejected")
    learned = _order(window)
    assert learned != original
    assert f"learned from {len(right) + len(wrong)}" in _label_item(window)

    for _ in range(2 if right else 1):
        with qtbot.waitSignal(window.search_finished, timeout=WAIT_MS, check_params_cb=lambda t: t == LABEL):
            window.undo_action.trigger()  # Ctrl+Z
        wait_idle(qtbot, window)
    assert _order(window) == original
    assert "learned from" not in _label_item(window)
    window.close()
