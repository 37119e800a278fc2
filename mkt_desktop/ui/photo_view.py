"""The photo view: the selected photo larger, its path, and its best labels with Accept / Reject buttons.

The buttons act on the current label, which they name: the selected row's, else the words in the search box.

The image is read on a small thread pool of its own, like the grid's thumbnails; library calls go through the
window's `LibraryRunner`.

The heat map shows where in the photo the selected label is: the label's score for each image patch, drawn over the
photo as a translucent blue (low) to red (high) layer. The model squashes the whole photo to a square, so the patch
grid is stretched over the whole displayed image.
"""

import numpy as np
from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
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

from mkt_desktop.library import Library, PhotoLabel, describe_error
from mkt_desktop.ui import jobs
from mkt_desktop.ui.confidence import NO_CALIBRATION, readable, shown, shown_text
from mkt_desktop.ui.photo_grid import ThumbnailJob, ThumbnailSignals
from mkt_desktop.ui.workers import LABELS, LIBRARY, PHOTOS, TAGS, LibraryRunner

PREVIEW_SIZE = 512
LABEL_LIMIT = 10
HEAT_ALPHA = 0.45


def heat_image(grid: np.ndarray) -> QImage:
    """The patch grid as a small RGBA image: min..max mapped to blue..red, at `HEAT_ALPHA` opacity."""
    values = np.asarray(grid, dtype=np.float32)
    span = float(values.max() - values.min())
    norm = (values - values.min()) / span if span > 0 else np.full_like(values, 0.5)
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    rgba[..., 0] = np.round(norm * 255)
    rgba[..., 2] = np.round((1.0 - norm) * 255)
    rgba[..., 3] = round(HEAT_ALPHA * 255)
    rgba = np.ascontiguousarray(rgba)
    rows, cols = values.shape
    return QImage(rgba.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888).copy()  # copy: own the pixels


