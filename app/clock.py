"""MIDI clock: sending it (:class:`ClockOut`) and following it (:class:`ClockIn`), no Qt.

MIDI clock is 24 pulses per quarter note (``0xF8``) with Start (``0xFA``), Continue (``0xFB``),
Stop (``0xFC``) and Song Position Pointer (``0xF2``, in sixteenth notes).

* :class:`ClockOut` sends it to outputs on a dedicated timing thread of its own (real-time
  priority where the system allows it, above the transport's). Every pulse has an absolute
  deadline on the monotonic ``perf_counter`` timeline: pulse ``n`` is due at
  ``anchor_time + (n - anchor_pulse) * period``, so a late pulse never delays the next ones
  (no accumulated sleeps); a tempo change re-anchors at the last pulse sent. Control messages
  go out on the same thread, in order with the pulses.
* :class:`ClockIn` follows a clock: fed ``(message, time)``, it estimates the tempo by a least
  squares line through the recent pulses (smooth under jitter; a pulse that arrives a whole
  period late counts the missing ones), restarts the line when the pulses drift away from it
  (a tempo change), and tells a listener about start, stop, continue, song position, each beat
  and a lost clock (no pulse for ``lost_after`` seconds while running).
* :class:`ClockInput` is a :class:`ClockIn` on a MIDI input port (timing messages let through,
  arrival times taken from rtmidi's timestamps), with a watchdog thread for a lost clock.
* :class:`ClockFollower` makes a :class:`app.transport.Transport` follow a :class:`ClockIn`.

:class:`app.devices.Devices` opens the clock ports (``open_clock_out``, ``open_clock_in``);
the MIDI system owns them, so they close with it.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from app.transport import Sink, normal_thread, realtime_thread, wait_until
from models import limits
from models.errors import CadenzaError

log = logging.getLogger(__name__)

PPQN = 24
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
CLOCK_PRIORITY = 30  # above the transport's and the scheduler's threads (20)
MIN_BPM, MAX_BPM = limits.TEMPO_MIN, limits.TEMPO_MAX
_KEEP = 20000
STEP = PPQN // 4  # a sixteenth note: the follower locks on every one
MIN_FIT = 8  # pulses a new line needs before its own slope is the tempo
MISSING_GAP = 1.75  # a gap this many periods long or more means pulses went missing


def check_bpm(bpm: float) -> float:
    bpm = float(bpm)
    if not math.isfinite(bpm) or not MIN_BPM <= bpm <= MAX_BPM:
        raise CadenzaError(f"tempo must be {MIN_BPM:g} to {MAX_BPM:g} BPM, not {bpm:g}")
    return bpm


def song_position(beats: float) -> list[int]:
    """The Song Position Pointer message for a position in quarter notes (sixteenths, 14 bits)."""
    sixteenths = max(0, min(16383, int(round(beats * 4))))
    return [SONG_POSITION, sixteenths & 0x7F, sixteenths >> 7]


# ---------------------------------------------------------------------------- clock out
class ClockOut:
    """MIDI clock to ``outputs`` (sinks: ``send(list[int])``) on a timing thread of its own.

    ``start(at)`` sends Start and pulses from ``at`` (``perf_counter`` time, default now);
    ``start(at, beats)`` with a position sends Song Position then Continue, and the pulses go on
    from that position; ``stop()`` sends Stop (no pulse after it); ``set_tempo(bpm)`` any time.
    ``lateness`` keeps how late each pulse went out (seconds after its deadline).
    ``close()`` stops the clock (Stop sent when running) and ends the thread; it does not close
    the outputs unless ``own_outputs``.
    """

    def __init__(self, outputs: Sequence[Sink], bpm: float = 120.0,
                 own_outputs: bool = False) -> None:
        self.outputs: list[Any] = list(outputs)
        self.own_outputs = own_outputs
        self.system: Any = None  # the MIDI system that owns it (told when it is closed)
        self.lateness: collections.deque[float] = collections.deque(maxlen=_KEEP)
        self.sent_times: collections.deque[float] = collections.deque(maxlen=_KEEP)
        self.on_beat: Callable[[int, float], None] | None = None  # (beat, due), timing thread
        self._bpm = check_bpm(bpm)
        self._cond = threading.Condition()
        self._control: collections.deque[tuple[float, list[int]]] = collections.deque()
        self._running = False
        self._next = 0  # index of the next pulse (24 per beat from the song's start)
        self._anchor_n = 0
        self._anchor_t = 0.0
        self._closed = False
        self.realtime = False
        self._thread = threading.Thread(target=self._run, name="cadenza-midi-clock",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ control
    @property
    def bpm(self) -> float:
        return self._bpm

    @property
    def period(self) -> float:
        """Seconds between pulses."""
        return 60.0 / (self._bpm * PPQN)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self, at: float | None = None, beats: float = 0.0) -> None:
        """Start the clock at ``at`` (perf_counter seconds; now when None) from ``beats``
        quarter notes into the song (0: Start; otherwise Song Position and Continue; the
        position is rounded to a sixteenth, which is what Song Position can say)."""
        at = time.perf_counter() if at is None else float(at)
        sixteenths = max(0, min(16383, int(round(beats * 4))))
        with self._cond:
            self._require_open()
            if self._running:
                self._control.append((at, [STOP]))
            if sixteenths == 0:
                self._control.append((at, [START]))
            else:
                self._control.append((at, song_position(sixteenths / 4)))
                self._control.append((at, [CONTINUE]))
            self._running = True
            self._next = self._anchor_n = sixteenths * (PPQN // 4)
            self._anchor_t = at
            self._cond.notify()

    def stop(self, at: float | None = None) -> None:
        """Send Stop (at ``at``, default now); no pulse goes out after it."""
        at = time.perf_counter() if at is None else float(at)
        with self._cond:
            if self._closed or not self._running:
                return
            self._running = False
            self._control.append((at, [STOP]))
            self._cond.notify()

    def set_tempo(self, bpm: float) -> None:
        """A new tempo from the next pulse on (re-anchored at the last pulse sent)."""
        bpm = check_bpm(bpm)
        with self._cond:
            if self._running:
                last = self._next - 1
                if last >= self._anchor_n:
                    self._anchor_t = self._due(last)
                    self._anchor_n = last
            self._bpm = bpm
            self._cond.notify()

    def locate(self, beats: float, at: float) -> None:
        """Re-anchor the running clock so that position ``beats`` falls at time ``at`` (a
        follower of Link or of another clock corrects its phase this way). No pulse is sent
        twice or left out: the next pulse is only moved in time (one already late goes out at
        once)."""
        with self._cond:
            if not self._running:
                return
            pulse = beats * PPQN
            self._anchor_n = math.floor(pulse) + 1
            self._anchor_t = float(at) + (self._anchor_n - pulse) * self.period
            self._cond.notify()

    def position(self, now: float | None = None) -> float:
        """Beats (quarter notes) since the song's start, while running; else the last one."""
        now = time.perf_counter() if now is None else now
        with self._cond:
            if not self._running:
                return self._next / PPQN
            return (self._anchor_n + (now - self._anchor_t) / self.period) / PPQN

    def _due(self, n: int) -> float:
        return self._anchor_t + (n - self._anchor_n) * self.period

    def _require_open(self) -> None:
        if self._closed:
            raise CadenzaError("the MIDI clock is closed")

    # ------------------------------------------------------------------ thread
    def _send(self, data: list[int]) -> None:
        for out in self.outputs:
            try:
                out.send(data)
            except Exception:  # noqa: BLE001 - one broken output must not stop the clock
                log.exception("MIDI clock to %s", getattr(out, "name", out))

    def _run(self) -> None:
        self.realtime = realtime_thread(CLOCK_PRIORITY)
        try:
            while True:
                with self._cond:
                    if self._closed and not self._control:
                        return
                    due = math.inf
                    if self._control:
                        due = self._control[0][0]
                    if self._running:
                        due = min(due, self._due(self._next))
                    if due == math.inf:
                        self._cond.wait(0.25)
                        continue
                    left = due - time.perf_counter()
                    if left > 0.002:
                        self._cond.wait(min(left - 0.002, 0.25))
                        continue  # woken (a change) or near the deadline: look again
                wait_until(due)
                with self._cond:
                    now = time.perf_counter()
                    if self._control and self._control[0][0] <= now:
                        _t, data = self._control.popleft()
                        pulse = None
                    elif self._running and self._due(self._next) <= now:
                        data = [CLOCK]
                        pulse = self._next
                        pulse_due = self._due(pulse)
                        self._next += 1
                    else:
                        continue  # the plan changed while we waited
                self._send(data)
                if pulse is not None:
                    sent = time.perf_counter()
                    self.lateness.append(sent - pulse_due)
                    self.sent_times.append(sent)
                    if pulse % PPQN == 0 and self.on_beat is not None:
                        try:
                            self.on_beat(pulse // PPQN, pulse_due)
                        except Exception:  # noqa: BLE001 - a listener must not stop the clock
                            log.exception("clock beat listener")
        finally:
            normal_thread()

    def close(self, timeout: float = 1.0) -> None:
        """Stop (Stop sent when running), end the thread; the outputs too if ``own_outputs``.
        Safe twice."""
        with self._cond:
            if self._closed:
                return
            if self._running:
                self._running = False
                self._control.append((time.perf_counter(), [STOP]))
            self._closed = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self.own_outputs:
            for out in self.outputs:
                try:
                    out.close()
                except Exception:  # noqa: BLE001 - closing must finish
                    log.exception("closing a clock output")
        if self.system is not None:
            self.system.forget(self)

    def __enter__(self) -> ClockOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- clock in
def _line(points: Sequence[tuple[int, float]]) -> tuple[float, float] | None:
    """The least squares line ``t = a + b * index`` through ``points`` (None under two)."""
    n = len(points)
    if n < 2:
        return None
    mean_i = sum(p[0] for p in points) / n
    mean_t = sum(p[1] for p in points) / n
    sii = sum((p[0] - mean_i) ** 2 for p in points)
    if sii <= 0:
        return None
    slope = sum((p[0] - mean_i) * (p[1] - mean_t) for p in points) / sii
    return mean_t - slope * mean_i, slope


class ClockIn:
    """Follows a MIDI clock fed as ``feed(message, t)`` (``t``: arrival, perf_counter seconds).

    ``listener(event, clock)`` is called with ``"start"``, ``"continue"``, ``"stop"``,
    ``"position"`` (Song Position while stopped), ``"step"`` (every 6th pulse, a sixteenth;
    ``clock.pulse`` says which), ``"beat"`` (every 24th pulse, with ``clock.beat`` the beat
    number), ``"lost"`` (see :meth:`check_lost`), on the feeding thread.

    The tempo is the slope of a least squares line through the last ``window`` pulses (index
    against time). Once the line has 16 pulses, a gap of 1.75 periods or more that also lands
    3/4 of a period or more off the line counts the pulses missed in it; when the next pulse
    then comes bunched right after it, they were held up on the way, not missed, and are
    counted back. Pulses far late of the line (held up) are left out of its fit.
    When ``drift_pulses`` pulses in a row land more than the tolerance away from the line
    (``tolerance`` seconds, or 3 times the line's own scatter, whichever is larger), on one side
    and further each time, the tempo changed: the line restarts from those pulses (keeping the
    last slope until it has ``MIN_FIT`` pulses).
    """

    def __init__(self, listener: Callable[[str, ClockIn], None] | None = None,
                 window: int = 48, tolerance: float = 0.0015, drift_pulses: int = 4,
                 lost_after: float = 0.5) -> None:
        self.listener = listener
        self.window = int(window)
        self.tolerance = float(tolerance)
        self.drift_pulses = int(drift_pulses)
        self.lost_after = float(lost_after)
        self.running = False
        self.pulse = 0  # pulses since the song's start (Song Position counts 6 a sixteenth)
        self.beat = 0
        self.last_pulse_at: float | None = None
        self.missed = 0  # pulses counted as missing
        self.tempo_changes = 0
        self._points: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self._off: list[tuple[int, float]] = []  # pulses off the line, in a row
        self._fit: tuple[float, float] | None = None  # (time at pulse 0, seconds per pulse)
        self._scatter = 0.0
        self._lock = threading.RLock()
        self._pending_start = False
        self._last_beat_pulse = -1  # beats are told once each, in order
        self._last_step_pulse = -1
        self._skipped = 0  # pulses the last gap counted as missing (undone if they bunch up)

    # ------------------------------------------------------------------ estimates
    @property
    def bpm(self) -> float | None:
        """The tempo (None until two pulses came)."""
        fit = self._fit
        if fit is None or fit[1] <= 0:
            return None
        return 60.0 / (fit[1] * PPQN)

    @property
    def period(self) -> float | None:
        fit = self._fit
        return None if fit is None else fit[1]

    def time_of(self, beats: float) -> float | None:
        """When position ``beats`` (quarter notes) falls (perf_counter), from the line."""
        fit = self._fit
        if fit is None:
            return None
        return fit[0] + beats * PPQN * fit[1]

    def position(self, now: float | None = None) -> float:
        """Beats since the song's start at ``now`` (from the line; the last pulse when none)."""
        fit = self._fit
        if fit is None or not self.running or math.isnan(fit[0]):
            return self.pulse / PPQN
        now = time.perf_counter() if now is None else now
        return (now - fit[0]) / fit[1] / PPQN

    # ------------------------------------------------------------------ input
    def feed(self, message: Sequence[int], t: float) -> None:
        if not message:
            return
        status = message[0]
        with self._lock:
            if status == CLOCK:
                self._on_pulse(t)
                return
            if status in (START, CONTINUE, SONG_POSITION):
                self._last_beat_pulse = self._last_step_pulse = -1
            if status == START:
                self._restart_line()
                self.pulse = 0
                self.beat = 0
                self.running = True
                self._pending_start = True  # the next pulse is beat 0
                event = "start"
            elif status == CONTINUE:
                self._restart_line()
                self.running = True
                self._pending_start = True
                event = "continue"
            elif status == STOP:
                self.running = False
                event = "stop"
            elif status == SONG_POSITION and len(message) >= 3:
                self.pulse = ((message[2] << 7) | message[1]) * (PPQN // 4)
                self.beat = self.pulse // PPQN
                self._restart_line()
                event = "position"
            else:
                return
        self._tell(event)

    def _restart_line(self) -> None:
        # The tempo is kept (the last line's slope) until new pulses give a new line.
        period = self.period
        self._points.clear()
        self._off = []
        self._fit = None if period is None else (math.nan, period)

    def _on_pulse(self, t: float) -> None:
        period = self.period
        if self._pending_start or self.last_pulse_at is None or not self._points:
            index = self.pulse if self._pending_start or not self._points else self.pulse + 1
            self._pending_start = False
        else:
            index = self.pulse + 1
            gap = t - (self.last_pulse_at or t)
            predicted = self._predict(index)
            if (period is not None and predicted is not None and len(self._points) >= 2 * MIN_FIT
                    and gap > MISSING_GAP * period and t - predicted > 0.75 * period):
                skipped = int(round(gap / period)) - 1
                self.missed += skipped
                index += skipped
                self._skipped = skipped
            elif self._skipped and period is not None and gap < 0.5 * period:
                # Pulses bunched right after a long gap: they were held up on the way, not
                # lost. Count the late pulse back where it belongs.
                index -= self._skipped
                self.missed -= self._skipped
                self._unskip(self._skipped)
                self._skipped = 0
            else:
                self._skipped = 0
        self.pulse = index
        self.last_pulse_at = t
        self._add_point(index, t)
        if index % STEP == 0 and index > self._last_step_pulse:
            self._last_step_pulse = index
            if self.running:
                self._tell("step")
        if index % PPQN == 0 and index > self._last_beat_pulse:
            self._last_beat_pulse = index
            self.beat = index // PPQN
            if self.running:
                self._tell("beat")

    def _unskip(self, skipped: int) -> None:
        if self._points:
            n, t = self._points.pop()
            self._off = [p for p in self._off if p[0] != n]
            self._points.append((n - skipped, t))
            self._refit()

    def _predict(self, index: int) -> float | None:
        fit = self._fit
        if fit is None or math.isnan(fit[0]):
            if self._points and fit is not None:
                n0, t0 = self._points[-1]
                return t0 + (index - n0) * fit[1]
            return None
        return fit[0] + index * fit[1]

    def _add_point(self, index: int, t: float) -> None:
        predicted = self._predict(index)
        if predicted is not None and len(self._points) >= 2 * self.drift_pulses:
            limit = max(self.tolerance, 3.0 * self._scatter)
            if abs(t - predicted) > limit:
                self._off.append((index, t))
                if len(self._off) >= self.drift_pulses:
                    # The pulses drift away from the line, further each time: a new tempo.
                    # (Pulses held up on the way come back to it instead.)
                    res = [tt - (self._predict(n) or tt) for n, tt in self._off]
                    drifting = (all(r > 0 for r in res) or all(r < 0 for r in res)) and all(
                        abs(a) < abs(b) for a, b in zip(res, res[1:], strict=False))
                    if drifting:
                        kept = list(self._off)
                        self._points.clear()
                        self._points.extend(kept)
                        self._off = []
                        self.tempo_changes += 1
                        self._refit()
                        return
                    self._off = self._off[1:]
            else:
                self._off = []
        self._points.append((index, t))
        self._refit()

    def _refit(self) -> None:
        pts = list(self._points)
        line = _line(pts)
        if line is None:
            return
        intercept, slope = line
        if len(pts) >= 8:
            # Pulses held up on the way (a busy machine) lie late of the line: fit again
            # without those far off it.
            res = sorted(abs(p[1] - (intercept + slope * p[0])) for p in pts)
            scatter = 1.4826 * res[len(res) // 2]
            limit = max(self.tolerance, 3.0 * scatter)
            kept = [p for p in pts if abs(p[1] - (intercept + slope * p[0])) <= limit]
            if len(kept) >= len(pts) // 2 and len(kept) < len(pts):
                line = _line(kept) or line
                intercept, slope = line
            self._scatter = scatter
        if len(pts) < MIN_FIT and self._fit is not None and not math.isnan(self._fit[1]):
            # too few pulses for a slope of their own yet: the last tempo through them
            slope = self._fit[1]
            intercept = sum(p[1] - slope * p[0] for p in pts) / len(pts)
        if slope > 0:
            self._fit = (intercept, slope)

    def check_lost(self, now: float | None = None) -> bool:
        """Whether the clock went away while running (no pulse for ``lost_after`` s); the first
        time, the clock stops and the listener hears ``"lost"``."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            if not self.running or self.last_pulse_at is None:
                return False
            if now - self.last_pulse_at < self.lost_after:
                return False
            self.running = False
        self._tell("lost")
        return True

    def _tell(self, event: str) -> None:
        if self.listener is None:
            return
        try:
            self.listener(event, self)
        except Exception:  # noqa: BLE001 - a listener must not stop the clock
            log.exception("clock listener (%s)", event)


class ClockInput:
    """A :class:`ClockIn` fed by a MIDI input port of ``system`` (timing messages let through).

    Arrival times are taken on the input's polling thread (every millisecond, real-time where
    allowed): rtmidi's own timestamps were found unreliable on JACK (their sum fell behind the
    wall clock on a loaded machine). A watchdog thread checks for a lost clock every 20 ms.
    ``close()`` closes the port and ends the watchdog.
    """

    def __init__(self, system: Any, name_substring: str | None, clock: ClockIn) -> None:
        self.clock = clock
        self._stop = threading.Event()
        self.port = system.open_input(name_substring, self._on_message, timing=True)
        self.name = self.port.name
        self._watch = threading.Thread(target=self._watchdog, name="cadenza-clock-watch",
                                       daemon=True)
        self._watch.start()
        self.system = system

    def _on_message(self, message: list[int], _delta: float) -> None:
        self.clock.feed(message, time.perf_counter())

    def _watchdog(self) -> None:
        while not self._stop.wait(0.02):
            self.clock.check_lost()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def close(self, timeout: float = 0.8) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._watch is not threading.current_thread():
            self._watch.join(1.0)
        self.port.close(timeout)
        self.system.forget(self)

    def __enter__(self) -> ClockInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------- following
class ClockFollower:
    """Makes ``transport`` play ``seq`` following a :class:`ClockIn` (give it
    ``follower.on_clock`` as the clock's listener).

    Start plays from the top, Continue from the last Song Position, Stop and a lost clock stop
    the transport (a note-off for every sounding note, then panic). On each sixteenth the
    transport is locked to the clock: its position at that pulse's time (from the clock's
    line) becomes the pulse's position, and its tempo the clock's. ``file_bpm``: the
    sequence's own tempo (the transport's tempo factor is the clock's BPM over it).
    """

    def __init__(self, transport: Any, seq: Any, file_bpm: float = 120.0,
                 on_event: Callable[[str, ClockIn], None] | None = None) -> None:
        self.transport = transport
        self.seq = seq
        self.file_bpm = check_bpm(file_bpm)
        self.on_event = on_event
        self.events: list[tuple[str, float]] = []

    @property
    def beat_seconds(self) -> float:
        """One beat of the sequence, in its own seconds."""
        return 60.0 / self.file_bpm

    def on_clock(self, event: str, clock: ClockIn) -> None:
        now = time.perf_counter()
        self.events.append((event, now))
        bpm = clock.bpm or self.file_bpm
        factor = bpm / self.file_bpm
        if event in ("start", "continue"):
            start = clock.pulse / PPQN * self.beat_seconds
            self.transport.play(self.seq, start=start, tempo=factor, at=now)
        elif event in ("stop", "lost"):
            self.transport.stop()
        elif event == "step" and self.transport.is_playing:
            beats = clock.pulse / PPQN
            at = clock.time_of(beats)
            if at is not None and not math.isnan(at):
                self.transport.sync_to(beats * self.beat_seconds, at, factor)
        if self.on_event is not None:
            self.on_event(event, clock)
