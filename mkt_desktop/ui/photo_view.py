"""The photo view: the selected photo larger, its path, and its best labels with Accept / Reject buttons.

The image is read on a small thread pool of its own, like the grid's thumbnails; library calls go through the
window's `LibraryRunner`.
"""

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.library.library import Library, PhotoLabel
from mkt_desktop.ui.photo_grid import ThumbnailJob, ThumbnailSignals
from mkt_desktop.ui.workers import LibraryRunner

PREVIEW_SIZE = 512
LABEL_LIMIT = 10


def score_text(score: float | None, threshold: float | None) -> str:
    """"0.612 / 0.580 ✓": the score against the label's threshold, ticked when at or above it."""
    if score is None:
        return "—"
    if threshold is None:
        return f"{score:.3f}"
    return f"{score:.3f} / {threshold:.3f} {'✓' if score >= threshold else '✗'}"


class PhotoView(QWidget):
    """Shows one photo; `tagged` is emitted after Accept / Reject has been saved."""

    labels_shown = Signal(int)  # the photo id whose labels the table now shows
    tagged = Signal(str, str)  # label, status

    def __init__(self, library: Library, runner: LibraryRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.runner = runner
        self.photo_id: int | None = None
        self.path: str | None = None
        self.labels: list[PhotoLabel] = []
        self._generation = 0
        self._image = QImage()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = ThumbnailSignals(self)
        self._signals.loaded.connect(self._image_loaded)
        self._build()
        self.clear()

    def _build(self) -> None:
        self.image_label = QLabel()
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(QSize(160, 120))
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.path_label = QLabel()
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Label", "Score / threshold", "Status"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)

        self.accept_button = QPushButton("Accept")
        self.reject_button = QPushButton("Reject")
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image_label, 2)
        layout.addWidget(self.path_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.accept_button.clicked.connect(lambda: self.tag_selected_row("accepted"))
        self.reject_button.clicked.connect(lambda: self.tag_selected_row("rejected"))

    # -- showing a photo ----------------------------------------------------------------------

    def clear(self) -> None:
        self._generation += 1
        self.photo_id, self.path, self.labels = None, None, []
        self._image = QImage()
        self.image_label.clear()
        self.image_label.setText("Select one photo")
        self.path_label.clear()
        self.table.setRowCount(0)
        self._update_buttons()

    def show_photo(self, photo_id: int, path: str) -> None:
        if photo_id == self.photo_id:
            return
        self.clear()
        self.photo_id, self.path = photo_id, path
        self.image_label.setText("Loading…")
        self.path_label.setText(path)
        self._pool.start(ThumbnailJob(path, self._signals, PREVIEW_SIZE))
        self.refresh_labels()

    def refresh_labels(self) -> None:
        if self.photo_id is None:
            return
        photo_id, generation = self.photo_id, self._generation
        self.runner.submit(self.library.photo_labels, photo_id, limit=LABEL_LIMIT,
                           on_done=lambda rows: self._show_labels(generation, photo_id, rows),
                           on_error=self._failed)

    def _show_labels(self, generation: int, photo_id: int, rows: list[PhotoLabel]) -> None:
        if generation != self._generation:
            return  # another photo was selected meanwhile
        selected = self.selected_label()
        self.labels = list(rows)
        self.table.setRowCount(len(rows))
        for row, label in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(label.label))
            self.table.setItem(row, 1, QTableWidgetItem(score_text(label.score, label.threshold)))
            self.table.setItem(row, 2, QTableWidgetItem(label.status))
            if label.label == selected:
                self.table.selectRow(row)
        self._update_buttons()
        self.labels_shown.emit(photo_id)

    def _image_loaded(self, path: str, image: QImage) -> None:
        if path != self.path:
            return
        self._image = image
        if image.isNull():
            self.image_label.setText("Cannot read this image")
        else:
            self._show_image()

    def _show_image(self) -> None:
        if self._image.isNull():
            return
        pixmap = QPixmap.fromImage(self._image)
        self.image_label.setPixmap(pixmap.scaled(self.image_label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                                 Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._show_image()

    def has_image(self) -> bool:
        return not self._image.isNull()

    # -- tagging ------------------------------------------------------------------------------

    def selected_label(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.labels):
            return None
        return self.labels[rows[0].row()].label

    def _update_buttons(self) -> None:
        enabled = self.selected_label() is not None
        self.accept_button.setEnabled(enabled)
        self.reject_button.setEnabled(enabled)

    def tag_selected_row(self, status: str) -> None:
        label = self.selected_label()
        if label is None or self.photo_id is None:
            return
        self.runner.submit(self.library.set_tag, self.photo_id, label, status, on_error=self._failed,
                           on_done=lambda _result: self._tagged(label, status))

    def _tagged(self, label: str, status: str) -> None:
        self.refresh_labels()
        self.tagged.emit(label, status)

    def _failed(self, exc: Exception) -> None:
        self.path_label.setText(f"{self.path or ''}\nError: {exc}")

    def wait(self) -> None:
        self._pool.waitForDone()
