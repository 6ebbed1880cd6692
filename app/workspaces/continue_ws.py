"""Continue: PerformanceRNN plays on from a primer clip, in several variations."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip
from app.widgets.piano_roll import PianoRollPanel
from app.workspaces.base import Workspace, fill_clip_combo, placeholder
from models.sequence import NoteSequence


class ContinueWorkspace(Workspace):
    title = "Continue"
    family = "performance"
    model_label = "PerformanceRNN"
    description = (
        "Pick a MIDI clip as the primer and Cadenza plays on from where it stops, with "
        "expressive timing and dynamics, in several variations to choose from. Keep the ones "
        "you like: they go to the clip library, and from there to your DAW."
    )
    train_hint = "Train one with 'cadenza train performance' on a folder of piano MIDI files."

    def build(self) -> None:
        self.primer = QComboBox()
        self.primer.setMinimumWidth(220)
        self.primer.setToolTip("The MIDI clip the model continues")
        self.length = QDoubleSpinBox()
        self.length.setRange(1.0, 120.0)
        self.length.setValue(10.0)
        self.length.setSuffix(" s")
        self.length.setToolTip("How many seconds to add after the primer")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.1, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(1.0)
        self.temperature.setToolTip("Lower is safer and more repetitive, higher is wilder")
        self.variations = QSpinBox()
        self.variations.setRange(1, 8)
        self.variations.setValue(3)
        self.variations.setToolTip("How many different continuations to generate")
        self.generate = self.action_button("Generate")

        form = QFormLayout()
        form.addRow("Primer:", self.primer)
        form.addRow("Length:", self.length)
        form.addRow("Temperature:", self.temperature)
        form.addRow("Variations:", self.variations)
        controls = QVBoxLayout()
        controls.addLayout(form)
        controls.addWidget(self.generate)
        controls.addStretch(1)

        self.results = QWidget()
        self.results_layout = QGridLayout(self.results)
        self.results_layout.setContentsMargins(0, 0, 0, 0)
        self.results_placeholder = placeholder(
            "The variations will appear here as piano rolls, each with Play and "
            "Add to library.")
        self.results_layout.addWidget(self.results_placeholder, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)

        row = QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls)
        row.addWidget(scroll, 1)

    def clips_changed(self) -> None:
        fill_clip_combo(self.primer, self.midi_clips(), "(no MIDI clip)", default_index=0)

    def primer_clip(self) -> Clip | None:
        clip_id = self.primer.currentData()
        return next((c for c in self.clips if c.id == clip_id), None)

    def show_variations(self, sequences: list[NoteSequence]) -> None:
        """Show generated continuations, each with a button that adds it to the library."""
        while self.results_layout.count():
            item = self.results_layout.takeAt(0)
            if item.widget() is not None and item.widget() is not self.results_placeholder:
                item.widget().deleteLater()
        self.results_placeholder.setVisible(not sequences)
        if not sequences:
            self.results_layout.addWidget(self.results_placeholder, 0, 0)
        base = self.primer_clip().name if self.primer_clip() else "continuation"
        for i, seq in enumerate(sequences):
            panel = PianoRollPanel()
            panel.setMinimumHeight(160)
            name = f"{base} – variation {i + 1}"
            panel.set_sequence(seq, name)
            keep = QPushButton("Add to library")
            keep.clicked.connect(lambda _=False, s=seq, n=name: self.clip_created.emit(
                Clip(n, sequence=s)))
            self.results_layout.addWidget(panel, 2 * i, 0)
            self.results_layout.addWidget(keep, 2 * i + 1, 0)
