"""Interpolate: MusicVAE blends between two clips in steps, or between four with an XY pad.

MusicVAE works on a grid of sixteenths; the tempo turns its steps into seconds. While the Live
panel's sync runs that tempo is the session's (the notes land on the session's grid and the
files carry its tempo); with sync off it is the first endpoint's (120 BPM for samples).

The model: unless the musician chooses one (in the Model list, which turns "Model from the
clips" off), the clips pick it as the CLI does (:func:`models.music_vae.inputs.pick_model`:
drums for drum grooves, the 16-bar melody model for long melodies, the 2-bar one otherwise).
Before a job starts each clip is checked against the model (no Keras: a conversion); a clip
that gives nothing clears the old result and says why, in one line. The default endpoints are
the first clips that suit the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.clips import Clip
from app.jobs import (
    InterpolateResult,
    blend_job,
    corners_job,
    interpolate_job,
    sample_job,
)
from app.widgets.xy_pad import XYPad
from app.workspaces.base import (
    SequenceCard,
    Workspace,
    fill_clip_combo,
    placeholder,
    session_tempo_of,
)
from models.beats import BarGrid
from models.errors import CadenzaError
from models.music_vae import converters as conv
from models.music_vae.inputs import clip_kinds, clip_windows, pick_model
from models.sequence import NoteSequence, join_windows

MODES = ("Two endpoints, in steps", "Four corners, with the XY pad")
SAMPLE = "(sample: a new random one)"
PAD_DEBOUNCE_MS = 120
MIN_CELL_NOTES = 214  # the width of a cell's notes at least (a roll needs 240 with its keys)
CELL_QUARTER_PX = 12  # a cell's notes are at least this wide per quarter note of its window
DRUM_CELL_QUARTER_PX = 28  # drums: a sixteenth-note hit 7 px from the next
LONG_WINDOW_BARS = 4  # longer windows are shown one cell per line
LONG_CELL_QUARTER_PX = 6  # such a line is the results' width: 16 bars fit in 430 px


def pitch_span(sequences: list[NoteSequence]) -> tuple[int, int] | None:
    """The lowest and highest pitched (non-drum) note of all the sequences (None if none)."""
    pitches = [n.pitch for s in sequences for n in s.notes if not n.is_drum]
    return (min(pitches), max(pitches)) if pitches else None


class InterpolateWorkspace(Workspace):
    title = "Interpolate"
    family = "music_vae"
    model_label = "MusicVAE"
    default_model = "melody-2bar"
    description = (
        "Pick two MIDI clips (or let the model sample them) and Cadenza finds the musical path "
        "between them: a row of in-between clips that morph one idea into the other. With four "
        "corners, drag the XY pad to blend all four."
    )
    train_hint = "Train one with 'cadenza train music_vae' on a folder of MIDI melodies or drums."
    implemented = True

    def build(self) -> None:
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.corner_combos: list[QComboBox] = []
        self.clip_notes: list[QLabel] = []  # why a clip gives nothing, beside its picker
        for label in ("A", "B", "C", "D"):
            combo = QComboBox()
            combo.setMinimumWidth(200)
            combo.setToolTip(f"Clip {label}, or a random sample")
            combo.currentIndexChanged.connect(self._clear_clip_notes)
            self.corner_combos.append(combo)
            note = QLabel()
            note.setObjectName("clipNote")
            note.setWordWrap(True)
            note.setStyleSheet("color: #d9534f;")
            note.setVisible(False)
            self.clip_notes.append(note)
        self.steps = QSpinBox()
        self.steps.setRange(2, 16)
        self.steps.setValue(5)
        self.steps.setToolTip("How many clips from A to B, both ends included")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.0)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.temperature.setToolTip("0 decodes the most likely notes; higher adds surprise")
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        self.seed.setToolTip("Seed for samples and temperature > 0")
        self.interpolate = self.action_button("Interpolate")
        self.sample = QPushButton("Sample")
        self.sample.setToolTip("Generate fresh samples from the model (as many as Steps)")
        self.sample.clicked.connect(self.run_sample)
        self.action_buttons.append(self.sample)

        self.auto_model = QCheckBox("Model from the clips")
        self.auto_model.setChecked(True)
        self.auto_model.setToolTip(
            "Drums for drum grooves, melody-16bar for melodies of 8 bars or more, melody-2bar "
            "otherwise (choosing a model in the Model list turns this off)")
        self._picking = False  # the clips are setting the model list (not the musician)
        self._default_ids: list[str | None] = [None, None]  # A and B as the library set them
        self.model_combo.currentIndexChanged.connect(self._model_chosen)

        self.form = QFormLayout()
        self.form.addRow("Mode:", self.mode)
        self.form.addRow("", self.auto_model)
        self.pickers: list[QWidget] = []  # each corner's row: its combo and its note
        for label, combo, note in zip("ABCD", self.corner_combos, self.clip_notes, strict=True):
            picker = QWidget()
            self.pickers.append(picker)
            column = QVBoxLayout(picker)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(combo)
            column.addWidget(note)
            self.form.addRow(f"Clip {label}:", picker)
        self.form.addRow("Steps:", self.steps)
        self.form.addRow("Temperature:", self.temperature)
        self.form.addRow("Seed:", self.seed)
        buttons = QHBoxLayout()
        buttons.addWidget(self.interpolate)
        buttons.addWidget(self.sample)
        controls = QVBoxLayout()
        controls.addLayout(self.form)
        controls.addLayout(buttons)
        controls.addStretch(1)

        self.pad = XYPad(("A", "B", "C", "D"))
        self.pad.setToolTip("Drag between the four corner clips (Interpolate sets the corners)")
        self.pad.moved.connect(self._pad_moved)
        self._pad_timer = QTimer(self)
        self._pad_timer.setSingleShot(True)
        self._pad_timer.setInterval(PAD_DEBOUNCE_MS)
        self._pad_timer.timeout.connect(self.decode_pad)
        self._pad_job: Any = None
        self._pad_again = False
        self.corner_latents: np.ndarray | None = None
        self.corner_meters: Any = (4, 4)  # the metres the pad's blends are marked with
        self._corner_model: str | None = None
        self._qpm = 120.0
        self._corner_tempo: float | None = None  # the session tempo the corners were set at

        # row actions: play all, export all, MIDI out
        self.row_bar = QWidget()
        bar = QHBoxLayout(self.row_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.play_all = QPushButton("▶ Play row")
        self.play_all.setToolTip("Play the steps one after another")
        self.play_all.clicked.connect(lambda: self.play(self.joined()))
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.clicked.connect(self.stop_playback)
        self.midi_all = QPushButton("Row to MIDI out")
        self.midi_all.setToolTip("Send the row to the MIDI output (Settings ▸ MIDI out)")
        self.midi_all.clicked.connect(lambda: self.send_to_midi(self.joined()))
        self.export_all = QPushButton("Export row as MIDI…")
        self.export_all.setToolTip("One MIDI file with the steps in order")
        self.export_all.clicked.connect(
            lambda: self.export_dialog(self.joined(), "interpolation", wav=False))
        self.keep_all = QPushButton("Row to library")
        self.keep_all.setToolTip("Add the whole row as one clip")
        self.keep_all.clicked.connect(
            lambda: self.keep(Clip("interpolation row", sequence=self.joined(),
                                   tempo=self.result.tempo if self.result else None)))
        for b in (self.play_all, self.stop_button, self.midi_all, self.export_all,
                  self.keep_all):
            bar.addWidget(b)
        bar.addStretch(1)
        self.row_bar.setVisible(False)

        self.results = QWidget()
        self.results_layout = QHBoxLayout(self.results)
        self.results_layout.setContentsMargins(0, 0, 0, 0)
        self.results_placeholder = placeholder(
            "The in-between clips will appear here, from A to B, each as a small piano roll "
            "you can play, loop, export or add to the library.")
        self.results_layout.addWidget(self.results_placeholder)
        self.cards: list[SequenceCard] = []
        self.result: InterpolateResult | None = None
        self._kind = "interpolation"
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        right = QVBoxLayout()
        right.addWidget(self.row_bar)
        right.addWidget(scroll, 1)

        row = QHBoxLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls)
        row.addLayout(right, 1)
        row.addWidget(self.pad)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed(0)

    @property
    def four_corners(self) -> bool:
        return self.mode.currentIndex() == 1

    def _mode_changed(self, index: int) -> None:
        four = index == 1
        for picker in self.pickers[2:]:
            self.form.setRowVisible(picker, four)
        self.form.setRowVisible(self.steps, not four)
        self.pad.setVisible(four)
        self.interpolate.setText("Set corners" if four else "Interpolate")

    def clips_changed(self) -> None:
        """Refill the pickers; A and B default to the first clips that suit the model, and
        follow the library while they are still those defaults (not a clip someone chose)."""
        clips = self.midi_clips()
        suited = self._suited(clips)
        for i, combo in enumerate(self.corner_combos):
            default = i < 2 and combo.currentData() == self._default_ids[i]
            if default:
                combo.setCurrentIndex(0)  # pick the default again from the new library
            fill_clip_combo(combo, clips, SAMPLE,
                            default_index=suited[i] if i < min(2, len(suited)) else None)
            if i < 2:
                self._default_ids[i] = combo.currentData() if default else None

    # ------------------------------------------------------------------ the model
    def _entry(self, name: str | None) -> Any:
        return next((e for e in self.models if e.name == name), None)

    def model_kind(self, name: str | None = None) -> str:
        """``"melody"`` or ``"drums"``: what the model (the current one by default) reads."""
        entry = self._entry(name or self.current_model())
        return str(entry.config.get("kind", "melody")) if entry is not None else "melody"

    def _suited(self, clips: list[Clip]) -> list[int]:
        """Indices of the clips that suit the chosen model (with "Model from the clips": of
        melodies, or of drum grooves when there is no melody)."""
        kinds = [clip_kinds(c.sequence) if c.sequence is not None else set() for c in clips]
        if self.auto_model.isChecked():
            family = "melody" if any("melody" in k for k in kinds) else "drums"
        else:
            family = self.model_kind()
        return [i for i, k in enumerate(kinds) if family in k]

    def _model_chosen(self, _index: int) -> None:
        """The musician chose a model: it stays (the clips no longer pick), and an endpoint
        that does not suit it gives way to the first clips that do."""
        if self._picking or not self.models:
            return
        self.auto_model.setChecked(False)
        clips = self.midi_clips()
        suited = self._suited(clips)
        kind = self.model_kind()
        for i, combo in enumerate(self.corner_combos[:2]):
            clip = next((c for c in clips if c.id == combo.currentData()), None)
            if clip is not None and kind not in clip_kinds(clip.sequence) and i < len(suited):
                combo.setCurrentIndex(suited[i] + 1)
                self._default_ids[i] = combo.currentData()

    def _installed_like(self, wanted: str) -> str | None:
        """``wanted`` when installed, else an installed model of its kind (and length)."""
        if self._entry(wanted) is not None:
            return wanted
        kind, bars = ("drums", 2) if wanted.startswith("drums") else (
            "melody", 16 if "16" in wanted else 2)
        same = [e for e in self.models if e.config.get("kind", "melody") == kind]
        exact = [e for e in same if e.config.get("slice_bars") == bars]
        fits = exact or same
        return fits[0].name if fits else None

    def model_for(self, clips: list[Clip | None]) -> str | None:
        """The model to run on ``clips`` (picked from them with "Model from the clips"), each
        clip checked against it: a clip that gives nothing clears the result and says why."""
        used = [c for c in clips if c is not None and c.sequence is not None]
        self._clear_clip_notes()
        checking: Clip | None = None  # the clip being checked when an error comes
        try:
            if self.auto_model.isChecked() and used:
                name = self._installed_like(
                    pick_model([c.sequence for c in used], [c.name for c in used]))
                if name is not None and name != self.current_model():
                    self._picking = True
                    self.model_combo.setCurrentIndex(self.model_combo.findData(name))
                    self._picking = False
            entry = self._entry(self.current_model())
            if entry is not None:
                converter = conv.Converter(self.model_kind(entry.name),
                                           slice_bars=int(entry.config.get("slice_bars", 2)))
                for clip in used:
                    checking = clip
                    clip_windows(clip.sequence, converter, clip.name)
        except CadenzaError as exc:
            if checking is not None:
                for corner, clip in enumerate(clips):
                    if clip is checking:
                        note = self.clip_notes[corner]
                        note.setText(" ".join(str(exc).split()))
                        note.setVisible(True)
            self.result = None
            self.corner_latents = None  # the pad has nothing left to blend
            self.show_results([])
            self.state_changed.emit()
            self.show_error(str(exc))
            self.say(f"{self.title}: {exc}")
            return None
        return self.current_model()

    def _clear_clip_notes(self, *_args: object) -> None:
        for note in self.clip_notes:
            note.clear()
            note.setVisible(False)

    def restore_session_state(self, state: dict[str, Any]) -> None:
        auto = state.get("auto_model")
        super().restore_session_state(state)
        if isinstance(auto, bool):
            self.auto_model.setChecked(auto)  # the model list set on restore is not a choice

    def endpoint_clips(self) -> list[Clip | None]:
        """The clip in each corner picker (``None`` means "sample")."""
        out = []
        for combo in self.corner_combos:
            clip_id = combo.currentData()
            out.append(next((c for c in self.clips if c.id == clip_id), None))
        return out

    def _seed(self) -> int | None:
        return None if self.seed.value() < 0 else self.seed.value()

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        if self.current_model() is None:
            self.say(f"{self.title}: no {self.model_label} model is installed")
            return
        clips = self.endpoint_clips()
        model = self.model_for(clips if self.four_corners else clips[:2])
        if model is None:
            return
        seqs = [c.sequence if c is not None else None for c in clips]
        tempo = self.session_tempo()
        self._qpm = tempo or next((s.qpm for s in seqs if s is not None), 120.0)
        self._corner_tempo = tempo
        if self.four_corners:
            self.submit(corners_job(model, seqs, self._seed()),
                        lambda r, m=model: self._corners_ready(m, *r), "encode corners")
        else:
            self.submit(interpolate_job(model, seqs[0], seqs[1], self.steps.value(),
                                        self.temperature.value(), self._seed(), tempo=tempo),
                        lambda r: self._show_ready(r, "interpolation", "step"), "interpolate")

    def run_sample(self) -> None:
        model = self.current_model()
        if model is None:
            self.say(f"{self.title}: no {self.model_label} model is installed")
            return
        temperature = self.temperature.value() or 0.5
        self.submit(sample_job(model, self.steps.value(), temperature, self._seed(),
                               tempo=self.session_tempo()),
                    lambda r: self._show_ready(r, "sample", "sample"), "sample")

    def _corners_ready(self, model: str, latents: np.ndarray, meters: Any) -> None:
        self.corner_latents = np.asarray(latents)
        self.corner_meters = meters
        self._corner_model = model
        self.decode_pad()

    def _pad_moved(self, _x: float, _y: float) -> None:
        if self.corner_latents is not None:
            self._pad_timer.start()  # debounced: decode once the pad rests for a moment

    def decode_pad(self) -> None:
        """Decode the blend at the pad's position (in the worker; one decode at a time: a move
        while one runs decodes again when it ends)."""
        if self.corner_latents is None or self._corner_model is None:
            return
        if self._pad_job is not None:
            self._pad_again = True
            return
        x, y = self.pad.position

        def done(result: InterpolateResult) -> None:
            self._pad_job = None
            self.show_result(result, f"blend {x:.2f}, {y:.2f}")
            if self._pad_again:
                self._pad_again = False
                self.decode_pad()

        def failed(_exc: Exception) -> None:
            self._pad_job = None
            self._pad_again = False

        self._pad_job = self.submit(
            blend_job(self._corner_model, self.corner_latents, x, y, self.temperature.value(),
                      self._seed(), self._qpm, tempo=self._corner_tempo,
                      meters=self.corner_meters),
            done, "blend", quiet=True, on_failure=failed)

    # ------------------------------------------------------------------ results
    def joined(self) -> NoteSequence:
        """The steps one after another (what Play row, Export row and MIDI out use)."""
        if self.result is None:
            return NoteSequence()
        return join_windows(self.result.sequences, self.result.seconds_each)

    def show_result(self, result: InterpolateResult, kind: str = "interpolation") -> None:
        self.result = result
        self._kind = kind
        self.show_results(result.sequences, kind)
        self.state_changed.emit()

    def has_results(self) -> bool:
        return bool(self.cards)

    def session_results(self) -> Any:
        from app.session import Results

        if self.result is None or not self.cards:
            return None
        return Results(sequences=list(self.result.sequences),
                       names=[c.name for c in self.cards],
                       meta={"seconds_each": self.result.seconds_each, "kind": self._kind,
                             "tempo": self.result.tempo})

    def restore_results(self, results: Any) -> None:
        seconds = results.meta.get("seconds_each")
        kind = results.meta.get("kind")
        if not isinstance(seconds, int | float) or not seconds > 0:
            seconds = max((s.total_time for s in results.sequences), default=1.0) or 1.0
        self.show_result(InterpolateResult(list(results.sequences), float(seconds),
                                           tempo=session_tempo_of(results.meta)),
                         kind if isinstance(kind, str) else "interpolation")

    def _show_ready(self, result: InterpolateResult, kind: str, noun: str) -> None:
        """Show what an Interpolate or Sample press made and say so (pad blends stay quiet)."""
        self.show_result(result, kind)
        count = len(result.sequences)
        if count:
            self.say(f"{self.title}: {count} {noun}{'s' if count != 1 else ''} ready")

    def show_results(self, sequences: list[NoteSequence], kind: str = "interpolation") -> None:
        """Show the clips left to right, each with Play, Loop, MIDI out, Export and Add."""
        for card in self.cards:
            self.results_layout.removeWidget(card)
            card.hide()  # at once: deleteLater waits for the event loop
            card.deleteLater()
        self.cards = []
        self.results_placeholder.setVisible(not sequences)
        self.row_bar.setVisible(len(sequences) > 1)
        window = self.result.seconds_each if self.result is not None else max(
            (s.total_time for s in sequences), default=0.0)
        grid = next((BarGrid(s.tempos, s.time_signatures) for s in sequences if s.tempos), None)
        quarters = (grid or BarGrid()).quarters(window)
        # A long window (16 bars) reads best one cell per line, the whole width; 2-bar cells
        # stand side by side and the row scrolls when they do not all fit.
        long_window = (grid or BarGrid()).bars_between(0.0, window) > LONG_WINDOW_BARS
        self.results_layout.setDirection(QBoxLayout.Direction.TopToBottom if long_window
                                         else QBoxLayout.Direction.LeftToRight)
        span = pitch_span(sequences)
        for i, seq in enumerate(sequences):
            name = kind if len(sequences) == 1 else f"{kind} {i + 1}/{len(sequences)}"
            card = SequenceCard(self, seq, name, loop=True, compact=True,
                                tempo=self.result.tempo if self.result is not None else None)
            roll = card.panel.roll
            if window > 0:  # each cell shows its whole window, rests at the end included
                roll.set_length(window)
                roll.show_time_window(0.0, window)
            if span is not None:  # one pitch scale for every cell: steps compare at a glance
                roll.set_pitch_range(*span)
            card.fit_height()
            per_quarter = (LONG_CELL_QUARTER_PX if long_window else DRUM_CELL_QUARTER_PX
                           if roll.is_drum_view else CELL_QUARTER_PX)
            card.setMinimumWidth(int(roll.keys_width + max(MIN_CELL_NOTES,
                                                           quarters * per_quarter)))
            self.results_layout.addWidget(card)
            self.cards.append(card)
