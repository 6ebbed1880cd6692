"""Morph: NSynth blends the timbres of two to four sounds; the XY pad picks the mix.

While the Live panel's sync runs, a morph carries the session tempo it was made at: its WAV
(exported, dragged out, kept in the library or a session) has an ``acid`` chunk with that tempo,
marked as a one-shot whose root note is the pitch the morph plays, so a DAW neither loops nor
stretches it and a sampler maps it to its key. With sync off it carries none, as before.

A morph instrument is kept in the session too: its files' bytes are read once when it is ready
(in the worker) and saved with the results; a restored session writes them into a fresh
temporary folder and loads the instrument in the worker, then offers it as a newly made one is.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
)

from app.clips import AUDIO_SUFFIXES, Clip, load_clip
from app.jobs import MorphResult, MorphSource, instrument_job, live_morph_job, morph_job
from app.widgets.spectrogram import SpectrogramView
from app.widgets.waveform import WaveformView
from app.widgets.xy_pad import XYPad
from app.workspaces.base import Workspace, fill_clip_combo
from models.errors import CadenzaError
from models.registry import MORPH_FAMILIES
from models.sequence import GM_NAMES, pitch_name

if TYPE_CHECKING:
    from models.audio_io import Audio

log = logging.getLogger(__name__)

GM = "gm"  # the slot picker's data for "a General MIDI instrument"


class SourceSlot(QFrame):
    """One Morph source: an audio clip, a General MIDI instrument at a pitch, or a WAV file
    dropped onto it. Shows the source's waveform and spectrogram."""

    changed = Signal()
    file_dropped = Signal(object)  # Path of a dropped audio file

    def __init__(self, letter: str, optional: bool) -> None:
        super().__init__()
        self.letter = letter
        self.optional = optional
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAcceptDrops(True)
        self.setToolTip(f"Sound {letter}: an audio clip, a General MIDI instrument, or drop a "
                        "WAV file here")
        self.picker = QComboBox()
        self.picker.setMinimumWidth(170)
        self.program = QComboBox()
        for i, name in enumerate(GM_NAMES):
            self.program.addItem(f"{i}: {name}", i)
        self.program.setToolTip("The General MIDI instrument, rendered with the soundfont")
        self.pitch = QSpinBox()
        self.pitch.setRange(24, 96)
        self.pitch.setValue(60)
        self.pitch.setToolTip("The note it plays (60 is middle C)")
        self.pitch.setPrefix("pitch ")
        self.wave = WaveformView()
        self.wave.placeholder = "empty" if optional else "drop a WAV or pick a sound"
        self.wave.setMinimumSize(120, 44)
        self.spec = SpectrogramView()
        self.spec.setMinimumSize(120, 44)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        title = QLabel(f"<b>{letter}</b>")
        head.addWidget(title)
        head.addWidget(self.picker, 1)
        head.addWidget(self.program, 1)
        head.addWidget(self.pitch)
        views = QHBoxLayout()
        views.setContentsMargins(0, 0, 0, 0)
        views.addWidget(self.wave, 1)
        views.addWidget(self.spec, 1)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 3, 4, 3)
        col.setSpacing(2)
        col.addLayout(head)
        col.addLayout(views, 1)
        self.clips: list[Clip] = []
        self._shown: object = None  # what the previews show (kept when the library changes)
        self.picker.currentIndexChanged.connect(self._picked)
        self.program.currentIndexChanged.connect(lambda _i: self._gm_changed())
        self.pitch.valueChanged.connect(lambda _v: self._gm_changed())
        self.set_clips([], default=None)

    def set_clips(self, clips: list[Clip], default: int | None) -> None:
        self.clips = list(clips)
        was_gm = self.picker.currentData() == GM
        fill_clip_combo(self.picker, clips, "(empty)" if self.optional else "(choose a sound)",
                        default_index=None if was_gm else default)
        self.picker.blockSignals(True)
        self.picker.addItem("General MIDI instrument…", GM)
        if was_gm:
            self.picker.setCurrentIndex(self.picker.count() - 1)
        self.picker.blockSignals(False)
        self._picked()

    def use_gm(self, program: int, pitch: int = 60) -> None:
        self.picker.setCurrentIndex(self.picker.findData(GM))
        self.program.setCurrentIndex(int(program))
        self.pitch.setValue(int(pitch))

    def use_clip(self, clip: Clip) -> None:
        index = self.picker.findData(clip.id)
        if index >= 0:
            self.picker.setCurrentIndex(index)

    @property
    def is_gm(self) -> bool:
        return self.picker.currentData() == GM

    def clip(self) -> Clip | None:
        clip_id = self.picker.currentData()
        return next((c for c in self.clips if c.id == clip_id), None)

    def source(self) -> MorphSource | None:
        if self.is_gm:
            program = int(self.program.currentData())
            return MorphSource(program=program, pitch=self.pitch.value(),
                               label=f"{GM_NAMES[program]} {pitch_name(self.pitch.value())}")
        clip = self.clip()
        if clip is None or clip.audio is None:
            return None
        return MorphSource(audio=clip.audio, label=clip.name)

    def show_audio(self, audio: Audio | None) -> None:
        self.wave.set_audio(audio)
        self.spec.set_audio(audio)

    def _key(self) -> object:
        if self.is_gm:
            return ("gm", self.program.currentIndex(), self.pitch.value())
        clip = self.clip()
        return None if clip is None else clip.id

    def _picked(self, _index: int = 0) -> None:
        gm = self.is_gm
        self.program.setVisible(gm)
        self.pitch.setVisible(gm)
        clip = self.clip()
        key = self._key()
        if key == self._shown and key is not None:
            return  # the same source (the library changed elsewhere): keep its previews
        self._shown = key
        if gm:
            self.wave.placeholder = "rendered when you morph"
            self.show_audio(None)
        else:
            self.wave.placeholder = "empty" if self.optional else "drop a WAV or pick a sound"
            self.show_audio(clip.audio if clip is not None else None)
        self.changed.emit()

    def _gm_changed(self) -> None:
        if self.is_gm:
            self._shown = self._key()
            self.show_audio(None)
            self.changed.emit()

    @staticmethod
    def _audio_files(event: QDragEnterEvent | QDropEvent) -> list[Path]:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        return [Path(u.toLocalFile()) for u in urls
                if u.isLocalFile() and Path(u.toLocalFile()).suffix.lower() in AUDIO_SUFFIXES]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._audio_files(event):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self._audio_files(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        files = self._audio_files(event)
        if files:
            event.acceptProposedAction()
            self.file_dropped.emit(files[0])


class MorphWorkspace(Workspace):
    title = "Morph"
    family = "ddsp"
    families = MORPH_FAMILIES
    model_label = "Morph (DDSP or NSynth)"
    default_model = "ddsp-small"
    description = (
        "Put two to four sounds in the slots (audio clips, a dropped WAV, or a General MIDI "
        "instrument) and drag the point on the XY pad: Cadenza synthesises a new sound whose "
        "timbre sits between them (a flute that is partly a bass). Play it, keep it, or make "
        "a playable instrument of it."
    )
    train_hint = ("Train one with 'cadenza train ddsp' (or 'cadenza train nsynth') on a folder of "
                  "short instrument notes.")
    implemented = True
    instrument_ready = Signal(object)  # a MorphInstrument, rendered and loaded
    keyboard_requested = Signal()  # "play it from the MIDI keyboard"
    live_ready = Signal(object)  # a models.ddsp.voices.LiveMorph: play it from the keyboard
    mix_moved = Signal(float, float)  # the pad moved while a live morph plays: (x, y)

    def build(self) -> None:
        self.slots: list[SourceSlot] = []
        slots_box = QVBoxLayout()
        slots_box.setSpacing(4)
        for i in range(4):
            slot = SourceSlot("ABCD"[i], optional=i >= 2)
            slot.changed.connect(self._sources_changed)
            slot.file_dropped.connect(lambda path, s=slot: self.drop_file(s, path))
            self.slots.append(slot)
            slots_box.addWidget(slot, 1)

        self.mix = QSlider(Qt.Orientation.Horizontal)
        self.mix.setRange(0, 100)
        self.mix.setValue(50)
        self.mix.setToolTip("With two sounds: how much of B is in the mix (the pad's x)")
        self.mix.valueChanged.connect(lambda v: self.pad.set_position(v / 100.0,
                                                                      self.pad.position[1]))
        self.length = QDoubleSpinBox()
        self.length.setRange(0.25, 4.0)
        self.length.setSingleStep(0.25)
        self.length.setValue(4.0)
        self.length.setSuffix(" s")
        self.length.setToolTip("How much of the 4-second note to synthesise (less is faster)")
        self.morph = self.action_button("Morph")
        self.play_button = QPushButton("▶ Play")
        self.play_button.clicked.connect(self.play_result)
        self.keep_button = QPushButton("Add to library")
        self.keep_button.clicked.connect(self._keep)
        self.export_button = QPushButton("Export audio…")
        self.export_button.clicked.connect(
            lambda: self._result_audio is not None
            and self.export_dialog(self._result_audio, self._result_name(), wav=True,
                                   rate=self.export_rate.currentData()))
        self.export_rate = QComboBox()
        for label, rate in (("48 kHz", 48000), ("44.1 kHz", 44100), ("16 kHz (the model's)", 0)):
            self.export_rate.addItem(label, rate)
        self.export_rate.setToolTip("Sample rate of exported audio: a DAW project's rate, or "
                                    "the model's own 16 kHz")
        self.make_instrument = QPushButton("Make instrument")
        self.make_instrument.setToolTip(
            "Render the morph at 16 pitches in the background, at the export rate: then play "
            "it from the MIDI keyboard, or export it as WAVs + SFZ (with sustain loops)")
        self.make_instrument.clicked.connect(self.build_instrument)
        self.action_buttons.append(self.make_instrument)
        self.test_note = QPushButton("▶ Test note")
        self.test_note.setToolTip("Play middle C on the morph instrument")
        self.test_note.clicked.connect(lambda: self.play_note(60, 100))
        self.keyboard_button = QPushButton("Play from keyboard")
        self.keyboard_button.clicked.connect(self.play_from_keyboard)
        self.export_instrument_button = QPushButton("Export instrument…")
        self.export_instrument_button.setToolTip("Copy the WAVs and the SFZ into a folder")
        self.export_instrument_button.clicked.connect(self._export_instrument_dialog)
        self.instrument_label = QLabel("No instrument yet")
        self.instrument_label.setWordWrap(True)

        form = QFormLayout()
        self.mix_label = QLabel("Mix A → B:")
        form.addRow(self.mix_label, self.mix)
        form.addRow("Length:", self.length)
        form.addRow("Export rate:", self.export_rate)
        result_row = QHBoxLayout()
        for b in (self.play_button, self.keep_button, self.export_button):
            result_row.addWidget(b)
        inst_row = QHBoxLayout()
        for b in (self.make_instrument, self.test_note, self.keyboard_button,
                  self.export_instrument_button):
            inst_row.addWidget(b)
        controls = QVBoxLayout()
        controls.addLayout(slots_box, 1)

        self.pad = XYPad(("A", "B", "C", "D"))
        self.pad.setToolTip("Drag to choose how much of each sound goes into the mix")
        self.pad.moved.connect(self._pad_moved)
        pad_col = QVBoxLayout()
        pad_col.addWidget(self.pad, 1)
        pad_col.addLayout(form)
        pad_col.addWidget(self.morph)

        self.result_wave = WaveformView()
        self.result_wave.placeholder = "The morphed sound will appear here."
        self.result_wave.setMinimumHeight(70)
        self.result_spec = SpectrogramView()
        self.result_spec.placeholder = "Its spectrogram will appear here."
        self.result_spec.setMinimumHeight(70)
        self.result_title = QLabel("<b>Result</b>")
        result_col = QVBoxLayout()
        result_col.addWidget(self.result_title)
        result_col.addWidget(self.result_wave, 1)
        result_col.addWidget(self.result_spec, 1)
        result_col.addLayout(result_row)
        result_col.addWidget(QLabel("<b>Instrument</b>"))
        result_col.addWidget(self.instrument_label)
        result_col.addLayout(inst_row)

        row = QGridLayout(self.body)
        row.setContentsMargins(0, 0, 0, 0)
        row.addLayout(controls, 0, 0)
        row.addLayout(pad_col, 0, 1)
        row.addLayout(result_col, 0, 2)
        row.setColumnStretch(0, 3)
        row.setColumnStretch(2, 2)

        self._result: MorphResult | None = None
        self._result_audio: Audio | None = None
        self._result_xy = (0.5, 0.5)
        self.instrument: Any = None  # models.nsynth.instrument.MorphInstrument
        self.instrument_dir: Path | None = None
        # the instrument's files (name → bytes) that a session keeps, read once when it is
        # ready; and those of an instrument a session restores, kept while it loads
        self._instrument_files: dict[str, bytes] | None = None
        self._pending_instrument: dict[str, bytes] | None = None
        self._instrument_folders: list[Path] = []  # made here, oldest first: removed in time
        self.instrument_pitches: list[int] | None = None  # None: the 16 default pitches
        self._instrument_job: Any = None
        self.live: Any = None  # models.ddsp.voices.LiveMorph, while played live
        self.model_combo.currentIndexChanged.connect(lambda *_: self._update_buttons())
        self._update_buttons()
        self._sources_changed()

    # ------------------------------------------------------------------ sources
    def clips_changed(self) -> None:
        clips = self.audio_clips()
        for i, slot in enumerate(self.slots):
            slot.set_clips(clips, default=i if i < 2 else None)

    def sources(self) -> list[MorphSource | None]:
        return [slot.source() for slot in self.slots]

    def _sources_changed(self) -> None:
        count = sum(s is not None for s in self.sources())
        two = count <= 2
        self.mix.setVisible(two)
        self.mix_label.setVisible(two)
        self.pad.corners = {3: ("A", "B", "C", "C"), 4: ("A", "B", "C", "D")}.get(
            count, ("A", "B", "A", "B"))
        self.pad.update()

    def drop_file(self, slot: SourceSlot, path: Path) -> Clip | None:
        """A WAV dropped on a slot: opened as a clip (into the library) and put in the slot."""
        try:
            clip = load_clip(path)
        except CadenzaError as exc:
            self.say(f"Could not open: {exc}")
            return None
        self.keep(clip)  # the library adds it, and set_clips() lists it in every slot
        if not any(c.id == clip.id for c in self.clips):
            self.set_clips([*self.clips, clip])
        slot.use_clip(clip)
        return clip

    def _pad_moved(self, x: float, y: float) -> None:
        self.mix.blockSignals(True)
        self.mix.setValue(int(round(x * 100)))
        self.mix.blockSignals(False)
        live = self.live
        if live is not None:  # the live voices glide to the new mix
            y = 0.0 if live.sources == 2 else y
            live.xy = (x, y)
            self.mix_moved.emit(x, y)

    # ------------------------------------------------------------------ morph
    def _ready(self) -> tuple[str, list[MorphSource]] | None:
        """The model and the chosen sources, or None after saying what is missing."""
        model = self.current_model()
        if model is None:
            self.say(f"{self.title}: no {self.model_label} model is installed")
            return None
        sources = self.sources()
        if sources[0] is None or sources[1] is None:
            self.say(f"{self.title}: choose sounds A and B first (an audio clip, a dropped WAV "
                     "or a General MIDI instrument)")
            return None
        return model, [s for s in sources if s is not None]

    def _ready_at(self) -> tuple[str, list[MorphSource], float, float] | None:
        """:meth:`_ready` and the pad's position (y is 0 with two sources: they mix along x)."""
        ready = self._ready()
        if ready is None:
            return None
        model, chosen = ready
        x, y = self.pad.position
        return model, chosen, x, 0.0 if len(chosen) == 2 else y

    def run(self) -> None:
        """Morph the sources at the pad's position, in the worker (progress, Cancel)."""
        ready = self._ready_at()
        if ready is None:
            return
        model, chosen, x, y = ready
        self._result_xy = (x, y)
        self._labels = [s.label for s in chosen]
        self.submit(morph_job(model, chosen, x, y, seconds=self.length.value(),
                              tempo=self.session_tempo()),
                    self.show_morph, "morph")

    def show_morph(self, result: MorphResult) -> None:
        self._result = result
        slots = [s for s in self.slots if s.source() is not None]
        for slot, audio in zip(slots, result.sources, strict=False):
            slot.show_audio(audio)
        self.show_result(result.audio)

    def _result_name(self) -> str:
        x, y = self._result_xy
        labels = getattr(self, "_labels", [])
        what = " × ".join(labels[:4]) if labels else "morph"
        return f"morph {what} ({x:.2f}, {y:.2f})"

    def show_result(self, audio: Audio | None) -> None:
        """Show the morphed sound (waveform and spectrogram)."""
        self._result_audio = audio
        self.result_wave.set_audio(audio)
        self.result_spec.set_audio(audio)
        self.result_title.setText(f"<b>Result</b> · {self._result_name()}" if audio is not None
                                  else "<b>Result</b>")
        self._update_buttons()
        self.state_changed.emit()

    def has_results(self) -> bool:
        return self._result_audio is not None

    def mark_stale(self, stale: bool) -> None:
        for view in (self.result_wave, self.result_spec):
            view.setEnabled(not stale)
        self.result_title.setText(
            ("<b>Result</b> (from an earlier run)" if stale else
             f"<b>Result</b> · {self._result_name()}") if self._result_audio is not None
            else "<b>Result</b>")

    def state_controls(self) -> dict[str, Any]:
        controls = super().state_controls()
        for slot in self.slots:
            for name in ("picker", "program", "pitch"):
                controls[f"slot{slot.letter}.{name}"] = getattr(slot, name)
        return controls

    def session_state(self) -> dict[str, Any]:
        state = super().session_state()
        state["pad"] = list(self.pad.position)
        return state

    def restore_session_state(self, state: dict[str, Any]) -> None:
        super().restore_session_state(state)
        pad = state.get("pad")
        if isinstance(pad, list) and len(pad) == 2 and all(
                isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in pad):
            self.pad.set_position(float(pad[0]), float(pad[1]))

    def session_results(self) -> Any:
        from app.session import Results

        audio = self._result_audio
        files = self._pending_instrument or self._instrument_files
        if audio is None and not files:
            return None
        return Results(audio=audio, names=[self._result_name()] if audio is not None else [],
                       meta={"xy": list(self._result_xy),
                             "labels": list(getattr(self, "_labels", []))},
                       instrument=files or None)

    def restore_results(self, results: Any) -> None:
        if results.instrument:
            self.restore_instrument(results.instrument)
        if results.audio is None:
            return
        xy = results.meta.get("xy")
        if isinstance(xy, list) and len(xy) == 2 and all(isinstance(v, int | float)
                                                         for v in xy):
            self._result_xy = (float(xy[0]), float(xy[1]))
        labels = results.meta.get("labels")
        if isinstance(labels, list):
            self._labels = [str(v) for v in labels]
        self.show_result(results.audio)

    def play_result(self) -> None:
        if self._result_audio is not None:
            self.play(self._result_audio)

    def _keep(self) -> None:
        if self._result_audio is not None:
            self.keep(Clip(self._result_name(), audio=self._result_audio))

    def _update_buttons(self) -> None:
        has = self._result_audio is not None
        for b in (self.play_button, self.keep_button, self.export_button):
            b.setEnabled(has)
            if not has:
                b.setToolTip("Morph a sound first")
        inst = self.instrument is not None
        self.test_note.setEnabled(inst)
        live = self.plays_live()
        self.keyboard_button.setEnabled(inst or live)
        self.keyboard_button.setToolTip(
            "Play the morph live from your MIDI keyboard, straight from the DDSP model: any "
            "pitch, and the XY pad moves the timbre of the notes while they sound (the Live "
            "panel's output switches to it; duet answers and the transport use it too)" if live
            else "Play the morph instrument from your MIDI keyboard (the Live panel's output "
            "switches to it; duet answers use it too)")
        self.export_instrument_button.setEnabled(inst)

    # ------------------------------------------------------------------ live
    def set_models(self, entries: list[Any], listed: bool = True) -> None:
        super().set_models(entries, listed)
        self._update_buttons()  # a DDSP model plays live without an instrument

    def current_family(self) -> str | None:
        name = self.current_model()
        return next((e.family for e in self.models if e.name == name), None)

    def plays_live(self) -> bool:
        """The chosen model is a DDSP model: the keyboard plays the morph straight from it."""
        return self.current_family() == "ddsp"

    def play_from_keyboard(self) -> None:
        """The Play from keyboard button: with a DDSP model the sources are encoded in the
        worker and the keyboard plays them live (``live_ready``); with an NSynth model, the
        instrument made last (``keyboard_requested``)."""
        if not self.plays_live():
            self.keyboard_requested.emit()
            return
        ready = self._ready_at()
        if ready is None:
            return
        model, chosen, x, y = ready
        engine = self.audio_engine()  # the keyboard plays through it: started now
        if engine is None:
            return

        def done(live: Any) -> None:
            self.live = live
            self.say(f"{self.title}: playing {live.name} live; drag the pad while you play")
            self.live_ready.emit(live)

        self.submit(live_morph_job(model, chosen, x, y, rates=(int(engine.sample_rate),)),
                    done, "live morph")

    def stop_live(self) -> None:
        """The pad no longer moves a live morph (another instrument plays now)."""
        self.live = None

    # ------------------------------------------------------------------ instrument
    def build_instrument(self) -> None:
        """Render a morph instrument (one note per key center) in the worker, at the export
        rate chosen (48 or 44.1 kHz, or the model's own)."""
        ready = self._ready()
        if ready is None:
            return
        model, chosen = ready
        x, y = self.pad.position
        folder = Path(tempfile.mkdtemp(prefix="cadenza-instrument-"))
        self._instrument_folders.append(folder)
        render = instrument_job(model, chosen, x, 0.0 if len(chosen) == 2 else y, folder,
                                self.instrument_pitches,
                                sample_rate=self.export_rate.currentData() or None)

        def job(ctx: Any) -> tuple[Any, dict[str, bytes] | None]:
            from app.session import instrument_files

            instrument = render(ctx)
            try:  # what the session keeps of it, read once here
                files = instrument_files(folder)
            except CadenzaError as exc:
                log.warning("the morph instrument is not kept in the session: %s", exc)
                files = None
            return instrument, files

        def done(result: tuple[Any, dict[str, bytes] | None]) -> None:
            instrument, files = result
            self._instrument_loaded(instrument, folder, files)
            self.say(f"{self.title}: the morph instrument is ready")

        self.instrument_label.setText("Rendering the instrument…")
        self._instrument_job = self.submit(job, done, "make instrument")

    def _instrument_loaded(self, instrument: Any, folder: Path,
                           files: dict[str, bytes] | None) -> None:
        """An instrument made or restored is the workspace's: its older folders go, the label
        says what it plays, the window offers it (``instrument_ready``) and the session keeps
        it (``state_changed``)."""
        self.instrument, self.instrument_dir = instrument, folder
        self._instrument_files, self._pending_instrument = files, None
        self._remove_instrument_folders(before=folder)
        pitches = instrument.pitches
        self.instrument_label.setText(
            f"Ready: {len(pitches)} note{'s' if len(pitches) != 1 else ''} from "
            f"{pitch_name(pitches[0])} to "
            f"{pitch_name(pitches[-1])} at {instrument.sample_rate / 1000:g} kHz. Play it "
            f"from the MIDI keyboard, or export it.")
        self._update_buttons()
        self.instrument_ready.emit(instrument)
        self.state_changed.emit()

    def restore_instrument(self, files: dict[str, bytes]) -> Any:
        """An instrument a session kept (file name → bytes): written into a fresh temporary
        folder and loaded in the worker, then the workspace's as a newly made one is. One that
        does not load leaves the rest of the session (and the instrument there was) as it is
        and says so in the label. The files are kept in the session from now on, while it
        loads. Returns the job's handle."""
        from app.session import instrument_name_ok

        folder = Path(tempfile.mkdtemp(prefix="cadenza-instrument-"))
        self._instrument_folders.append(folder)
        self._pending_instrument = files
        self.instrument_label.setText("Loading the saved instrument…")

        def job(_ctx: Any) -> Any:
            from models.nsynth.instrument import MorphInstrument

            try:
                for name, data in files.items():
                    if not instrument_name_ok(name):
                        raise CadenzaError(f"{name!r} is not an instrument file name")
                    (folder / name).write_bytes(data)
                return MorphInstrument.load(folder)
            except Exception as exc:  # noqa: BLE001 - a session's instrument is untrusted data
                return exc

        def done(result: Any) -> None:
            if self._pending_instrument is not files:  # made or restored another one since
                self._drop_instrument_folder(folder)
                return
            if isinstance(result, Exception):
                self._drop_instrument_folder(folder)
                self._pending_instrument = None
                reason = " ".join(str(result).split()) or type(result).__name__
                self.instrument_label.setText(
                    f"The saved instrument could not be loaded: {reason}")
                log.warning("the session's morph instrument: %s", reason)
                return
            self._instrument_loaded(result, folder, files)

        handle = self.submit(job, done, "restore the instrument", quiet=True)
        if handle is None:
            self._drop_instrument_folder(folder)
        return handle

    def _drop_instrument_folder(self, folder: Path) -> None:
        if folder in self._instrument_folders:
            self._instrument_folders.remove(folder)
        shutil.rmtree(folder, ignore_errors=True)

    def _remove_instrument_folders(self, before: Path | None = None) -> None:
        """Remove the instruments' temporary folders made before ``before`` (an instrument's
        samples are in memory; its folder is kept for exporting it), or all of them."""
        folders = self._instrument_folders
        cut = folders.index(before) if before in folders else len(folders)
        for folder in folders[:cut]:
            shutil.rmtree(folder, ignore_errors=True)
        self._instrument_folders = folders[cut:]

    def shutdown(self) -> None:
        """The window is closing: as every workspace, and the instruments' folders go."""
        super().shutdown()
        self._remove_instrument_folders()

    def play_note(self, pitch: int, velocity: int = 100, seconds: float = 1.0) -> bool:
        """Play one note of the morph instrument through the audio engine (for the MIDI
        keyboard); False when there is no instrument or no audio output."""
        if self.instrument is None:
            self.say(f"{self.title}: make an instrument first")
            return False
        engine = self.audio_engine()
        if engine is None:
            return False
        from models.audio_io import Audio

        try:
            x = self.instrument.note(pitch, velocity, seconds, sample_rate=engine.sample_rate)
            self.playback_stop_requested.emit()  # the note takes the clip bus
            engine.play(Audio(np.asarray(x, np.float32)[:, None], int(engine.sample_rate)))
        except CadenzaError as exc:
            self.say(f"Could not play the note: {exc}")
            return False
        return True

    def export_result(self, path: str | Path, done: Any = None) -> Any:
        """Write the morph result as a WAV at the chosen export rate (in the worker); what the
        Export WAV button does once a path is chosen."""
        if self._result_audio is None:
            self.say("Morph first: there is no result to export yet")
            return None
        return self.export_wav(self._result_audio, path, done=done,
                               rate=self.export_rate.currentData())

    def export_instrument(self, folder: str | Path) -> Path | None:
        """Copy the instrument's WAVs and SFZ into ``folder``: an empty folder or one holding
        only an instrument is replaced as a whole (``models.files.replacing_folder``); into a
        folder with other files each file is written atomically, the SFZ last. A failure
        leaves what was there and says so in one line."""
        from models.files import replacing_folder, write_bytes

        if self.instrument_dir is None:
            self.say(f"{self.title}: make an instrument first")
            return None
        dest = Path(folder)
        ours = sorted(self.instrument_dir.iterdir(), key=lambda f: f.suffix != ".wav")
        try:
            kinds = {f.suffix.lower() for f in dest.iterdir()} if dest.is_dir() else set()
            if kinds <= {".wav", ".sfz", ".json"}:
                with replacing_folder(dest) as building:
                    for f in ours:
                        shutil.copy2(f, building / f.name)
            else:
                for f in ours:  # the WAVs first, then the SFZ that plays them
                    write_bytes(dest / f.name, f.read_bytes())
        except (OSError, CadenzaError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.say(f"Could not export the instrument: {reason}")
            return None
        self.say(f"Exported the instrument to {dest}")
        return dest

    def _export_instrument_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the morph instrument (WAV + SFZ)")
        if folder:
            self.export_instrument(folder)
