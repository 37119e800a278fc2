"""The window's dialogs: a problem with the fixes it offers, and the list of files that could not be read."""

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.ui.confidence import readable

# The fixes a problem dialog can offer: key -> button text.
USE_DEMO = "demo"
LOCAL_CLIP = "clip-file"
SETTINGS = "settings"
OTHER_DATABASE = "other-database"
DEFAULT_DATABASE = "default-database"
QUIT = "quit"
FIX_TEXT = {
    USE_DEMO: "Use the demo model",
    LOCAL_CLIP: "Choose a local CLIP file…",
    SETTINGS: "Settings…",
    OTHER_DATABASE: "Choose another database…",
    DEFAULT_DATABASE: "Use the default database",
    QUIT: "Quit",
}


class ProblemDialog(QMessageBox):
    """What went wrong in one line, and a button for each way out; `chosen` says which one was pressed
    ("" for Close). Opened with `open()` it never blocks the window; `exec()` blocks (at start-up)."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None, title: str, text: str, detail: str, fixes: list[str],
                 close_text: str = "Close"):
        super().__init__(parent)
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle(title)
        self.setText(text)
        self.setInformativeText(detail)
        self.fix_buttons: dict[str, QPushButton] = {}
        for key in fixes:
            self.fix_buttons[key] = self.addButton(FIX_TEXT[key], QMessageBox.ButtonRole.ActionRole)
        self.close_button = self.addButton(close_text, QMessageBox.ButtonRole.RejectRole) if close_text else None
        if fixes:
            self.setDefaultButton(self.fix_buttons[fixes[0]])
        self.choice = ""
        self.buttonClicked.connect(self._clicked)

    def _clicked(self, button) -> None:
        self.choice = next((key for key, b in self.fix_buttons.items() if b is button), "")
        self.chosen.emit(self.choice)


def model_problem(parent: QWidget | None, spec: str, reason: str) -> ProblemDialog:
    return ProblemDialog(
        parent, "The model cannot be loaded", f"The model {spec} cannot be loaded.",
        f"{reason}\n\nUse the demo model (it works offline, on coloured shapes), choose a CLIP weights file "
        "you have on disk (open_clip_pytorch_model.bin and the like), or pick another model in Settings.",
        [USE_DEMO, LOCAL_CLIP, SETTINGS])


def database_problem(parent: QWidget | None, reason: str, at_start: bool) -> ProblemDialog:
    detail = f"{reason}\n\nChoose another library database (a new file is created), or use the default one."
    return ProblemDialog(parent, "The library cannot be opened", "The library database cannot be opened.",
                         detail, [OTHER_DATABASE, DEFAULT_DATABASE] + ([QUIT] if at_start else []),
                         close_text="" if at_start else "Keep the current library")


class FailuresDialog(QDialog):
    """Files that could not be read when indexing, each with the reason."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Files that could not be read")
        self.resize(760, 360)
        self.summary = QLabel("Loading…")
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["File", "Why"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)

    def show_failures(self, failures: list[tuple[str, str]]) -> None:
        self.table.setRowCount(len(failures))
        for row, (path, reason) in enumerate(failures):
            self.table.setItem(row, 0, QTableWidgetItem(readable(path)))
            self.table.setItem(row, 1, QTableWidgetItem(reason))
        self.summary.setText(f"{len(failures)} file(s) could not be read; they are skipped until they change."
                             if failures else "Every file was read.")
