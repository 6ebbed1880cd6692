"""MIDI ports: the only module that touches rtmidi (as Frescobaldi keeps one MIDI module).

The API is chosen once per :class:`MidiSystem`: the ALSA sequencer when ``/dev/snd/seq`` exists
and a client can be made, else JACK when a JACK server runs, else none (with a one-line reason).
``JACK_NO_START_SERVER=1`` is set before any probe, so probing never spawns a JACK server.

Ports are opened by case-insensitive name substring. Every output remembers the notes it has
sent and not released, so ``panic()`` leaves nothing stuck.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from models.errors import CadenzaError
from models.sequence import DRUM_CHANNEL, NoteSequence

os.environ["JACK_NO_START_SERVER"] = "1"

CLIENT_NAME = "Cadenza"
NO_MIDI = (
    "no MIDI system: no ALSA sequencer (/dev/snd/seq) and no JACK server running; "
    "Cadenza works without MIDI devices"
)
ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123
SUSTAIN = 64

Message = bytes | bytearray | list[int] | tuple[int, ...] | Any  # or a mido.Message


def _rtmidi() -> Any:
    try:
        import rtmidi
    except ImportError as exc:  # pragma: no cover - a dependency
        raise CadenzaError(f"python-rtmidi is not available: {exc}") from exc
    return rtmidi


def _probe() -> tuple[int | None, str, str]:
    """(rtmidi API constant or None, API name, reason when none)."""
    os.environ["JACK_NO_START_SERVER"] = "1"
    rtmidi = _rtmidi()
    compiled = rtmidi.get_compiled_api()
    reasons = []
    if rtmidi.API_LINUX_ALSA in compiled:
        if os.path.exists("/dev/snd/seq"):
            try:
                rtmidi.MidiOut(rtmidi.API_LINUX_ALSA, name=f"{CLIENT_NAME} probe").delete()
                return rtmidi.API_LINUX_ALSA, "ALSA", ""
            except rtmidi.SystemError:  # type: ignore[attr-defined]
                reasons.append("the ALSA sequencer cannot be opened")
        else:
            reasons.append("no ALSA sequencer (/dev/snd/seq)")
    if rtmidi.API_UNIX_JACK in compiled:
        try:
            rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{CLIENT_NAME} probe").delete()
            return rtmidi.API_UNIX_JACK, "JACK", ""
        except rtmidi.SystemError:  # type: ignore[attr-defined]
            reasons.append("no JACK server running")
    if reasons == ["no ALSA sequencer (/dev/snd/seq)", "no JACK server running"]:
        return None, "none", NO_MIDI
    return None, "none", "no MIDI system: " + " and ".join(reasons or ["no MIDI API compiled in"]) \
        + "; Cadenza works without MIDI devices"


def _match(ports: list[str], substring: str | None, kind: str) -> int:
    if not ports:
        raise CadenzaError(f"no MIDI {kind} ports")
    if substring is None or substring == "":
        return 0
    hits = [i for i, p in enumerate(ports) if substring.lower() in p.lower()]
    if not hits:
        raise CadenzaError(f"no MIDI {kind} port matches {substring!r}; ports: {', '.join(ports)}")
    if len(hits) > 1:
        exact = [i for i in hits if ports[i].lower() == substring.lower()]
        if len(exact) == 1:
            return exact[0]
        names = ", ".join(ports[i] for i in hits)
        raise CadenzaError(f"MIDI {kind} {substring!r} matches several ports: {names}")
    return hits[0]


def _to_bytes(message: Message) -> list[int]:
    if hasattr(message, "bytes") and callable(message.bytes):  # mido.Message
        return list(message.bytes())
    data = list(message)
    if not data or not all(isinstance(b, int) and 0 <= b <= 255 for b in data):
        raise CadenzaError(f"not a MIDI message: {message!r}")
    return data


class MidiOutput:
    """An open output port (or the virtual "Cadenza" port) that tracks sounding notes."""

    def __init__(self, port: Any, name: str) -> None:
        self._port = port
        self.name = name
        self._held: set[tuple[int, int]] = set()  # (channel, pitch)
        self._lock = threading.Lock()

    def send(self, message: Message) -> None:
        data = _to_bytes(message)
        status = data[0] & 0xF0
        channel = data[0] & 0x0F
        with self._lock:
            if status == 0x90 and len(data) >= 3 and data[2] > 0:
                self._held.add((channel, data[1]))
            elif status == 0x80 or (status == 0x90 and len(data) >= 3 and data[2] == 0):
                self._held.discard((channel, data[1]))
            self._port.send_message(data)

    def note_on(self, channel: int, pitch: int, velocity: int) -> None:
        self.send([0x90 | channel, pitch, velocity])

    def note_off(self, channel: int, pitch: int) -> None:
        self.send([0x80 | channel, pitch, 0])

    @property
    def held_notes(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self._held)

    def panic(self) -> None:
        """Note-offs for every held note, then sustain off, all notes off, all sound off."""
        with self._lock:
            held, self._held = sorted(self._held), set()
            for channel, pitch in held:
                self._port.send_message([0x80 | channel, pitch, 0])
            for channel in range(16):
                self._port.send_message([0xB0 | channel, SUSTAIN, 0])
                self._port.send_message([0xB0 | channel, ALL_NOTES_OFF, 0])
                self._port.send_message([0xB0 | channel, ALL_SOUND_OFF, 0])

    def close(self) -> None:
        if self._port is not None:
            self.panic()
            self._port.close_port()
            self._port.delete()
            self._port = None

    def __enter__(self) -> MidiOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidiInput:
    """An open input port; ``callback(message_bytes: list[int], delta_seconds: float)``."""

    def __init__(self, port: Any, name: str) -> None:
        self._port = port
        self.name = name

    def close(self) -> None:
        if self._port is not None:
            self._port.cancel_callback()
            self._port.close_port()
            self._port.delete()
            self._port = None

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidiSystem:
    """The MIDI API in use on this machine (ALSA, JACK or none) and its ports."""

    def __init__(self, client_name: str = CLIENT_NAME) -> None:
        self.client_name = client_name
        self._api, self.api_name, self.reason = _probe()

    @property
    def available(self) -> bool:
        return self._api is not None

    def _require(self) -> Any:
        if self._api is None:
            raise CadenzaError(self.reason)
        return _rtmidi()

    def _out(self) -> Any:
        rtmidi = self._require()
        try:
            return rtmidi.MidiOut(self._api, name=self.client_name)
        except rtmidi.SystemError as exc:  # the server went away since the probe
            raise CadenzaError(f"MIDI ({self.api_name}) is not usable any more: {exc}") from exc

    def _in(self) -> Any:
        rtmidi = self._require()
        try:
            return rtmidi.MidiIn(self._api, name=self.client_name)
        except rtmidi.SystemError as exc:
            raise CadenzaError(f"MIDI ({self.api_name}) is not usable any more: {exc}") from exc

    def list_outputs(self) -> list[str]:
        if not self.available:
            return []
        port = self._out()
        try:
            return list(port.get_ports())
        finally:
            port.delete()

    def list_inputs(self) -> list[str]:
        if not self.available:
            return []
        port = self._in()
        try:
            return list(port.get_ports())
        finally:
            port.delete()

    def open_output(self, name_substring: str | None = None) -> MidiOutput:
        """The output port whose name contains ``name_substring`` (the first one if None)."""
        port = self._out()
        try:
            ports = list(port.get_ports())
            index = _match(ports, name_substring, "output")
            port.open_port(index, name=f"{self.client_name} out")
        except BaseException:
            port.delete()
            raise
        return MidiOutput(port, ports[index])

    def open_virtual_output(self, name: str = CLIENT_NAME) -> MidiOutput:
        """A port other programs (a DAW) can connect to and record from."""
        port = self._out()
        try:
            port.open_virtual_port(name)
        except Exception as exc:
            port.delete()
            raise CadenzaError(f"cannot open a virtual MIDI port ({self.api_name}): {exc}") from exc
        return MidiOutput(port, name)

    def open_input(
        self,
        name_substring: str | None,
        callback: Callable[[list[int], float], None],
        sysex: bool = False,
    ) -> MidiInput:
        """Open the input port matching ``name_substring``; ``callback`` runs on rtmidi's thread."""
        port = self._in()
        try:
            ports = list(port.get_ports())
            index = _match(ports, name_substring, "input")
            port.ignore_types(sysex=not sysex, timing=True, active_sense=True)
            port.set_callback(lambda event, _data: callback(list(event[0]), float(event[1])))
            port.open_port(index, name=f"{self.client_name} in")
        except BaseException:
            port.delete()
            raise
        return MidiInput(port, ports[index])

    def describe(self) -> list[str]:
        if not self.available:
            return [self.reason]
        lines = [f"API: {self.api_name}"]
        outs, ins = self.list_outputs(), self.list_inputs()
        lines.append("outputs: " + (", ".join(outs) if outs else "none"))
        lines.append("inputs: " + (", ".join(ins) if ins else "none"))
        return lines


