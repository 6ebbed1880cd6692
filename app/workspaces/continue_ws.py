"""Continue: PerformanceRNN plays on from a primer clip, in several variations.

While the Live panel's sync runs, the takes carry the session tempo (one tempo event; their
notes stay at the same seconds, the primer's time signature is kept), so the .mid files line up
with the DAW's bars; with sync off they keep the primer's tempo.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip
from app.jobs import ContinueResult, continue_job
from app.workspaces.base import (
    SequenceCard,
    Workspace,
    fill_clip_combo,
    placeholder,
    session_tempo_of,
)
from models.sequence import KEY_NAMES, NoteSequence

SAMPLING = ("Temperature", "Top-p (nucleus)", "Beam search")


class ContinueWorkspace(Workspace):
    title = "Continue"
    family = "performance"
    model_label = "PerformanceRNN"
    description = (
        "Pick a MIDI clip as the primer (or record one from your MIDI keyboard) and Cadenza "
        "plays on from where it stops, with expressive timing and dynamics, in several "
        "variations to choose from. Keep the ones you like: they go to the clip library, and "
        "from there to your DAW."
    )
    train_hint = "Train one with 'cadenza train performance' on a folder of piano MIDI files."
    implemented = True

    def build(self) -> None:
        self.primer = QComboBox()
        self.primer.setMinimumWidth(220)
        self.primer.setToolTip("The MIDI clip the model continues (recorded clips appear here)")
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
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.seed.setToolTip("The same seed and settings give the same continuations")
        # Density and key follow the primer by default (its last bars weigh most); either can
        # be set by hand or switched off.
        self.density_mode = QComboBox()
        for label, data in (("from primer", "primer"), ("set", "set"), ("off", None)):
            self.density_mode.addItem(label, data)
        self.density_mode.setToolTip("Notes per second: as in the primer, as set here, or as "
                                     "the model likes (off)")
        self.density = QDoubleSpinBox()
        self.density.setRange(0.5, 40.0)
        self.density.setSingleStep(1.0)
        self.density.setSuffix(" notes/s")
        self.density.setValue(4.0)
        self.density.setToolTip("Ask for this many notes per second")
        density_row = QHBoxLayout()
        density_row.setContentsMargins(0, 0, 0, 0)
        density_row.addWidget(self.density_mode)
        density_row.addWidget(self.density)
        self.density_box = QWidget()
        self.density_box.setLayout(density_row)
        self.density_mode.currentIndexChanged.connect(
            lambda _i: self.density.setVisible(self.density_mode.currentData() == "set"))
        self.density.setVisible(False)
        self.key = QComboBox()
        self.key.addItem("from primer", "primer")
        self.key.addItem("any", None)
        for name in KEY_NAMES:
            self.key.addItem(name, name)
        self.key.setToolTip("Steer the pitches: towards the primer's own pitch classes (from "
                            "primer), a key, or not at all (any)")
        self.sampling = QComboBox()
        self.sampling.addItems(SAMPLING)
        self.sampling.setToolTip("How each next event is chosen")
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.05, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setValue(0.9)
        self.top_p.setToolTip("Sample only from the most likely events that add up to this")
        self.beam_size = QSpinBox()
        self.beam_size.setRange(2, 16)
        self.beam_size.setValue(4)
        self.beam_size.setToolTip("How many candidates the beam search keeps")
        self.generate = self.action_button("Generate")

        self.form = QFormLayout()
        self.form.addRow("Primer:", self.primer)
        self.form.addRow("Length:", self.length)
        self.form.addRow("Variations:", self.variations)
        self.form.addRow("Temperature:", self.temperature)
        self.form.addRow("Sampling:", self.sampling)
        self.form.addRow("Top-p:", self.top_p)
        self.form.addRow("Beam size:", self.beam_size)
        self.form.addRow("Density:", self.density_box)
        self.form.addRow("Key:", self.key)
        self.form.addRow("Seed:", self.seed)
        controls = QVBoxLayout()
        controls.addLayout(self.form)
        controls.addWidget(self.generate)
        controls.addStretch(1)

        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.setContentsMargins(0, 0, 0, 0)
        self.results_placeholder = placeholder(
            "The variations will appear here as piano rolls (the primer, a dashed line, then "
            "the continuation), each with Play, MIDI out, Export and Add to library.")
        self.results_layout.addWidget(self.results_placeholder)
        self.cards: list[SequenceCard] = []
        self.result: ContinueResult | None = None
        self._boundary: float | None = None
        self._primer_name: str | None = None
        self._tempo: float | None = None  # the session tempo of the shown takes
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)

        row = QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls)
        row.addWidget(scroll, 1)
        self.sampling.currentIndexChanged.connect(self._sampling_changed)
        self._sampling_changed(0)

    def _sampling_changed(self, index: int) -> None:
        self.form.setRowVisible(self.top_p, index == 1)
        self.form.setRowVisible(self.beam_size, index == 2)

    def clips_changed(self) -> None:
        fill_clip_combo(self.primer, self.midi_clips(), "(no MIDI clip)", default_index=0)

    def density_setting(self) -> float | str | None:
        """"primer", notes per second, or None (off)."""
        mode = self.density_mode.currentData()
        return self.density.value() if mode == "set" else mode

    def primer_clip(self) -> Clip | None:
        clip_id = self.primer.currentData()
        return next((c for c in self.clips if c.id == clip_id), None)

    def run(self) -> None:
        """Generate the variations in the worker."""
        model = self.current_model()
        if model is None:
            self.say(f"{self.title}: no {self.model_label} model is installed")
            return
        clip = self.primer_clip()
        if clip is None or clip.sequence is None or not clip.sequence.notes:
            self.say(f"{self.title}: choose a primer first (open or record a MIDI clip)")
            return
        method = self.sampling.currentIndex()
        try:
            job = continue_job(
                model, clip.sequence, seconds=self.length.value(),
                temperature=self.temperature.value(), variations=self.variations.value(),
                seed=None if self.seed.value() < 0 else self.seed.value(),
                density=self.density_setting(), key=self.key.currentData(),
                top_p=self.top_p.value() if method == 1 else None,
                beam_size=self.beam_size.value() if method == 2 else 1,
                tempo=self.session_tempo())
        except Exception as exc:  # noqa: BLE001 - CadenzaError from bad settings
            self.say(f"{self.title}: {exc}")
            return
        self._primer_name = clip.name
        self.submit(job, self.show_result, "generate")

    def has_results(self) -> bool:
        return bool(self.cards)

    def session_results(self) -> Any:
        from app.session import Results

        if not self.cards:
            return None
        return Results(sequences=[c.sequence for c in self.cards],
                       names=[c.name for c in self.cards],
                       meta={"boundary": self._boundary, "primer": self._primer_name,
                             "tempo": self._tempo})

    def restore_results(self, results: Any) -> None:
        meta = results.meta
        boundary = meta.get("boundary")
        primer = meta.get("primer")
        if isinstance(primer, str):
            self._primer_name = primer
        self.show_variations(list(results.sequences),
                             float(boundary) if isinstance(boundary, int | float) else None,
                             tempo=session_tempo_of(results.meta))

    def show_result(self, result: ContinueResult) -> None:
        self.result = result
        self.show_variations([v.joined for v in result.variations], result.boundary,
                             tempo=result.tempo)

    def show_variations(self, sequences: list[NoteSequence], boundary: float | None = None,
                        tempo: float | None = None) -> None:
        """Show generated sequences (primer + continuation), each with its buttons;
        ``tempo``: the session tempo they were made at (None: none)."""
        for card in self.cards:
            self.results_layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        self._boundary = boundary
        self._tempo = tempo
        self.results_placeholder.setVisible(not sequences)
        base = getattr(self, "_primer_name", None) or (
            self.primer_clip().name if self.primer_clip() else "continuation")
        for i, seq in enumerate(sequences):
            card = SequenceCard(self, seq, f"{base} – variation {i + 1}", boundary=boundary,
                                tempo=tempo)
            if boundary is not None:
                end = max(seq.total_time, boundary + 0.5)
                before = max(2.0, 0.5 * (end - boundary))
                card.panel.roll.show_time_window(max(0.0, boundary - before), end)
            self.results_layout.addWidget(card)
            self.cards.append(card)
        self.state_changed.emit()
        if sequences:
            self.say(f"{self.title}: {len(sequences)} variation"
                     f"{'s' if len(sequences) != 1 else ''} ready")
