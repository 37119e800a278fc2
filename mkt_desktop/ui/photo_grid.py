"""The photo grid: a list model of (photo_id, path, score) with thumbnails loaded lazily off the UI thread.

For a searched label each tile says what the label does to the photo: ★ tagged (at or above the threshold),
✓ accepted and ✗ rejected by the person (with a green or red border), and its confidence (see confidence.py).

Thumbnails are kept in an on-disk cache (one small JPEG per photo, size and modification time), so a
library of 50,000 photos decodes each photo once, not at every start.
Double-click (or the context menu's "Open") opens a photo in the system viewer; photos can be dragged out as files.
The context menu's "More like this" asks the window for the photos most like one.
"""

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QDesktopServices,
    QImage,
    QImageReader,
    QKeyEvent,
    QPainter,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu, QStyledItemDelegate, QStyleOptionViewItem

from mkt_desktop.library.thumbnails import DECODER_VERSION, decode_thumbnail, needs_own_decoder
from mkt_desktop.ui.confidence import NO_CALIBRATION, readable, shown, shown_text, tags

THUMB_SIZE = 128
TILE_MARGIN = 12  # pixels around a tile's thumbnail and caption


@dataclass
class GridItem:
    photo_id: int
    path: str
    score: float | None = None
    confidence: float | None = None  # the calibrated confidence of `score`, 0 to 1
    status: str | None = None  # the person's decision about the searched label: "accepted", "rejected" or None


MARKS = {"accepted": "✓", "rejected": "✗"}
BORDERS = {"accepted": QColor("#2e9e44"), "rejected": QColor("#c8372d")}


class ThumbnailSignals(QObject):
    # path (object, not str: a Qt string would mangle a name's undecodable bytes), size asked for, image
    loaded = Signal(object, int, QImage)


def cached_thumbnail_path(cache_dir: Path, path: str, size: int) -> Path | None:
    """Where the thumbnail of this version of the photo is kept; None when the photo cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    # the decoder's version: a decoder fix (a 16-bit PNG no longer black) shows in every thumbnail made before
    key = hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{size}\0{DECODER_VERSION}".encode(
        "utf-8", "surrogateescape"))
    digest = key.hexdigest()
    return cache_dir / digest[:2] / f"{digest}.jpg"


class ThumbnailJob(QRunnable):
    """Reads one photo scaled down to a thumbnail (QImageReader decodes at reduced size where it can),
    from the on-disk cache when it is there, into it when it is not."""

    def __init__(self, path: str, signals: ThumbnailSignals, size: int = THUMB_SIZE, cache_dir: Path | None = None):
        super().__init__()
        self.path, self.signals, self.size, self.cache_dir = path, signals, size, cache_dir

    def run(self) -> None:
        cached = cached_thumbnail_path(self.cache_dir, self.path, self.size) if self.cache_dir else None
        if cached is not None and cached.is_file():
            image = QImage(str(cached))
            if not image.isNull():
                self.signals.loaded.emit(self.path, self.size, image)
                return
        image = _own_decoder_image(self.path, self.size) if needs_own_decoder(self.path) else self._qt_image()
        if image.isNull():
            image = QImage()
        elif cached is not None:
            _save_atomically(image, cached)
        self.signals.loaded.emit(self.path, self.size, image)


    def _qt_image(self) -> QImage:
        reader = QImageReader(self.path)
        reader.setAutoTransform(True)
        original = reader.size()
        if original.isValid():
            reader.setScaledSize(original.scaled(self.size, self.size, Qt.AspectRatioMode.KeepAspectRatio))
        return reader.read()


def _own_decoder_image(path: str, size: int) -> QImage:
    """HEIC/HEIF and camera RAW, which Qt cannot read: decoded as the indexer decodes them."""
    pixels = decode_thumbnail(path, size)
    if pixels is None:
        return QImage()
    rows, cols, _ = pixels.shape
    return QImage(pixels.data, cols, rows, cols * 3, QImage.Format.Format_RGB888).copy()  # copy: own the pixels


def _save_atomically(image: QImage, target: Path) -> None:
    """Write then rename, so that a crash never leaves half a thumbnail that later reads as an image."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.stem}.{os.getpid()}.partial.jpg")
        # the format as text: PySide6's stubs say bytes, but bytes here write nothing at run time
        if image.save(str(partial), "JPEG", 85):  # type: ignore[call-overload]
            partial.replace(target)
    except OSError:
        pass  # a read-only or full disk only costs the cache, never the thumbnail


