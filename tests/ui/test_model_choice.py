"""The model choice as a person meets it: the catalogue in the Settings dialog, in plain words, and the first run's
word on what each model means for their own photos.
Real widgets (offscreen), real settings files, real bundles."""

import gc
import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog

import mkt_desktop.ui.model_chooser as model_chooser
from mkt_desktop.library import AUTHORS_PAGE, Library
from mkt_desktop.settings import Settings, load_settings
from mkt_desktop.ui.main_window import MainWindow
from tests.ui.helpers import WAIT_MS, UiThreadAnswer, index_through_ui, wait_idle, write_photos

MULTILINGUAL = "clip:xlm-roberta-base-ViT-B-32/laion5b_s13b_b90k"


@pytest.fixture(autouse=True)
def collect_windows():
    yield
    gc.collect()


def window_with_settings(qtbot, tmp_path: Path, settings: Settings) -> MainWindow:
    """A window whose settings are a real file in tmp_path (settings.json), on a library in tmp_path."""
    path = tmp_path / "settings.json"
    settings.save(path)
    window = MainWindow(Library(db_path=tmp_path / "lib.sqlite", model=settings.model), settings=settings,
                        settings_path=path)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def installed_bundle(tmp_path: Path, bundle: str, name: str = "mine") -> Path:
    """A bundle the library added to its cache (as `mkt-desktop models add-official` leaves one)."""
    folder = tmp_path / "cache" / "models" / name
    shutil.copytree(bundle, folder)
    return folder


def open_settings(qtbot, window: MainWindow):
    dialog = window.open_settings()
    qtbot.waitUntil(lambda: len(dialog.chooser.entries()) > 2, timeout=WAIT_MS)
    return dialog


def entry_text(dialog, spec: str) -> str:
    row = next(row for row, choice in enumerate(dialog.chooser.entries()) if choice.spec == spec)
    return dialog.chooser.list.item(row).text()


def click_entry(qtbot, dialog, spec: str = "", title_start: str = "") -> None:
    """Click the entry of a spec (or, for one that is no model yet, whose title starts so)."""
    chooser = dialog.chooser
    row = next(row for row, choice in enumerate(chooser.entries())
               if (choice.spec == spec if spec else choice.title.startswith(title_start)))
    item = chooser.list.item(row)
    chooser.list.scrollToItem(item)
    qtbot.mouseClick(chooser.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=chooser.list.visualItemRect(item).center())


def test_settings_lists_the_models_in_plain_words_and_ok_saves_the_one_chosen(qtbot, tmp_path, tiny_bundle):
    mine = installed_bundle(tmp_path, tiny_bundle)
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    wait_idle(qtbot, window)
    dialog = open_settings(qtbot, window)
    specs = [choice.spec for choice in dialog.chooser.entries()]
    assert specs[0] == "demo" and dialog.chooser.spec() == "demo"
    assert {"clip:ViT-B-32/openai", "clip:ViT-B-16/openai", "clip:ViT-L-14/openai", MULTILINGUAL} <= set(specs)
    assert "real photos" in entry_text(dialog, "demo") and "installed" in entry_text(dialog, "demo")
    assert "download about 0.6 GB once" in entry_text(dialog, "clip:ViT-B-16/openai")
    assert "any language" in entry_text(dialog, MULTILINGUAL)
    assert f"installed: {mine}" in entry_text(dialog, str(mine))  # a bundle made here, with its path

    click_entry(qtbot, dialog, title_start="MKT by the paper's authors")  # not a model yet: how to get it, and its page
    assert AUTHORS_PAGE in dialog.chooser.details.text() and dialog.chooser.spec() == "demo"
    click_entry(qtbot, dialog, title_start="A model trained on your own tags")
    assert "Train on my tags" in dialog.chooser.details.text() and dialog.chooser.spec() == "demo"
    click_entry(qtbot, dialog, "clip:ViT-B-32/openai")
    assert dialog.chooser.spec() == "clip:ViT-B-32/openai"
    click_entry(qtbot, dialog, str(mine))
    assert dialog.chooser.spec() == str(mine)
    with qtbot.waitSignal(window.library_switched, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert json.loads((tmp_path / "settings.json").read_text())["model"] == str(mine)
    assert window.library.model_spec == str(mine)
    wait_idle(qtbot, window)
    window.close()


def test_the_model_list_is_read_off_the_ui_thread(qtbot, tmp_path, monkeypatch):
    answer = UiThreadAnswer()
    monkeypatch.setattr(model_chooser, "model_choices", answer.off_the_ui_thread(model_chooser.model_choices))
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    open_settings(qtbot, window)
    assert answer.calls == [("model_choices", True, True)]  # the window answered while the list was read
    window.close()


def test_the_model_in_use_is_listed_when_the_catalogue_lacks_it(qtbot, tmp_path, tiny_bundle):
    window = window_with_settings(qtbot, tmp_path, Settings(model=tiny_bundle))
    dialog = open_settings(qtbot, window)
    first = dialog.chooser.entries()[0]
    assert first.spec == tiny_bundle and dialog.chooser.list.currentRow() == 0
    assert f"installed: {tiny_bundle}" in entry_text(dialog, tiny_bundle)
    dialog.reject()
    window.close()


def test_speeds_measured_once_are_shown_the_next_time_without_measuring(qtbot, tmp_path, tiny_bundle):
    mine = installed_bundle(tmp_path, tiny_bundle)
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    dialog = open_settings(qtbot, window)
    assert "photos/s here" not in entry_text(dialog, str(mine))
    qtbot.mouseClick(dialog.chooser.measure_button, Qt.MouseButton.LeftButton)
    assert "measuring its speed" in entry_text(dialog, str(mine))
    qtbot.waitUntil(lambda: "photos/s here" in entry_text(dialog, str(mine)), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "photos/s here" in entry_text(dialog, "demo"), timeout=WAIT_MS)
    dialog.reject()

    again = open_settings(qtbot, window)
    assert "photos/s here" in entry_text(again, str(mine)) and "photos/s here" in entry_text(again, "demo")
    again.reject()
    window.close()


def test_a_bad_checkpoint_file_is_refused_in_one_line_naming_it(qtbot, tmp_path, monkeypatch):
    bad = tmp_path / "first_stage.pth"
    bad.write_text("not a checkpoint")
    second = tmp_path / "second_stage.pth"
    second.write_text("not one either")
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    dialog = open_settings(qtbot, window)
    picked = [str(bad), str(second), ""]  # the two files, then Cancel for CLIP's weights
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (picked.pop(0), ""))
    chooser = dialog.chooser
    qtbot.mouseClick(chooser.add_official_button, Qt.MouseButton.LeftButton)
    assert not picked and not chooser.add_official_button.isEnabled()
    qtbot.waitUntil(lambda: chooser.status.text().startswith("Not added"), timeout=WAIT_MS)
    message = chooser.status.text()
    assert str(bad) in message and "not a PyTorch checkpoint" in message and "\n" not in message
    assert chooser.add_official_button.isEnabled() and chooser.spec() == "demo"
    assert not (tmp_path / "cache" / "models").exists()  # nothing half made
    dialog.reject()
    window.close()


