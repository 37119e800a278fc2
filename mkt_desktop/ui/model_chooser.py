"""The model choice in the Settings dialog: the catalogue in plain words, what each model gives on the person's
own photos, its download size or where it is installed, and its speed here when it was measured.

Reading the catalogue, measuring speeds and converting the authors' checkpoints all run on a `LibraryRunner`,
so the dialog never waits on them. Whatever is chosen becomes the `model` setting (what --model takes).
"""

import html
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QAbstractTextDocumentLayout, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.library import (
    AUTHORS_PAGE,
    OFFICIAL_TITLE,
    TRAINING_TITLE,
    ModelChoice,
    add_official,
    describe_error,
    free_official_name,
    measure_and_remember,
    model_choices,
)
from mkt_desktop.ui.workers import LibraryRunner

ERROR_STYLE = "color: #8a1f11;"
HTML_ROLE = Qt.ItemDataRole.UserRole + 1  # the entry as it is drawn; the display text is the same, plain
ENTRY_MARGIN = 4
AUTHORS_HOW = (f"Download the two checkpoint files (first stage, second stage) from the authors' page, "
               f"<a href=\"{AUTHORS_PAGE}\">{AUTHORS_PAGE}</a>, then press <b>Add the authors' files…</b>: they are "
               "converted here into a model this app opens (this needs CLIP ViT-B/16's weights too: a file you "
               "have, or open_clip downloads them once).")
TRAINED_HOW = ("<b>Library → Train on my tags…</b> trains one on the photos you accepted and rejected; it is "
               "listed here once made. A model trained with mkt-train and exported: press <b>Bundle folder…</b> "
               "and choose its folder.")


def facts(choice: ModelChoice, measuring: bool = False) -> str:
    """Size, what it is installed as or downloads, its streams and its speed here, on one line."""
    parts = []
    if choice.installed:
        where = choice.folder if choice.folder and choice.spec != "demo" else choice.spec
        parts.append(f"installed: {where}")
        if choice.size_mb is not None:
            parts.append(f"{choice.size_mb:.0f} MB")
    else:
        if choice.spec:
            parts.append(choice.spec)
        if choice.download_mb:
            size = f"about {choice.download_mb / 1000:.1f} GB"
            parts.append(f"download {size} once, then offline" if choice.spec else f"files of {size} to download")
    if choice.two_streams is not None:
        parts.append("both streams + heat maps" if choice.two_streams else "global stream only, no heat map")
    if choice.photos_per_second:
        parts.append(f"{choice.photos_per_second:.1f} photos/s here")
    elif measuring:
        parts.append("measuring its speed…")
    return " · ".join(parts)


def entry_html(title: str, gives: str, known: str) -> str:
    return f"<b>{html.escape(title)}</b><br>{html.escape(gives)}<br><small>{html.escape(known)}</small>"


class EntryDelegate(QStyledItemDelegate):
    """Each entry as its name in bold, what it gives, and its facts in small type, wrapped to the list's width."""

    def _document(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex,
                  width: int) -> QTextDocument:
        document = QTextDocument()
        document.setDefaultFont(option.font)
        document.setDocumentMargin(ENTRY_MARGIN)
        document.setHtml(index.data(HTML_ROLE) or html.escape(index.data(Qt.ItemDataRole.DisplayRole) or ""))
        document.setTextWidth(max(width, 100))
        return document

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        self.initStyleOption(option, index)
        option.text = ""
        widget = option.widget
        widget.style().drawControl(QStyle.ControlElement.CE_ItemViewItem, option, painter, widget)
        rect = option.rect
        document = self._document(option, index, rect.width())
        context = QAbstractTextDocumentLayout.PaintContext()
        selected = option.state & QStyle.StateFlag.State_Selected
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        context.palette.setColor(QPalette.ColorRole.Text, option.palette.color(role))
        painter.save()
        painter.translate(rect.topLeft())
        document.documentLayout().draw(painter, context)
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        view = self.parent()
        width = view.viewport().width() - 2 * view.spacing() if isinstance(view, QListView) else 400
        document = self._document(option, index, width)
        return QSize(width, int(document.size().height()) + 1)


def convert_official(first: str, second: str, cache_dir: Path, clip: str | None) -> str:
    """The authors' two checkpoints -> a bundle in the cache, under a name no model has yet (worker thread)."""
    name = free_official_name(cache_dir)
    return str(add_official(first, second, cache_dir, clip_weights=clip or None, name=name))


