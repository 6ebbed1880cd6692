"""Interpolate: MusicVAE blends between two clips in steps, or between four with an XY pad."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip
from app.widgets.piano_roll import PianoRollPanel
from app.widgets.xy_pad import XYPad
from app.workspaces.base import Workspace, fill_clip_combo, placeholder
from models.sequence import NoteSequence

MODES = ("Two endpoints, in steps", "Four corners, with the XY pad")


class InterpolateWorkspace(Workspace):
    title = "Interpolate"
    family = "music_vae"
    model_label = "MusicVAE"
    description = (
        "Pick two MIDI clips and Cadenza finds the musical path between them: a row of "
        "in-between clips that morph one idea into the other. With four clips, drag the XY pad "
        "to blend all four corners."
    )
    train_hint = "Train one with 'cadenza train music_vae' on a folder of MIDI melodies or drums."

    def build(self) -> None:
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.corner_combos: list[QComboBox] = []
        for label in ("A", "B", "C", "D"):
            combo = QComboBox()
            combo.setMinimumWidth(200)
            combo.setToolTip(f"Clip {label}")
            self.corner_combos.append(combo)
        self.steps = QSpinBox()
        self.steps.setRange(2, 16)
        self.steps.setValue(5)
        self.steps.setToolTip("How many clips from A to B, both ends included")
        self.interpolate = self.action_button("Interpolate")

        self.form = QFormLayout()
        self.form.addRow("Mode:", self.mode)
        for label, combo in zip("ABCD", self.corner_combos, strict=True):
            self.form.addRow(f"Clip {label}:", combo)
        self.form.addRow("Steps:", self.steps)
        controls = QVBoxLayout()
        controls.addLayout(self.form)
        controls.addWidget(self.interpolate)
        controls.addStretch(1)

        self.pad = XYPad(("A", "B", "C", "D"))
        self.pad.setToolTip("Drag between the four corner clips")

        self.results = QWidget()
        self.results_layout = QHBoxLayout(self.results)
        self.results_layout.setContentsMargins(0, 0, 0, 0)
        self.results_placeholder = placeholder(
            "The in-between clips will appear here, from A to B, each as a small piano roll "
            "you can play or add to the library.")
        self.results_layout.addWidget(self.results_placeholder)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)

        row = QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls)
        row.addWidget(scroll, 1)
        row.addWidget(self.pad)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed(0)

    @property
    def four_corners(self) -> bool:
        return self.mode.currentIndex() == 1

    def _mode_changed(self, index: int) -> None:
        four = index == 1
        for combo in self.corner_combos[2:]:
            self.form.setRowVisible(combo, four)
        self.form.setRowVisible(self.steps, not four)
        self.pad.setVisible(four)

    def clips_changed(self) -> None:
        for i, combo in enumerate(self.corner_combos):
            fill_clip_combo(combo, self.midi_clips(), "(choose a MIDI clip)",
                            default_index=i if i < 2 else None)

    def endpoint_clips(self) -> list[Clip | None]:
        out = []
        for combo in self.corner_combos:
            clip_id = combo.currentData()
            out.append(next((c for c in self.clips if c.id == clip_id), None))
        return out

    def show_results(self, sequences: list[NoteSequence]) -> None:
        """Show the interpolated clips left to right, each with Add to library."""
        while self.results_layout.count():
            item = self.results_layout.takeAt(0)
            if item.widget() is not None and item.widget() is not self.results_placeholder:
                item.widget().deleteLater()
        self.results_placeholder.setVisible(not sequences)
        if not sequences:
            self.results_layout.addWidget(self.results_placeholder)
        for i, seq in enumerate(sequences):
            box = QWidget()
            col = QVBoxLayout(box)
            panel = PianoRollPanel()
            panel.setMinimumSize(220, 160)
            name = f"interpolation {i + 1}/{len(sequences)}"
            panel.set_sequence(seq, name)
            keep = QPushButton("Add to library")
            keep.clicked.connect(lambda _=False, s=seq, n=name: self.clip_created.emit(
                Clip(n, sequence=s)))
            col.addWidget(panel, 1)
            col.addWidget(keep)
            self.results_layout.addWidget(box)
