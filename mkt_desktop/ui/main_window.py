"""The main window: folders on the left, the photo grid in the centre, search on top, labels and the photo on the right.

Every library call runs on the `LibraryRunner` thread; the window only reacts to the signals that come back.
"""

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMainWindow,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.library import IndexReport, LabelInfo, Library, ModelUnavailable, Progress, SearchHit
from mkt_desktop.settings import Settings
from mkt_desktop.ui.label_panel import ThresholdPanel
from mkt_desktop.ui.photo_grid import GridItem, PhotoGrid, PhotoModel
from mkt_desktop.ui.photo_view import PhotoView
from mkt_desktop.ui.settings_dialog import SettingsDialog
from mkt_desktop.ui.workers import CancelFlag, LibraryRunner

SEARCH_DELAY_MS = 250
SEARCH_LIMIT = 500
LOADING_DIALOG_DELAY_MS = 800  # a model that loads faster than this never shows the dialog
ERROR_STYLE = "background: #fde2e1; color: #8a1f11; padding: 6px; border: 1px solid #e0a49c;"
INFO_STYLE = "background: #e3eefc; color: #173b6c; padding: 6px; border: 1px solid #9fbbe0;"
DEMO_NOTE = ("Demo model: it was trained offline on this project's synthetic world of coloured shapes, so it "
             "knows labels like \"red star\" or \"blue moon\" and little else. To tag your own photos, choose "
             "a CLIP model (clip:ViT-B-16/openai, downloaded once) or a bundle of your own in Library → Settings. "
             "Demo photos: mkt-train demo-photos FOLDER.")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class MainWindow(QMainWindow):
    """The photo tagger's window over one `Library`."""

    indexing_finished = Signal(object)  # the IndexReport, or the exception
    search_finished = Signal(str)  # the text the grid now shows results for
    labels_refreshed = Signal()  # the labels list has been refilled

    def __init__(self, library: Library, parent: QWidget | None = None, settings: Settings | None = None,
                 settings_path: str | Path | None = None):
        super().__init__(parent)
        self.library = library
        self.settings = settings or Settings(model=library.model_spec)
        self.settings_path = Path(settings_path) if settings_path else None
        self.runner = LibraryRunner(self)
        self.cancel_flag = CancelFlag()
        self.indexing = False
        self._search_generation = 0
        self.setWindowTitle("MKT Photo Tagger")
        self.resize(1100, 700)
        self._build()
        self._build_actions()
        self.refresh_folders()
        self.refresh_photos()
        self.refresh_labels()
        self.loading_dialog = self._loading_dialog()
        self.runner.submit(self.library.device_description, on_done=self._show_device, on_error=self._model_failed)

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search photos by any words; Enter saves them as a label")
        self.search_box.setClearButtonEnabled(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(ERROR_STYLE)
        self.banner.hide()

        self.folder_list = QListWidget()
        self.add_folder_button = QPushButton("Add folder…")
        self.rescan_button = QPushButton("Rescan")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Folders"))
        left_layout.addWidget(self.folder_list)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_folder_button)
        buttons.addWidget(self.rescan_button)
        left_layout.addLayout(buttons)

        self.photo_model = PhotoModel(self, cache_dir=self.library.thumbnail_dir,
                                      thumb_size=self.settings.thumbnail_size)
        self.grid = PhotoGrid(thumb_size=self.settings.thumbnail_size)
        self.grid.setModel(self.photo_model)

        self.label_list = QListWidget()
        self.threshold_panel = ThresholdPanel(self.library, self.runner)
        labels = QWidget()
        labels_layout = QVBoxLayout(labels)
        labels_layout.setContentsMargins(0, 0, 0, 0)
        labels_layout.addWidget(QLabel("Labels (photos above threshold)"))
        labels_layout.addWidget(self.label_list)
        labels_layout.addWidget(self.threshold_panel)
        self.photo_view = PhotoView(self.library, self.runner)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(labels)
        right.addWidget(self.photo_view)
        right.setSizes([250, 450])

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.grid)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 580, 320])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(self.search_box)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self.device_label = QLabel("Loading the model…")
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(200)
        self.cancel_button = QPushButton("Cancel")
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.hide()
        status = self.statusBar()
        status.addPermanentWidget(self.progress_label)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)
        status.addPermanentWidget(self.device_label)

        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self.run_search)
        self.search_box.textChanged.connect(lambda _text: self.search_timer.start())
        self.search_box.returnPressed.connect(self.save_label)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.rescan_button.clicked.connect(self.start_indexing)
        self.cancel_button.clicked.connect(self.cancel_indexing)
        self.grid.accept_requested.connect(lambda: self.tag_selected("accepted"))
        self.grid.reject_requested.connect(lambda: self.tag_selected("rejected"))
        self.grid.selectionModel().selectionChanged.connect(lambda _selected, _deselected: self._grid_selection())
        self.photo_view.tagged.connect(lambda _label, _status: self.refresh_labels())
        self.search_finished.connect(lambda _text: self._update_search_label())
        self.labels_refreshed.connect(self._update_search_label)
        self.label_list.currentItemChanged.connect(lambda _current, _previous: self._label_selection())
        self.threshold_panel.threshold_saved.connect(lambda _text: self.refresh_labels())

    def _build_actions(self) -> None:
        self.export_action = QAction("Export XMP sidecars", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self.export_xmp)
        self.addAction(self.export_action)
        menu = self.menuBar().addMenu("&Library")
        add = menu.addAction("Add folder…")
        add.triggered.connect(self.choose_folder)
        rescan = menu.addAction("Rescan")
        rescan.triggered.connect(self.start_indexing)
        menu.addAction(self.export_action)
        menu.addSeparator()
        self.settings_action = menu.addAction("Settings…")
        self.settings_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Preferences))
        self.settings_action.triggered.connect(self.open_settings)

    # -- messages -----------------------------------------------------------------------------

    def show_banner(self, text: str, info: bool = False) -> None:
        self.banner.setStyleSheet(INFO_STYLE if info else ERROR_STYLE)
        self.banner.setText(text)
        self.banner.show()

    def _loading_dialog(self) -> QProgressDialog:
        """A busy dialog while the model loads, shown only when that takes a while (an open_clip download)."""
        what = self.library.model_spec
        text = f"Loading the model {what}…"
        if what.startswith("clip:"):
            text += "\nThe first time, open_clip downloads its weights; this can take a few minutes."
        dialog = QProgressDialog(text, "", 0, 0, self)
        dialog.setWindowTitle("MKT Photo Tagger")
        dialog.setCancelButton(None)
        dialog.setMinimumDuration(LOADING_DIALOG_DELAY_MS)
        dialog.setValue(0)
        return dialog

    def _model_loaded(self) -> None:
        if self.loading_dialog is not None:
            self.loading_dialog.reset()
            self.loading_dialog = None

    def _model_failed(self, exc: Exception) -> None:
        """Any failure to load the model (missing, a broken bundle, a failed download) ends the busy dialog."""
        self._model_loaded()
        self.device_label.setText("No model")
        self.show_banner(f"The model cannot be loaded: {exc}")

    def _job_failed(self, exc: Exception) -> None:
        if isinstance(exc, ModelUnavailable):
            self._model_failed(exc)
        else:
            self.statusBar().showMessage(f"Error: {exc}", 10000)

    def _show_device(self, description: str) -> None:
        self._model_loaded()
        self.device_label.setText(description)
        if self.library.model_spec == "demo":
            self.show_banner(DEMO_NOTE, info=True)

    # -- settings -------------------------------------------------------------------------------

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog.settings())

    def apply_settings(self, new: Settings) -> None:
        """Keep the new settings; the thumbnail size applies now, the rest at the next start."""
        old, self.settings = self.settings, new
        if self.settings_path is not None:
            try:
                new.save(self.settings_path)
            except OSError as exc:
                self.statusBar().showMessage(f"Settings not saved: {self.settings_path}: {exc}", 10000)
                return
        if new.thumbnail_size != old.thumbnail_size:
            self.photo_model.set_thumb_size(new.thumbnail_size)
            self.grid.set_thumb_size(new.thumbnail_size)
        later = [name for name in ("model", "device", "batch_size", "database")
                 if getattr(new, name) != getattr(old, name)]
        if later:
            self.statusBar().showMessage(f"Saved; the new {', '.join(later).replace('_', ' ')} apply when the app "
                                         "is next started", 15000)

    # -- folders and indexing -----------------------------------------------------------------

    def refresh_folders(self) -> None:
        self.folder_list.clear()
        self.folder_list.addItems(self.library.folders())

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder")
        if path:
            self.add_folder(path)

    def add_folder(self, path: str, index: bool = True) -> None:
        """Add a folder to the library (a quick database write) and index it."""
        try:
            self.library.add_folder(path)
        except OSError as exc:
            self.statusBar().showMessage(str(exc), 10000)
            return
        self.refresh_folders()
        if index:
            self.start_indexing()

    def start_indexing(self) -> None:
        if self.indexing:
            return
        self.indexing = True
        self.cancel_flag.clear()
        self.rescan_button.setEnabled(False)
        self.progress_label.setText("Scanning…")
        self.progress_bar.setRange(0, 0)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.show()
        self.cancel_button.setEnabled(True)
        self.runner.submit(self.library.index, cancel=self.cancel_flag, on_progress=self._index_progress,
                           on_done=self._index_done, on_error=self._index_failed)

    def cancel_indexing(self) -> None:
        self.cancel_flag.set()
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling…")

    def _index_progress(self, progress: Progress) -> None:
        self.progress_bar.setRange(0, max(progress.total, 1))
        self.progress_bar.setValue(progress.done)
        self.progress_label.setText(f"Indexing {progress.done}/{progress.total} · {progress.rate:.1f} photos/s"
                                    f" · ETA {_eta(progress.eta_seconds)}")

    def _end_indexing(self) -> None:
        self.indexing = False
        self.rescan_button.setEnabled(True)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.hide()

    def _index_done(self, report: IndexReport) -> None:
        self._end_indexing()
        counts = ", ".join(f"{n} {what}" for what, n in report.counts().items() if n)
        prefix = "Indexing cancelled" if report.cancelled else "Indexed"
        self.statusBar().showMessage(f"{prefix}: {counts or 'nothing new'}", 10000)
        self.refresh_photos()
        self.refresh_labels()
        self.indexing_finished.emit(report)

    def _index_failed(self, exc: Exception) -> None:
        self._end_indexing()
        self._job_failed(exc)
        self.indexing_finished.emit(exc)

    # -- the grid and search ------------------------------------------------------------------

    def refresh_photos(self) -> None:
        """Re-run the current search, or list all photos when there is none."""
        self.search_timer.stop()
        self.run_search()

    def run_search(self) -> None:
        text = self.search_box.text().strip()
        self._search_generation += 1
        generation = self._search_generation
        if not text:
            self.runner.submit(self.library.photos, on_error=self._job_failed,
                               on_done=lambda rows: self._show_all(generation, rows))
            return
        self.runner.submit(self.library.search, text, SEARCH_LIMIT, on_error=self._job_failed,
                           on_done=lambda result: self._show_hits(generation, text, result))

    def _show_all(self, generation: int, rows: list[tuple[int, str]]) -> None:
        if generation == self._search_generation:
            self.photo_model.set_items([GridItem(photo_id, path) for photo_id, path in rows])
            self.search_finished.emit("")

    def _show_hits(self, generation: int, text: str, result: tuple[list[SearchHit], float | None]) -> None:
        if generation != self._search_generation:
            return  # a newer search is on its way
        hits, threshold = result
        self.photo_model.set_items([GridItem(h.photo_id, h.path, h.score) for h in hits], threshold)
        above = sum(self.photo_model.is_above(item) for item in self.photo_model.items)
        self.statusBar().showMessage(f"{len(hits)} photos for {text!r}, {above} above the threshold", 5000)
        self.search_finished.emit(text)

    # -- labels and tags ----------------------------------------------------------------------

    def refresh_labels(self) -> None:
        self.runner.submit(self.library.labels, on_done=self._show_labels, on_error=self._job_failed)

    def _show_labels(self, labels: list[LabelInfo]) -> None:
        """Refill the list, keeping the selected label selected without reloading its threshold."""
        current = self.selected_label()
        self.label_list.blockSignals(True)
        self.label_list.clear()
        for info in labels:
            self.label_list.addItem(f"{info.text} ({info.above_threshold})")
            self.label_list.item(self.label_list.count() - 1).setData(Qt.ItemDataRole.UserRole, info.text)
            if info.text == current:
                self.label_list.setCurrentRow(self.label_list.count() - 1)
        self.label_list.blockSignals(False)
        if self.selected_label() != current:
            self._label_selection()
        self.labels_refreshed.emit()

    def selected_label(self) -> str | None:
        item = self.label_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _label_selection(self) -> None:
        text = self.selected_label()
        if text != self.threshold_panel.text:
            self.threshold_panel.show_label(text)

    def _grid_selection(self) -> None:
        photo_ids = self.grid.selected_photo_ids()
        if len(photo_ids) != 1:
            self.photo_view.clear()
            return
        row = next(i for i, item in enumerate(self.photo_model.items) if item.photo_id == photo_ids[0])
        self.photo_view.show_photo(photo_ids[0], self.photo_model.items[row].path)

    def _update_search_label(self) -> None:
        """The photo view's heat map follows the search text when it is a saved label."""
        text = self.search_box.text().strip()
        self.photo_view.set_search_label(text if text in self.label_texts() else None)

    def label_texts(self) -> list[str]:
        return [self.label_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.label_list.count())]

    def save_label(self) -> None:
        text = self.search_box.text().strip()
        if not text:
            return
        self.runner.submit(self.library.add_label, text, on_error=self._job_failed,
                           on_done=lambda _id: self._label_saved(text))

    def _label_saved(self, text: str) -> None:
        self.statusBar().showMessage(f"Saved the label {text!r}", 5000)
        self.refresh_labels()

    def tag_selected(self, status: str) -> None:
        """Accept or reject the search text as a tag on the selected photos."""
        text = self.search_box.text().strip()
        photo_ids = self.grid.selected_photo_ids()
        if not text or not photo_ids:
            self.statusBar().showMessage("Type a label and select photos to tag them", 5000)
            return

        def tag_all() -> int:
            for photo_id in photo_ids:
                self.library.set_tag(photo_id, text, status)
            return len(photo_ids)

        self.runner.submit(tag_all, on_error=self._job_failed, on_done=lambda n: self._tagged(text, status, n))

    def _tagged(self, text: str, status: str, count: int) -> None:
        self.statusBar().showMessage(f"{text!r} {status} on {count} photo(s)", 5000)
        self.refresh_labels()
        self.photo_view.refresh_labels()

    def export_xmp(self) -> None:
        self.statusBar().showMessage("Exporting XMP sidecars…")
        self.runner.submit(self.library.export_xmp, on_done=self._exported, on_error=self._job_failed)

    def _exported(self, result: tuple[int, list[tuple[str, str]]]) -> None:
        written, problems = result
        message = f"Wrote {written} XMP sidecar(s)"
        if problems:
            message += f"; {len(problems)} problem(s), first: {problems[0][0]}: {problems[0][1]}"
        self.statusBar().showMessage(message, 10000)

    # -- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop indexing at the next batch and wait for the background work before the window goes."""
        self.cancel_flag.set()
        self.search_timer.stop()
        self.threshold_panel.save_pending()
        self.runner.wait()
        self.photo_model.wait()
        self.photo_view.wait()
        super().closeEvent(event)