def with_heat_map(pixmap: QPixmap, grid: np.ndarray) -> QPixmap:
    """A copy of `pixmap` with the grid stretched (bilinear) over all of it."""
    result = QPixmap(pixmap)
    overlay = heat_image(grid).scaled(pixmap.size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                      Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(result)
    painter.drawImage(0, 0, overlay)
    painter.end()
    return result


def _short(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def score_text(value: float | None, threshold: float | None, calibrated: bool = False) -> str:
    """"87 % / 50 % ✓" (or raw "0.612 / 0.580 ✓"): the label against its threshold, ticked when at or above it."""
    if value is None:
        return "—"
    if threshold is None:
        return shown_text(value, calibrated)
    return f"{shown_text(value, calibrated)} / {shown_text(threshold, calibrated)} {'✓' if value >= threshold else '✗'}"


def load_photo_labels(library: Library, photo_id: int, limit: int) -> tuple[list[PhotoLabel], list[float | None], bool]:
    """A photo's best labels, each threshold's confidence, and whether the model is calibrated (worker thread)."""
    rows = library.photo_labels(photo_id, limit=limit)
    thresholds = [None if row.threshold is None else float(library.confidence(row.threshold)) for row in rows]
    return rows, thresholds, library.calibrated


class PhotoView(QWidget):
    """Shows one photo; `decided` carries each Accept / Reject once saved (the window's Undo takes it back)."""

    labels_shown = Signal(int)  # the photo id whose labels the table now shows
    heat_map_changed = Signal(bool)  # whether the photo is now drawn with a heat map
    decided = Signal(object)  # the saved Decision
    counted = Signal(object)  # the decided label's LabelInfo after the decision
    deciding = Signal()  # a decision is about to be submitted (a pending threshold is saved before it)

    def __init__(self, library: Library, runner: LibraryRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.runner = runner
        self.photo_id: int | None = None
        self.path: str | None = None
        self.labels: list[PhotoLabel] = []
        self.calibrated = False
        self._generation = 0
        self._image = QImage()
        self._plain = QPixmap()  # the photo scaled to the label, without a heat map
        self.search_label: str | None = None  # the heat map's label when no row is selected (a saved label)
        self.search_text: str | None = None  # the words in the search box: the buttons' label when no row is
        self._heat_grids: dict[tuple[int, str], np.ndarray | None] = {}
        self._heat_pending: set[tuple[int, str]] = set()
        self._heat_shown = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = ThumbnailSignals(self)
        self._signals.loaded.connect(self._image_loaded)
        self._build()
        self.clear()
        runner.changed.connect(self._library_changed)

    def _library_changed(self, changes: frozenset) -> None:
        if LIBRARY in changes:
            self.clear()
            return
        if PHOTOS in changes:
            self._heat_grids.clear()  # new embeddings, new patch scores
        if changes & {PHOTOS, LABELS, TAGS}:
            self.refresh_labels()

    def _build(self) -> None:
        self.image_label = QLabel()
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(QSize(160, 120))
        self.image_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.path_label = QLabel()
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.heat_checkbox = QCheckBox("Heat map")
        self.heat_checkbox.setChecked(True)
        self.heat_checkbox.setToolTip("Show where in the photo the selected label (or the searched label) is")

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Label", "Confidence / threshold", "Status"])
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
        layout.addWidget(self.heat_checkbox)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)

        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemSelectionChanged.connect(self._show_image)
        self.heat_checkbox.toggled.connect(lambda _checked: self._show_image())
        self.accept_button.clicked.connect(lambda: self.tag_selected_row("accepted"))
        self.reject_button.clicked.connect(lambda: self.tag_selected_row("rejected"))

    # -- showing a photo ----------------------------------------------------------------------

    def clear(self) -> None:
        self._generation += 1
        self.photo_id, self.path, self.labels = None, None, []
        self._image = QImage()
        self._plain = QPixmap()
        self._heat_grids.clear()
        self._heat_pending.clear()
        self._set_heat_shown(False)
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
        self.path_label.setText(readable(path))
        self._pool.start(ThumbnailJob(path, self._signals, PREVIEW_SIZE))
        self.refresh_labels()

    def refresh_labels(self) -> None:
        if self.photo_id is None:
            return
        photo_id, generation = self.photo_id, self._generation
        self.runner.submit(load_photo_labels, self.library, photo_id, LABEL_LIMIT,
                           on_done=lambda result: self._show_labels(generation, photo_id, *result),
                           on_error=self._failed)

    def _show_labels(self, generation: int, photo_id: int, rows: list[PhotoLabel],
                     threshold_confidences: list[float | None], calibrated: bool) -> None:
        if generation != self._generation:
            return  # another photo was selected meanwhile
        selected = self.selected_label()
        self.labels = list(rows)
        self.calibrated = calibrated
        header = QTableWidgetItem("Confidence / threshold" if calibrated else "Score / threshold")
        header.setToolTip("" if calibrated else NO_CALIBRATION)
        self.table.setHorizontalHeaderItem(1, header)
        self.table.setRowCount(len(rows))
        for row, (label, threshold_confidence) in enumerate(zip(rows, threshold_confidences, strict=True)):
            value = shown(label.score, label.confidence, calibrated)
            threshold = shown(label.threshold, threshold_confidence, calibrated)
            self.table.setItem(row, 0, QTableWidgetItem(label.label))
            self.table.setItem(row, 1, QTableWidgetItem(score_text(value, threshold, calibrated)))
            self.table.setItem(row, 2, QTableWidgetItem(label.status))
            if label.label == selected:
                self.table.selectRow(row)
        self._update_buttons()
        self.labels_shown.emit(photo_id)

    def _image_loaded(self, path: str, _size: int, image: QImage) -> None:
        if path != self.path:
            return
        self._image = image
        if image.isNull():
            self.image_label.setText("Cannot read this image")
        else:
            self._show_image()

    def _show_image(self) -> None:
        """Draw the photo scaled to the label, with the heat map over it when one is wanted and loaded."""
        if self._image.isNull():
            return
        self._plain = QPixmap.fromImage(self._image).scaled(
            self.image_label.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        grid = self._heat_grid()
        if grid is None:
            self.image_label.setPixmap(self._plain)
        else:
            self.image_label.setPixmap(with_heat_map(self._plain, grid))
        self._set_heat_shown(grid is not None)

    def plain_pixmap(self) -> QPixmap:
        """The displayed photo without the heat map."""
        return self._plain

    # -- the heat map -------------------------------------------------------------------------

    def heat_label(self) -> str | None:
        """The label the heat map is for: the selected row's, else the searched label's."""
        return self.selected_label() or self.search_label

    def set_search_label(self, label: str | None, text: str | None = None) -> None:
        """The searched words: `label` the saved label they are (for the heat map), `text` as typed."""
        self.search_text = text or label
        self._update_buttons()
        if label != self.search_label:
            self.search_label = label
            self._show_image()

    def heat_map_shown(self) -> bool:
        return self._heat_shown

    def _set_heat_shown(self, shown: bool) -> None:
        if shown != self._heat_shown:
            self._heat_shown = shown
            self.heat_map_changed.emit(shown)

    def _heat_grid(self) -> np.ndarray | None:
        """The loaded patch grid to draw, or None (off, no label, not loaded yet: then it is fetched)."""
        label = self.heat_label()
        if not self.heat_checkbox.isChecked() or label is None or self.photo_id is None:
            return None
        key = (self.photo_id, label)
        if key in self._heat_grids:
            return self._heat_grids[key]
        if key not in self._heat_pending:
            self._heat_pending.add(key)
            generation = self._generation
            self.runner.submit(self.library.patch_scores, self.photo_id, label,
                               on_done=lambda grid: self._heat_loaded(generation, key, grid),
                               on_error=self._heat_failed)
        return None

    def _heat_loaded(self, generation: int, key: tuple[int, str], grid: np.ndarray | None) -> None:
        if generation != self._generation:
            return  # another photo was selected meanwhile
        self._heat_pending.discard(key)
        self._heat_grids[key] = None if grid is None or np.size(grid) == 0 else np.asarray(grid)
        self._show_image()

    def _heat_failed(self, exc: Exception) -> None:
        self._failed(exc)

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

    def current_label(self) -> str | None:
        """What Accept and Reject act on: the selected row's label, else the searched words."""
        return self.selected_label() or self.search_label or self.search_text

    def _update_buttons(self) -> None:
        label = self.current_label() if self.photo_id is not None else None
        for button, verb in ((self.accept_button, "Accept"), (self.reject_button, "Reject")):
            button.setEnabled(label is not None)
            button.setText(f"{verb} \u201c{_short(label)}\u201d" if label else verb)
            button.setToolTip(f"{verb} the label \u201c{label}\u201d on this photo" if label else
                              "Select a label in the table, or type one in the search box")

    def tag_selected_row(self, status: str) -> None:
        label = self.current_label()
        if label is None or self.photo_id is None:
            return
        self.deciding.emit()
        self.runner.submit(jobs.decide, self.library, [self.photo_id], label, status, on_error=self._failed,
                           on_done=self._decided, changes={TAGS, LABELS})

    def _decided(self, result) -> None:
        decision, info = result
        self.counted.emit(info)
        self.decided.emit(decision)

    def _failed(self, exc: Exception) -> None:
        self.path_label.setText(f"{readable(self.path or '')}\nError: {describe_error(exc, self.library.db_path)}")

    def wait(self) -> None:
        self._pool.waitForDone()
