"""The photo grid: a list model of (photo_id, path, score) with thumbnails loaded lazily off the UI thread.

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
from PySide6.QtGui import QColor, QContextMenuEvent, QDesktopServices, QImage, QImageReader, QKeyEvent, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QMenu

from mkt_desktop.library.thumbnails import decode_thumbnail, needs_own_decoder

THUMB_SIZE = 128


@dataclass
class GridItem:
    photo_id: int
    path: str
    score: float | None = None


class ThumbnailSignals(QObject):
    loaded = Signal(str, int, QImage)  # path, thumbnail size asked for, image


def cached_thumbnail_path(cache_dir: Path, path: str, size: int) -> Path | None:
    """Where the thumbnail of this version of the photo is kept; None when the photo cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{size}".encode("utf-8", "surrogateescape"))
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
    """Rows of photos, best first when they come from a search; marks those at or above the threshold."""

    PhotoIdRole = Qt.ItemDataRole.UserRole + 1
    ScoreRole = Qt.ItemDataRole.UserRole + 2
    PathRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent: QObject | None = None, cache_dir: Path | None = None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self.items: list[GridItem] = []
        self.threshold: float | None = None
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

    def set_items(self, items: list[GridItem], threshold: float | None = None) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.threshold = threshold
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def is_above(self, item: GridItem) -> bool:
        return item.score is not None and self.threshold is not None and item.score >= self.threshold

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.items):
            return None
        item = self.items[index.row()]
        name = Path(item.path).name
        if role == Qt.ItemDataRole.DisplayRole:
            if item.score is None:
                return name
            return f"{'★ ' if self.is_above(item) else ''}{item.score:.3f}\n{name}"
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [item.path]
            if item.score is not None:
                lines.append(f"score {item.score:.4f}")
            if self.threshold is not None:
                lines.append(f"threshold {self.threshold:.4f} — {'above' if self.is_above(item) else 'below'}")
            return "\n".join(lines)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(item.path)
        if role == self.PhotoIdRole:
            return item.photo_id
        if role == self.ScoreRole:
            return item.score
        if role == self.PathRole:
            return item.path
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
            self._thumbs[path] = QPixmap.fromImage(image) if not image.isNull() else self._placeholder
        for row, item in enumerate(self.items):
            if item.path == path:
                index = self.index(row)
                self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def wait(self) -> None:
        self._pool.waitForDone()


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
        self.set_thumb_size(thumb_size)
        self.setWordWrap(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.doubleClicked.connect(self.open_index)

    def set_thumb_size(self, size: int) -> None:
        self.setIconSize(QSize(size, size))
        self.setGridSize(QSize(size + 24, size + 48))

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
