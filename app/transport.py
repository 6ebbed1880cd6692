"""Playing music in real time: to MIDI outputs and/or to live FluidSynth voices on the audio engine.

Three pieces, none of them Qt:

* :func:`wait_until`: the low-jitter wait every sender here uses. It sleeps (on an event, so it
  can be woken) until about 2 ms before the deadline, then takes 0.1 ms naps (a nap releases
  the GIL; a pure spin would not). Timing threads ask for real-time scheduling
  (:func:`realtime_thread`) where the system allows it, as audio and MIDI programs do.
  Times are ``time.perf_counter()`` seconds.
* :class:`LiveSynth`: a FluidSynth synthesizer (the one of :class:`models.render.Renderer`, at
  the audio engine's rate) played live: ``send(midi_bytes)`` from any thread, and a render thread
  that writes small blocks and pushes them onto a bus of its own in the engine's mix
  (:meth:`app.audio_engine.AudioEngine.open_bus`; the bus's short queue paces it and is the
  audio latency). A sink like a MIDI output. Its base, :class:`LiveVoices`, is shared with the
  morph instrument's live voices (:class:`app.sampler.SamplerSynth`).
* :class:`Transport`: plays a :class:`NoteSequence` on one thread with tempo scaling and loop;
  :class:`Scheduler`: a stream of timed messages (the duet's answer as it is generated), with
  ``cancel(tag)``. Both track the notes they have sounding, so stopping sends a note-off for each
  of them and then ``panic()`` to every sink: nothing is left stuck.

A *sink* is anything with ``send(list[int])`` and ``panic()``: :class:`app.midi_ports.MidiOutput`
or a :class:`LiveVoices` (:class:`LiveSynth`, :class:`app.sampler.SamplerSynth`).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from app.midi_ports import NoteSink, normal_thread, realtime_thread
from models.errors import CadenzaError
from models.sequence import NoteSequence

__all__ = ["LiveSynth", "LiveVoices", "Scheduler", "Sink", "Transport", "normal_thread",
           "percentile", "realtime_thread", "wait_until"]

log = logging.getLogger(__name__)

SPIN_SECONDS = 0.002  # sleep until this long before an event, then nap/spin
SPLICE_MARGIN_S = 0.0015  # a note is not added into the block the callback takes sooner
_NAP = 0.0001
_JITTER_KEEP = 20000


class Sink(Protocol):
    def send(self, message: list[int]) -> None: ...

    def panic(self) -> None: ...


def wait_until(deadline: float, wake: threading.Event | None = None,
               spin: float = SPIN_SECONDS) -> bool:
    """Wait until ``perf_counter() >= deadline``; False (at once) when ``wake`` is set first."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return True
        if wake is not None and wake.is_set():
            return False
        if left > spin:
            if wake is not None:
                wake.wait(min(left - spin, 0.25))
            else:
                time.sleep(left - spin)
        else:
            # Short naps, never a pure spin: a spinning Python thread holds the GIL for up to
            # the switch interval (5 ms), which would stall rtmidi's JACK callbacks (and make
            # their JACK clients miss a cycle and drop MIDI).
            time.sleep(min(_NAP, left))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``; NaN when empty."""
    if not len(values):
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _note_key(data: list[int]) -> tuple[str, int, int] | None:
    """('on'|'off', channel, pitch) for note messages, else None."""
    if len(data) < 3:
        return None
    status, channel = data[0] & 0xF0, data[0] & 0x0F
    if status == 0x90 and data[2] > 0:
        return ("on", channel, data[1])
    if status == 0x80 or status == 0x90:
        return ("off", channel, data[1])
    return None


def _send_all(sinks: Sequence[Sink], data: list[int]) -> None:
    for sink in sinks:
        try:
            sink.send(data)
        except Exception:  # noqa: BLE001 - one broken sink must not silence the others
            log.exception("sending %s", data)


def _panic_all(sinks: Sequence[Sink]) -> None:
    for sink in sinks:
        try:
            sink.panic()
        except Exception:  # noqa: BLE001
            log.exception("panic")


# ---------------------------------------------------------------------------- live voices
class LiveVoices(NoteSink):
    """A sink that makes sound: voices rendered on a thread of its own, in blocks of the
    engine's blocksize, pushed onto a bus of its own in the engine's mix
    (:meth:`app.audio_engine.Bus.push_block`, which paces the thread: the bus's short queue is
    the audio latency). Closing it takes the bus out of the mix.

    Subclasses fill one stereo block in :meth:`_render` (called with ``_lock`` held, the lock
    that ``send`` and ``panic`` take too) and call :meth:`_start` at the end of their set-up.

    **A key sounds at the next block, not after the queue.** The thread renders a block when
    the bus has room for it and queues it under the lock, so every block rendered is either
    heard already or still queued. Voices that can render a note on its own
    (:class:`models.voicing.Voices`: ``take_fresh``, ``render(only=)``; :meth:`_voice_set`
    returns them) add a note that begins into the queued blocks (:meth:`_splice`, on the
    sender's thread): it sounds from the next block the device takes, within one block of the
    key press, while the queue still covers a late render. Events other than a note's start
    (releases, the pedal, bends) take effect from the next block rendered.
    """

    thread_name = "cadenza-live-voices"
    plays_drums = True  # General MIDI drums on channel 10 (a metronome's clicks)

    def __init__(self, engine: Any, queue_blocks: int | None = None) -> None:
        if not engine.sample_rate:
            raise CadenzaError("the audio engine is not started")
        self.engine = engine
        self.sample_rate = int(engine.sample_rate)
        self.bus = engine.open_bus(self.thread_name, queue_blocks)  # None: the engine's depth
        self._lock = threading.Lock()
        self._held: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.blocks_rendered = 0
        self.blocks_spliced = 0  # queued blocks a note was added into (_splice)
        self.peak = 0.0  # loudest sample since the last read of take_peak()
        self._solo = np.zeros(self.bus.queue_blocks * engine.blocksize, np.float32)  # _splice's

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _render(self, buf: np.ndarray) -> bool:
        """Fill ``buf`` (frames x 2, float32); False when there is nothing left to play."""
        raise NotImplementedError

    def _apply(self, data: list[int]) -> bool:
        """Play one MIDI message on the voices (``_lock`` held); False once closed."""
        raise NotImplementedError

    def send(self, message: list[int]) -> None:
        """One MIDI message from any thread; the keys held down are tracked for ``panic``."""
        data = list(message)
        if not data:
            return
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        with self._lock:
            if not self._apply(data):
                return
            if status == 0x90 and len(data) >= 3 and data[2] > 0:
                self._held.add((channel, data[1]))
                self._splice()
            elif status in (0x80, 0x90) and len(data) >= 3:
                self._held.discard((channel, data[1]))

    def _voice_set(self) -> Any:
        """The voices, when they can render a new note on its own (``take_fresh`` and
        ``render(frames, out, only=)``, :class:`models.voicing.Voices`); None otherwise."""
        return None

    def _splice(self) -> None:
        """Add the notes just begun into the blocks still queued (``_lock`` held). The block
        the callback takes next is left out when the callback is due within
        :data:`SPLICE_MARGIN_S`: the note then starts with the block after it, whole."""
        voices = self._voice_set()
        if voices is None:
            return
        fresh = voices.take_fresh()
        if not fresh.size:
            return
        blocks = self.bus.pending_blocks()
        if blocks and self.engine.to_next_block() < SPLICE_MARGIN_S:
            blocks = blocks[1:]
        # the block heard next at once (it has the least time left), the others in one call
        for group in (blocks[:1], blocks[1:]):
            frames = sum(block.shape[0] for block in group)
            if not frames or frames > self._solo.shape[0]:
                continue
            solo = voices.render(frames, self._solo, only=fresh)
            pos = 0
            for block in group:
                n = block.shape[0]
                block += solo[pos:pos + n, None]
                pos += n
            self.peak = max(self.peak, float(np.abs(solo[:frames]).max()))
            self.blocks_spliced += len(group)

    def _closed(self) -> None:
        """Release what the voices hold (called once, with ``_lock`` held, after the thread)."""

    @property
    def latency(self) -> float:
        """Seconds from ``send`` to the sound at the output, on average: half a block until the
        next callback, the queue when a new note cannot be added into it (:meth:`_splice`),
        and the device's output latency. What a metronome sends this early to be heard on
        its beat."""
        block = self.engine.blocksize / self.sample_rate
        queued = 0.0 if self._voice_set() is not None else self.bus.queue_blocks
        return (queued + 0.5) * block + float(self.engine.output_latency)

    def take_peak(self) -> float:
        peak, self.peak = self.peak, 0.0
        return peak

    def _run(self) -> None:
        realtime_thread(15)
        buf = np.zeros((self.engine.blocksize, 2), dtype=np.float32)
        try:
            while not self._stop.is_set():
                if not self.bus.wait_room(timeout=0.05):
                    continue
                with self._lock:  # rendered and queued as one step (see _splice)
                    if not self._render(buf):
                        break
                    peak = float(np.abs(buf).max())
                    if peak > self.peak:
                        self.peak = peak
                    np.clip(buf, -1.0, 1.0, out=buf)
                    if not self.bus.push_block(buf, timeout=0.05):  # there was room
                        continue
                self.blocks_rendered += 1
        except CadenzaError:  # the engine was closed (or lost)
            pass

    def close(self) -> None:
        if self._thread is None:
            return
        self.panic()
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        self.bus.close()
        with self._lock:
            self._closed()

    def __enter__(self) -> LiveVoices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveSynth(LiveVoices):
    """FluidSynth voices rendered live into an :class:`~app.audio_engine.AudioEngine`.

    ``engine`` must be started; the synth runs at its sample rate and renders blocks of the
    engine's blocksize onto a bus of its own with the engine's live queue depth (256 frames x 3
    blocks by default: about 16 ms at 48 kHz, plus the device's own buffer). ``renderer``: an
    existing :class:`models.render.Renderer` at that rate (its synthesizer is used live; it is
    closed with this object only if made here).
    """

    thread_name = "cadenza-live-synth"

    def __init__(self, engine: Any, soundfont: str | None = None, gain: float = 0.5,
                 renderer: Any = None) -> None:
        from models.render import Renderer

        super().__init__(engine)
        self._own_renderer = renderer is None
        try:
            self.renderer = renderer or Renderer(soundfont=soundfont,
                                                 sample_rate=self.sample_rate, gain=gain)
        except BaseException:
            self.bus.close()
            raise
        if self.renderer.sample_rate != self.sample_rate:
            self.bus.close()
            raise CadenzaError(f"the renderer runs at {self.renderer.sample_rate} Hz, the audio "
                               f"output at {self.sample_rate} Hz")
        self._open = True
        for channel in range(16):
            self.renderer.select_program(channel, 0)
        self._start()

    # ------------------------------------------------------------------ sink
    def _apply(self, data: list[int]) -> bool:
        if self._open:
            self.renderer.live_message(data)
        return self._open

    def panic(self) -> None:
        with self._lock:
            if not self._open:
                return
            for channel, pitch in sorted(self._held):
                self.renderer.live_message([0x80 | channel, pitch, 0])
            self._held.clear()
            for channel in range(16):
                self.renderer.live_message([0xB0 | channel, 64, 0])  # sustain off
                self.renderer.live_message([0xB0 | channel, 123, 0])  # all notes off

    # ------------------------------------------------------------------ render thread
    def _render(self, buf: np.ndarray) -> bool:
        if not self._open:
            return False
        self.renderer.write_block(buf)
        return True

    def _closed(self) -> None:
        self._open = False

    def close(self) -> None:
        owned = self._thread is not None and self._own_renderer
        super().close()
        if owned:
            self.renderer.close()


# ---------------------------------------------------------------------------- transport
class Transport:
    """Plays a sequence to sinks on one thread: ``play``, ``set_tempo``, ``stop``, loop.

    ``tempo`` scales time (2.0 plays twice as fast) and can change while playing; the position
    carries on from where it is. ``lateness`` keeps, for every message sent, how late it went out
    (seconds after its due time): its percentiles are the transport's jitter.
    """

    def __init__(self, sinks: Sequence[Sink], tempo: float = 1.0) -> None:
        self.sinks: list[Sink] = list(sinks)
        if tempo <= 0:
            raise CadenzaError("tempo must be positive")
        self._tempo = float(tempo)
        self.loop = False
        self.lateness: collections.deque[float] = collections.deque(maxlen=_JITTER_KEEP)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pos0 = 0.0  # sequence seconds at _t0
        self._t0 = 0.0
        self._length = 0.0
        self._sounding: set[tuple[int, int]] = set()
        self.on_finished: Callable[[], None] | None = None

    # ------------------------------------------------------------------ control
    def play(self, seq: NoteSequence, loop: bool = False, start: float = 0.0,
             tempo: float | None = None, at: float | None = None) -> None:
        """Stop whatever plays, then play ``seq`` from ``start`` seconds (sequence time);
        ``at``: the perf_counter time that position falls at (default: in 5 ms)."""
        from app.midi_ports import sequence_events

        self.stop()
        if tempo is not None:
            if tempo <= 0:
                raise CadenzaError("tempo must be positive")
            self._tempo = float(tempo)
        self.loop = loop
        events = sequence_events(seq)
        self._length = max(seq.total_time, max((e[0] for e in events), default=0.0))
        with self._lock:
            self._pos0 = float(start)
            # a little lead by default: the first event is on time
            self._t0 = time.perf_counter() + 0.005 if at is None else float(at)
        self._stop.clear()
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, args=(events,),
                                        name="cadenza-transport", daemon=True)
        self._thread.start()

    @property
    def tempo(self) -> float:
        return self._tempo

    def set_tempo(self, factor: float) -> None:
        if factor <= 0:
            raise CadenzaError("tempo must be positive")
        with self._lock:
            now = time.perf_counter()
            self._pos0 = self._pos0 + (now - self._t0) * self._tempo
            self._t0 = now
            self._tempo = float(factor)
        self._wake.set()

    def sync_to(self, position: float, at: float, tempo: float | None = None) -> None:
        """Lock the timeline: sequence time ``position`` falls at perf_counter time ``at``
        (and the tempo factor becomes ``tempo``): how a follower of an external clock keeps the
        transport on its beat. Events already sent are not sent again."""
        with self._lock:
            if tempo is not None:
                if tempo <= 0:
                    raise CadenzaError("tempo must be positive")
                self._tempo = float(tempo)
            self._pos0 = float(position)
            self._t0 = float(at)
        self._wake.set()

    @property
    def position(self) -> float:
        """Seconds into the sequence (sequence time)."""
        if not self.is_playing:
            return 0.0
        with self._lock:
            pos = self._pos0 + (time.perf_counter() - self._t0) * self._tempo
        return max(0.0, pos)

    @property
    def is_playing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self) -> None:
        """Stop at once: a note-off for every sounding note, then panic on every sink."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout=2.0)
        _panic_all(self.sinks)

    def close(self) -> None:
        self.stop()

    # ------------------------------------------------------------------ thread
    def _due(self, pos: float) -> float:
        with self._lock:
            return self._t0 + (pos - self._pos0) / self._tempo

    def _release(self) -> None:
        for channel, pitch in sorted(self._sounding):
            _send_all(self.sinks, [0x80 | channel, pitch, 0])
        self._sounding.clear()

    def _run(self, events: list[tuple[float, int, list[int]]]) -> None:
        realtime_thread()
        try:
            start = self._pos0
            i = next((k for k, e in enumerate(events) if e[0] >= start), len(events))
            # programs always go out, even when starting later
            for when, _kind, data in events:
                if when > 0:
                    break
                if data[0] & 0xF0 == 0xC0 and i > 0:
                    _send_all(self.sinks, data)
            while not self._stop.is_set():
                if i >= len(events):
                    end_due = self._due(self._length)
                    if not wait_until(end_due, self._wake):
                        if self._stop.is_set():
                            break
                        self._wake.clear()
                        continue
                    self._release()
                    if not self.loop:
                        break
                    with self._lock:  # seamless: the loop restarts exactly at the end time
                        self._t0 = end_due
                        self._pos0 = 0.0
                    i = 0
                    continue
                when, _kind, data = events[i]
                due = self._due(when)
                if not wait_until(due, self._wake):
                    if self._stop.is_set():
                        break
                    self._wake.clear()  # tempo changed: recompute the due time
                    continue
                _send_all(self.sinks, data)
                self.lateness.append(time.perf_counter() - due)
                key = _note_key(data)
                if key is not None:
                    if key[0] == "on":
                        self._sounding.add((key[1], key[2]))
                    else:
                        self._sounding.discard((key[1], key[2]))
                i += 1
        finally:
            self._release()
            if self._stop.is_set():
                _panic_all(self.sinks)
            elif self.on_finished is not None:
                self.on_finished()


# ---------------------------------------------------------------------------- scheduler
class Scheduler:
    """A thread that sends timed messages to sinks; for streams that grow while they play.

    ``schedule(when, message, tag)`` queues a message for ``perf_counter`` time ``when`` (past
    times go out at once). ``cancel(tag)`` drops that tag's pending messages and sends a note-off
    for each of its notes that sound. ``on_sent(tag, message, sent_at, due)`` is called on the
    scheduler thread after each message went out (keep it short).
    """

    def __init__(self, sinks: Sequence[Sink],
                 on_sent: Callable[[str, list[int], float, float], None] | None = None) -> None:
        self.sinks: list[Sink] = list(sinks)
        self.on_sent = on_sent
        self.lateness: collections.deque[float] = collections.deque(maxlen=_JITTER_KEEP)
        self._heap: list[tuple[float, int, str, int, list[int]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._gen: dict[str, int] = {}
        self._sounding: dict[str, set[tuple[int, int]]] = collections.defaultdict(set)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="cadenza-scheduler", daemon=True)
        self._thread.start()

    def schedule(self, when: float, message: list[int], tag: str = "") -> None:
        with self._cond:
            if self._stopped:
                return  # after stop() nothing new goes out: it could never be released
            item = (float(when), next(self._counter), tag, self._gen.setdefault(tag, 0),
                    list(message))
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:
                self._cond.notify()

    def pending(self, tag: str | None = None) -> int:
        with self._cond:
            return sum(1 for e in self._heap if tag is None or e[2] == tag)

    def sounding(self, tag: str | None = None) -> set[tuple[int, int]]:
        with self._send_lock:
            if tag is not None:
                return set(self._sounding.get(tag, set()))
            return set().union(*self._sounding.values()) if self._sounding else set()

    def cancel(self, tag: str) -> None:
        with self._cond:
            self._gen[tag] = self._gen.get(tag, 0) + 1
            self._heap = [e for e in self._heap if e[2] != tag]
            heapq.heapify(self._heap)
            self._cond.notify()
        with self._send_lock:
            for channel, pitch in sorted(self._sounding.pop(tag, set())):
                _send_all(self.sinks, [0x80 | channel, pitch, 0])

    def forget(self, tag: str) -> None:
        """Drop a finished tag's bookkeeping (a stream that ended or was cancelled); what is
        still queued under it is dropped too. Keeps a long session's memory flat."""
        self.cancel(tag)
        with self._cond:
            self._gen.pop(tag, None)
        with self._send_lock:
            self._sounding.pop(tag, None)

    def stop(self) -> None:
        """End the thread, release every sounding note, then panic every sink.

        The thread stops (and ``schedule`` refuses new messages) before the notes are released,
        so a note-on sent while stopping still gets its note-off.
        """
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self._cond:
            tags = set(self._gen) | {e[2] for e in self._heap} | set(self._sounding)
        for tag in tags:
            self.cancel(tag)
        _panic_all(self.sinks)

    close = stop

    def _run(self) -> None:
        realtime_thread()
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    left = self._heap[0][0] - time.perf_counter()
                    if left > SPIN_SECONDS:
                        self._cond.wait(min(left - SPIN_SECONDS, 0.25))
                        continue
                    break
                if self._stopped:
                    return
                due, _n, tag, gen, data = heapq.heappop(self._heap)
            wait_until(due)
            with self._send_lock:
                if gen != self._gen.get(tag):
                    continue  # cancelled (or forgotten) while we waited
                key = _note_key(data)
                if key is not None and key[0] == "on" and (key[1], key[2]) in self._sounding[tag]:
                    # A re-strike of a sounding key: release it first, so that every note-on
                    # keeps its own note-off (the set below tracks one per key).
                    _send_all(self.sinks, [0x80 | key[1], key[2], 0])
                _send_all(self.sinks, data)
                sent = time.perf_counter()
                if key is not None:
                    if key[0] == "on":
                        self._sounding[tag].add((key[1], key[2]))
                    else:
                        self._sounding[tag].discard((key[1], key[2]))
            self.lateness.append(sent - due)
            if self.on_sent is not None:
                try:
                    self.on_sent(tag, data, sent, due)
                except Exception:  # noqa: BLE001 - a listener must not stop the stream
                    log.exception("scheduler listener")
