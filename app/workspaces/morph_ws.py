"""Morph: NSynth blends the timbres of two to four sounds; the XY pad picks the mix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
)

from app.clips import Clip
from app.widgets.waveform import WaveformPanel
from app.widgets.xy_pad import XYPad
from app.workspaces.base import Workspace, fill_clip_combo

if TYPE_CHECKING:
    from models.audio_io import Audio


class MorphWorkspace(Workspace):
    title = "Morph"
    family = "nsynth"
    model_label = "NSynth"
    description = (
        "Put two to four sounds in the slots and drag the point on the XY pad: Cadenza "
        "synthesises a new sound whose timbre sits between them (a flute that is partly a "
        "bass). The result can be played, exported, or kept in the library."
    )
    train_hint = "Train one with 'cadenza train nsynth' on a folder of short instrument notes."

    def build(self) -> None:
        self.slots: list[QComboBox] = []
        form = QFormLayout()
        for i in range(4):
            combo = QComboBox()
            combo.setMinimumWidth(200)
            combo.setToolTip("An audio clip" + (" (optional)" if i >= 2 else ""))
            self.slots.append(combo)
            form.addRow(f"Sound {'ABCD'[i]}:", combo)
        self.morph = self.action_button("Morph")
        self.keep = QPushButton("Add result to library")
        self.keep.setEnabled(False)
        self.keep.setToolTip("Morph a sound first")
        self.keep.clicked.connect(self._keep)
        controls = QVBoxLayout()
        controls.addLayout(form)
        controls.addWidget(self.morph)
        controls.addWidget(self.keep)
        controls.addStretch(1)

        self.pad = XYPad(("A", "B", "C", "D"))
        self.pad.setToolTip("Drag to choose how much of each sound goes into the mix")
        self.result = WaveformPanel()
        self.result.view.placeholder = "The morphed sound will appear here."
        self.result.bar.title.setText("Result")
        self._result_audio: Audio | None = None

        row = QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls)
        row.addWidget(self.pad)
        row.addWidget(self.result, 1)

    def clips_changed(self) -> None:
        for i, combo in enumerate(self.slots):
            fill_clip_combo(combo, self.audio_clips(), "(empty)" if i >= 2 else "(choose audio)",
                            default_index=i if i < 2 else None)

    def source_clips(self) -> list[Clip]:
        ids = [combo.currentData() for combo in self.slots]
        return [c for i in ids if i is not None for c in self.clips if c.id == i]

    def show_result(self, audio: Audio | None) -> None:
        """Show the morphed sound; 'Add result to library' keeps it."""
        self._result_audio = audio
        self.result.set_audio(audio, "Result")
        self.keep.setEnabled(audio is not None)
        self.keep.setToolTip("Keep this sound as a clip" if audio else "Morph a sound first")

    def _keep(self) -> None:
        if self._result_audio is not None:
            x, y = self.pad.position
            self.clip_created.emit(Clip(f"morph {x:.2f},{y:.2f}", audio=self._result_audio))
