"""MIDI ports: the only module that touches rtmidi (as Frescobaldi keeps one MIDI module).

The API is chosen once per :class:`MidiSystem`: the ALSA sequencer when ``/dev/snd/seq`` exists
and a client can be made, else JACK when a JACK server runs, else none (with a one-line reason).
RtMidi opens its JACK clients with ``JackNoStartServer``: probing never spawns a JACK server.

Ports are opened by case-insensitive name substring. Every output remembers the notes it has
sent and not released, so ``panic()`` leaves nothing stuck.

A :class:`MidiSystem` owns what it opened (ports, port watchers): ``close()`` closes them all,
and at exit (a bound method registered with ``atexit`` while it has outputs) it panics and closes
its outputs. Closing talks to the MIDI system, so it is bounded: the rtmidi calls run on a helper
thread and are abandoned after a deadline when the system has vanished. On JACK the system
watches the server (:class:`app.jack_watch.JackWatch`): when the server
goes away, ``lost`` says so, nothing new is opened, and :class:`app.devices.Devices` closes
every old port before any new JACK client is made (see ``app/jack_watch.py`` for why).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.bounded import call_within, keep_forever
from app.jack_watch import JackWatch
from models.errors import CadenzaError
from models.quiet import held_stderr
from models.sequence import DRUM_CHANNEL, NoteSequence

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
CLOSE_SECONDS = 0.8  # the longest a port's close waits for rtmidi before abandoning the call

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


class _Owned(Protocol):
    """What a :class:`MidiSystem` keeps of each thing it opened."""

    def close(self, timeout: float = CLOSE_SECONDS) -> None: ...


def _release(port: Any, name: str, timeout: float) -> threading.Thread | None:
    """Close and delete an rtmidi port or client within ``timeout`` (the thread when it had to
    be left running: see :mod:`app.bounded`)."""

    def release() -> None:
        port.close_port()
        port.delete()

    return call_within(release, timeout, f"cadenza-midi-close {name}")


class MidiOutput(NoteSink):
    """An open output port (or the virtual "Cadenza" port) that tracks sounding notes."""

    def __init__(self, port: Any, name: str, system: MidiSystem | None = None) -> None:
        self._port = port
        self.name = name
        self.system = system
        self._held: set[tuple[int, int]] = set()  # (channel, pitch)
        self._lock = threading.Lock()

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

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Panic (nothing left sounding), then close the port, waiting at most ``timeout`` for
        rtmidi (which waits up to 1 s for the queued messages to be delivered). Safe to call
        twice.

        An output of a JACK server that went away is not closed but kept as it is until the
        process ends (:func:`app.bounded.keep_forever`): RtMidi's close, and its destructor,
        would wait a second for the dead server's process callback while holding the GIL
        (every thread of the program stops meanwhile), and nothing can be delivered anyway.
        """
        if self._port is None:
            return
        lost = self.system is not None and bool(self.system.lost)
        if not lost:
            self.panic()
        with self._lock:
            port, self._port = self._port, None
            self._held.clear()
        if port is None:
            return
        pending = None
        if lost:
            keep_forever(port)
        else:
            pending = _release(port, self.name, timeout)
        if self.system is not None:
            self.system.forget(self, pending)

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
                 thru: MidiOutput | None = None, system: MidiSystem | None = None) -> None:
        self._port = port
        self.name = name
        self.thru = thru
        self.system = system
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

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop reading and close the port (waiting at most ``timeout`` for rtmidi). Safe while
        messages arrive (mid-phrase), and twice."""
        port, self._port = self._port, None
        if port is None:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        pending = _release(port, self.name, timeout)
        if self.system is not None:
            self.system.forget(self, pending)

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MidiSystem:
    """The MIDI API in use on this machine (ALSA, JACK or none) and the ports opened on it.

    Made by :class:`app.devices.Devices`, the one owner of the process's MIDI; it owns what it
    opens (see the module's docstring): ``close()`` closes all of it.
    """

    def __init__(self, client_name: str = CLIENT_NAME) -> None:
        self.client_name = client_name
        self._api, self.api_name, self.reason = _probe()
        self._lock = threading.RLock()
        self._owned: list[_Owned] = []
        self._pending: list[threading.Thread] = []  # closes still running past their deadline
        self._watch = JackWatch() if self.is_jack else None
        self._lost = ""
        self._closed = False
        self._exit_registered = False

    @property
    def available(self) -> bool:
        return self._api is not None and not self._closed

    @property
    def api(self) -> int | None:
        """The rtmidi API constant in use (None without a MIDI system)."""
        return self._api

    @property
    def is_jack(self) -> bool:
        return self._api is not None and self.api_name == "JACK"

    @property
    def lost(self) -> str:
        """Why the MIDI system went away ("" while it works): the JACK server stopped."""
        if not self._lost and self._watch is not None:
            self._lost = self._watch.lost_reason()
        return self._lost

    def _require(self) -> Any:
        if self._api is None:
            raise CadenzaError(self.reason)
        if self._closed:
            raise CadenzaError("the MIDI system is closed")
        if self.lost:
            raise CadenzaError(f"MIDI ({self.api_name}) was lost: {self.lost}; reconnect")
        return _rtmidi()

    # ------------------------------------------------------------------ what it owns
    def adopt(self, obj: _Owned) -> None:
        """Own ``obj`` (a port or watcher opened on this system): closed with it."""
        with self._lock:
            self._owned.append(obj)
            if isinstance(obj, MidiOutput) and not self._exit_registered:
                self._exit_registered = True
                atexit.register(self._close_at_exit)

    def forget(self, obj: object, pending: threading.Thread | None = None) -> None:
        """``obj`` was closed (``pending``: its rtmidi close still running past the
        deadline)."""
        with self._lock:
            self._owned = [o for o in self._owned if o is not obj]
            if pending is not None:
                self._pending.append(pending)

    def client(self, kind: str, suffix: str = "") -> Any:
        """A bare rtmidi client (``"in"`` or ``"out"``) named after this system (``suffix``
        appended), to list ports or open one on; the caller deletes it."""
        rtmidi = self._require()
        name = f"{self.client_name} {suffix}".strip()
        try:
            if kind == "in":
                return rtmidi.MidiIn(self._api, name=name, queue_size_limit=1024)
            return rtmidi.MidiOut(self._api, name=name)
        except rtmidi.SystemError as exc:  # the server went away since the probe
            raise CadenzaError(f"MIDI ({self.api_name}) is not usable any more: {exc}") from exc

    def open_outputs(self) -> list[MidiOutput]:
        """Outputs opened here and not closed yet."""
        with self._lock:
            return [o for o in self._owned if isinstance(o, MidiOutput) and not o.closed]

    def panic_all(self) -> None:
        """Panic on every open output (at exit, so nothing is left sounding on a synthesizer
        when Cadenza quits, crashes out of Python, or is stopped with Ctrl+C)."""
        for output in self.open_outputs():
            try:
                output.panic()
            except Exception:  # noqa: BLE001 - do what can be done
                pass

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Close everything it opened, all at once, waiting at most ``timeout`` in all (outputs
        panic first). What is still closing after that goes on by itself (see
        :meth:`wait_closed`). Safe to call twice."""
        with self._lock:
            owned, self._owned = list(self._owned), []
            self._closed = True
        deadline = time.monotonic() + timeout
        threads = []
        for obj in owned:
            thread = threading.Thread(target=obj.close, kwargs={"timeout": timeout},
                                      name="cadenza-midi-close", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._pending += [t for t in threads if t.is_alive()]
        if self._exit_registered:
            atexit.unregister(self._close_at_exit)
            self._exit_registered = False

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every close that went past its deadline has finished (a JACK client must
        not be made while old ones of a server that went away are still closing)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._pending)
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._pending = [t for t in self._pending if t.is_alive()]
            return not self._pending

    def _close_at_exit(self) -> None:
        """At exit: panic and close every open port. Closing waits (rtmidi, at most 1 s) until
        an output has delivered what was queued, so the note-offs reach the synthesizer before
        the process is gone; all ports close at once, so that is 1 s at most in all."""
        self._exit_registered = False
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at exit, do what can be done
            pass

    # ------------------------------------------------------------------ ports
    def list_outputs(self) -> list[str]:
        if not self.available or self.lost:
            return []
        port = self.client("out")
        try:
            return list(port.get_ports())
        finally:
            port.delete()

    def list_inputs(self) -> list[str]:
        if not self.available or self.lost:
            return []
        port = self.client("in")
        try:
            return list(port.get_ports())
        finally:
            port.delete()

    def match_input(self, name_substring: str | None) -> str:
        """The full name of the input port ``name_substring`` picks (as ``open_input`` does)."""
        ports = self.list_inputs()
        return ports[_match(ports, name_substring, "input")]

    def match_output(self, name_substring: str | None) -> str:
        ports = self.list_outputs()
        return ports[_match(ports, name_substring, "output")]

    def open_output(self, name_substring: str | None = None) -> MidiOutput:
        """The output port whose name contains ``name_substring`` (the first one if None)."""
        port = self.client("out")
        try:
            ports = list(port.get_ports())
            index = _match(ports, name_substring, "output")
            port.open_port(index, name=f"{self.client_name} out")
        except BaseException:
            port.delete()
            raise
        output = MidiOutput(port, ports[index], system=self)
        self.adopt(output)
        return output

    def open_virtual_output(self, name: str = CLIENT_NAME) -> MidiOutput:
        """A port other programs (a DAW) can connect to and record from."""
        port = self.client("out")
        try:
            port.open_virtual_port(name)
        except Exception as exc:
            port.delete()
            raise CadenzaError(f"cannot open a virtual MIDI port ({self.api_name}): {exc}") from exc
        output = MidiOutput(port, name, system=self)
        self.adopt(output)
        return output

    def open_input(
        self,
        name_substring: str | None,
        callback: Callable[[list[int], float], None],
        sysex: bool = False,
        thru: MidiOutput | None = None,
        timing: bool = False,
    ) -> MidiInput:
        """Open the input port matching ``name_substring``; ``callback`` runs on the input's
        polling thread (keep it short). ``thru`` forwards every message. ``timing``: let MIDI
        clock and its Start/Stop/Continue/Song Position through (a clock follower)."""
        port = self.client("in")
        try:
            ports = list(port.get_ports())
            index = _match(ports, name_substring, "input")
            port.ignore_types(sysex=not sysex, timing=not timing, active_sense=True)
            port.open_port(index, name=f"{self.client_name} in")
        except BaseException:
            port.delete()
            raise
        inp = MidiInput(port, ports[index], callback, thru=thru, system=self)
        self.adopt(inp)
        return inp

    def watch_ports(self, on_change: Callable[[PortChanges], None] | None = None,
                    interval: float = 1.0) -> PortWatcher:
        """A :class:`PortWatcher` on this system (closed with it)."""
        return PortWatcher(self, on_change=on_change, interval=interval)

    def describe(self) -> list[str]:
        """Lines for ``cadenza devices``: the API in use and its ports, or why there is none."""
        if self._api is None:
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
    ``failed`` says why polling stopped working ("" while it works): the listing failed, or the
    MIDI system was lost.
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
        self.failed = ""
        self._in: Any = None
        self._out: Any = None
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if system.available:
            try:
                self._in = system.client("in", "watch")
                self._out = system.client("out", "watch")
                self.inputs = list(self._in.get_ports())
                self.outputs = list(self._out.get_ports())
            except Exception as exc:  # noqa: BLE001 - the server went away meanwhile
                log.warning("MIDI port watcher: %s", exc)
                self.failed = str(exc)
                self._delete_clients()
            else:
                system.adopt(self)

    def _delete_clients(self, timeout: float = CLOSE_SECONDS) -> threading.Thread | None:
        clients = [c for c in (self._in, self._out) if c is not None]
        self._in = self._out = None
        if not clients:
            return None

        def delete() -> None:
            for client in clients:
                client.delete()

        return call_within(delete, timeout, "cadenza-midi-close watcher")

    def poll(self) -> PortChanges:
        with self._lock:
            if self._in is None or self._out is None:
                return PortChanges()
            lost = self.system.lost
            if lost:
                self.failed = lost
                return PortChanges()
            try:
                inputs = list(self._in.get_ports())
                outputs = list(self._out.get_ports())
            except Exception as exc:  # noqa: BLE001
                log.warning("MIDI port listing failed: %s", exc)
                self.failed = f"listing the MIDI ports failed: {exc}"
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

    def stop(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop polling and let go of the listing clients (within ``timeout``)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.interval + 2.0)
        with self._lock:
            had = self._in is not None or self._out is not None
            pending = self._delete_clients(timeout)
        if had:
            self.system.forget(self, pending)

    close = stop

    def __enter__(self) -> PortWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------- playback helper
def sequence_events(seq: NoteSequence) -> list[tuple[float, int, list[int]]]:
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
    events = sequence_events(seq)

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
