"""MIDI ports: the only module that touches rtmidi (as Frescobaldi keeps one MIDI module).

The API is chosen once per :class:`MidiSystem`: the ALSA sequencer when ``/dev/snd/seq`` exists
and a client can be made, else JACK when a JACK server runs, else none (with a one-line reason).
``JACK_NO_START_SERVER=1`` is set before any probe, so probing never spawns a JACK server.

Ports are opened by case-insensitive name substring. Every output remembers the notes it has
sent and not released, so ``panic()`` leaves nothing stuck.

Known limitation of JACK MIDI (not of ALSA): RtMidi unregisters a port while its JACK client is
still active, and libjack's notification thread walks the client's port list without a lock
when the server sends a latency notification (jack2 issues #216 and #340; JACK's advice is to
deactivate a client before unregistering its ports, which RtMidi does not do and python-rtmidi
does not expose). Closing a port can therefore, rarely, crash the process. With
``scripts/jack_port_stress.py`` (cycles of three ports opened and closed) that was about once in
500 to 1,000 cycles while the CPU was overloaded and the server's notifications timed out, and
never in 1,300 cycles without the overload. ALSA, the usual MIDI system of a Linux desktop, is
not affected.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from models.errors import CadenzaError
from models.quiet import held_stderr
from models.sequence import DRUM_CHANNEL, NoteSequence

os.environ["JACK_NO_START_SERVER"] = "1"

log = logging.getLogger(__name__)

CLIENT_NAME = "Cadenza"
NO_MIDI = (
    "no MIDI system: no ALSA sequencer (/dev/snd/seq) and no JACK server running; "
    "Cadenza works without MIDI devices"
)
ALL_SOUND_OFF = 120
ALL_NOTES_OFF = 123
SUSTAIN = 64
POLL_SECONDS = 0.001  # how often an input takes messages from rtmidi's queue

Message = bytes | bytearray | list[int] | tuple[int, ...] | Any  # or a mido.Message


def realtime_thread(priority: int = 20) -> bool:
    """Ask for real-time (SCHED_FIFO) scheduling for the calling thread, as audio/MIDI apps do
    for their timing threads; False when not allowed (no CAP_SYS_NICE / rtprio limit) or when
    ``CADENZA_NO_REALTIME`` is set. The threads that get it only sleep, spin for at most
    ``SPIN_SECONDS`` or do short bursts of work."""
    if os.environ.get("CADENZA_NO_REALTIME") or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


def normal_thread() -> None:
    """Back to normal scheduling (a thread that ran a real-time part and goes on)."""
    if hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


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
        with held_stderr():  # libjack's own lines when no server runs; said below instead
            try:
                rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{CLIENT_NAME} probe").delete()
                found = True
            except rtmidi.SystemError:  # type: ignore[attr-defined]
                found = False
        if found:
            return rtmidi.API_UNIX_JACK, "JACK", ""
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


class NoteSink:
    """Note helpers for an output with ``send(data)``, a ``_lock`` and a ``_held`` set of
    ``(channel, pitch)``: a MIDI port or the live synth."""

    _lock: threading.Lock
    _held: set[tuple[int, int]]

    def send(self, data: Any) -> None:
        raise NotImplementedError

    def note_on(self, channel: int, pitch: int, velocity: int) -> None:
        self.send([0x90 | channel, pitch, velocity])

    def note_off(self, channel: int, pitch: int) -> None:
        self.send([0x80 | channel, pitch, 0])

    @property
    def held_notes(self) -> set[tuple[int, int]]:
        with self._lock:
            return set(self._held)


class MidiOutput(NoteSink):
    """An open output port (or the virtual "Cadenza" port) that tracks sounding notes."""

    def __init__(self, port: Any, name: str) -> None:
        self._port = port
        self.name = name
        self._held: set[tuple[int, int]] = set()  # (channel, pitch)
        self._lock = threading.Lock()
        _register_output(self)

    @property
    def closed(self) -> bool:
        return self._port is None

    def send(self, message: Message) -> None:
        data = _to_bytes(message)
        status = data[0] & 0xF0
        channel = data[0] & 0x0F
        with self._lock:
            if self._port is None:
                return  # closed (at exit, or the port went away): nothing to send to
            if status == 0x90 and len(data) >= 3 and data[2] > 0:
                self._held.add((channel, data[1]))
            elif status == 0x80 or (status == 0x90 and len(data) >= 3 and data[2] == 0):
                self._held.discard((channel, data[1]))
            self._port.send_message(data)

    def panic(self) -> None:
        """Note-offs for every held note, then sustain off, all notes off, all sound off."""
        with self._lock:
            if self._port is None:
                return
            held, self._held = sorted(self._held), set()
            for channel, pitch in held:
                self._port.send_message([0x80 | channel, pitch, 0])
            for channel in range(16):
                self._port.send_message([0xB0 | channel, SUSTAIN, 0])
                self._port.send_message([0xB0 | channel, ALL_NOTES_OFF, 0])
                self._port.send_message([0xB0 | channel, ALL_SOUND_OFF, 0])

    def close(self) -> None:
        """Panic (nothing left sounding), then close the port. Safe to call twice."""
        if self._port is not None:
            self.panic()
            with self._lock:
                port, self._port = self._port, None
            port.close_port()
            port.delete()

    def __enter__(self) -> MidiOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidiInput:
    """An open input port; ``callback(message_bytes: list[int], delta_seconds: float)``.

    Messages are taken from rtmidi's queue by a polling thread of ours (every
    ``POLL_SECONDS``, with real-time scheduling where allowed) rather than by an rtmidi
    callback: a Python callback would run on the MIDI system's own thread (JACK's process
    thread) and wait there for the GIL, and a JACK client that is late drops MIDI. The callback
    runs on that polling thread; keep it short (queue the message and return).

    ``thru``: an output every incoming message is forwarded to (MIDI thru), before the callback
    runs; set or clear it any time with :meth:`set_thru`.
    """

    def __init__(self, port: Any, name: str, callback: Callable[[list[int], float], None],
                 thru: MidiOutput | None = None) -> None:
        self._port = port
        self.name = name
        self.thru = thru
        self.received = 0
        self._callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="cadenza-midi-in", daemon=True)
        self._thread.start()

    def set_thru(self, output: MidiOutput | None) -> None:
        self.thru = output

    def _poll(self) -> None:
        realtime_thread()
        port = self._port
        while not self._stop.is_set():
            try:
                event = port.get_message()
            except Exception:  # noqa: BLE001 - the port went away under us
                log.exception("reading MIDI input %s", self.name)
                return
            if event is None:
                time.sleep(POLL_SECONDS)
                continue
            self._dispatch(event)

    def _dispatch(self, event: Any) -> None:
        message, delta = list(event[0]), float(event[1])
        self.received += 1
        thru = self.thru
        if thru is not None and not thru.closed:
            try:
                thru.send(message)
            except Exception:  # noqa: BLE001 - a failing thru must not stop the input
                log.exception("MIDI thru to %s", thru.name)
        try:
            self._callback(message, delta)
        except Exception:  # noqa: BLE001 - one bad message must not stop the input
            log.exception("MIDI input callback")

    @property
    def closed(self) -> bool:
        return self._port is None

    def close(self) -> None:
        """Stop reading and close the port. Safe while messages arrive (mid-phrase)."""
        if self._port is not None:
            self._stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join(timeout=2.0)
            port, self._port = self._port, None
            port.close_port()
            port.delete()

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
            port = rtmidi.MidiOut(self._api, name=self.client_name)
        except rtmidi.SystemError as exc:  # the server went away since the probe
            raise CadenzaError(f"MIDI ({self.api_name}) is not usable any more: {exc}") from exc
        return port

    def _in(self) -> Any:
        rtmidi = self._require()
        try:
            port = rtmidi.MidiIn(self._api, name=self.client_name, queue_size_limit=1024)
        except rtmidi.SystemError as exc:
            raise CadenzaError(f"MIDI ({self.api_name}) is not usable any more: {exc}") from exc
        return port

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
        thru: MidiOutput | None = None,
    ) -> MidiInput:
        """Open the input port matching ``name_substring``; ``callback`` runs on the input's
        polling thread (keep it short). ``thru`` forwards every message."""
        port = self._in()
        try:
            ports = list(port.get_ports())
            index = _match(ports, name_substring, "input")
            port.ignore_types(sysex=not sysex, timing=True, active_sense=True)
            port.open_port(index, name=f"{self.client_name} in")
        except BaseException:
            port.delete()
            raise
        return MidiInput(port, ports[index], callback, thru=thru)

    def describe(self) -> list[str]:
        if not self.available:
            return [self.reason]
        lines = [f"API: {self.api_name}"]
        outs, ins = self.list_outputs(), self.list_inputs()
        lines.append("outputs: " + (", ".join(outs) if outs else "none"))
        lines.append("inputs: " + (", ".join(ins) if ins else "none"))
        return lines


@dataclass
class PortChanges:
    """What a :class:`PortWatcher` poll found: port names that appeared or went away."""

    added_inputs: list[str] = field(default_factory=list)
    removed_inputs: list[str] = field(default_factory=list)
    added_outputs: list[str] = field(default_factory=list)
    removed_outputs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added_inputs or self.removed_inputs or self.added_outputs
                    or self.removed_outputs)

    def describe(self) -> str:
        parts = []
        for label, names in (("input added", self.added_inputs),
                             ("input removed", self.removed_inputs),
                             ("output added", self.added_outputs),
                             ("output removed", self.removed_outputs)):
            parts += [f"{label}: {n}" for n in names]
        return "; ".join(parts)


class PortWatcher:
    """Notices MIDI ports that appear or disappear (a keyboard plugged in or out).

    ``poll()`` compares the port lists with the last ones and returns a :class:`PortChanges`
    (also passed to ``on_change`` when something changed). The GUI calls ``poll()`` from a
    ``QTimer`` every second; headless code calls ``start()`` for a thread that polls every
    ``interval`` seconds until ``stop()``. One listing client per direction is kept open, so a
    poll does not register a new MIDI client each time (cheap on JACK and ALSA alike).
    """

    def __init__(
        self,
        system: MidiSystem,
        on_change: Callable[[PortChanges], None] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.system = system
        self.on_change = on_change
        self.interval = float(interval)
        self._in: Any = None
        self._out: Any = None
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if system.available:
            try:
                rtmidi = _rtmidi()
                self._in = rtmidi.MidiIn(system._api, name=f"{system.client_name} watch")
                self._out = rtmidi.MidiOut(system._api, name=f"{system.client_name} watch")
                self.inputs = list(self._in.get_ports())
                self.outputs = list(self._out.get_ports())
            except Exception as exc:  # noqa: BLE001 - the server went away meanwhile
                log.warning("MIDI port watcher: %s", exc)
                self._delete_clients()

    def _delete_clients(self) -> None:
        for client in (self._in, self._out):
            if client is not None:
                client.delete()
        self._in = self._out = None

    def poll(self) -> PortChanges:
        with self._lock:
            if self._in is None or self._out is None:
                return PortChanges()
            try:
                inputs = list(self._in.get_ports())
                outputs = list(self._out.get_ports())
            except Exception as exc:  # noqa: BLE001
                log.warning("MIDI port listing failed: %s", exc)
                return PortChanges()
            changes = PortChanges(
                added_inputs=[p for p in inputs if p not in self.inputs],
                removed_inputs=[p for p in self.inputs if p not in inputs],
                added_outputs=[p for p in outputs if p not in self.outputs],
                removed_outputs=[p for p in self.outputs if p not in outputs],
            )
            self.inputs, self.outputs = inputs, outputs
        if changes and self.on_change is not None:
            self.on_change(changes)
        return changes

    def start(self) -> None:
        """Poll on a thread (headless use); ``on_change`` runs on that thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cadenza-midi-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("MIDI port watcher")

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.interval + 2.0)
        with self._lock:
            self._delete_clients()

    def __enter__(self) -> PortWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- panic at exit
_open_outputs: weakref.WeakSet[MidiOutput] = weakref.WeakSet()
_atexit_registered = False
_registry_lock = threading.Lock()


def _register_output(output: MidiOutput) -> None:
    global _atexit_registered
    with _registry_lock:
        _open_outputs.add(output)
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(_close_all_at_exit)


def open_outputs() -> list[MidiOutput]:
    """Outputs opened in this process and not closed yet."""
    with _registry_lock:
        return [o for o in _open_outputs if not o.closed]


def panic_all() -> None:
    """Panic on every open output: runs at exit (atexit), so nothing is left sounding on a
    synthesizer when Cadenza quits, crashes out of Python, or is stopped with Ctrl+C."""
    for output in open_outputs():
        try:
            output.panic()
        except Exception:  # noqa: BLE001 - at exit, do what can be done
            pass


def _close_all_at_exit() -> None:
    """At exit: panic and close every open output. Closing waits (rtmidi, at most 1 s) until
    the port has delivered what was queued, so the note-offs reach the synthesizer before the
    process is gone."""
    for output in open_outputs():
        try:
            output.close()
        except Exception:  # noqa: BLE001 - at exit, do what can be done
            pass


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