class ModelChooser(QWidget):
    """The catalogue as a list, what the selected entry needs, and the model the settings will save."""

    def __init__(self, current: str, cache_dir: Path, runner: LibraryRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.cache_dir = Path(cache_dir)
        self.runner = runner
        self.choices: list[ModelChoice] = []
        self._measuring: set[str] = set()  # folders being measured
        self._gone = False  # the dialog closed: results still coming are dropped

        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(3)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)  # entries wrap again when the dialog is resized
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)  # one width to wrap at
        self.list.setItemDelegate(EntryDelegate(self.list))
        self.list.setMinimumHeight(300)
        self.list.addItem("Looking for the models on this machine…")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setOpenExternalLinks(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.add_official_button = QPushButton("Add the authors' files…")
        self.add_official_button.setToolTip("Choose the first-stage and second-stage checkpoints from "
                                            f"{AUTHORS_PAGE}; they are converted into a model here")
        self.add_official_button.clicked.connect(self.choose_official_files)
        self.measure_button = QPushButton("Measure speeds")
        self.measure_button.setToolTip("Time each installed model on this machine (a few seconds each, in the "
                                       "background); the speeds are remembered")
        self.measure_button.clicked.connect(self.measure_speeds)
        self.bundle_button = QPushButton("Bundle folder…")
        self.bundle_button.clicked.connect(self._choose_bundle)
        self.clip_file_button = QPushButton("CLIP file…")
        self.clip_file_button.setToolTip("A CLIP weights file on disk (open_clip_pytorch_model.bin and the like): "
                                         "clip:NAME/PATH, no download")
        self.clip_file_button.clicked.connect(self._choose_clip_file)
        self.status = QLabel()  # one line: a conversion under way, its result or why it failed
        self.status.setWordWrap(True)
        self.status.hide()
        self.spec_edit = QLineEdit(current)
        self.spec_edit.setToolTip("What the settings save (what mkt-desktop --model takes): 'demo', clip:NAME/TAG, "
                                  "clip:NAME/PATH to a weights file, or a bundle folder")

        buttons = QHBoxLayout()
        for button in (self.add_official_button, self.bundle_button, self.clip_file_button, self.measure_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        chosen = QHBoxLayout()
        chosen.addWidget(QLabel("Model to use:"))
        chosen.addWidget(self.spec_edit, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Which model tags your photos (what each gives on your own photos):"))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addLayout(chosen)

        self.list.currentItemChanged.connect(lambda item, _previous: self._selected(item))
        self.spec_edit.textEdited.connect(lambda _text: self._select_spec())
        self.reload()

    # -- the list -----------------------------------------------------------------------------

    def spec(self) -> str:
        return self.spec_edit.text().strip()

    def reload(self) -> None:
        """Read the catalogue again in the background (installed models, speeds measured before)."""
        self._submit(model_choices, self.cache_dir, self.spec(), on_done=self._show_choices)

    def _show_choices(self, choices: list[ModelChoice]) -> None:
        self.choices = choices
        self.list.blockSignals(True)
        self.list.clear()
        for choice in choices:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, choice)
            self._write(item)
            item.setToolTip(choice.how or choice.folder or choice.spec)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._select_spec()
        self.measure_button.setEnabled(any(c.folder for c in choices))

    def _write(self, item: QListWidgetItem) -> None:
        """An entry's text: its name, what it gives, its facts."""
        choice = item.data(Qt.ItemDataRole.UserRole)
        known = facts(choice, choice.folder in self._measuring)
        item.setText(f"{choice.title}\n{choice.gives}\n{known}")
        item.setData(HTML_ROLE, entry_html(choice.title, choice.gives, known))

    def entries(self) -> list[ModelChoice]:
        """The choices the list shows, in order."""
        return [self.list.item(row).data(Qt.ItemDataRole.UserRole) for row in range(self.list.count())
                if self.list.item(row).data(Qt.ItemDataRole.UserRole) is not None]

    def select(self, spec: str) -> None:
        """Choose the entry of `spec` (what clicking it does)."""
        row = next(row for row, choice in enumerate(self.entries()) if choice.spec == spec)
        self.list.setCurrentRow(row)

    def _select_spec(self) -> None:
        """Select the entry the spec names, if any, without changing the spec."""
        rows = [row for row, choice in enumerate(self.entries()) if choice.spec and choice.spec == self.spec()]
        self.list.blockSignals(True)
        self.list.setCurrentRow(rows[0] if rows else -1)
        self.list.blockSignals(False)
        self._show_details(self.entries()[rows[0]] if rows else None)

    def _selected(self, item: QListWidgetItem | None) -> None:
        choice = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if choice is not None and choice.spec:
            self.spec_edit.setText(choice.spec)
        self._show_details(choice)

    def _show_details(self, choice: ModelChoice | None) -> None:
        """How to get the selected model, when choosing it is not all it takes."""
        if choice is None:
            text = ""
        elif choice.title == OFFICIAL_TITLE:
            text = AUTHORS_HOW
        elif choice.title == TRAINING_TITLE:
            text = TRAINED_HOW
        elif choice.spec.startswith("clip:") and not choice.installed:
            text = "Chosen: open_clip downloads it when you press OK (once; it works offline after)."
        elif choice.spec == "demo":
            text = "Chosen: the demo model. Good for trying the app on demo photos, not for your own."
        else:
            text = f"Chosen: {choice.spec}"
        self.details.setText(text)
        self.details.setVisible(bool(text))

    # -- actions ------------------------------------------------------------------------------

    def measure_speeds(self) -> None:
        """Time every installed model here, one after another in the background; each row shows its speed."""
        for choice in self.choices:
            if choice.folder and choice.folder not in self._measuring:
                self._measuring.add(choice.folder)
                self._submit(measure_and_remember, choice.folder, self.cache_dir,
                             on_done=partial(self._measured, choice.folder),
                             on_error=partial(self._measured, choice.folder, None))
        self._refresh_rows()

    def _measured(self, folder: str, speed: float | None, _error: Exception | None = None) -> None:
        self._measuring.discard(folder)
        for choice in self.choices:
            if choice.folder == folder and speed:
                choice.photos_per_second = speed
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) is not None:
                self._write(self.list.item(row))

    def choose_official_files(self) -> None:
        """Ask for the authors' two checkpoints (and CLIP's weights, if the person has them), then convert."""
        first, _ = QFileDialog.getOpenFileName(self, "1 of 2: the authors' first-stage checkpoint", str(Path.home()),
                                               "Checkpoints (*.pth *.pt *.bin *.safetensors);;All files (*)")
        if not first:
            return
        second, _ = QFileDialog.getOpenFileName(self, "2 of 2: the authors' second-stage checkpoint",
                                                str(Path(first).parent),
                                                "Checkpoints (*.pth *.pt *.bin *.safetensors);;All files (*)")
        if not second:
            return
        clip, _ = QFileDialog.getOpenFileName(self, "CLIP ViT-B/16's weights, if you have them (ViT-B-16.pt); "
                                                    "Cancel: open_clip downloads them", str(Path(first).parent),
                                              "CLIP weights (*.pt *.bin *.pth *.safetensors);;All files (*)")
        self.add_official_files(first, second, clip or None)

    def add_official_files(self, first: str, second: str, clip: str | None = None) -> None:
        """Convert the authors' checkpoints in the background; the new model is chosen when it is made."""
        self.add_official_button.setEnabled(False)
        self._say(f"Converting {Path(first).name} and {Path(second).name}… (a minute or more)")
        self._submit(convert_official, first, second, self.cache_dir, clip,
                     on_done=self._official_added, on_error=self._official_failed)

    def _official_added(self, folder: str) -> None:
        self.add_official_button.setEnabled(True)
        self.spec_edit.setText(folder)
        self._say(f"Added the authors' MKT: {folder}. It is chosen: press OK to use it.")
        self.reload()

    def _official_failed(self, exc: Exception) -> None:
        self.add_official_button.setEnabled(True)
        self._say(f"Not added: {describe_error(exc)}", error=True)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.show()

    def _choose_bundle(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A model bundle folder (written by mkt-train export)")
        if folder:
            self.spec_edit.setText(folder)
            self._select_spec()

    def _choose_clip_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A CLIP weights file (open_clip)", str(Path.home()),
                                              "CLIP weights (*.bin *.pt *.pth *.safetensors);;All files (*)")
        if path:
            current = self.spec()
            name = current[len("clip:"):].partition("/")[0] if current.startswith("clip:") else ""
            self.spec_edit.setText(f"clip:{name or 'ViT-B-16'}/{Path(path).resolve()}")
            self._select_spec()

    # -- the background -----------------------------------------------------------------------

    def close_down(self) -> None:
        """The dialog is closing: results still on their way are dropped (a conversion still finishes)."""
        self._gone = True

    def _submit(self, fn: Callable[..., Any], *args, on_done: Callable[[Any], None],
                on_error: Callable[[Exception], None] | None = None) -> None:
        def unless_gone(callback: Callable[[Any], None]) -> Callable[[Any], None]:
            return lambda value: None if self._gone else callback(value)

        self.runner.submit(fn, *args, on_done=unless_gone(on_done),
                           on_error=unless_gone(on_error or (lambda exc: self._say(describe_error(exc), True))))
