"""The one owner of the sound output and the MIDI system (no Qt).

:class:`Devices` is the only place that makes an :class:`~app.audio_engine.AudioEngine` and a
:class:`~app.midi_ports.MidiSystem`. The application makes one (``run_app``; the CLI one per
command) and hands it to whoever plays or listens: the window, the workspaces, the live panel,
the duet, as Anki hands its collection to its operations. There is one output stream for
everything (clips on the engine's clip bus, live voices on buses of their own) and one MIDI
system that owns every port opened on it.

It also notices when a device goes away while running. :meth:`Devices.check` (the GUI calls it
from a timer, the headless duet from its loop) returns what was lost since the last call: the
audio output (the JACK server went away, PortAudio finished the stream, or its callback stopped
being called) or the MIDI system (the JACK server went away). What was lost is let go of at once
and in order (every old JACK client closed before a new one is made: see ``app/jack_watch.py``);
until :meth:`Devices.reconnect`, asking for it raises a one-line :class:`CadenzaError`, and
everything else (export, the other device) keeps working.

Closing is bounded: :meth:`Devices.close` returns within about a second even when the sound
server or a device has vanished (see ``app/bounded.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from app.audio_engine import NO_DEVICE, AudioEngine, PortAudio
from app.clock import ClockIn, ClockInput, ClockOut
from app.midi_ports import CLIENT_NAME, MidiOutput, MidiSystem
from models.errors import CadenzaError

SETTLE_SECONDS = 1.5  # the longest a new client waits for the lost system's ports to close


@dataclass(frozen=True)
class Loss:
    """A device that went away: ``kind`` is ``"audio"`` or ``"midi"``."""

    kind: str
    reason: str

    @property
    def what(self) -> str:
        return "Audio output" if self.kind == "audio" else "MIDI"

    def describe(self) -> str:
        return f"{self.what} lost: {self.reason}"


def describe_losses(losses: Sequence[Loss]) -> str:
    """One line for several losses; those with the same reason (one JACK server took both
    audio and MIDI with it) are said together."""
    by_reason: dict[str, list[str]] = {}
    for loss in losses:
        by_reason.setdefault(loss.reason, []).append(loss.what)
    return "; ".join(f"{' and '.join(whats)} lost: {reason}"
                     for reason, whats in by_reason.items())


class Devices:
    """The sound output and the MIDI system of one application (see the module docstring).

    ``audio_device``: the output to open (a name substring, or None for the default);
    ``midi_out``: the MIDI output :meth:`open_midi_output` opens by default.
    """

    def __init__(self, audio_device: str | None = None, midi_out: str | None = None,
                 client_name: str = CLIENT_NAME) -> None:
        self.audio_device = audio_device or None
        self.midi_out = midi_out or None
        self.client_name = client_name
        self.audio_lost = ""  # why the audio output was lost ("" while it is not)
        self.midi_lost = ""
        self._portaudio = PortAudio()
        self._engine: AudioEngine | None = None
        self._midi: MidiSystem | None = None
        self._old_midi: list[MidiSystem] = []  # closed after a loss, maybe still closing
        self._unreported: list[Loss] = []  # found, let go of, not yet returned by check()
        self._lock = threading.RLock()
        self._closed = False

    # ------------------------------------------------------------------ audio
    def audio(self) -> AudioEngine:
        """The audio engine, started on first use. Raises :class:`CadenzaError` (one line) when
        there is no output device, or when it was lost (until :meth:`reconnect`)."""
        with self._lock:
            self._require_open()
            self._detect()
            if self.audio_lost:
                raise CadenzaError(f"the audio output was lost ({self.audio_lost}); "
                                   "reconnect to play again")
            if self._engine is None:
                self._settle()
                engine = AudioEngine(self._portaudio, device=self.audio_device)
                engine.start()
                self._engine = engine
            return self._engine

    @property
    def engine(self) -> AudioEngine | None:
        """The running engine, or None (not started yet, closed or lost)."""
        return self._engine

    @property
    def portaudio(self) -> PortAudio:
        """The PortAudio library as this owner uses it (its sounddevice module, its devices)."""
        return self._portaudio

    def audio_outputs(self, rescan: bool = True) -> list[dict]:
        """The output devices (see :meth:`app.audio_engine.PortAudio.outputs`)."""
        with self._lock:
            self._require_open()
            self._detect()
            if rescan and self._engine is None:
                self._settle()
            return self._portaudio.outputs(rescan=rescan)

    def audio_available(self) -> tuple[bool, str]:
        """Whether an output device exists, and a plain reason when none does."""
        if self.audio_lost:
            return False, f"the audio output was lost ({self.audio_lost})"
        try:
            outputs = self.audio_outputs()
        except CadenzaError as exc:
            return False, str(exc)
        if not outputs:
            return False, NO_DEVICE
        return True, f"{len(outputs)} audio output(s)"

    def configure(self, audio_device: str | None = None, midi_out: str | None = None) -> None:
        """New device choices (Settings): another audio device closes the engine, the next use
        opens the new one."""
        with self._lock:
            self.midi_out = midi_out or None
            audio_device = audio_device or None
            if audio_device != self.audio_device:
                self.audio_device = audio_device
                engine, self._engine = self._engine, None
                if engine is not None:
                    engine.close()

    # ------------------------------------------------------------------ MIDI
    def midi(self) -> MidiSystem:
        """The MIDI system, probed on first use (``available`` and ``reason`` say whether there
        is one). Raises :class:`CadenzaError` when it was lost (until :meth:`reconnect`)."""
        with self._lock:
            self._require_open()
            self._detect()
            if self.midi_lost:
                raise CadenzaError(f"MIDI was lost ({self.midi_lost}); reconnect to use it")
            if self._midi is None:
                self._settle()
                self._midi = MidiSystem(self.client_name)
            return self._midi

    def open_midi_output(self, name_substring: str | None = None) -> MidiOutput:
        """The MIDI output ``name_substring`` picks, by default the configured one."""
        midi = self.midi()
        if not midi.available:
            raise CadenzaError(midi.reason)
        return midi.open_output(name_substring or self.midi_out)

    def open_clock_out(self, ports: Sequence[str], bpm: float = 120.0) -> ClockOut:
        """MIDI clock to the outputs ``ports`` (name substrings) on a timing thread of its own
        (:class:`app.clock.ClockOut`); the MIDI system owns it (closed with it, ports and all)."""
        midi = self.midi()
        if not midi.available:
            raise CadenzaError(midi.reason)
        outputs = []
        try:
            for name in ports:
                outputs.append(midi.open_output(name))
                midi.forget(outputs[-1])  # the clock closes it, after its Stop went out
            clock = ClockOut(outputs, bpm=bpm, own_outputs=True)
        except BaseException:
            for out in outputs:
                out.close()
            raise
        clock.system = midi
        midi.adopt(clock)
        return clock

    def open_clock_in(self, port: str, clock: ClockIn) -> ClockInput:
        """Follow the MIDI clock arriving on input ``port`` (a name substring) with ``clock``
        (:class:`app.clock.ClockInput`); the MIDI system owns it."""
        midi = self.midi()
        if not midi.available:
            raise CadenzaError(midi.reason)
        clock_input = ClockInput(midi, port, clock)
        midi.adopt(clock_input)
        return clock_input

    # ------------------------------------------------------------------ losses
    def check(self) -> list[Loss]:
        """What went away since the last call (each loss is reported once). Cheap: call it a
        few times a second. It never waits: while another thread holds the devices (the audio
        engine starting for the live panel's output, some 100 ms), it answers ``[]`` and the
        next call reports what was found."""
        if not self._lock.acquire(blocking=False):
            return []
        try:
            if self._closed:
                return []
            self._detect()
            losses, self._unreported = self._unreported, []
        finally:
            self._lock.release()
        return losses

    def _detect(self) -> None:
        """Find losses and let go of what was lost at once, in order (before anything new is
        opened: every way to a device goes through here first)."""
        if not self.audio_lost:
            engine = self._engine
            reason = engine.lost_reason() if engine is not None else ""
            if not reason and self._portaudio.lost:
                reason = self._portaudio.lost_reason
            if reason:
                self._lose_audio(reason)
                self._unreported.append(Loss("audio", reason))
        midi = self._midi
        if not self.midi_lost and midi is not None:
            reason = midi.lost
            if not reason and midi.is_jack and self._portaudio.jack_lost:
                reason = self._portaudio.lost_reason
            if reason:
                self._lose_midi(reason)
                self._unreported.append(Loss("midi", reason))

    def _lose_audio(self, reason: str) -> None:
        self.audio_lost = reason
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.abandon(reason)

    def _lose_midi(self, reason: str) -> None:
        self.midi_lost = reason
        midi, self._midi = self._midi, None
        if midi is not None:
            midi.close(timeout=0.0)  # every port closes on a thread of its own, now
            self._old_midi.append(midi)

    def _settle(self) -> None:
        """Before a new JACK client: the lost system's ports must have finished closing."""
        waiting = []
        deadline = time.monotonic() + SETTLE_SECONDS
        for midi in self._old_midi:
            if not midi.wait_closed(max(0.0, deadline - time.monotonic())):
                waiting.append(midi)
        self._old_midi = waiting
        if waiting:
            raise CadenzaError("the MIDI ports of the lost system are still closing; "
                               "try again in a moment")

    def reconnect(self) -> None:
        """Let go of the audio output and the MIDI system (lost or not) and look for devices
        again; they are opened anew on next use. Raises :class:`CadenzaError` when the old MIDI
        ports are still closing."""
        with self._lock:
            self._require_open()
            self._detect()
            self._unreported = []  # reconnecting answers them
            engine, self._engine = self._engine, None
            midi, self._midi = self._midi, None
            if midi is not None:
                midi.close()
                self._old_midi.append(midi)
            if engine is not None:
                engine.close()
            self.audio_lost = self.midi_lost = ""
            self._settle()
            self._portaudio.rescan()  # a lost PortAudio is replaced by a fresh copy here

    # ------------------------------------------------------------------ lifetime
    def describe(self) -> list[tuple[str, list[str]]]:
        """Sections for ``cadenza devices``: MIDI (the API and its ports, or why there is none)
        and the audio outputs."""
        try:
            midi_lines = self.midi().describe()
        except CadenzaError as exc:
            midi_lines = [str(exc)]
        try:
            outputs = self.audio_outputs()
        except CadenzaError as exc:
            return [("MIDI", midi_lines), ("Audio outputs", [str(exc)])]
        audio_lines = [f"{o['name']} [{o.get('hostapi', '?')}] "
                       f"{int(o.get('default_samplerate', 0) or 0)} Hz" for o in outputs]
        if not audio_lines:
            audio_lines = ["none: no sound card or sound server (JACK, PulseAudio) was found; "
                           "Cadenza still renders and exports WAV"]
        return [("MIDI", midi_lines), ("Audio outputs", audio_lines)]

    def _require_open(self) -> None:
        if self._closed:
            raise CadenzaError("the devices are closed")

    def close(self, timeout: float = 1.0) -> None:
        """Close the audio output and the MIDI system at once (ports panic first), within about
        ``timeout`` seconds even when the sound server or a device has vanished. Safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            engine, self._engine = self._engine, None
            midi, self._midi = self._midi, None
        closer = None
        if midi is not None:
            closer = threading.Thread(target=midi.close, kwargs={"timeout": 0.8 * timeout},
                                      name="cadenza-midi-close", daemon=True)
            closer.start()
        if engine is not None:
            engine.close(timeout=0.8 * timeout)
        if closer is not None:
            closer.join(timeout)

    def __enter__(self) -> Devices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
