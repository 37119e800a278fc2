"""Train on my tags… in the window: what it will learn from, progress, cancel, and switching to the new model."""

import csv
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mkt_desktop.library.catalogue import TRAINED_FOLDER
from mkt_desktop.library.demo import write_demo_folder
from tests.ui.helpers import open_window, wait_idle

RUN_MS = 300_000  # a training run: child processes that import torch, on a loaded 2-core machine


def _library_window(qtbot, tmp_path: Path, decide: int):
    folder = write_demo_folder(tmp_path, count=20, seed=4)
    window = open_window(qtbot, tmp_path / "lib.sqlite", "demo")
    window.library.index([folder])
    with open(Path(folder) / "labels.csv", encoding="utf-8") as f:
        for row in list(csv.DictReader(f))[:decide]:
            window.library.set_tag(str(Path(folder) / row["path"]), row["labels"].split("|")[0], "accepted")
    wait_idle(qtbot, window)
    return window, folder


def _opened_dialog(qtbot, window):
    window.train_action.trigger()
    dialog = window.training_dialog
    qtbot.waitUntil(lambda: "Counting" not in dialog.intro.text(), timeout=RUN_MS)
    return dialog


@pytest.mark.slow
def test_training_on_my_tags_then_using_the_new_model(qtbot, tmp_path):
    window, _ = _library_window(qtbot, tmp_path, decide=12)
    dialog = _opened_dialog(qtbot, window)
    assert "12 photos, 12 accepted" in dialog.intro.text() and dialog.start_button.isEnabled()
    dialog.passes.setValue(1)
    with qtbot.waitSignal(dialog.finished_run, timeout=RUN_MS) as run:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert not dialog.close_button.isEnabled() and dialog.cancel_button.isEnabled()
    report = run.args[0]
    assert not isinstance(report, Exception), report
    assert report.bundle.is_dir() and report.bundle.parent == tmp_path / "cache" / TRAINED_FOLDER
    assert dialog.progress_bar.value() == dialog.progress_bar.maximum() and "Done" in dialog.status.text()

    with qtbot.waitSignal(window.indexing_finished, timeout=RUN_MS):
        with qtbot.waitSignal(window.library_switched, timeout=RUN_MS):
            qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert window.settings.model == str(report.bundle)
    assert window.library.bundle.path == report.bundle  # the window now tags with the new model
    wait_idle(qtbot, window)
    assert window.photo_model.rowCount() == 20  # every photo, indexed again with it


def test_cancel_stops_the_run_and_makes_no_model(qtbot, tmp_path):
    window, _ = _library_window(qtbot, tmp_path, decide=12)
    dialog = _opened_dialog(qtbot, window)
    dialog.passes.setValue(50)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.progress_bar.value() > 0, timeout=RUN_MS)  # stage 1 is training
    with qtbot.waitSignal(dialog.finished_run, timeout=RUN_MS) as run:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert run.args[0].cancelled
    assert "cancelled" in dialog.status.text() and not dialog.use_button.isEnabled()
    assert dialog.start_button.isEnabled()  # it can be started again
    assert not list((tmp_path / "cache" / TRAINED_FOLDER).glob("*"))
    assert window.library.model_spec == "demo"


def test_with_nothing_accepted_it_says_what_to_do(qtbot, tmp_path):
    window, _ = _library_window(qtbot, tmp_path, decide=0)
    dialog = _opened_dialog(qtbot, window)
    assert "no accepted tags" in dialog.intro.text() and "accept" in dialog.intro.text()
    assert not dialog.start_button.isEnabled()
