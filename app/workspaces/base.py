"""What every workspace shares: a header that says plainly what it does, a model picker, a
notice while its model is missing, and action buttons that stay disabled until it can run.

A model issue fills a workspace in by setting ``implemented = True`` on the subclass and
overriding :meth:`Workspace.run`, which submits a job to ``self.worker`` (see ``app/worker.py``)
and shows the results with the subclass's ``show_*`` method.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip


class Workspace(QWidget):
    """Subclasses set the class attributes and build their controls in ``build()``."""

    title = "Workspace"
    family = ""  # model family in models.registry.FAMILIES
    model_label = ""  # the model's name for people, e.g. "PerformanceRNN"
    description = ""
    train_hint = ""
    implemented = False  # set by the model issue when run() does the real work

    clip_created = Signal(object)  # a new Clip for the library (results the user keeps)
    message = Signal(str)  # one line for the status bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.worker: Any = None  # app.worker.Worker, set by the main window
        self.models: list[Any] = []  # models.registry.ModelEntry of this family
        self.clips: list[Clip] = []
        self.action_buttons: list[QPushButton] = []

        heading = QLabel(self.title)
        heading.setObjectName("workspaceTitle")
        about = QLabel(self.description)
        about.setWordWrap(True)
        about.setObjectName("workspaceDescription")
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(200)
        self.model_combo.setToolTip(f"The {self.model_label} model to use")
        head = QHBoxLayout()
        head.addWidget(heading)
        head.addStretch(1)
        head.addWidget(QLabel("Model:"))
        head.addWidget(self.model_combo)

        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setObjectName("modelNotice")
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.body = QWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(8)
        layout.addLayout(head)
        layout.addWidget(about)
        layout.addWidget(self.notice)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addWidget(self.body, 1)
        self.build()
        self.set_models([])

    # ------------------------------------------------------------------ for subclasses
    def build(self) -> None:
        """Create the controls inside ``self.body``; register buttons with ``action_button``."""

    def action_button(self, text: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName("actionButton")
        button.clicked.connect(self.run)
        self.action_buttons.append(button)
        return button

    def run(self) -> None:
        """Start the model's work (the model issue implements this)."""
        self.message.emit(f"{self.title}: the {self.model_label} model is not installed yet")

    def clips_changed(self) -> None:
        """The library changed: refresh the clip pickers."""

    # ------------------------------------------------------------------ state
    @property
    def can_run(self) -> bool:
        return self.implemented and bool(self.models)

    def set_clips(self, clips: list[Clip]) -> None:
        self.clips = list(clips)
        self.clips_changed()

    def set_models(self, entries: list[Any]) -> None:
        """The installed models of this workspace's family (``ModelEntry`` objects)."""
        self.models = [e for e in entries if getattr(e, "family", None) == self.family]
        self.model_combo.clear()
        for entry in self.models:
            self.model_combo.addItem(entry.name, entry.name)
        self.model_combo.setEnabled(bool(self.models))
        if not self.models:
            self.model_combo.addItem("none installed")
            reason = (f"The {self.model_label} model is not installed yet, so {self.title} "
                      f"cannot run. {self.train_hint}")
        elif not self.implemented:
            reason = (f"A {self.model_label} model is installed, but {self.title} is not "
                      f"connected to it in this version of Cadenza yet.")
        else:
            reason = ""
        self.notice.setText(reason)
        self.notice.setVisible(bool(reason))
        for button in self.action_buttons:
            button.setEnabled(self.can_run)
            button.setToolTip(reason or button.text())

    def midi_clips(self) -> list[Clip]:
        return [c for c in self.clips if c.is_midi]

    def audio_clips(self) -> list[Clip]:
        return [c for c in self.clips if not c.is_midi]


def fill_clip_combo(combo: QComboBox, clips: list[Clip], empty: str,
                    default_index: int | None = None) -> None:
    """Refill a clip picker, keeping the selected clip when it is still there, else choosing
    ``clips[default_index]`` when there is one, else the ``empty`` entry."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    combo.addItem(empty, None)
    for clip in clips:
        combo.addItem(clip.name, clip.id)
    index = combo.findData(current) if current is not None else -1
    if index < 0 and default_index is not None and default_index < len(clips):
        index = default_index + 1
    combo.setCurrentIndex(max(0, index))
    combo.blockSignals(False)


def placeholder(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("placeholder")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    return label
