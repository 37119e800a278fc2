"""The threshold control of one saved label: a slider and a spin box, in confidence (0-100 %) when the model is
calibrated, else over the label's range of raw scores.

Moving either says so at once (`threshold_changed`: the grid's ★ marks and the label's count follow in the same
event-loop turn) and saves the threshold after a short pause (in the background); "Auto" goes back to the
automatic one. New scores or decisions reload the label; another library or model empties the panel.
"""

from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from mkt_desktop.library import Library, describe_error
from mkt_desktop.ui.confidence import NO_CALIBRATION, shown, tags
from mkt_desktop.ui.workers import LABELS, LIBRARY, PHOTOS, TAGS, LibraryRunner

SAVE_DELAY_MS = 300
SLIDER_STEPS = 1000
DECIMALS = 3
PERCENT_RANGE = (0.1, 99.9)  # a confidence threshold: 0 and 100 % stand for no raw score


@dataclass
class LabelScores:
    text: str
    scores: list[float]  # every photo's, in shown units (confidence in %, else raw)
    statuses: list[str | None]  # the person's decision on each of those photos
    threshold: float | None  # None: automatic
    effective_threshold: float | None  # in shown units
    calibrated: bool


def load_label_scores(library: Library, text: str) -> LabelScores:
    """Every photo's score for a saved label, the decisions and its thresholds (runs on the worker thread)."""
    photo_ids, raw = library.label_column(text)
    calibrated = library.calibrated
    info = next((info for info in library.labels() if info.text == text), None)
    decided = library.label_statuses(text)
    effective = shown(info.effective_threshold, info.threshold_confidence, calibrated) if info else None
    values = 100.0 * library.confidence(raw) if calibrated else raw  # shown units, as confidence.shown
    return LabelScores(text, [float(v) for v in values], [decided.get(int(p)) for p in photo_ids],
                       info.threshold if info else None, effective, calibrated)


def save_threshold(library: Library, text: str, value: float | None, calibrated: bool) -> None:
    """A threshold in shown units saved as the raw score it stands for (None: automatic)."""
    if value is not None and calibrated:
        value = library.score_at(value / 100.0)
    library.set_threshold(text, value)


