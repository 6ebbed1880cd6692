"""The Live panel (a dock in the main window): keyboard in, MIDI or built-in audio out, the
call-and-response duet, and recording with a metronome and count-in.

Threads: MIDI input arrives on the input's polling thread, the duet's answer on the scheduler
thread and round events on the model thread (the app's worker, which runs the duet as one long
job while it is on). None of them touch widgets: they emit signals of :class:`_Bridge`, which
lives on the GUI thread, so Qt queues them across. The call and the answer are drawn as they
happen on a piano roll (answer notes in green, over the usual velocity colours of the call).

Devices come from the application (:class:`app.services.Services`): the MIDI system and the one
audio engine of :class:`app.devices.Devices` (built-in sound plays on a bus of its own in the
engine's mix).

Built-in sound (General MIDI, the morph, the metronome's drums beside a morph) is opened by the
application's opener worker (:mod:`app.live_output`), never on the GUI thread: choosing it says
"Opening …" at once and "… ready" when it sounds. Meanwhile the keyboard, the duet and the
metronome play into a :class:`~app.live_output.PendingOutput`: keys still held when the output
is ready sound then; keys pressed and released before are not played late, and the ready line
says how many. Another choice, or closing the panel, lets go of an output still opening: it is
closed as soon as it exists.

When the window finds a device lost it tells the panel
(:meth:`LivePanel.devices_lost`): the duet and recording stop, the panel says so and offers
Reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRectF, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.live_output import BackgroundCloser, PendingOutput, open_voices_job
from app.widgets.piano_roll import PianoRoll
from models.errors import CadenzaError
from models.sequence import Note, NoteSequence

if TYPE_CHECKING:
    from app.devices import Loss
    from app.services import Services

log = logging.getLogger(__name__)

AUDIO_OUT = "Built-in audio"
MORPH_OUT = "Morph instrument (built-in audio)"
CALL, ANSWER = 0, 1
ANSWER_COLOUR = QColor(96, 214, 128)
ROLL_SECONDS = 60.0  # notes older than this leave the roll
METER_DECAY = 0.85
PORT_POLL_MS = 1000
ROLL_MS = 50


class LiveRoll(PianoRoll):
    """A piano roll that draws the answer's notes (instrument 1) in their own colour."""

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        super().paintEvent(event)
        p = QPainter(self)
        p.setClipRect(self.note_area())
        h = max(1.0, self.key_height - 1)
        for note in self.visible_notes():
            if note.instrument != ANSWER:
                continue
            x0 = self.time_to_x(note.start)
            w = max(1.5, (note.end - note.start) * self.pixels_per_second)
            y = self.pitch_to_y(note.pitch + 1)
            colour = QColor(ANSWER_COLOUR)
            colour.setAlphaF(0.55 + 0.45 * note.velocity / 127)
            p.fillRect(QRectF(x0, y + 0.5, w, h), colour)
            p.setPen(QPen(QColor(20, 90, 40), 1))
            p.drawRect(QRectF(x0, y + 0.5, w, h))
        p.end()


class _Bridge(QObject):
    midi_in = Signal(object, float)  # message, perf_counter time
    answer_out = Signal(object, float)
    round_event = Signal(object, str)
    beat = Signal(int, int, bool)


