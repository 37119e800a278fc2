"""The first run's word on the model choices: what each means for the person's own photos, on the empty grid.

A panel, not a dialog, so nothing waits on it; "Choose a model…" opens Settings at the model list, and once it is
dismissed the settings remember it.
"""

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

INTRO_STYLE = "ModelIntro { background: #f4f7fb; border: 1px solid #c5d3e6; border-radius: 4px; }"
INTRO_TEXT = (
    "<b>Which model tags your photos?</b><ul style='margin-left: -20px'>"
    "<li><b>The demo model</b> works offline but knows only coloured shapes: on your own photos its tags "
    "mean nothing.</li>"
    "<li><b>CLIP</b> (such as clip:ViT-B-16/openai, about 0.6 GB, downloaded once, then offline) tags any "
    "words in everyday photos, with a heat map of where each is.</li>"
    "<li><b>A multilingual CLIP</b> (about 1.5 GB once) does the same with labels in any language.</li>"
    "<li><b>The authors' MKT</b>, the paper's model, is made here from two files from the authors' page.</li>"
    "</ul>")


def in_use(spec: str) -> str:
    """The model in use, in words."""
    return "In use now: the demo model." if spec == "demo" else f"In use now: {spec}."


class ModelIntro(QFrame):
    """The model choices in four lines, with a way to Settings and a way to never see it again."""

    choose_requested = Signal()
    dismissed = Signal()

    def __init__(self):
        super().__init__()
        self.setStyleSheet(INTRO_STYLE)
        self.text = QLabel(INTRO_TEXT)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.current = QLabel()
        self.choose_button = QPushButton("Choose a model…")
        self.choose_button.setToolTip("Settings, at the model list: each model with what it gives, its size and speed")
        self.dismiss_button = QPushButton("Don't show again")
        self.choose_button.clicked.connect(self.choose_requested)
        self.dismiss_button.clicked.connect(self.dismissed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.current, 1)
        buttons.addWidget(self.choose_button)
        buttons.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addLayout(buttons)

    def show_model(self, spec: str) -> None:
        self.current.setText(in_use(spec))
