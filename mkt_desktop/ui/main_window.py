"""The main window: folders on the left, the photo grid in the centre, search on top, labels and the photo on the right.

Every library call runs on the `LibraryRunner` thread, and each one that changes the library says what it
changed; the window and its panels refresh from the runner's one `changed` signal, never by hand.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.library import (
    DEMO_COUNT,
    DEMO_FOLDER_NAME,
    DatabaseError,
    Decision,
    IndexReport,
    LabelInfo,
    Library,
    ModelUnavailable,
    PhotoRow,
    Progress,
    View,
    describe_error,
    split_clip_spec,
    write_demo_folder,
    year_range,
)
from mkt_desktop.settings import Settings
from mkt_desktop.ui import dialogs, jobs
from mkt_desktop.ui.confidence import readable, shown
from mkt_desktop.ui.model_intro import ModelIntro
from mkt_desktop.ui.photo_grid import GridItem, PhotoGrid, PhotoModel
from mkt_desktop.ui.photo_view import PhotoView
from mkt_desktop.ui.settings_dialog import SettingsDialog
from mkt_desktop.ui.threshold_panel import ThresholdPanel
from mkt_desktop.ui.training_dialog import TrainingDialog
from mkt_desktop.ui.workers import (
    EVERYTHING,
    FOLDERS,
    LABELS,
    LIBRARY,
    PHOTOS,
    TAGS,
    CancelFlag,
    LibraryRunner,
    clock,
)

SEARCH_DELAY_MS = 250
SEARCH_LIMIT = 500
LOADING_DIALOG_DELAY_MS = 800  # a model that loads faster than this never shows the dialog
ERROR_STYLE = "background: #fde2e1; color: #8a1f11; padding: 6px; border: 1px solid #e0a49c;"
INFO_STYLE = "background: #e3eefc; color: #173b6c; padding: 6px; border: 1px solid #9fbbe0;"
DEMO_NOTE = ("Demo model: it was trained offline on this project's synthetic world of coloured shapes, so it "
             "knows labels like \"red star\" or \"blue moon\" and little else (Library → Make demo photos… "
             "writes photos of that world). To tag your own photos, choose a CLIP model (clip:ViT-B-16/openai, "
             "downloaded once, or a CLIP file you have) in Library → Settings…")
READ_ONLY_NOTE = ("{path} is read-only, so it is open for reading: search, browse and export to a folder you can "
                  "write work; adding folders, indexing, labels and tags need a library you can write "
                  "(Library → Settings… → Database).")
SORTS = (("Best match", "best"), ("Newest first", "newest"), ("Oldest first", "oldest"), ("File name", "name"))
DEFAULT_CLIP = "ViT-B-16"


def _eta(seconds: float | None) -> str:
    return "?" if seconds is None else clock(seconds)


def start_folder() -> str:
    """Where folder dialogs open: the user's Pictures folder, else their home."""
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return pictures if pictures and Path(pictures).is_dir() else str(Path.home())


@dataclass
class Found:
    """What a search gives the grid: the photos, and for searched words their threshold, the person's decisions
    about them, and what to tell the person (no photo clearly matches, embeddings missing)."""

    rows: list[PhotoRow]
    threshold: float | None = None  # in shown units (confidence.py)
    calibrated: bool = False
    statuses: dict[int, str] = field(default_factory=dict)
    note: str | None = None
    warning: str | None = None


def find_photos(library: Library, text: str, view: View, similar_to: int | None) -> Found:
    """What the grid shows (runs on the worker thread): photos like one, search hits, or every photo,
    kept and ordered by the view; for searched words, their threshold and decisions."""
    if similar_to is not None:
        return Found(library.browse(view, library.similar(similar_to, SEARCH_LIMIT, library.view_photo_ids(view))))
    if not text:
        return Found(library.browse(view))
    # the best SEARCH_LIMIT of the photos the view keeps, then in the view's order
    result = library.search(text, SEARCH_LIMIT, among=library.view_photo_ids(view))
    calibrated = library.calibrated
    return Found(library.browse(view, result.hits)[:SEARCH_LIMIT],
                 shown(result.threshold, result.threshold_confidence, calibrated), calibrated,
                 library.label_statuses(text), result.note, result.warning)


def same_label(a: str | None, b: str | None) -> bool:
    """Whether two texts are one label ("Red  Boat" is "red boat")."""
    return a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


