"""The Settings dialog: model, device, batch size, thumbnail size, database location and the folders indexing
skips. Whatever it does not show is kept as it was (OK never resets a setting it has no field for)."""

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
    QWidget,
)

from mkt_desktop.settings import BATCH_SIZES, DEVICES, THUMBNAIL_SIZES, Settings

MODEL_CHOICES = ("demo", "clip:ViT-B-16/openai", "clip:ViT-B-32/openai")  # or clip:NAME/PATH, a bundle folder


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model_box = QComboBox()
        self.model_box.setEditable(True)
        self.model_box.addItems(MODEL_CHOICES)
        self.model_box.setCurrentText(settings.model)
        self.model_box.setToolTip("'demo' (offline, knows only the synthetic world), an open_clip model as "
                                  "clip:NAME/TAG (downloads its weights once), clip:NAME/PATH (a local weights "
                                  "file), or a bundle folder")
        browse_model = QPushButton("Bundle folder…")
        browse_model.clicked.connect(self._choose_bundle)
        browse_clip = QPushButton("CLIP file…")
        browse_clip.setToolTip("A CLIP weights file on disk (open_clip_pytorch_model.bin and the like): "
                               "clip:NAME/PATH, no download")
        browse_clip.clicked.connect(self._choose_clip_file)
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

        form = QFormLayout(self)
        form.addRow("Model", _row(self.model_box, browse_model, browse_clip))
        form.addRow("Device", self.device_box)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Thumbnail size", self.thumb_spin)
        form.addRow("Database", _row(self.database_edit, browse_db))
        form.addRow("Skip folders", self.skip_edit)
        note = QLabel("Everything applies when you press OK: another model is loaded and the photos are "
                      "indexed for it; another database is opened (a new file is created).")
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def settings(self) -> Settings:
        """What the dialog shows, as settings (raises ValueError for a model left empty)."""
        skipped = [name.strip() for name in self.skip_edit.text().split(",") if name.strip()]
        return replace(self.base, model=self.model_box.currentText().strip(), device=self.device_box.currentText(),
                       batch_size=self.batch_spin.value(), thumbnail_size=self.thumb_spin.value(),
                       database=self.database_edit.text().strip(), skip_folders=skipped)

    def _choose_bundle(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A model bundle folder (written by mkt-train export)")
        if folder:
            self.model_box.setCurrentText(folder)

    def _choose_clip_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A CLIP weights file (open_clip)", str(Path.home()),
                                              "CLIP weights (*.bin *.pt *.pth *.safetensors);;All files (*)")
        if path:
            current = self.model_box.currentText().strip()
            name = current[len("clip:"):].partition("/")[0] if current.startswith("clip:") else ""
            self.model_box.setCurrentText(f"clip:{name or 'ViT-B-16'}/{Path(path).resolve()}")

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
