"""The Settings dialog: the model (the catalogue in plain words, model_chooser.py), device, batch size, thumbnail
size, database location and the folders indexing skips. Whatever it does not show is kept as it was (OK never
resets a setting it has no field for)."""

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.paths import default_data_dir
from mkt_desktop.settings import BATCH_SIZES, DEVICES, THUMBNAIL_SIZES, Settings
from mkt_desktop.ui.model_chooser import ModelChooser
from mkt_desktop.ui.workers import LibraryRunner


class SettingsDialog(QDialog):
    """`cache_dir`: where the library keeps the models it makes (the CLI's default when not given); `runner`: the
    background runner for the model list and conversions (the dialog's own when not given)."""

    def __init__(self, settings: Settings, parent: QWidget | None = None, cache_dir: str | Path | None = None,
                 runner: LibraryRunner | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        if cache_dir is None:  # as `mkt-desktop models` finds it: beside the database
            folder = Path(settings.database).expanduser().parent if settings.database else default_data_dir()
            cache_dir = folder / "cache"
        self.chooser = ModelChooser(settings.model, Path(cache_dir), runner or LibraryRunner(self))
        self.device_box = QComboBox()
        self.device_box.addItems(DEVICES)
        self.device_box.setCurrentText(settings.device)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(*BATCH_SIZES)
        self.batch_spin.setValue(settings.batch_size)
        self.thumb_spin = QSpinBox()
        self.thumb_spin.setRange(*THUMBNAIL_SIZES)
        self.thumb_spin.setSingleStep(16)
        self.thumb_spin.setSuffix(" px")
        self.thumb_spin.setValue(settings.thumbnail_size)
        self.database_edit = QLineEdit(settings.database)
        self.database_edit.setPlaceholderText("library.sqlite in the user data folder")
        browse_db = QPushButton("File…")
        browse_db.clicked.connect(self._choose_database)
        self.base = settings
        self.skip_edit = QLineEdit(", ".join(settings.skip_folders))
        self.skip_edit.setToolTip("Folder names indexing never walks, separated by commas; shell patterns "
                                  "(.* for hidden folders), any case")

        layout = QVBoxLayout(self)
        layout.addWidget(self.chooser, 1)
        form = QFormLayout()
        layout.addLayout(form)
        form.addRow("Device", self.device_box)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Thumbnail size", self.thumb_spin)
        form.addRow("Database", _row(self.database_edit, browse_db))
        form.addRow("Skip folders", self.skip_edit)
        note = QLabel("Everything applies when you press OK: another model is loaded and the photos are "
                      "indexed for it; another database is opened (a new file is created).")
        note.setWordWrap(True)
        form.addRow(note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self.resize(820, 780)

    def settings(self) -> Settings:
        """What the dialog shows, as settings (raises ValueError for a model left empty)."""
        skipped = [name.strip() for name in self.skip_edit.text().split(",") if name.strip()]
        return replace(self.base, model=self.chooser.spec(), device=self.device_box.currentText(),
                       batch_size=self.batch_spin.value(), thumbnail_size=self.thumb_spin.value(),
                       database=self.database_edit.text().strip(), skip_folders=skipped)

    def done(self, result: int) -> None:
        self.chooser.close_down()
        super().done(result)

    def _choose_database(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Library database", self.database_edit.text(),
                                              "SQLite database (*.sqlite);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.database_edit.setText(path)


def _row(*widgets: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return row