def test_the_first_run_says_what_each_model_means_and_opens_settings_at_the_list(qtbot, tmp_path):
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    wait_idle(qtbot, window)
    intro = window.model_intro
    assert intro.isVisible() and window.pages.currentWidget() is window.empty_page
    assert "mean nothing" in intro.text.text() and "CLIP" in intro.text.text() and "authors" in intro.text.text()
    assert intro.current.text() == "In use now: the demo model."
    qtbot.mouseClick(intro.choose_button, Qt.MouseButton.LeftButton)
    dialog = window.settings_dialog
    assert dialog is not None and dialog.isVisible() and dialog.focusWidget() is dialog.chooser.list
    qtbot.waitUntil(lambda: len(dialog.chooser.entries()) > 2, timeout=WAIT_MS)
    dialog.reject()  # Cancel: still not chosen, so it stays
    assert intro.isVisible() and not load_settings(tmp_path / "settings.json")[0].model_intro_seen
    qtbot.mouseClick(intro.choose_button, Qt.MouseButton.LeftButton)
    dialog = window.settings_dialog
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton)
    assert not intro.isVisible() and load_settings(tmp_path / "settings.json")[0].model_intro_seen  # chosen: gone
    window.close()


def test_the_first_run_word_goes_once_dismissed_and_stays_gone(qtbot, tmp_path):
    window = window_with_settings(qtbot, tmp_path, Settings(model="demo"))
    wait_idle(qtbot, window)
    assert window.model_intro.isVisible()
    qtbot.mouseClick(window.model_intro.dismiss_button, Qt.MouseButton.LeftButton)
    assert not window.model_intro.isVisible()
    assert load_settings(tmp_path / "settings.json")[0].model_intro_seen
    window.close()

    again = window_with_settings(qtbot, tmp_path / "next-start", load_settings(tmp_path / "settings.json")[0])
    wait_idle(qtbot, again)
    assert again.pages.currentWidget() is again.empty_page and not again.model_intro.isVisible()
    again.close()


def test_the_first_run_word_is_not_shown_once_there_are_photos(qtbot, tmp_path, tiny_bundle):
    write_photos(tmp_path / "photos", 2)
    window = window_with_settings(qtbot, tmp_path, Settings(model=tiny_bundle))
    wait_idle(qtbot, window)
    assert window.model_intro.isVisible()
    window.add_folder(str(tmp_path / "photos"), index=False)
    index_through_ui(qtbot, window)
    assert window.pages.currentWidget() is window.grid and not window.model_intro.isVisible()
    window.close()