class PhotoModel(QAbstractListModel):
    """Rows of photos, best first when they come from a search; marks those the searched label tags."""

    PhotoIdRole = Qt.ItemDataRole.UserRole + 1
    ScoreRole = Qt.ItemDataRole.UserRole + 2
    PathRole = Qt.ItemDataRole.UserRole + 3
    StatusRole = Qt.ItemDataRole.UserRole + 4
    ShownRole = Qt.ItemDataRole.UserRole + 5  # the number the caption shows (confidence in % or raw score)

    def __init__(self, parent: QObject | None = None, cache_dir: Path | None = None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self.items: list[GridItem] = []
        self.threshold: float | None = None  # in shown units (see confidence.py)
        self.calibrated = False
        self.label: str | None = None  # the searched words the scores and decisions are for
        self.cache_dir = cache_dir
        self._thumbs: dict[str, QPixmap] = {}
        self._pending: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._signals = ThumbnailSignals(self)
        self._signals.loaded.connect(self._thumbnail_loaded)
        self.set_thumb_size(thumb_size)

    def set_thumb_size(self, size: int) -> None:
        """Thumbnails of another size: the ones in memory are dropped and read again (from the disk cache)."""
        self.thumb_size = size
        self._thumbs.clear()
        self._placeholder = QPixmap(size, size)
        self._placeholder.fill(QColor("#d0d0d0"))
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1), [Qt.ItemDataRole.DecorationRole])

    def set_items(self, items: list[GridItem], threshold: float | None = None, calibrated: bool = False,
                  label: str | None = None) -> None:
        """New rows; `threshold` in shown units, `label` the searched words (None: a plain photo list)."""
        self.beginResetModel()
        self.items = list(items)
        self.threshold, self.calibrated, self.label = threshold, calibrated, label
        self.endResetModel()

    def add_items(self, items: list[GridItem]) -> None:
        """Photos just indexed, after those shown (a photo already shown is not added twice)."""
        known = {item.photo_id for item in self.items}
        new = [item for item in items if item.photo_id not in known]
        if new:
            self.beginInsertRows(QModelIndex(), len(self.items), len(self.items) + len(new) - 1)
            self.items.extend(new)
            self.endInsertRows()

    def set_threshold(self, threshold: float | None) -> None:
        """Another threshold for the searched label (shown units): the ★ marks follow at once."""
        self.threshold = threshold
        self._all_changed()

    def set_statuses(self, statuses: dict[int, str | None]) -> None:
        """The person's decisions about the searched label on some photos: their marks follow at once."""
        for item in self.items:
            if item.photo_id in statuses:
                item.status = statuses[item.photo_id]
        self._all_changed()

    def _all_changed(self) -> None:
        if self.items:
            self.dataChanged.emit(self.index(0), self.index(len(self.items) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def shown_value(self, item: GridItem) -> float | None:
        return shown(item.score, item.confidence, self.calibrated)

    def is_above(self, item: GridItem) -> bool:
        """Whether the searched label tags the photo: ★ (accepted, or above the threshold and not rejected)."""
        if self.label is None:
            return False
        return tags(self.shown_value(item), self.threshold, item.status)

    def caption(self, item: GridItem) -> str:
        name = readable(Path(item.path).name)
        if item.score is None and item.status is None:
            return name
        marks = ("★" if self.is_above(item) else "") + MARKS.get(item.status or "", "")
        value = shown_text(self.shown_value(item), self.calibrated) if item.score is not None else ""
        return f"{f'{marks} ' if marks else ''}{value}".strip() + f"\n{name}"

    def tooltip(self, item: GridItem) -> str:
        lines = [readable(item.path)]
        label = f"\u201c{self.label}\u201d" if self.label else "the search"
        if item.score is not None:
            if self.calibrated and item.confidence is not None:
                lines.append(f"{label}: {100 * item.confidence:.0f} % confidence (raw score {item.score:.3f})")
            else:
                lines.append(f"{label}: score {item.score:.3f}")
        if self.threshold is not None and item.score is not None:
            above = self.threshold is not None and (self.shown_value(item) or float("-inf")) >= self.threshold
            lines.append(f"threshold {shown_text(self.threshold, self.calibrated)} — "
                         f"{'above' if above else 'below'}")
        if item.status == "accepted":
            lines.append(f"✓ Accepted by you: tagged {label}")
        elif item.status == "rejected":
            lines.append(f"✗ Rejected by you: not tagged {label}")
        elif self.is_above(item):
            lines.append(f"★ Tagged {label} (above the threshold)")
        if item.score is not None and not self.calibrated:
            lines.append(NO_CALIBRATION)
        return "\n".join(lines)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.items):
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.caption(item)
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleDescriptionRole):
            return self.tooltip(item)
        if role == Qt.ItemDataRole.AccessibleTextRole:  # a screen reader's line: the name, then what the marks say
            return "; ".join([readable(Path(item.path).name), *self.tooltip(item).split("\n")[1:]])
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(item.path)
        if role == self.PhotoIdRole:
            return item.photo_id
        if role == self.ScoreRole:
            return item.score
        if role == self.PathRole:
            return item.path
        if role == self.StatusRole:
            return item.status
        if role == self.ShownRole:
            return self.shown_value(item)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid():
            flags |= Qt.ItemFlag.ItemIsDragEnabled
        return flags

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        """The photos' file URLs, so they can be dropped into a file manager."""
        rows = sorted({index.row() for index in indexes if index.isValid() and index.row() < len(self.items)})
        data = QMimeData()
        data.setUrls([QUrl.fromLocalFile(self.items[row].path) for row in rows])
        return data

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def thumbnail(self, path: str) -> QPixmap:
        """The cached thumbnail, or a placeholder while it is loaded in the background."""
        pixmap = self._thumbs.get(path)
        if pixmap is not None:
            return pixmap
        if path not in self._pending:
            self._pending.add(path)
            self._pool.start(ThumbnailJob(path, self._signals, self.thumb_size, self.cache_dir))
        return self._placeholder

    def has_thumbnail(self, path: str) -> bool:
        return path in self._thumbs

    @property
    def thumbnails_requested(self) -> int:
        """Photos whose thumbnail was asked for so far: only those the view has shown."""
        return len(self._thumbs) + len(self._pending)

    def _thumbnail_loaded(self, path: str, size: int, image: QImage) -> None:
        self._pending.discard(path)
        # One asked for before the size changed is dropped; the repaint below asks again at the new size.
        if size == self.thumb_size:
            self._thumbs[path] = self._square(image) if not image.isNull() else self._placeholder
        for row, item in enumerate(self.items):
            if item.path == path:
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _square(self, image: QImage) -> QPixmap:
        """The thumbnail centred on a transparent square: every tile has one size, portrait or landscape,
        so a grid of equal tiles never clips one (the view lays out uniform tiles)."""
        square = QPixmap(self.thumb_size, self.thumb_size)
        square.fill(Qt.GlobalColor.transparent)
        painter = QPainter(square)
        painter.drawImage((self.thumb_size - image.width()) // 2, (self.thumb_size - image.height()) // 2, image)
        painter.end()
        return square

    def wait(self) -> None:
        self._pool.waitForDone()


class TileDelegate(QStyledItemDelegate):
    """Draws a tile as Qt does, with a green (accepted) or red (rejected) border; every tile is as tall as a
    thumbnail and two lines of caption, whatever its caption, so no tile is clipped when captions change."""

    def __init__(self, view: QListView):
        super().__init__(view)
        self.view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        size = self.view.iconSize()
        return QSize(size.width() + TILE_MARGIN, size.height() + 2 * option.fontMetrics.lineSpacing() + TILE_MARGIN)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        super().paint(painter, option, index)
        color = BORDERS.get(index.data(PhotoModel.StatusRole) or "")
        if color is not None:
            painter.save()
            painter.setPen(QPen(color, 3))
            painter.drawRect(option.rect.adjusted(1, 1, -2, -2))
            painter.restore()


class PhotoGrid(QListView):
    """An icon grid; Space and Delete ask to accept or reject the search text on the selected photos."""

    accept_requested = Signal()
    reject_requested = Signal()
    similar_requested = Signal(int)  # "More like this" on a photo id
    open_failed = Signal(str)  # no program opened this photo

    def __init__(self, parent=None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setItemDelegate(TileDelegate(self))
        self.set_thumb_size(thumb_size)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # "IMG_2024…1234.jpg": the number stays
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.doubleClicked.connect(self.open_index)

    def set_thumb_size(self, size: int) -> None:
        self.setIconSize(QSize(size, size))
        self.setGridSize(QSize(size + 2 * TILE_MARGIN, size + 2 * self.fontMetrics().lineSpacing() + 2 * TILE_MARGIN))

    def open_index(self, index: QModelIndex) -> None:
        """Open the photo in the system's viewer."""
        if not index.isValid():
            return
        path = self.model().data(index, PhotoModel.PathRole)
        if path and not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.open_failed.emit(path)

    def context_menu(self, index: QModelIndex) -> QMenu:
        """The menu of one photo: Open, More like this."""
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_index(index))
        photo_id = self.model().data(index, PhotoModel.PhotoIdRole)
        menu.addAction("More like this", lambda: self.similar_requested.emit(photo_id))
        return menu

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        index = self.indexAt(event.pos())
        if index.isValid():
            self.context_menu(index).exec(event.globalPos())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.modifiers():
            self.accept_requested.emit()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and not event.modifiers():
            self.reject_requested.emit()
        else:
            super().keyPressEvent(event)

    def selected_photo_ids(self) -> list[int]:
        rows = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        return [self.model().data(self.model().index(row, 0), PhotoModel.PhotoIdRole) for row in rows]
