"""Settings persist between runs, a broken file never stops the app, and thumbnails come from a disk cache."""

import json

import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QImage

from mkt_desktop.library.scanner import DEFAULT_SKIPPED
from mkt_desktop.settings import Settings, load_settings
from mkt_desktop.ui.photo_grid import PhotoModel, cached_thumbnail_path
from mkt_desktop.ui.settings_dialog import SettingsDialog
from tests.ui.helpers import WAIT_MS, open_window, write_photos


def test_settings_round_trip_and_refuse_bad_values(tmp_path):
    path = tmp_path / "conf" / "settings.json"
    assert load_settings(path) == (Settings(), None)  # first run: the defaults
    chosen = Settings(model="clip:ViT-B-16/openai", device="cpu", batch_size=8, thumbnail_size=192,
                      database=str(tmp_path / "other.sqlite"))
    chosen.save(path)
    assert load_settings(path) == (chosen, None)
    with pytest.raises(ValueError, match="device must be one of"):
        Settings(device="tpu")
    with pytest.raises(ValueError, match="batch_size must be a whole number from 1 to 1024"):
        Settings(batch_size=0)


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"device": "tpu"}', '{"batch_size": "8"}'])
def test_a_broken_settings_file_gives_the_defaults_and_says_why(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_text(content)
    settings, problem = load_settings(path)
    assert settings == Settings()
    assert str(path) in problem and "defaults apply" in problem


def test_settings_dialog_saves_and_the_thumbnail_size_applies_at_once(qtbot, tmp_path, tiny_bundle):
    path = tmp_path / "settings.json"
    window = open_window(qtbot, tmp_path / "lib.sqlite", tiny_bundle)
    window.settings_path = path
    dialog = SettingsDialog(window.settings, window)
    qtbot.addWidget(dialog)
    assert dialog.chooser.spec() == tiny_bundle
    dialog.thumb_spin.setValue(200)
    dialog.device_box.setCurrentText("cpu")
    dialog.batch_spin.setValue(4)
    window.apply_settings(dialog.settings())
    saved = json.loads(path.read_text())
    assert saved == {"model": tiny_bundle, "device": "cpu", "batch_size": 4, "thumbnail_size": 200, "database": "",
                     "skip_folders": list(DEFAULT_SKIPPED), "model_intro_seen": False}
    assert window.grid.iconSize().width() == 200 and window.photo_model.thumb_size == 200
    window.close()


def test_app_starts_with_the_saved_settings(qtbot, tmp_path, tiny_bundle):
    from PySide6.QtWidgets import QApplication

    from mkt_desktop.app import main, parse_args

    assert parse_args([]).model is None  # the settings' model, "demo" by default
    path = tmp_path / "settings.json"
    Settings(model=tiny_bundle, device="cpu", batch_size=2, thumbnail_size=96,
             database=str(tmp_path / "from-settings.sqlite")).save(path)
    QTimer.singleShot(1500, QApplication.instance().closeAllWindows)
    assert main(["--settings", str(path)]) == 0
    assert (tmp_path / "from-settings.sqlite").is_file()


def test_thumbnails_are_read_from_the_disk_cache_once_made(qtbot, tmp_path):
    photo = write_photos(tmp_path / "photos", 1)[0]
    cache = tmp_path / "thumbs"
    first = PhotoModel(cache_dir=cache, thumb_size=64)
    first.thumbnail(str(photo))
    qtbot.waitUntil(lambda: first.has_thumbnail(str(photo)), timeout=WAIT_MS)
    cached = cached_thumbnail_path(cache, str(photo), 64)
    assert cached.is_file() and Image.open(cached).size[0] == 64
    # Paint the cached copy green: a new model (the next start) must show the cache, not decode again.
    Image.new("RGB", (64, 48), (0, 255, 0)).save(cached)
    second = PhotoModel(cache_dir=cache, thumb_size=64)
    second.thumbnail(str(photo))
    qtbot.waitUntil(lambda: second.has_thumbnail(str(photo)), timeout=WAIT_MS)
    assert QColor(second.thumbnail(str(photo)).toImage().pixel(10, 10)).green() > 240
    # A changed photo is another key: it is decoded again, never shown stale.
    Image.new("RGB", (80, 60), (255, 0, 0)).save(photo)
    assert cached_thumbnail_path(cache, str(photo), 64) != cached


def test_a_grid_of_50000_photos_reads_only_the_thumbnails_it_shows(qtbot, tmp_path):
    from mkt_desktop.ui.photo_grid import GridItem, PhotoGrid

    photo = write_photos(tmp_path / "photos", 1)[0]
    model = PhotoModel(cache_dir=tmp_path / "thumbs", thumb_size=96)
    grid = PhotoGrid(thumb_size=96)
    grid.setModel(model)
    grid.resize(800, 600)
    qtbot.addWidget(grid)
    # 50,000 rows (one real photo, the rest not yet on disk: a placeholder each)
    model.set_items([GridItem(i, str(photo) if i == 0 else str(tmp_path / f"p{i}.jpg"), 50_000 - i)
                     for i in range(50_000)])
    grid.show()
    qtbot.waitExposed(grid)
    qtbot.waitUntil(lambda: model.has_thumbnail(str(photo)), timeout=WAIT_MS)
    assert 0 < model.thumbnails_requested < 200  # the rows on screen, not 50,000
    grid.scrollToBottom()
    last = model.items[-1].path
    qtbot.waitUntil(lambda: model.has_thumbnail(last), timeout=WAIT_MS)
    assert model.thumbnails_requested < 400
    model.wait()


def test_a_broken_bundle_ends_the_loading_dialog_with_a_banner_naming_it(qtbot, tmp_path):
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    window = open_window(qtbot, tmp_path / "lib.sqlite", str(broken))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT_MS)
    assert "cannot be loaded" in window.banner.text() and "manifest.json" in window.banner.text()
    assert window.loading_dialog is None and window.device_label.text() == "No model"
    window.close()


def test_a_thumbnail_asked_for_before_a_size_change_comes_at_the_new_size(qtbot, tmp_path):
    photo = write_photos(tmp_path / "photos", 1)[0]
    model = PhotoModel(thumb_size=64)
    from mkt_desktop.ui.photo_grid import GridItem

    model.set_items([GridItem(1, str(photo))])
    model.thumbnail(str(photo))  # in flight at 64 px
    model.set_thumb_size(32)
    model._signals.loaded.emit(str(photo), 64, QImage(64, 48, QImage.Format.Format_RGB32))  # the late 64 px one
    assert not model.has_thumbnail(str(photo))
    model.thumbnail(str(photo))  # what the repaint does
    qtbot.waitUntil(lambda: model.has_thumbnail(str(photo)), timeout=WAIT_MS)
    assert max(model.thumbnail(str(photo)).width(), model.thumbnail(str(photo)).height()) == 32
    model.wait()