class ThresholdPanel(QWidget):
    """Shows and edits the threshold of the label given to `show_label`."""

    loaded = Signal(str)  # the label whose scores the controls now show
    threshold_saved = Signal(str)  # the label whose threshold was written
    threshold_changed = Signal(str, float, int)  # label, threshold (shown units), photos it tags: at once

    def __init__(self, library: Library, runner: LibraryRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.library = library
        self.runner = runner
        self.text: str | None = None
        self.scores: list[float] = []
        self.statuses: list[str | None] = []
        self.calibrated = False
        self.low, self.high = 0.0, 1.0
        self._generation = 0
        self._pending: tuple[str, float] | None = None
        self._build()
        self.show_label(None)
        runner.changed.connect(self._library_changed)

    def _library_changed(self, changes: frozenset) -> None:
        if LIBRARY in changes:
            self.show_label(None)
        elif changes & {PHOTOS, TAGS} and self.text is not None:
            self.show_label(self.text)

    def _build(self) -> None:
        self.title = QLabel()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(DECIMALS)
        self.spin.setSingleStep(10 ** -DECIMALS)
        self.spin.setKeyboardTracking(False)
        self.auto_button = QPushButton("Auto")
        self.count_label = QLabel()
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        row.addWidget(self.auto_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.count_label)

        self.save_timer = QTimer(self)
        self.save_timer.setSingleShot(True)
        self.save_timer.setInterval(SAVE_DELAY_MS)
        self.save_timer.timeout.connect(self.save_pending)
        self.slider.valueChanged.connect(self._slider_moved)
        self.spin.valueChanged.connect(self._spin_changed)
        self.auto_button.clicked.connect(self.set_auto)

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (self.slider, self.spin, self.auto_button):
            widget.setEnabled(enabled)

    # -- loading a label ----------------------------------------------------------------------

    def show_label(self, text: str | None) -> None:
        """Show the threshold of a saved label, or nothing for None."""
        self.save_pending()
        self._generation += 1
        reload = text == self.text and text is not None
        self.text = text
        if text is None:
            self._set_enabled(False)
            self.title.setText("Select a label to set its threshold")
            self.count_label.clear()
            return
        if not reload:  # (the same label again: new scores or decisions; its controls stay usable)
            self._set_enabled(False)
            self.title.setText(f"Threshold of {text!r}: loading…")
        generation = self._generation
        self.runner.submit(load_label_scores, self.library, text, on_error=self._failed,
                           on_done=lambda result: self._loaded(generation, result))

    def _loaded(self, generation: int, result: LabelScores) -> None:
        if generation != self._generation:
            return
        self.scores, self.statuses, self.calibrated = result.scores, result.statuses, result.calibrated
        if self.calibrated:
            self.low, self.high = PERCENT_RANGE
            decimals, suffix = 1, " %"
        else:
            low, high = (min(self.scores), max(self.scores)) if self.scores else (0.0, 1.0)
            if result.effective_threshold is not None:  # the automatic threshold may lie above every score
                low, high = min(low, result.effective_threshold), max(high, result.effective_threshold)
            pad = max(0.01, 0.05 * (high - low))
            self.low, self.high = round(low - pad, DECIMALS), round(high + pad, DECIMALS)
            decimals, suffix = DECIMALS, ""
        value = result.effective_threshold if result.effective_threshold is not None else self.high
        self._show_mode(result.text, result.threshold is None)
        self.spin.blockSignals(True)
        self.spin.setDecimals(decimals)
        self.spin.setSingleStep(10 ** -decimals if not self.calibrated else 1.0)
        self.spin.setSuffix(suffix)
        self.spin.setRange(self.low, self.high)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.spin.setToolTip("" if self.calibrated else NO_CALIBRATION)
        self._move_slider(self.spin.value())
        self._show_count(self.spin.value())
        self._set_enabled(True)
        self.loaded.emit(result.text)

    def _show_mode(self, text: str, automatic: bool) -> None:
        self.title.setText(f"Threshold of {text!r} ({'automatic' if automatic else 'set by hand'})")

    # -- editing ------------------------------------------------------------------------------

    def _move_slider(self, value: float) -> None:
        span = self.high - self.low
        position = round((value - self.low) / span * SLIDER_STEPS) if span > 0 else 0
        self.slider.blockSignals(True)
        self.slider.setValue(position)
        self.slider.blockSignals(False)

    def _slider_moved(self, position: int) -> None:
        self.spin.setValue(self.low + (self.high - self.low) * position / SLIDER_STEPS)

    def _spin_changed(self, value: float) -> None:
        self._move_slider(value)
        if self.text is not None:
            self._show_mode(self.text, automatic=False)
            self._pending = (self.text, value)
            self.save_timer.start()
        self._show_count(value)

    def tagged(self, value: float) -> int:
        """Photos the label tags at this threshold: accepted, or at or above it and not rejected."""
        return sum(tags(score, value, status) for score, status in zip(self.scores, self.statuses, strict=True))

    def _show_count(self, value: float) -> None:
        above = sum(score >= value for score in self.scores)
        shown_value = f"{value:.1f} %" if self.calibrated else f"{value:.{DECIMALS}f}"
        tagged = self.tagged(value)
        self.count_label.setText(f"{above} of {len(self.scores)} photos at or above {shown_value}; "
                                 f"{tagged} tagged (your accepts and rejects count)")
        if self.text is not None:
            self.threshold_changed.emit(self.text, value, tagged)

    def save_pending(self) -> None:
        """Write the threshold waiting for the debounce now (also called when it fires)."""
        self.save_timer.stop()
        if self._pending is None:
            return
        text, value = self._pending
        self._pending = None
        self.runner.submit(save_threshold, self.library, text, value, self.calibrated, on_error=self._failed,
                           changes={LABELS}, on_done=lambda _result: self.threshold_saved.emit(text))

    def set_auto(self) -> None:
        if self.text is None:
            return
        self.save_timer.stop()
        self._pending = None
        text = self.text
        self._show_mode(text, automatic=True)
        self.runner.submit(self.library.set_threshold, text, None, on_error=self._failed, changes={LABELS},
                           on_done=lambda _result: self._auto_set(text))

    def _auto_set(self, text: str) -> None:
        self.threshold_saved.emit(text)
        if text == self.text:
            self.show_label(text)

    def _failed(self, exc: Exception) -> None:
        self.title.setText(f"Error: {describe_error(exc, self.library.db_path)}")