class LivePanel(QWidget):
    """Pickers, meters, duet settings, the live roll and the record button."""

    clip_created = Signal(object)
    message = Signal(str)
    duet_changed = Signal(bool)
    reconnect_requested = Signal()
    state_changed = Signal()  # a choice changed: the session is saved soon

    def __init__(self, services: Services | None = None, soundfont: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.devices = services.devices if services is not None else None
        self.worker = services.worker if services is not None else None
        self.opener = services.opener if services is not None else None
        self._closer = BackgroundCloser(self.opener) if self.opener is not None else None
        self.soundfont = soundfont or None
        self.models: list[Any] = []
        self.midi: Any = None
        self.watcher: Any = None
        self.input: Any = None
        self.output: Any = None  # MidiOutput, LiveSynth (built-in audio) or SamplerSynth
        self.instrument: Any = None  # the Morph workspace's MorphInstrument, once made
        self.live_morph: Any = None  # or its LiveMorph (DDSP, played live), the later of the two
        self.engine: Any = None  # the devices' audio engine while built-in sound is the output
        # the way to built-in sound: plays what comes while it opens, then forwards to it
        self.route: PendingOutput | None = None
        self.click_synth: Any = None  # GM drums for the metronome when the output plays a morph
        self._click_route: PendingOutput | None = None
        self._ready_note = ""  # what the "ready" line adds (play_instrument's)
        self._lead = ""  # why an output is opened now (a port went away), for its status lines
        self._opening_lead = ""
        self.duet: Any = None
        self.recorder: Any = None
        self._take_tempo: float | None = None  # the session tempo of the take being recorded
        self._duet_job: Any = None
        self.last_latency_ms: float | None = None
        self.in_level = 0.0
        self.out_level = 0.0
        self._origin = time.perf_counter()
        self._notes: list[Note] = []
        self._open: dict[tuple[int, int], Note] = {}
        self._bridge = _Bridge()
        self._bridge.midi_in.connect(self._on_midi_in)
        self._bridge.answer_out.connect(self._on_answer_out)
        self._bridge.round_event.connect(self._on_round)
        self._bridge.beat.connect(self._on_beat)
        self._build()
        self._ports_timer = QTimer(self)
        self._ports_timer.setInterval(PORT_POLL_MS)
        self._ports_timer.timeout.connect(self.poll_ports)
        self._roll_timer = QTimer(self)
        self._roll_timer.setInterval(ROLL_MS)
        self._roll_timer.timeout.connect(self._tick)
        self._roll_timer.start()
        self._midi_started = False
        self.last_round: Any = None  # the latest duet round with an answer
        self._wanted_ports: tuple[str | None, str | None] = (None, None)
        from app.widgets.state import watch

        watch(self.state_controls(), self.state_changed.emit)
        for combo in (self.input_combo, self.output_combo):
            combo.currentIndexChanged.connect(lambda *_: self.state_changed.emit())

    def showEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        """MIDI is opened when the panel is first shown, not when the window starts."""
        super().showEvent(event)
        if not self._midi_started:
            self._midi_started = True
            QTimer.singleShot(0, self._init_midi)

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.input_combo = QComboBox()
        self.output_combo = QComboBox()
        self.in_meter = QProgressBar()
        self.out_meter = QProgressBar()
        for meter in (self.in_meter, self.out_meter):
            meter.setRange(0, 100)
            meter.setTextVisible(False)
            meter.setMaximumHeight(8)
        ports = QGridLayout()
        ports.addWidget(QLabel("In:"), 0, 0)
        ports.addWidget(self.input_combo, 0, 1)
        ports.addWidget(self.in_meter, 1, 1)
        ports.addWidget(QLabel("Out:"), 2, 0)
        ports.addWidget(self.output_combo, 2, 1)
        ports.addWidget(self.out_meter, 3, 1)
        self.input_combo.currentIndexChanged.connect(self._input_chosen)
        self.output_combo.currentIndexChanged.connect(self._output_chosen)

        duet_box = QGroupBox("Duet")
        self.model_combo = QComboBox()
        self.duet_button = QPushButton("Start duet")
        self.duet_button.setCheckable(True)
        self.duet_button.toggled.connect(self.set_duet)
        self.silence_spin = QSpinBox()
        self.silence_spin.setRange(100, 5000)
        self.silence_spin.setSingleStep(50)
        self.silence_spin.setValue(600)
        self.silence_spin.setSuffix(" ms")
        self.seconds_spin = QDoubleSpinBox()
        self.seconds_spin.setRange(0.5, 60.0)
        self.seconds_spin.setValue(4.0)
        self.seconds_spin.setSuffix(" s")
        self.temperature_spin = QDoubleSpinBox()
        self.temperature_spin.setRange(0.1, 3.0)
        self.temperature_spin.setSingleStep(0.1)
        self.temperature_spin.setValue(1.0)
        self.follow_check = QCheckBox("Follow my playing (key and pace)")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("The answers take the note density and pitch classes of "
                                     "your last 30 seconds of playing")
        self.layer_check = QCheckBox("Keep answering when I play (layer)")
        self.answer_on_combo = QComboBox()
        for label, value in (("after the pause", "pause"), ("on the next beat", "beat"),
                             ("on the next bar", "bar")):
            self.answer_on_combo.addItem(label, value)
        self.answer_on_combo.setToolTip("Beat and bar come from the Sync section's time")
        self.quantize_combo = QComboBox()
        for label, value in (("off (as played)", 0.0), ("light (25 %)", 0.25),
                             ("soft (50 %)", 0.5), ("strong (75 %)", 0.75),
                             ("on the grid", 1.0)):
            self.quantize_combo.addItem(label, value)
        self.quantize_grid_combo = QComboBox()
        for label, value in (("1/4", 1.0), ("1/8", 0.5), ("1/8 triplet", 1 / 3),
                             ("1/16", 0.25), ("1/16 triplet", 1 / 6), ("1/32", 0.125)):
            self.quantize_grid_combo.addItem(label, value)
        self.quantize_grid_combo.setCurrentIndex(self.quantize_grid_combo.findData(0.25))
        for combo in (self.quantize_combo, self.quantize_grid_combo):
            combo.setToolTip("Move each answer note toward this grid of the Sync section's "
                             "time, at its tempo (while sync runs)")
        quantize_row = QHBoxLayout()
        quantize_row.setContentsMargins(0, 0, 0, 0)
        quantize_row.addWidget(self.quantize_combo, 1)
        quantize_row.addWidget(self.quantize_grid_combo)
        self.latency_label = QLabel("Latency: –")
        form = QFormLayout(duet_box)
        form.addRow("Model:", self.model_combo)
        form.addRow("Pause:", self.silence_spin)
        form.addRow("Answer:", self.seconds_spin)
        form.addRow("Temperature:", self.temperature_spin)
        form.addRow("Answer starts:", self.answer_on_combo)
        form.addRow("Quantize:", quantize_row)
        form.addRow(self.follow_check)
        form.addRow(self.layer_check)
        form.addRow(self.duet_button)
        self.keep_answer_button = QPushButton("Keep answer")
        self.keep_answer_button.setToolTip("Add the latest answer to the clip library")
        self.keep_answer_button.setEnabled(False)
        self.keep_answer_button.clicked.connect(self.keep_answer)
        form.addRow(self.keep_answer_button)
        form.addRow(self.latency_label)
        for spin in (self.silence_spin, self.seconds_spin, self.temperature_spin):
            spin.valueChanged.connect(self._settings_changed)
        self.layer_check.toggled.connect(self._settings_changed)
        self.follow_check.toggled.connect(self._settings_changed)
        self.answer_on_combo.currentIndexChanged.connect(self._settings_changed)
        self.quantize_combo.currentIndexChanged.connect(self._settings_changed)
        self.quantize_grid_combo.currentIndexChanged.connect(self._settings_changed)

        rec_box = QGroupBox("Record")
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.toggled.connect(self.set_recording)
        self.metronome_check = QCheckBox("Metronome")
        self.count_in_spin = QSpinBox()
        self.count_in_spin.setRange(0, 4)
        self.count_in_spin.setValue(1)
        self.count_in_spin.setSuffix(" bar(s)")
        self.tempo_spin = QSpinBox()
        self.tempo_spin.setRange(30, 300)
        self.tempo_spin.setValue(100)
        self.tempo_spin.setSuffix(" bpm")
        self.beat_label = QLabel("")
        rec_form = QFormLayout(rec_box)
        rec_form.addRow("Count-in:", self.count_in_spin)
        rec_form.addRow("Tempo:", self.tempo_spin)
        rec_form.addRow(self.metronome_check)
        rec_row = QHBoxLayout()
        rec_row.addWidget(self.record_button)
        rec_row.addWidget(self.beat_label)
        rec_form.addRow(rec_row)

        from app.widgets.sync_box import SyncBox

        self.sync_box = SyncBox(self.devices)
        self.sync_box.message.connect(self._say)

        self.roll = LiveRoll()
        self.roll.placeholder = "Play on your keyboard: the call shows here, the answer in green"
        self.roll.setMinimumHeight(160)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.setToolTip("Open the audio output and the MIDI system again")
        self.reconnect_button.clicked.connect(self.reconnect_requested)
        self.reconnect_button.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(ports)
        layout.addWidget(duet_box)
        layout.addWidget(rec_box)
        layout.addWidget(self.sync_box)
        layout.addWidget(self.roll, 1)
        layout.addWidget(self.status_label)
        layout.addWidget(self.reconnect_button)
        self.set_models([])

    # ------------------------------------------------------------------ MIDI system and ports
    def _init_midi(self) -> None:
        if self.devices is None:
            self._say("No MIDI system (the panel runs without the app's devices)")
            self._fill_ports([], [])
            return
        try:
            self.midi = self.devices.midi()
        except Exception as exc:  # noqa: BLE001 - no rtmidi, or MIDI lost: the panel says so
            self._say(f"MIDI is not available: {exc}")
            self._fill_ports([], [])
            return
        if not self.midi.available:
            self._say(self.midi.reason)
            self._fill_ports([], [])
            return
        self.watcher = self.midi.watch_ports()
        self._fill_ports(self._visible_inputs(), self._visible_outputs())
        self._ports_timer.start()

    def _visible_inputs(self) -> list[str]:
        return [p for p in (self.watcher.inputs if self.watcher else [])
                if "Cadenza" not in p.split(":")[0]]

    def _visible_outputs(self) -> list[str]:
        return [p for p in (self.watcher.outputs if self.watcher else [])
                if "Cadenza" not in p.split(":")[0]]

    def poll_ports(self) -> None:
        """Rescan the ports (a QTimer calls this every second): keyboards come and go."""
        if self.watcher is None:
            return
        changes = self.watcher.poll()
        if self.watcher.failed:
            self._ports_timer.stop()
            self._say(f"MIDI ports cannot be listed any more: {self.watcher.failed}")
            self.reconnect_button.show()
            return
        if not changes:
            return
        if self.input is not None and self.input.name in changes.removed_inputs:
            self._say(f"{self.input.name} went away")
            if self.duet is not None:
                self.duet.input_lost()
        from app.midi_ports import MidiOutput

        output = self.output
        gone = isinstance(output, MidiOutput) and output.name in changes.removed_outputs
        if gone:
            self._say(f"{output.name} went away")
        # built-in audio takes over from a port gone: its status lines keep saying why
        self._lead = f"{output.name} went away" if gone else ""
        try:
            self._fill_ports(self._visible_inputs(), self._visible_outputs())
        finally:
            self._lead = ""

    def _fill_ports(self, inputs: list[str], outputs: list[str]) -> None:
        self.sync_box.set_ports(inputs, outputs)
        cur_in, cur_out = self.input_combo.currentData(), self.output_combo.currentData()
        want_in, want_out = self._wanted_ports  # a session's ports, chosen once they appear
        if want_in in inputs:
            cur_in, want_in = want_in, None
        if want_out is not None and (want_out in outputs or want_out == AUDIO_OUT):
            cur_out, want_out = want_out, None
        self._wanted_ports = (want_in, want_out)
        for combo in (self.input_combo, self.output_combo):
            combo.blockSignals(True)
            combo.clear()
        self.input_combo.addItem("None", None)
        for name in inputs:
            self.input_combo.addItem(name, name)
        self.output_combo.addItem(AUDIO_OUT, AUDIO_OUT)
        if self.instrument is not None or self.live_morph is not None:
            self.output_combo.addItem(MORPH_OUT, MORPH_OUT)
        for name in outputs:
            self.output_combo.addItem(name, name)
        self.input_combo.setCurrentIndex(max(0, self.input_combo.findData(cur_in)))
        self.output_combo.setCurrentIndex(max(0, self.output_combo.findData(cur_out)))
        for combo in (self.input_combo, self.output_combo):
            combo.blockSignals(False)
        if self.input_combo.currentData() != cur_in:
            self._input_chosen()
        if self.output_combo.currentData() != cur_out:
            self._output_chosen()

    def choose_input(self, name_substring: str) -> bool:
        for i in range(self.input_combo.count()):
            data = self.input_combo.itemData(i)
            if data and name_substring.lower() in str(data).lower():
                self.input_combo.setCurrentIndex(i)
                return True
        return False

    def choose_output(self, name_substring: str) -> bool:
        for i in range(self.output_combo.count()):
            data = self.output_combo.itemData(i)
            if data and name_substring.lower() in str(data).lower():
                self.output_combo.setCurrentIndex(i)
                return True
        return False

    def _input_chosen(self, *_: object) -> None:
        if self.input is not None:
            self.input.close()
            self.input = None
        name = self.input_combo.currentData()
        if not name or self.midi is None:
            return
        try:
            self.input = self.midi.open_input(name, self._midi_callback)
        except CadenzaError as exc:
            self._say(str(exc))
            return
        if self.output_combo.currentData() in (AUDIO_OUT, MORPH_OUT):
            self._ensure_output()  # hear yourself on the built-in sound

    def _output_chosen(self, *_: object) -> None:
        if self.duet is not None:
            self.set_duet(False)
        self._close_output()
        if self.output_combo.currentData() == MORPH_OUT or (
                self.input is not None and self.output_combo.currentData() == AUDIO_OUT):
            self._ensure_output()

    def set_instrument(self, instrument: Any) -> None:
        """A morph instrument (``MorphInstrument``) to offer as an output; what plays it now
        switches to it at once (a live morph that played gives way to it)."""
        self.instrument = instrument
        was_live, self.live_morph = self.live_morph is not None, None
        output = self.output
        if output is not None and hasattr(output, "set_instrument"):
            self._swap_instrument(output, instrument)
        elif (was_live and output is not None and hasattr(output, "set_xy")) \
                or self._opening_morph():
            self._reopen_morph_output()
        self._offer_morph()

    def set_live_morph(self, live: Any) -> None:
        """A live morph (:class:`models.ddsp.voices.LiveMorph`) to offer as the morph output:
        the keyboard plays it straight from the DDSP model; what plays the morph now switches
        to it at once."""
        self.live_morph = live
        output = self.output
        if output is not None and hasattr(output, "set_live"):
            output.set_live(live)
        elif (output is not None and hasattr(output, "set_instrument")) or self._opening_morph():
            self._reopen_morph_output()
        self._offer_morph()

    def _swap_instrument(self, output: Any, instrument: Any) -> None:
        """The sampler plays ``instrument`` from now on: its resampling to the engine's rate
        runs on the opener (before anything opened or closed after it), not here."""

        def failed(exc: Exception) -> None:
            self._say(f"Morph instrument: {exc}")

        if self.opener is None:
            try:
                output.set_instrument(instrument)
            except CadenzaError as exc:
                failed(exc)
            return
        self.opener.submit(lambda _ctx: output.set_instrument(instrument), on_failure=failed,
                           label="swap the morph instrument")

    def _opening_morph(self) -> bool:
        """Whether the morph output is being opened (with what the panel had then)."""
        return self.opening and self.output_combo.currentData() == MORPH_OUT

    def set_morph_xy(self, x: float, y: float) -> None:
        """The Morph pad moved: the live morph's sounding notes glide to that mix."""
        output = self.output
        if output is not None and hasattr(output, "set_xy"):
            output.set_xy(x, y)

    def _offer_morph(self) -> None:
        names = [self.output_combo.itemData(i) for i in range(self.output_combo.count())]
        if MORPH_OUT not in names:
            self.output_combo.insertItem(1, MORPH_OUT, MORPH_OUT)

    def _reopen_morph_output(self) -> None:
        """The morph output changes kind (sampler <-> live DDSP): closed and made anew (a duet
        stops, as when another output is chosen)."""
        if self.duet is not None:
            self.set_duet(False)
        self._close_output()
        self._ensure_output()

    def play_instrument(self) -> bool:
        """Play the morph (the live one, else the instrument) from the keyboard, and answer
        the duet with it."""
        if self.instrument is None and self.live_morph is None:
            self._say("Make a morph instrument first (Morph ▸ Make instrument)")
            return False
        if not self.choose_output(MORPH_OUT) or self.output is None:
            self._ensure_output()
        if self.output is None and self.route is None:
            return False
        what = self.input.name if self.input is not None else "a MIDI keyboard (choose it above)"
        playing = (f"playing the morph {'live' if self.live_morph is not None else 'instrument'}"
                   f" from {what}")
        if self.output is None:  # still opening: "… ready" follows
            self._ready_note = playing
            self._say(f"Opening {self.route.what}… then {playing}")  # type: ignore[union-attr]
        else:
            self._say(playing[0].upper() + playing[1:])
        return True

    @property
    def opening(self) -> bool:
        """Whether a built-in output is being opened (the opener worker makes it)."""
        return self.output is None and self.route is not None

    def _ensure_output(self) -> Any:
        """The sink for answers and clicks: opened when first needed. Built-in sound is opened
        by the opener worker: until it is ready this is the :class:`PendingOutput` that plays
        into it (see the module docstring); None when there is no output."""
        if self.output is not None:
            return self.output
        if self.route is not None:
            return self.route
        name = self.output_combo.currentData()
        try:
            if name in (AUDIO_OUT, MORPH_OUT):
                self._open_voices(name)
                return self.route
            if name and self.midi is not None:
                self.output = self.midi.open_output(name)  # a port: a few ms
        except CadenzaError as exc:
            self._say(f"Output: {exc}")
            self._close_output()
        return self.output

    def _open_voices(self, name: str) -> None:
        """Start opening built-in sound for the output ``name`` (``self.route`` plays into it
        meanwhile); the job's result arrives in :meth:`_voices_opened`."""
        if self.devices is None or self.opener is None:
            raise CadenzaError("no audio output (the panel runs without the app's devices)")
        soundfont = self.soundfont
        if name == MORPH_OUT and self.live_morph is not None:
            from app.sampler import DDSPSynth

            live = self.live_morph
            what = "the live morph"

            def make(engine: Any) -> Any:
                return DDSPSynth(engine, live)
        elif name == MORPH_OUT and self.instrument is not None:
            from app.sampler import SamplerSynth

            instrument = self.instrument
            what = "the morph instrument"

            def make(engine: Any) -> Any:
                return SamplerSynth(engine, instrument)
        else:
            from app.transport import LiveSynth

            what = "built-in audio"

            def make(engine: Any) -> Any:
                return LiveSynth(engine, soundfont=soundfont)
        route = PendingOutput(what, plays_drums=what == "built-in audio")
        self.route = route
        self._ready_note = ""
        self._opening_lead = self._lead
        self._say(f"{self._lead}: opening {what}…" if self._lead else f"Opening {what}…")
        self.opener.submit(open_voices_job(self.devices, route, make),
                           on_success=lambda _ok: self._voices_opened(route),
                           on_failure=lambda exc: self._voices_failed(route, exc),
                           on_cancelled=lambda: self._voices_opened(route),
                           label=f"open {what}")

    def _voices_opened(self, route: PendingOutput) -> None:
        got = route.take()
        if got is None:  # abandoned (its job closed what it made), or never made
            return
        engine, voices = got
        if route is not self.route or not route.attach(voices):  # not wanted any more
            self._retire(voices, "a live output no longer wanted")
            return
        self.engine, self.output = engine, voices
        lead, self._opening_lead = self._opening_lead, ""
        note, self._ready_note = self._ready_note, ""
        text = f"{route.what} ready" + (f": {note}" if note else "")
        dropped = route.dropped  # pressed and released before it was ready: not played late
        if dropped:
            text += f"; {dropped} note{'s' * (dropped != 1)} lost while it opened"
        self._say(f"{lead}: {text}" if lead else text[0].upper() + text[1:])

    def _voices_failed(self, route: PendingOutput, exc: Exception) -> None:
        """The output could not open: said in one line; a duet that was to answer on it
        stops (as when it cannot start without an output)."""
        if route is self.route:
            if self.duet is not None:
                self.set_duet(False)
            self._close_output()
            self._say(f"Output: {exc}")

    def _clicks_through(self, sink: Any) -> Any:
        """The sink the metronome clicks on: the output, or FluidSynth's GM drums on the same
        engine when the output plays a morph (its voices have no drum channel), opened by the
        opener worker (the clicks go to its :class:`PendingOutput` meanwhile)."""
        if getattr(sink, "plays_drums", True) or self.devices is None or self.opener is None:
            return sink
        if self._click_route is None:
            from app.transport import LiveSynth

            soundfont = self.soundfont
            route = PendingOutput("the metronome's drums")
            self._click_route = route
            self.opener.submit(
                open_voices_job(self.devices, route,
                                lambda engine: LiveSynth(engine, soundfont=soundfont)),
                on_success=lambda _ok: self._clicks_opened(route),
                on_failure=lambda exc: self._clicks_failed(route, exc),
                on_cancelled=lambda: self._clicks_opened(route), label="open the metronome")
        return self._click_route

    def _clicks_opened(self, route: PendingOutput) -> None:
        got = route.take()
        if got is None:
            return
        _engine, synth = got
        if route is not self._click_route or not route.attach(synth):
            self._retire(synth, "a metronome synth no longer wanted")
            return
        self.click_synth = synth

    def _clicks_failed(self, route: PendingOutput, exc: Exception) -> None:
        if route is self._click_route:
            self._close_click_synth()
            self._say(f"Metronome: {exc}")

    def _close_click_synth(self, now: bool = False) -> None:
        route, self._click_route = self._click_route, None
        synth, self.click_synth = self.click_synth, None
        if route is not None:
            unused = route.abandon()
            if unused is not None:
                self._retire(unused[1], "the metronome's synth", now)
        if synth is not None:
            self._retire(synth, "the metronome's synth", now)

    def _close_output(self, now: bool = False) -> None:
        """Close the output (built-in voices take their bus out of the engine's mix; the
        engine itself belongs to the devices); one still opening is let go of. Built-in
        voices are closed by the opener (before whatever opens next), or here when ``now``
        (the devices are let go of)."""
        self._close_click_synth(now)
        route, self.route = self.route, None
        output, self.output, self.engine = self.output, None, None
        if route is not None:
            unused = route.abandon()
            if unused is not None:
                self._retire(unused[1], "the live output", now)
        if output is not None:
            # a MIDI port closes here, as it always did (bounded: see app.bounded)
            self._retire(output, "the live output", now or not hasattr(output, "bus"))

    def _retire(self, thing: Any, what: str, now: bool = False) -> None:
        """Close ``thing`` off the GUI thread (the opener), or here when ``now``."""
        if now or self._closer is None:
            _close_quietly(thing, what)
        else:
            self._closer.close(thing, what)

    # ------------------------------------------------------------------ MIDI thread
    def _midi_callback(self, message: list[int], _delta: float) -> None:
        t = time.perf_counter()
        duet, recorder, route = self.duet, self.recorder, self.route
        if duet is not None:
            duet.feed(message, t)
        if recorder is not None:
            recorder.feed(message, t)
        if route is not None:  # hear yourself on built-in audio (kept while it opens)
            route.send(message)
        self._bridge.midi_in.emit(message, t)

    # ------------------------------------------------------------------ GUI thread
    def _note_event(self, role: int, message: list[int], t: float) -> None:
        if len(message) < 3:
            return
        status = message[0] & 0xF0
        now = t - self._origin
        key = (role, message[1])
        if status == 0x90 and message[2] > 0:
            old = self._open.pop(key, None)
            if old is not None:
                old.end = now
            note = Note(message[1], message[2], now, now + 0.01, instrument=role)
            self._open[key] = note
            self._notes.append(note)
        elif status in (0x80, 0x90):
            note = self._open.pop(key, None)
            if note is not None:
                note.end = max(now, note.start + 0.01)

    def _on_midi_in(self, message: object, t: float) -> None:
        msg = list(message)  # type: ignore[call-overload]
        if msg and msg[0] & 0xF0 == 0x90 and len(msg) > 2 and msg[2] > 0:
            self.in_level = max(self.in_level, msg[2] / 127)
        self._note_event(CALL, msg, t)

    def _on_answer_out(self, message: object, t: float) -> None:
        msg = list(message)  # type: ignore[call-overload]
        if msg and msg[0] & 0xF0 == 0x90 and len(msg) > 2 and msg[2] > 0:
            self.out_level = max(self.out_level, msg[2] / 127)
        self._note_event(ANSWER, msg, t)

    def _on_round(self, rnd: Any, event: str) -> None:
        if event == "first-note" and rnd.latency is not None:
            self.last_latency_ms = 1000 * rnd.latency
            self.latency_label.setText(f"Latency: {self.last_latency_ms:.0f} ms "
                                       f"(pause → first note)")
        elif event == "call":
            self._say(f"Call {rnd.index}: {len(rnd.call.notes)} notes — answering…")
        elif event in ("done", "interrupted"):
            if rnd.answer.notes:
                self.last_round = rnd
                self.keep_answer_button.setEnabled(True)
            self._say(f"Answer {rnd.index}: {rnd.notes_sent} notes"
                      + (" (cut: you played)" if event == "interrupted" else ""))

    def _on_beat(self, bar: int, beat: int, counting_in: bool) -> None:
        self.beat_label.setText(f"count-in {beat + 1}" if counting_in else f"{bar + 1}.{beat + 1}")

    def _tick(self) -> None:
        now = time.perf_counter() - self._origin
        for note in self._open.values():
            note.end = max(note.end, now)
        self.in_level *= METER_DECAY
        self.out_level *= METER_DECAY
        if self.output is not None and self.engine is not None:
            self.out_level = max(self.out_level, min(1.0, 3 * self.output.take_peak()))
        self.in_meter.setValue(int(100 * self.in_level))
        self.out_meter.setValue(int(100 * self.out_level))
        if not self._notes:
            return
        keep_from = now - ROLL_SECONDS
        if self._notes[0].end < keep_from:
            self._notes = [n for n in self._notes if n.end >= keep_from]
        self.roll.set_sequence(NoteSequence(notes=list(self._notes)))
        self.roll.set_playhead(now)

    def roll_notes(self, role: int | None = None) -> list[Note]:
        return [n for n in self._notes if role is None or n.instrument == role]

    def _say(self, text: str) -> None:
        self.status_label.setText(text)
        self.message.emit(text)

    # ------------------------------------------------------------------ models and duet
    def set_models(self, entries: list[Any]) -> None:
        self.models = [e for e in entries if getattr(e, "family", None) == "performance"]
        current = self.model_combo.currentData()  # a refreshed list keeps the musician's pick
        self.model_combo.clear()
        for entry in self.models:
            self.model_combo.addItem(entry.name, str(entry.path))
        wanted = getattr(self, "_wanted_model", None)
        if wanted and self.model_combo.findData(wanted) >= 0:
            self.model_combo.setCurrentIndex(self.model_combo.findData(wanted))
            self._wanted_model = None
        else:  # the pick before, else the family's default (a shipped model marked so)
            marked = [str(e.path) for e in self.models if getattr(e, "is_default", False)]
            for choice in (current, *marked):
                if choice and self.model_combo.findData(choice) >= 0:
                    self.model_combo.setCurrentIndex(self.model_combo.findData(choice))
                    break
        ok = bool(self.models) and self.worker is not None
        self.duet_button.setEnabled(ok or self.duet is not None)
        self.duet_button.setToolTip("" if ok else "Install or train a PerformanceRNN model "
                                    "('cadenza train performance') to play duets")
        if not self.models:
            self.model_combo.addItem("no PerformanceRNN installed", None)

    def _duet_settings(self) -> Any:
        from app.duet import DuetSettings

        return DuetSettings(silence_ms=float(self.silence_spin.value()),
                            seconds=float(self.seconds_spin.value()),
                            temperature=float(self.temperature_spin.value()),
                            layer=self.layer_check.isChecked(),
                            follow=self.follow_check.isChecked(),
                            answer_on=self.answer_on_combo.currentData() or "pause",
                            quantize=float(self.quantize_combo.currentData() or 0.0),
                            quantize_every=float(self.quantize_grid_combo.currentData() or 0.25))

    def _settings_changed(self, *_: object) -> None:
        if self.duet is not None:
            try:
                s = self._duet_settings()
                self.duet.update(silence_ms=s.silence_ms, seconds=s.seconds,
                                 temperature=s.temperature, layer=s.layer, follow=s.follow,
                                 answer_on=s.answer_on, quantize=s.quantize,
                                 quantize_every=s.quantize_every)
            except CadenzaError as exc:
                self._say(str(exc))

    def set_duet(self, on: bool) -> None:
        """Start or stop the duet (the button does this)."""
        if on and self.duet is None:
            self._start_duet()
        elif not on and self.duet is not None:
            self._stop_duet()
        self.duet_button.blockSignals(True)
        self.duet_button.setChecked(self.duet is not None)
        self.duet_button.setText("Stop duet" if self.duet is not None else "Start duet")
        self.duet_button.blockSignals(False)

    def _start_duet(self) -> None:
        from app.duet import Duet

        path = self.model_combo.currentData()
        if self.worker is None or not path:
            self._say("No PerformanceRNN model to answer with")
            return
        sink = self._ensure_output()
        if sink is None:
            self._say("Choose an output for the answer")
            return
        try:
            duet = Duet([sink], self._duet_settings(),
                        on_round=lambda r, e: self._bridge.round_event.emit(r, e),
                        on_answer_message=lambda m, t: self._bridge.answer_out.emit(m, t),
                        grid=self.sync_box.next_time)
        except CadenzaError as exc:
            self._say(str(exc))
            return

        def job(ctx: Any) -> None:
            ctx.progress(None, "Loading the duet model…")
            # The worker's one model cache: the Continue workspace's model is the same object.
            model = ctx.model(path, "performance")
            duet.run(model, should_stop=lambda: ctx.cancelled)

        self.duet = duet
        self._duet_job = self.worker.submit(job, on_failure=self._duet_failed,
                                            on_success=lambda _r: None, label="duet")
        self._say("Duet on: play a phrase and pause")
        self.duet_changed.emit(True)

    def _duet_failed(self, exc: Exception) -> None:
        self._say(f"Duet stopped: {exc}")
        self.duet = None
        self._duet_job = None
        self.set_duet(False)

    def _stop_duet(self) -> None:
        duet, job = self.duet, self._duet_job
        self.duet = self._duet_job = None
        if duet is not None:
            duet.stop(timeout=0)
        if job is not None:
            job.cancel()
        self.duet_changed.emit(False)

    # ------------------------------------------------------------------ recording
    def set_recording(self, on: bool) -> None:
        """Start recording (after the count-in) or stop and add the take to the library."""
        from app.recorder import Recorder

        if on and self.recorder is None:
            sinks = []
            if self.metronome_check.isChecked() or self.count_in_spin.value():
                sink = self._ensure_output()
                if sink is not None:
                    sinks.append(self._clicks_through(sink))
            self._takes = getattr(self, "_takes", 0) + 1
            # With sync on, the take has the session's tempo and starts on its next bar, and
            # the metronome clicks on the session's beats.
            session_bpm = self.sync_box.session_bpm()
            self._take_tempo = session_bpm
            if session_bpm:
                self.tempo_spin.setValue(round(session_bpm))
            qpm = session_bpm or float(self.tempo_spin.value())
            rec = Recorder(qpm=qpm,
                           count_in_bars=int(self.count_in_spin.value()),
                           metronome=self.metronome_check.isChecked(), click_sinks=sinks,
                           name=f"Live take {self._takes}",
                           on_beat=lambda *b: self._bridge.beat.emit(*b),
                           grid=self.sync_box.next_time if session_bpm else None)
            rec.start(at=self.sync_box.next_time(time.perf_counter() + 0.02, 4.0)
                      if session_bpm else None)
            self.recorder = rec
            self._say("Recording…" if not rec.count_in_bars else "Count-in…")
        elif not on and self.recorder is not None:
            rec, self.recorder = self.recorder, None
            clip = rec.stop_clip()
            self._close_click_synth()
            self.beat_label.setText("")
            if clip is None:
                self._say("Nothing was played: no take")
            else:
                clip.tempo = self._take_tempo
                self.clip_created.emit(clip)
                self._say(f"{clip.name}: {len(clip.sequence.notes)} notes added to the library")
        self.record_button.blockSignals(True)
        self.record_button.setChecked(self.recorder is not None)
        self.record_button.setText("■ Stop" if self.recorder is not None else "● Record")
        self.record_button.blockSignals(False)

    def _on_the_bar(self, seq: NoteSequence, first_note_at: float, bpm: float) -> NoteSequence:
        """A kept answer as a take is kept while sync runs: at the session tempo, its time 0 on
        the bar line before its first note (which went out at ``first_note_at``), so that in a
        DAW it lands where it was played against the session's bars."""
        bar = 4 * 60.0 / bpm
        bar_line = self.sync_box.next_time(first_note_at - bar + 1e-3, 4.0)
        lead = first_note_at - bar_line  # bar line -> first note
        if not 0.0 <= lead < bar:  # no grid after all (sync just stopped)
            return seq.with_tempo(bpm)
        first = min(n.start for n in seq.notes)
        return seq.shift(lead - first).with_tempo(bpm)

    def session_bpm(self) -> float | None:
        """The session tempo while sync runs (BPM), None while it is off (see
        :meth:`app.widgets.sync_box.SyncBox.session_bpm`)."""
        return self.sync_box.session_bpm()

    def keep_answer(self) -> Any:
        """Add the latest duet answer to the clip library (one click); the clip, or None."""
        from app.clips import Clip

        rnd = self.last_round
        if rnd is None or not rnd.answer.notes:
            self._say("No answer to keep yet")
            return None
        seq = NoteSequence(notes=[n for n in rnd.answer.notes if n.end >= n.start >= 0])
        if not seq.notes:
            self._say("No answer to keep yet")
            return None
        bpm = self.session_bpm()
        if bpm and rnd.first_note_at is not None:
            seq = self._on_the_bar(seq, rnd.first_note_at, bpm)
        clip = Clip(f"Duet answer {rnd.index}", sequence=seq, tempo=bpm)
        self.clip_created.emit(clip)
        self._say(f"{clip.name}: {len(seq.notes)} notes added to the library")
        return clip

    # ------------------------------------------------------------------ session
    def state_controls(self) -> dict[str, Any]:
        return {"model": self.model_combo, "silence_ms": self.silence_spin,
                "seconds": self.seconds_spin, "temperature": self.temperature_spin,
                "layer": self.layer_check, "follow": self.follow_check,
                "answer_on": self.answer_on_combo, "quantize": self.quantize_combo,
                "quantize_grid": self.quantize_grid_combo, "metronome": self.metronome_check,
                "count_in": self.count_in_spin, "tempo": self.tempo_spin}

    def session_state(self) -> dict[str, Any]:
        from app.widgets.state import capture

        state = capture(self.state_controls())
        want_in, want_out = self._wanted_ports
        state["input"] = self.input_combo.currentData() or want_in
        state["output"] = self.output_combo.currentData() or want_out
        return state

    def restore_session_state(self, state: dict[str, Any]) -> None:
        from app.widgets.state import restore

        restore(self.state_controls(), state)
        model = state.get("model")
        if isinstance(model, dict) and isinstance(model.get("data"), str):
            if self.model_combo.findData(model["data"]) < 0:
                self._wanted_model = model["data"]
        ports = [state.get(k) for k in ("input", "output")]
        self._wanted_ports = tuple(p if isinstance(p, str) and p else None  # type: ignore[assignment]
                                   for p in ports)

    # ------------------------------------------------------------------ devices lost
    def devices_lost(self, losses: Sequence[Loss]) -> None:
        """The window found devices lost: the duet and recording stop, what used them is let
        go of, and the panel says so and offers Reconnect."""
        from app.devices import describe_losses

        if self.duet is not None:
            self.set_duet(False)
        if self.recorder is not None:
            self.set_recording(False)
        kinds = {loss.kind for loss in losses}
        if "midi" in kinds:
            self.release_devices()
            self._fill_ports([], [])
        elif "audio" in kinds:
            self.release_audio()
        self._say(f"{describe_losses(losses)}. Reconnect when it is back.")
        self.reconnect_button.show()

    # ------------------------------------------------------------------ the shared time
    def next_sync_bar(self, t: float) -> tuple[float, int] | None:
        """The shared grid's next bar at or after perf_counter time ``t``: its time and number
        (1 = the first); None while sync is off or its beat is not known yet."""
        return self.sync_box.next_bar(t)

    def release_audio(self) -> None:
        """Let go of built-in sound (the devices change their audio output), or of the one
        being opened."""
        if self.engine is not None or self.route is not None:
            self._close_output(now=True)

    def release_devices(self) -> None:
        """Let go of the ports, the watcher and the output (before the devices reconnect, or
        after MIDI was lost: closing what a lost system already closed does nothing)."""
        self._ports_timer.stop()
        self.sync_box.stop()
        if self.input is not None:
            self.input.close()
            self.input = None
        self._close_output(now=True)
        if self._closer is not None:
            self._closer.close_now()  # what the opener was still to close
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.midi = None

    def devices_reconnected(self) -> None:
        """The devices were opened again: list the ports anew (if the panel was opened)."""
        self.reconnect_button.hide()
        self._say("Reconnected")
        if self._midi_started:
            self._init_midi()

    # ------------------------------------------------------------------ lifetime
    def shutdown(self) -> None:
        """Stop everything (the window is closing): nothing left sounding, ports closed."""
        self._roll_timer.stop()
        if self.recorder is not None:
            self.set_recording(False)
        if self.duet is not None:
            self._stop_duet()
        self.release_devices()


def _close_quietly(thing: Any, what: str) -> None:
    try:
        thing.close()
    except Exception:  # noqa: BLE001 - closing must not break the panel
        log.exception("closing %s", what)
