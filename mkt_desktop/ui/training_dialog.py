"""Train on my tags…: the library's decisions train a new model in the background, with progress, ETA and
cancel; when it is done the person may switch to it. The work is `mkt_desktop.library.training_job`."""

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from mkt_desktop.library import describe_error
from mkt_desktop.library.training_job import plan_training, run_training, training_available, with_epochs
from mkt_desktop.ui.workers import CancelFlag, LibraryRunner, clock

STEPS = 1000  # the progress bar's resolution


def _eta(seconds: float | None) -> str:
    return "estimating the time left…" if seconds is None else f"about {clock(seconds)} left"


class TrainingDialog(QDialog):
    """One training run at a time. It runs on the dialog's own background thread (a run takes minutes and
    must not hold up the library's queue); the run reads the library's decisions itself."""

    use_model = Signal(str)  # the new model's bundle folder, when the person chooses to switch to it
    finished_run = Signal(object)  # the TrainingReport, or the exception of a failed run

    def __init__(self, library, device: str = "auto", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Train on my tags")
        self.library, self.device = library, device
        self.runner = LibraryRunner(self)
        self.cancel_flag = CancelFlag()
        self.plan = None
        self.report = None
        self.running = False
        self.intro = QLabel("Counting your decisions…")
        self.intro.setWordWrap(True)
        self.passes = QSpinBox()
        self.passes.setRange(1, 50)
        self.passes.setValue(5)
        self.passes.setToolTip("How many times training goes over your tagged photos: more fits your tags "
                               "more closely and takes longer")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, STEPS)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.start_button = QPushButton("Start training")
        self.start_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button = QPushButton("Use the new model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        buttons = QDialogButtonBox()
        for button in (self.start_button, self.cancel_button, self.use_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.clicked.connect(self.close)
        form = QFormLayout()
        form.addRow("Passes over the tagged photos", self.passes)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(520, 260)
        self._make_plan()

    # -- what would run ------------------------------------------------------------------------

    def _make_plan(self) -> None:
        problem = training_available()
        if problem:
            self.intro.setText(f"This installation cannot train: {problem}")
            return
        if self.library.read_only:
            self.intro.setText(f"{self.library.db_path} is read-only: a training run writes its model beside it.")
            return
        library = self.library
        self.runner.submit(lambda: plan_training(library, start_model=library.bundle.path, device=self.device),
                           on_done=self._planned, on_error=self._plan_failed)

    def _planned(self, plan) -> None:
        self.plan = plan
        counts = plan.counts
        how = ("the image model (CLIP's image tower, its last blocks, distilled from CLIP) and then the prompt"
               if plan.distill else "the image model's last blocks and then the prompt")
        self.intro.setText(
            f"MKT learns from your decisions: {counts['photos']} photos, {counts['accepted']} accepted and "
            f"{counts['rejected']} rejected tags (photos and labels you did not decide on are left out, never "
            f"counted as wrong). It starts from {self.library.bundle.name} and trains {how}, on the GPU when there "
            f"is one. The new model is saved as \"{plan.name}\"; this library keeps its model until you choose "
            "the new one.")
        self.start_button.setEnabled(True)

    def _plan_failed(self, exc: Exception) -> None:
        self.intro.setText(f"Nothing to train on: {describe_error(exc)}")

    # -- the run -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.plan is None or self.running:
            return
        plan = with_epochs(self.plan, self.passes.value())
        self.running = True
        self.cancel_flag.clear()
        for widget, on in ((self.start_button, False), (self.passes, False), (self.cancel_button, True),
                           (self.close_button, False), (self.use_button, False)):
            widget.setEnabled(on)
        self.status.setText("Starting…")
        self.runner.submit(run_training, plan, cancel=self.cancel_flag, on_progress=self._progress,
                           on_done=self._done, on_error=self._failed)

    def cancel(self) -> None:
        self.cancel_flag.set()
        self.cancel_button.setEnabled(False)
        self.status.setText("Cancelling: the step in flight finishes first…")

    def _progress(self, progress) -> None:
        if self.cancel_flag():
            return
        self.progress_bar.setValue(int(progress.done * STEPS))
        self.status.setText(f"{progress.message} · {_eta(progress.eta_seconds)}")

    def _done(self, report) -> None:
        self._stopped()
        self.report = report
        if report.cancelled:
            self.status.setText("Training cancelled: no new model was made.")
            self.progress_bar.setValue(0)
            self.start_button.setEnabled(True)
            self.passes.setEnabled(True)
        else:
            self.progress_bar.setValue(STEPS)
            self.status.setText(f"Done in {clock(report.seconds)}. The new model is in {report.bundle}. Using it "
                                "indexes your photos again with it.")
            self.use_button.setEnabled(True)
        self.finished_run.emit(report)

    def _failed(self, exc: Exception) -> None:
        self._stopped()
        self.status.setText(f"Training failed: {describe_error(exc)}")
        self.start_button.setEnabled(True)
        self.passes.setEnabled(True)
        self.finished_run.emit(exc)

    def _stopped(self) -> None:
        self.running = False
        self.cancel_button.setEnabled(False)
        self.close_button.setEnabled(True)

    def _use(self) -> None:
        if self.report is not None and self.report.bundle is not None:
            self.use_model.emit(str(self.report.bundle))
            self.use_button.setEnabled(False)
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing while a run is on cancels it (the trainer saves where it is) and waits for it to stop."""
        if self.running:
            self.cancel()
        self.runner.close()
        super().closeEvent(event)