def describe_midi() -> list[str]:
    """Lines for ``cadenza devices``: the API in use and its ports, or why there is none."""
    return MidiSystem().describe()


# ---------------------------------------------------------------------------- playback helper
def _sequence_events(seq: NoteSequence) -> list[tuple[float, int, list[int]]]:
    channels: dict[tuple[int, int, bool], int] = {}
    free = iter([c for c in range(16) if c != DRUM_CHANNEL])
    for key in sorted({(n.instrument, n.program, n.is_drum) for n in seq.notes}):
        channels[key] = DRUM_CHANNEL if key[2] else next(free, 15)
    events: list[tuple[float, int, list[int]]] = []
    for (_inst, program, is_drum), ch in channels.items():
        if not is_drum:
            events.append((0.0, 0, [0xC0 | ch, program & 127]))
    for n in seq.notes:
        ch = channels[(n.instrument, n.program, n.is_drum)]
        events.append((n.start, 3, [0x90 | ch, n.pitch, max(1, n.velocity)]))
        events.append((max(n.end, n.start), 2, [0x80 | ch, n.pitch, 0]))
    for c in seq.control_changes:
        for (inst, _p, drum), ch in channels.items():
            if inst == c.instrument and drum == c.is_drum:
                events.append((c.time, 1, [0xB0 | ch, c.number & 127, max(0, min(127, c.value))]))
    for b in seq.pitch_bends:
        for (inst, _p, drum), ch in channels.items():
            if inst == b.instrument and drum == b.is_drum:
                v = max(0, min(16383, b.bend + 8192))
                events.append((b.time, 1, [0xE0 | ch, v & 127, v >> 7]))
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def play_sequence(
    output: MidiOutput,
    seq: NoteSequence,
    stop_event: threading.Event,
    start_thread: bool = True,
) -> threading.Thread | None:
    """Send ``seq`` to ``output`` in real time on its own thread (or inline if not
    ``start_thread``). Timing is by ``time.perf_counter``: sleep until ~2 ms before an event,
    then spin. Setting ``stop_event`` stops it and sends ``panic()``."""
    events = _sequence_events(seq)

    def run() -> None:
        t0 = time.perf_counter()
        for when, _kind, data in events:
            while True:
                if stop_event.is_set():
                    output.panic()
                    return
                left = t0 + when - time.perf_counter()
                if left <= 0:
                    break
                if left > 0.003:
                    stop_event.wait(min(left - 0.002, 0.05))
            output.send(data)

    if not start_thread:
        run()
        return None
    thread = threading.Thread(target=run, name="cadenza-midi-play", daemon=True)
    thread.start()
    return thread


def send_all(output: MidiOutput, messages: Iterable[Message]) -> None:
    for m in messages:
        output.send(m)