class MainWindow(QMainWindow):
    """The photo tagger's window over one `Library` (replaced when the model or the database changes)."""

    indexing_finished = Signal(object)  # the IndexReport, or the exception
    search_finished = Signal(str)  # the text the grid now shows results for
    labels_refreshed = Signal()  # the labels list has been refilled
    folders_refreshed = Signal()  # the folder list has been refilled
    library_switched = Signal(object)  # the new Library, or the exception that kept the old one
    problem_shown = Signal(object)  # the ProblemDialog just opened
    undone = Signal(object)  # the Decision just taken back

    def __init__(self, library: Library, parent: QWidget | None = None, settings: Settings | None = None,
                 settings_path: str | Path | None = None):
        super().__init__(parent)
        self.library = library
        self.settings = settings or Settings(model=library.model_spec)
        self.settings_path = Path(settings_path) if settings_path else None
        self.runner = LibraryRunner(self)
        self.models_runner = LibraryRunner(self)  # the model list, speeds, conversions: never behind an index run
        self.settings_dialog: SettingsDialog | None = None
        self.cancel_flag = CancelFlag()
        self.indexing = False
        self.view = View()
        self.similar_to: tuple[int, str] | None = None  # "More like this": the photo id and its path
        self.undo_stack: list[Decision] = []
        self._learned: dict[str, int] = {}  # label -> the decisions its scores learned from
        self.folder_paths_shown: list[str] = []
        self.problem_dialog: dialogs.ProblemDialog | None = None
        self.failures_dialog: dialogs.FailuresDialog | None = None
        self.loading_dialog: QProgressDialog | None = None
        self.training_dialog: TrainingDialog | None = None
        self._model_problem_shown = False
        self._index_again = False
        self._search_generation = 0
        self.setWindowTitle("MKT Photo Tagger")
        self.resize(1100, 700)
        self._build()
        self._build_actions()
        self.runner.changed.connect(self._library_changed)
        self._library_changed(EVERYTHING)

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search photos by any words; Enter saves them as a label")
        self.search_box.setClearButtonEnabled(True)
        self.banner = QLabel()  # problems
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(ERROR_STYLE)
        self.banner.hide()
        self.note = QLabel()  # what to know: the demo model, a read-only library
        self.note.setWordWrap(True)
        self.note.setStyleSheet(INFO_STYLE)
        self.note.hide()
        self.search_note = QLabel()  # what a search found out: an unknown label, missing embeddings
        self.search_note.setWordWrap(True)
        self.search_note.setStyleSheet(INFO_STYLE)
        self.search_note.hide()

        self.folder_list = QListWidget()
        self.folder_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_folder_button = QPushButton("Remove")
        self.remove_folder_button.setToolTip("Forget the selected folder and its photos' results (the files stay)")
        self.rescan_button = QPushButton("Rescan")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Folders (click one to see only its photos)"))
        left_layout.addWidget(self.folder_list)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_folder_button)
        buttons.addWidget(self.remove_folder_button)
        buttons.addWidget(self.rescan_button)
        left_layout.addLayout(buttons)

        self.sort_box = QComboBox()
        for text, key in SORTS:
            self.sort_box.addItem(text, key)
        self.taken_box = QComboBox()
        self.taken_box.addItem("Taken: any time", None)
        self.similar_chip = QPushButton()
        self.similar_chip.setToolTip("Back to all photos")
        self.similar_chip.hide()
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addWidget(self.similar_chip)
        controls.addStretch(1)
        controls.addWidget(QLabel("Sort:"))
        controls.addWidget(self.sort_box)
        controls.addWidget(self.taken_box)

        self.photo_model = PhotoModel(self, cache_dir=self.library.thumbnail_dir,
                                      thumb_size=self.settings.thumbnail_size)
        self.grid = PhotoGrid(thumb_size=self.settings.thumbnail_size)
        self.grid.setModel(self.photo_model)
        self.empty_page = self._build_empty_page()
        self.pages = QStackedWidget()
        self.pages.addWidget(self.grid)
        self.pages.addWidget(self.empty_page)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addLayout(controls)
        centre_layout.addWidget(self.search_note)
        centre_layout.addWidget(self.pages, 1)

        self.label_list = QListWidget()
        self.threshold_panel = ThresholdPanel(self.library, self.runner)
        labels = QWidget()
        labels_layout = QVBoxLayout(labels)
        labels_layout.setContentsMargins(0, 0, 0, 0)
        labels_heading = QLabel("Labels (photos tagged)")
        labels_heading.setToolTip("How many photos each label tags: those at or above its threshold that you did "
                                  "not reject, and those you accepted (what Export writes)")
        labels_layout.addWidget(labels_heading)
        labels_layout.addWidget(self.label_list)
        labels_layout.addWidget(self.threshold_panel)
        self.photo_view = PhotoView(self.library, self.runner)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(labels)
        right.addWidget(self.photo_view)
        right.setSizes([250, 450])

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(centre)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 560, 320])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(self.note)
        layout.addWidget(self.search_box)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self.device_label = QLabel("Loading the model…")
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(200)
        self.cancel_button = QPushButton("Cancel")
        self.failures_button = QPushButton()
        self.failures_button.setFlat(True)
        self.failures_button.setToolTip("Show the files that could not be read, and why")
        for widget in (self.progress_label, self.progress_bar, self.cancel_button, self.failures_button):
            widget.hide()
        status = self.statusBar()
        status.addPermanentWidget(self.failures_button)
        status.addPermanentWidget(self.progress_label)
        status.addPermanentWidget(self.progress_bar)
        status.addPermanentWidget(self.cancel_button)
        status.addPermanentWidget(self.device_label)

        self.search_timer = QTimer(self)
        self.search_timer.setSingleShot(True)
        self.search_timer.setInterval(SEARCH_DELAY_MS)
        self.search_timer.timeout.connect(self.run_search)
        self.search_box.textChanged.connect(self._search_text_changed)
        self.search_box.returnPressed.connect(self.save_label)
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.remove_folder_button.clicked.connect(lambda: self.confirm_remove_folder(self.selected_folder()))
        self.rescan_button.clicked.connect(self.start_indexing)
        self.cancel_button.clicked.connect(self.cancel_indexing)
        self.failures_button.clicked.connect(self.show_failures)
        self.folder_list.currentItemChanged.connect(lambda _current, _previous: self._folder_selection())
        self.folder_list.customContextMenuRequested.connect(self._folder_menu)
        self.sort_box.currentIndexChanged.connect(lambda _i: self._view_changed())
        self.taken_box.currentIndexChanged.connect(lambda _i: self._view_changed())
        self.similar_chip.clicked.connect(self.clear_similar)
        self.grid.accept_requested.connect(lambda: self.tag_selected("accepted"))
        self.grid.reject_requested.connect(lambda: self.tag_selected("rejected"))
        self.grid.similar_requested.connect(self.show_similar)
        self.grid.open_failed.connect(self._open_failed)
        self.grid.selectionModel().selectionChanged.connect(lambda _selected, _deselected: self._grid_selection())
        self.photo_view.decided.connect(self._decided)
        self.photo_view.counted.connect(self._show_label_info)
        self.photo_view.deciding.connect(self.threshold_panel.save_pending)
        self.threshold_panel.threshold_changed.connect(self._threshold_changed)
        self.search_finished.connect(lambda _text: self._update_search_label())
        self.labels_refreshed.connect(self._update_search_label)
        self.label_list.currentItemChanged.connect(lambda _current, _previous: self._label_selection())

    def _build_empty_page(self) -> QWidget:
        """What an empty grid says: what to do next, with the buttons to do it."""
        page = QWidget()
        self.empty_title = QLabel()
        self.empty_title.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.empty_text = QLabel()
        self.empty_text.setWordWrap(True)
        self.empty_text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.empty_add_button = QPushButton("Add folder…")
        self.empty_demo_button = QPushButton("Make demo photos…")
        self.empty_demo_button.setToolTip(f"Write {DEMO_COUNT} photos of the demo model's world of coloured shapes "
                                          "into a folder and index them")
        self.empty_add_button.clicked.connect(self.choose_folder)
        self.empty_demo_button.clicked.connect(self.make_demo_photos)
        self.model_intro = ModelIntro()
        self.model_intro.choose_requested.connect(lambda: self.open_settings(from_intro=True))
        self.model_intro.dismissed.connect(self.dismiss_model_intro)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.empty_add_button)
        buttons.addWidget(self.empty_demo_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(48, 0, 48, 0)
        layout.addStretch(1)
        layout.addWidget(self.empty_title, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.empty_text)  # no alignment: a wrapped label gets the height its width needs
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addSpacing(24)
        layout.addWidget(self.model_intro)
        layout.addStretch(2)
        return page

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&Library")
        self.add_folder_action = menu.addAction("Add folder…")
        self.add_folder_action.setShortcut(QKeySequence("Ctrl+O"))
        self.add_folder_action.triggered.connect(self.choose_folder)
        self.demo_action = menu.addAction("Make demo photos…")
        self.demo_action.triggered.connect(self.make_demo_photos)
        self.rescan_action = menu.addAction("Rescan")
        self.rescan_action.triggered.connect(self.start_indexing)
        self.failures_action = menu.addAction("Files that could not be read…")
        self.failures_action.triggered.connect(self.show_failures)
        self.export_action = QAction("Export XMP sidecars", self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self.export_xmp)
        menu.addAction(self.export_action)
        self.train_action = menu.addAction("Train on my tags…")
        self.train_action.setToolTip("Train a new model from the tags you accepted and rejected")
        self.train_action.triggered.connect(self.open_training)
        menu.addSeparator()
        self.settings_action = menu.addAction("Settings…")
        self.settings_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Preferences))
        self.settings_action.triggered.connect(self.open_settings)
        menu.addSeparator()
        self.quit_action = menu.addAction("Quit")
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)

        edit = self.menuBar().addMenu("&Edit")
        self.undo_action = edit.addAction("Undo")
        self.undo_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.undo_action.triggered.connect(self.undo)
        self.undo_action.setEnabled(False)
        for action in (self.add_folder_action, self.export_action, self.settings_action, self.quit_action,
                       self.undo_action):
            self.addAction(action)  # shortcuts work wherever the focus is, menu open or not

    # -- what changed -------------------------------------------------------------------------

    def _library_changed(self, changes: frozenset) -> None:
        """Refresh what a finished library call changed (the runner's one `changed` signal)."""
        if LIBRARY in changes:
            self._library_opened()
        if changes & {FOLDERS, LIBRARY}:
            self.refresh_folders()
        if changes & {FOLDERS, PHOTOS, LIBRARY, TAGS}:  # TAGS: a label learns from decisions, its ranking moves
            self.refresh_photos()
        if changes & {FOLDERS, PHOTOS, LIBRARY}:
            self.runner.submit(self.library.taken_years, on_done=self._show_years, on_error=self._job_failed)
            self.runner.submit(self.library.failures, on_done=self._show_failure_count, on_error=self._job_failed)
        if changes & {LABELS, TAGS, PHOTOS, LIBRARY}:
            self.refresh_labels()

    def _library_opened(self) -> None:
        """A library (the first, or another model or database): load its model, say what to know about it."""
        self._model_problem_shown = False
        self.banner.hide()
        self.note.hide()
        if self.library.read_only:
            self.show_note(READ_ONLY_NOTE.format(path=self.library.db_path))
        for widget in (self.add_folder_button, self.remove_folder_button, self.rescan_button,
                       self.empty_add_button, self.empty_demo_button, self.add_folder_action, self.demo_action,
                       self.rescan_action, self.train_action):
            widget.setEnabled(not self.library.read_only)
        self.device_label.setText("Loading the model…")
        self.loading_dialog = self._loading_dialog()
        self.runner.submit(self.library.device_description, on_done=self._show_device, on_error=self._model_failed)

    # -- messages -----------------------------------------------------------------------------

    def show_banner(self, text: str, info: bool = False) -> None:
        if info:
            self.show_note(text)
            return
        self.banner.setText(text)
        self.banner.show()

    def show_note(self, text: str) -> None:
        shown = self.note.text() if self.note.isVisible() else ""
        if text not in shown:
            self.note.setText(f"{shown}\n{text}" if shown else text)
        self.note.show()

    def say(self, text: str, msecs: int = 10000) -> None:
        self.statusBar().showMessage(text, msecs)

    def show_problem(self, dialog: dialogs.ProblemDialog) -> dialogs.ProblemDialog:
        """Open a problem dialog without blocking the window (one at a time)."""
        if self.problem_dialog is not None:
            self.problem_dialog.close()
        self.problem_dialog = dialog
        dialog.chosen.connect(self._problem_fix)
        dialog.open()
        self.problem_shown.emit(dialog)
        return dialog

    def _problem_fix(self, key: str) -> None:
        if key == dialogs.USE_DEMO:
            self.apply_settings(replace(self.settings, model="demo"))
        elif key == dialogs.LOCAL_CLIP:
            self.choose_clip_file()
        elif key == dialogs.SETTINGS:
            QTimer.singleShot(0, self.open_settings)
        elif key == dialogs.OTHER_DATABASE:
            self.choose_database()
        elif key == dialogs.DEFAULT_DATABASE:
            self.apply_settings(replace(self.settings, database=""), database_changed=True)

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
        """Any failure to load the model (missing, a broken bundle, a failed download): a banner, and once a
        dialog with the ways out (the demo model, a local CLIP file, Settings)."""
        self._model_loaded()
        reason = describe_error(exc)
        self.device_label.setText("No model")
        self.show_banner(f"The model cannot be loaded: {reason}")
        if not self._model_problem_shown:
            self._model_problem_shown = True
            self.show_problem(dialogs.model_problem(self, self.library.model_spec, reason))

    def _job_failed(self, exc: Exception) -> None:
        if isinstance(exc, ModelUnavailable):
            self._model_failed(exc)  # the banner says it
        else:
            self.say(f"Error: {describe_error(exc, self.library.db_path)}")

    def _show_device(self, description: str) -> None:
        self._model_loaded()
        self.banner.hide()
        self.device_label.setText(description)
        self.runner.submit(self.library.warm_up, on_error=lambda exc: None)  # a search will say what is wrong
        if self.library.model_spec == "demo":
            self.show_note(DEMO_NOTE)

    def _open_failed(self, path: str) -> None:
        self.say(f"No program opened {path}: set a default image viewer in your system, or drag the photo "
                 "to one", 15000)

    # -- settings, another model or database ----------------------------------------------------

    def open_settings(self, from_intro: bool = False) -> SettingsDialog:
        """The Settings dialog, at the model list, without blocking the window; OK applies it (from the first
        run's word on the models, OK also dismisses that)."""
        if self.settings_dialog is not None:
            self.settings_dialog.close()
        dialog = SettingsDialog(self.settings, self, cache_dir=self.library.cache_dir, runner=self.models_runner)
        self.settings_dialog = dialog

        def accepted() -> None:
            new = dialog.settings()
            self.apply_settings(replace(new, model_intro_seen=True) if from_intro else new)
            self._update_empty()

        dialog.accepted.connect(accepted)
        dialog.finished.connect(lambda _result: self._settings_closed(dialog))
        dialog.open()
        dialog.chooser.list.setFocus()
        return dialog

    def _settings_closed(self, dialog: SettingsDialog) -> None:
        if self.settings_dialog is dialog:
            self.settings_dialog = None
        dialog.deleteLater()

    def dismiss_model_intro(self) -> None:
        """"Don't show again": the first run's word on the models, remembered in the settings."""
        self.settings = replace(self.settings, model_intro_seen=True)
        self._save_settings()
        self._update_empty()

    def apply_settings(self, new: Settings, database_changed: bool = False) -> None:
        """Keep the new settings and apply them now: the thumbnail size at once; a new model, device, batch
        size or database opens the library again on them (in the background), and indexes it for a new model."""
        old, self.settings = self.settings, new
        self._save_settings()
        if new.thumbnail_size != old.thumbnail_size:
            self.photo_model.set_thumb_size(new.thumbnail_size)
            self.grid.set_thumb_size(new.thumbnail_size)
        if new.skip_folders != old.skip_folders:  # read by the next index run (on the runner, like every call)
            self.runner.submit(setattr, self.library, "skip_folders", tuple(new.skip_folders))
        database_changed = database_changed or new.database != old.database
        if database_changed or any(getattr(new, name) != getattr(old, name)
                                   for name in ("model", "device", "batch_size")):
            self.switch_library(new, database_changed, previous=old)

    def _save_settings(self) -> None:
        if self.settings_path is None:
            return
        try:
            self.settings.save(self.settings_path)
        except OSError as exc:
            self.say(f"Settings not saved: {self.settings_path}: {describe_error(exc)}")

    def switch_library(self, settings: Settings, database_changed: bool, previous: Settings) -> None:
        """Open the library again on another model or database; the current one stays if that fails."""
        self.cancel_flag.set()  # an indexing run on the old model stops at its next batch
        self.threshold_panel.save_pending()
        db_path = (settings.database or None) if database_changed else self.library.db_path
        model_changed = settings.model != self.library.model_spec
        self.device_label.setText("Opening…")
        self.runner.submit(Library, db_path=db_path, model=settings.model, **settings.library_options,
                           on_done=lambda library: self._switched(library, model_changed),
                           on_error=lambda exc: self._switch_failed(exc, previous))

    def _switched(self, library: Library, model_changed: bool) -> None:
        self.library = library
        self.threshold_panel.library = library
        self.photo_view.library = library
        self.photo_model.cache_dir = library.thumbnail_dir
        self.undo_stack.clear()
        self._update_undo()
        self.similar_to = None
        self.view = replace(self.view, folder=None)
        self.say(f"Now on {library.db_path} with the model {library.model_spec}")
        self.runner.changed.emit(EVERYTHING)
        if model_changed and not library.read_only:
            self.start_indexing(quiet=True)  # a new model needs its own embeddings of every photo
        self.library_switched.emit(library)

    def _switch_failed(self, exc: Exception, previous: Settings) -> None:
        reason = describe_error(exc)
        if isinstance(exc, DatabaseError):
            self.settings = replace(self.settings, database=previous.database)
            self._save_settings()
            self.show_problem(dialogs.database_problem(self, reason, at_start=False))
        else:
            self.say(f"The new settings cannot be used: {reason}")
        self.device_label.setText(self.library.model_spec)
        self.library_switched.emit(exc)

    def choose_clip_file(self) -> None:
        """A CLIP weights file on disk becomes the model: clip:NAME/PATH (NAME: the current CLIP's, else ViT-B-16)."""
        path, _ = QFileDialog.getOpenFileName(self, "A CLIP weights file (open_clip)", str(Path.home()),
                                              "CLIP weights (*.bin *.pt *.pth *.safetensors);;All files (*)")
        if not path:
            return
        spec = self.settings.model
        name = split_clip_spec(spec[len("clip:"):])[0] if spec.startswith("clip:") else DEFAULT_CLIP
        self.apply_settings(replace(self.settings, model=f"clip:{name or DEFAULT_CLIP}/{Path(path).resolve()}"))

    def choose_database(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Library database", str(Path.home() / "library.sqlite"),
                                              "SQLite database (*.sqlite);;All files (*)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.apply_settings(replace(self.settings, database=path), database_changed=True)

    # -- folders and indexing -----------------------------------------------------------------

    def refresh_folders(self) -> None:
        self.runner.submit(self.library.folders, on_done=self._show_folders, on_error=self._job_failed)

    def _show_folders(self, paths: list[str]) -> None:
        """"All folders" first, then each folder; the one selected stays selected."""
        current = self.view.folder if self.view.folder in paths else None
        self.folder_paths_shown = list(paths)
        self.folder_list.blockSignals(True)
        self.folder_list.clear()
        everything = QListWidgetItem("All folders")
        everything.setData(Qt.ItemDataRole.UserRole, None)
        self.folder_list.addItem(everything)
        for path in paths:
            item = QListWidgetItem(readable(path))
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.folder_list.addItem(item)
        self.folder_list.setCurrentRow(paths.index(current) + 1 if current else 0)
        self.folder_list.blockSignals(False)
        self.remove_folder_button.setEnabled(current is not None and not self.library.read_only)
        if current != self.view.folder:
            self.view = replace(self.view, folder=current)
            self.refresh_photos()
        self._update_empty()
        self.folders_refreshed.emit()

    def folder_paths(self) -> list[str]:
        """The library folders the list shows."""
        return list(self.folder_paths_shown)

    def selected_folder(self) -> str | None:
        item = self.folder_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _folder_selection(self) -> None:
        folder = self.selected_folder()
        self.remove_folder_button.setEnabled(folder is not None and not self.library.read_only)
        if folder != self.view.folder:
            self.view = replace(self.view, folder=folder)
            self.refresh_photos()

    def _folder_menu(self, position) -> None:
        item = self.folder_list.itemAt(position)
        folder = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if folder is None:
            return
        menu = QMenu(self)
        menu.addAction("Remove from the library", lambda: self.confirm_remove_folder(folder))
        menu.exec(self.folder_list.viewport().mapToGlobal(position))

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a photo folder", start_folder())
        if path:
            self.add_folder(path)

    def add_folder(self, path: str, index: bool = True) -> None:
        """Add a folder to the library (in the background) and index it."""
        self.runner.submit(self.library.add_folder, path, changes={FOLDERS}, on_error=self._job_failed,
                           on_done=lambda _id: self._folder_added(path, index))

    def _folder_added(self, path: str, index: bool) -> None:
        self.say(f"Added {path}")
        if index:
            self.start_indexing()

    def confirm_remove_folder(self, folder: str | None) -> None:
        if folder is None:
            return
        answer = QMessageBox.question(self, "Remove the folder",
                                      f"Remove {folder} from the library? Its photos' scores and tags are "
                                      "forgotten; the files themselves are not touched.")
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_folder(folder)

    def remove_folder(self, folder: str) -> None:
        self.runner.submit(self.library.remove_folder, folder, changes={FOLDERS, PHOTOS, LABELS, TAGS},
                           on_error=self._job_failed, on_done=lambda _result: self.say(f"Removed {folder}"))

    def make_demo_photos(self) -> None:
        """Photos of the demo model's world, written where the person says, then added and indexed."""
        parent = QFileDialog.getExistingDirectory(
            self, f"Where to make the demo photos (a folder {DEMO_FOLDER_NAME} is made there)", start_folder())
        if parent:
            self.write_demo_photos(parent)

    def write_demo_photos(self, parent: str) -> None:
        self.say(f"Writing {DEMO_COUNT} demo photos into {Path(parent) / DEMO_FOLDER_NAME}…", 0)
        self.runner.submit(write_demo_folder, parent, on_done=self.add_folder,
                           on_error=lambda exc: self.say(f"Demo photos not written: {describe_error(exc)}"))

    def start_indexing(self, quiet: bool = False) -> None:
        """Index every library folder in the background (`quiet`: asked for by a model change, not a person)."""
        if self.indexing:
            self._index_again = self._index_again or quiet  # a run of the old model is stopping
            return
        if self.library.read_only:
            if not quiet:
                self.say(READ_ONLY_NOTE.format(path=self.library.db_path), 15000)
            return
        self.indexing = True
        self.cancel_flag.clear()
        self.rescan_button.setEnabled(False)
        self.progress_label.setText("Scanning…")
        self.progress_bar.setRange(0, 0)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.show()
        self.cancel_button.setEnabled(True)
        self._update_empty()
        self.runner.submit(self.library.index, cancel=self.cancel_flag, on_progress=self._index_progress,
                           on_done=self._index_done, on_error=self._index_failed, changes={PHOTOS, LABELS})

    def cancel_indexing(self) -> None:
        self.cancel_flag.set()
        self.cancel_button.setEnabled(False)
        self.progress_label.setText("Cancelling…")

    def _index_progress(self, progress: Progress) -> None:
        self._show_indexed(progress.photos)
        self.progress_bar.setRange(0, max(progress.total, 1))
        self.progress_bar.setValue(progress.done)
        self.progress_label.setText(f"Indexing {progress.done}/{progress.total} · {progress.rate:.1f} photos/s"
                                    f" · ETA {_eta(progress.eta_seconds)}")

    def _end_indexing(self) -> None:
        self.indexing = False
        self.rescan_button.setEnabled(not self.library.read_only)
        for widget in (self.progress_label, self.progress_bar, self.cancel_button):
            widget.hide()
        if self._index_again:
            self._index_again = False
            QTimer.singleShot(0, lambda: self.start_indexing(quiet=True))

    def _show_indexed(self, photos) -> None:
        """Photos a running index has just added, into a plain photo list that would show them (the list is
        read again when the run ends)."""
        if (not photos or self.search_box.text().strip() or self.similar_to is not None
                or self.view.taken_from is not None or self.view.taken_to is not None):
            return
        folder = self.view.folder
        kept = [GridItem(photo_id, path) for photo_id, path in photos
                if folder is None or Path(path).is_relative_to(folder)]
        self.photo_model.add_items(kept)
        self._update_empty()

    def _index_done(self, report: IndexReport) -> None:
        self._end_indexing()
        if not self.folder_paths_shown and not any(report.counts().values()):
            self.say("No folders to scan yet: Add folder… (or Make demo photos…) first")
        else:
            counts = ", ".join(f"{n} {what}" for what, n in report.counts().items() if n)
            prefix = "Indexing cancelled" if report.cancelled else "Indexed"
            message = f"{prefix}: {counts or 'nothing new'}"
            if report.failed:
                message += " (see Library → Files that could not be read…)"
            if report.skipped_labels:  # saved by an older version: the model cannot read them
                names = ", ".join(repr(text) for text, _ in report.skipped_labels[:3])
                message += f"; not scored (rename or remove): {names}"
            self.say(message, 15000)
        self.indexing_finished.emit(report)

    def _index_failed(self, exc: Exception) -> None:
        self._end_indexing()
        if isinstance(exc, ModelUnavailable):
            self._model_failed(exc)
        self.say(f"Cannot index: {describe_error(exc, self.library.db_path)}", 15000)
        self.indexing_finished.emit(exc)

    def _show_failure_count(self, failures: list[tuple[str, str]]) -> None:
        count = len(failures)
        self.failures_button.setText(f"{count} file{'s' if count != 1 else ''} could not be read…")
        self.failures_button.setVisible(count > 0)
        if self.failures_dialog is not None and self.failures_dialog.isVisible():
            self.failures_dialog.show_failures(failures)

    def show_failures(self) -> dialogs.FailuresDialog:
        """The list of files that could not be read, and why (filled in the background)."""
        if self.failures_dialog is None:
            self.failures_dialog = dialogs.FailuresDialog(self)
        self.failures_dialog.show()
        self.failures_dialog.raise_()
        self.runner.submit(self.library.failures, on_done=self.failures_dialog.show_failures,
                           on_error=self._job_failed)
        return self.failures_dialog

    # -- the grid and search ------------------------------------------------------------------

    def _search_text_changed(self, _text: str) -> None:
        if self.similar_to is not None:
            self.similar_to = None
            self.similar_chip.hide()
        self.search_timer.start()

    def _view_changed(self) -> None:
        year = self.taken_box.currentData()
        taken_from, taken_to = year_range(year) if year else (None, None)
        self.view = replace(self.view, sort=self.sort_box.currentData(), taken_from=taken_from, taken_to=taken_to)
        self.refresh_photos()

    def _show_years(self, years: list[int]) -> None:
        current = self.taken_box.currentData()
        self.taken_box.blockSignals(True)
        self.taken_box.clear()
        self.taken_box.addItem("Taken: any time", None)
        for year in years:
            self.taken_box.addItem(f"Taken in {year}", year)
        self.taken_box.setCurrentIndex(max(self.taken_box.findData(current), 0) if current else 0)
        self.taken_box.blockSignals(False)
        if current and self.taken_box.currentData() != current:
            self._view_changed()

    def refresh_photos(self) -> None:
        """Re-run the current search, or list the photos when there is none."""
        self.search_timer.stop()
        self.run_search()

    def run_search(self) -> None:
        text = self.search_box.text().strip()
        self._search_generation += 1
        generation = self._search_generation
        similar = self.similar_to[0] if self.similar_to else None
        self.runner.submit(find_photos, self.library, text, self.view, similar, on_error=self._job_failed,
                           on_done=lambda result: self._show_photos(generation, text, result))

    def _show_photos(self, generation: int, text: str, found: Found) -> None:
        if generation != self._search_generation:
            return  # a newer search is on its way
        label = text if text and self.similar_to is None else None
        self.photo_model.set_items([GridItem(r.photo_id, r.path, r.score, r.confidence, found.statuses.get(r.photo_id))
                                    for r in found.rows], found.threshold, found.calibrated, label)
        if label and self.threshold_panel.text is not None and same_label(label, self.threshold_panel.text) \
                and self.threshold_panel.spin.isEnabled():
            self.photo_model.set_threshold(self.threshold_panel.spin.value())  # one not saved yet
        notes = [note for note in (found.note, found.warning) if note]
        self.search_note.setText("\n".join(note[0].upper() + note[1:] for note in notes))
        self.search_note.setVisible(bool(notes))
        if label:
            above = sum(self.photo_model.is_above(item) for item in self.photo_model.items)
            self.say(f"{len(found.rows)} photos for {text!r}, {above} tagged", 5000)
        self._update_empty()
        self.search_finished.emit(text)

    def _update_empty(self) -> None:
        """The grid, or the page that says what to do when it has nothing to show."""
        if self.photo_model.items:
            self.pages.setCurrentWidget(self.grid)
            return
        no_folders = not self.folder_paths_shown
        if self.indexing:
            title, text = "Indexing…", "The photos appear here as they are indexed."
        elif no_folders:
            title = "No photos yet"
            text = ("Add a folder of photos: it is indexed at once, then type any words above to find photos "
                    "and press Enter to keep them as a label.")
            if self.library.model_spec == "demo":
                text += (" The demo model only knows a world of coloured shapes: Make demo photos… writes "
                         "photos of it to try it on.")
        elif self.search_box.text().strip() or self.view.filtered or self.similar_to:
            title, text = "No photos match", "Clear the search, choose All folders, or Taken: any time."
        else:
            title, text = "No photos in these folders", "Add another folder, or Rescan after adding photos."
        self.empty_title.setText(title)
        self.empty_text.setText(text)
        guide = no_folders and not self.indexing
        self.empty_add_button.setVisible(guide)
        self.empty_demo_button.setVisible(guide)
        self.model_intro.show_model(self.library.model_spec)
        self.model_intro.setVisible(guide and not self.settings.model_intro_seen)
        self.pages.setCurrentWidget(self.empty_page)

    def show_similar(self, photo_id: int) -> None:
        """"More like this": the photos most like one, most alike first."""
        path = next((item.path for item in self.photo_model.items if item.photo_id == photo_id), str(photo_id))
        self.search_box.blockSignals(True)
        self.search_box.clear()
        self.search_box.blockSignals(False)
        self.similar_to = (photo_id, path)
        self.similar_chip.setText(f"Photos like {readable(Path(path).name)}  ✕")
        self.similar_chip.show()
        self.refresh_photos()

    def clear_similar(self) -> None:
        self.similar_to = None
        self.similar_chip.hide()
        self.refresh_photos()

    # -- labels and tags ----------------------------------------------------------------------

    def refresh_labels(self) -> None:
        self.runner.submit(self.library.labels, on_done=self._show_labels, on_error=self._job_failed)

    def _show_labels(self, labels: list[LabelInfo]) -> None:
        """Refill the list, keeping the selected label selected without reloading its threshold."""
        current = self.selected_label()
        self.label_list.blockSignals(True)
        self.label_list.clear()
        for info in labels:
            self._learned[info.text] = info.learned_from
            self.label_list.addItem(self._label_line(info.text, info.tagged))
            if info.learned_from:
                self.label_list.item(self.label_list.count() - 1).setToolTip(
                    f"Its scores learned from your {info.learned_from} accept and reject decisions "
                    "(mkt-desktop labels forget-corrections gives it back its own)")
            self.label_list.item(self.label_list.count() - 1).setData(Qt.ItemDataRole.UserRole, info.text)
            if info.text == current:
                self.label_list.setCurrentRow(self.label_list.count() - 1)
        self.label_list.blockSignals(False)
        if self.selected_label() != current:
            self._label_selection()
        self.labels_refreshed.emit()

    def _show_label_info(self, info: LabelInfo | None) -> None:
        """A label's new count, at once (the list is read again in the background after)."""
        if info is None:
            return
        self._show_label_count(info.text, info.tagged)

    def _label_line(self, text: str, tagged: int) -> str:
        """"red star (12)": a label and the photos it tags, and how many decisions it learned from."""
        learned = self._learned.get(text, 0)
        return f"{text} ({tagged})" + (f" \u00b7 learned from {learned}" if learned else "")

    def _show_label_count(self, text: str, tagged: int) -> None:
        for row in range(self.label_list.count()):
            item = self.label_list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == text:
                item.setText(self._label_line(text, tagged))

    def _threshold_changed(self, text: str, value: float, tagged: int) -> None:
        """The threshold panel moved: the label's count and, when the grid shows that label, its ★ marks."""
        self._show_label_count(text, tagged)
        if same_label(self.photo_model.label, text):
            self.photo_model.set_threshold(value)

    def _show_decision(self, decision: Decision, statuses: dict[int, str | None]) -> None:
        """Marks on the tiles a decision (or its undoing) changed, when the grid shows its label."""
        if same_label(self.photo_model.label, decision.label):
            self.photo_model.set_statuses(statuses)

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

    def saved_label(self, text: str) -> str | None:
        """The saved label these words are, whatever their case and spacing ("Red  Boat" is "red boat")."""
        key = " ".join(text.split()).casefold()
        return next((label for label in self.label_texts() if label.casefold() == key), None) if key else None

    def _update_search_label(self) -> None:
        """The photo view's heat map follows the search text when it is a saved label; its buttons the text."""
        text = " ".join(self.search_box.text().split())
        self.photo_view.set_search_label(self.saved_label(text), text or None)

    def label_texts(self) -> list[str]:
        return [self.label_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.label_list.count())]

    def save_label(self) -> None:
        text = self.search_box.text().strip()
        if not text:
            return
        self.runner.submit(self.library.add_label, text, on_error=self._job_failed, changes={LABELS},
                           on_done=lambda _id: self.say(f"Saved the label {text!r}", 5000))

    def tag_selected(self, status: str) -> None:
        """Accept or reject the search text (else the selected label) as a tag on the selected photos."""
        text = self.search_box.text().strip() or self.selected_label()
        photo_ids = self.grid.selected_photo_ids()
        if not text or not photo_ids:
            self.say("Type a label (or select one) and select photos to tag them", 5000)
            return
        self.threshold_panel.save_pending()  # a threshold just moved counts in the decision's numbers
        self.runner.submit(jobs.decide, self.library, photo_ids, text, status, on_error=self._job_failed,
                           on_done=self._decided_here, changes={TAGS, LABELS})

    def _decided_here(self, result: tuple[Decision, LabelInfo | None]) -> None:
        decision, info = result
        self._show_label_info(info)
        self._decided(decision)

    def _decided(self, decision: Decision) -> None:
        self._show_decision(decision, dict.fromkeys(decision.before, decision.status))
        self.undo_stack.append(decision)
        self._update_undo()
        self.say(f"Done: {decision.describe()} (Ctrl+Z undoes it)", 5000)

    def undo(self) -> None:
        """Take back the last accept / reject decision."""
        if not self.undo_stack:
            self.say("Nothing to undo", 3000)
            return
        decision = self.undo_stack.pop()
        self._update_undo()
        self.threshold_panel.save_pending()
        self.runner.submit(jobs.undo, self.library, decision, on_error=self._job_failed, changes={TAGS, LABELS},
                           on_done=self._undone)

    def _undone(self, result: tuple[Decision, LabelInfo | None]) -> None:
        decision, info = result
        self._show_label_info(info)
        self._show_decision(decision, decision.before)
        self.say(f"Undone: {decision.describe()}", 5000)
        self.undone.emit(decision)

    def _update_undo(self) -> None:
        if self.undo_stack:
            self.undo_action.setText(f"Undo {self.undo_stack[-1].describe()}")
        else:
            self.undo_action.setText("Undo")
        self.undo_action.setEnabled(bool(self.undo_stack))

    def open_training(self) -> TrainingDialog:
        """The training dialog (one at a time: a run in progress is shown again, not started twice)."""
        if self.training_dialog is None or not self.training_dialog.running:
            self.training_dialog = TrainingDialog(self.library, self.settings.device, self)
            self.training_dialog.use_model.connect(self.use_trained_model)
        self.training_dialog.show()
        self.training_dialog.raise_()
        return self.training_dialog

    def use_trained_model(self, bundle: str) -> None:
        self.apply_settings(replace(self.settings, model=bundle))

    def export_xmp(self) -> None:
        self.say("Exporting XMP sidecars…", 0)
        self.runner.submit(self.library.export_xmp, on_done=self._exported, on_error=self._job_failed)

    def _exported(self, result: tuple[int, list[tuple[str, str]]]) -> None:
        written, problems = result
        message = f"Wrote {written} XMP sidecar(s)"
        if problems:
            message += f"; {len(problems)} problem(s), first: {problems[0][0]}: {problems[0][1]}"
        self.say(message)

    # -- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop indexing at the next batch and wait for the background work before the window goes."""
        self.cancel_flag.set()
        self.search_timer.stop()
        self.threshold_panel.save_pending()
        if self.problem_dialog is not None:
            self.problem_dialog.close()
        if self.training_dialog is not None:
            self.training_dialog.close()  # a run in progress is cancelled
        self.runner.close()
        self.models_runner.close()  # a conversion under way finishes: no half-written model is left
        self.photo_model.wait()
        self.photo_view.wait()
        super().closeEvent(event)
