"""Recording what is played on a MIDI keyboard into a clip, with a metronome and a count-in.

:meth:`Recorder.feed` is what the MIDI input callback calls (on rtmidi's thread): it only stamps
the message with ``time.perf_counter()`` at arrival and appends it under a lock. Everything else
(pairing note-ons with note-offs, the sustain pedal, making the sequence) happens in
:meth:`Recorder.stop`. No Qt: the live panel and tests use it alike.

Time 0 of the recording is the first beat after the count-in. The metronome clicks on the GM
drum channel (channel 10): a high wood block on the downbeat, a low one on the other beats,
sent to the given sinks (MIDI outputs or a :class:`app.transport.LiveSynth`). With a ``grid``
(the session's time while the Live panel's sync runs: :meth:`app.sync.SyncSession.next_time`)
each click is on the session's next beat rather than one beat of ``qpm`` after the last: the
metronome keeps the shared beat and phase when the session's tempo changes (a DAW's clock, a
Link peer); when the grid stops answering (sync stopped) it goes on at ``qpm``. A sink that
says its ``latency`` (the built-in sound: :attr:`app.transport.LiveVoices.latency`) gets each
click that much before its beat, so the click is heard on the beat and a take played along with
it lands on the grid, as a DAW compensates its output latency; a MIDI port says none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from app.clips import Clip
from app.transport import Sink, realtime_thread, wait_until
from models.errors import CadenzaError
from models.sequence import (
    DRUM_CHANNEL,
    SUSTAIN_CC,
    ControlChange,
    Note,
    NoteSequence,
    TempoChange,
    TimeSignature,
)

CLICK_DOWNBEAT = 76  # GM Hi Wood Block
CLICK_BEAT = 77  # GM Low Wood Block
CLICK_SECONDS = 0.05
REGRID_SECONDS = 0.03  # with a grid, a click's time is asked again this long before it
LONGEST_BEAT = 3.0  # seconds: 20 BPM, the slowest session tempo
MAX_LEAD = 0.25  # seconds: the most a click is sent before its beat (a sink's latency)
EARLY_TOLERANCE = 0.15  # a note this early for beat 1 (during the count-in) starts at 0


class Recorder:
    """Collects keyboard input between :meth:`start` and :meth:`stop`.

    ``count_in_bars`` bars of clicks at ``qpm`` come before time 0; ``metronome`` keeps clicking
    while recording. ``on_beat(bar, beat, counting_in)`` is called on the metronome thread at
    each click (the panel shows it). ``grid(t, beats)``: the perf_counter time of the session's
    next multiple of ``beats`` beats at or after ``t`` (``t`` itself when there is none); the
    clicks after the first follow it (see the module).
    """

    def __init__(
        self,
        qpm: float = 120.0,
        beats_per_bar: int = 4,
        count_in_bars: int = 0,
        metronome: bool = False,
        click_sinks: Sequence[Sink] = (),
        name: str = "Recording",
        on_beat: Callable[[int, int, bool], None] | None = None,
        grid: Callable[[float, float], float] | None = None,
    ) -> None:
        if not 20 <= qpm <= 400:
            raise CadenzaError(f"tempo {qpm:g} is outside 20..400 quarter notes per minute")
        if not 1 <= beats_per_bar <= 16 or count_in_bars < 0:
            raise CadenzaError("beats per bar must be 1..16 and count-in bars >= 0")
        self.qpm = float(qpm)
        self.beats_per_bar = int(beats_per_bar)
        self.count_in_bars = int(count_in_bars)
        self.metronome = bool(metronome)
        self.click_sinks = list(click_sinks)
        self.name = name
        self.on_beat = on_beat
        self.grid = grid
        self.click_times: list[float] = []  # when each click was due (perf_counter)
        self._events: list[tuple[float, list[int]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t_start = 0.0  # perf_counter time of the first count-in click
        self.t_zero = 0.0  # perf_counter time of the recording's time 0
        self.t_stop = 0.0
        self.recording = False

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.qpm

    @property
    def counting_in(self) -> bool:
        return self.recording and time.perf_counter() < self.t_zero

    def start(self, at: float | None = None) -> float:
        """Start (the count-in first, if any); returns the perf_counter time of time 0.
        ``at``: the perf_counter time of the first count-in click (a bar line of the session's
        time, so the take lands on its grid; default: in 20 ms)."""
        if self.recording:
            raise CadenzaError("already recording")
        with self._lock:
            self._events = []
        now = time.perf_counter()
        lead = max((lead_of(sink) for sink in self.click_sinks), default=0.0)
        self.t_start = now + 0.02 + lead if at is None else max(float(at), now)
        self.t_zero = self.t_start + self.count_in_bars * self.beats_per_bar * self.beat_seconds
        self.recording = True
        self._stop.clear()
        if self.click_sinks and (self.metronome or self.count_in_bars):
            self._thread = threading.Thread(target=self._clicks, name="cadenza-metronome",
                                            daemon=True)
            self._thread.start()
        return self.t_zero

    def feed(self, message: list[int], t: float | None = None) -> None:
        """A message from the keyboard (call from the MIDI callback; cheap)."""
        if not self.recording:
            return
        stamp = time.perf_counter() if t is None else t
        with self._lock:
            self._events.append((stamp, list(message)))

    def _clicks(self) -> None:
        realtime_thread()
        beat = 0
        count_in_beats = self.count_in_bars * self.beats_per_bar
        due = self.t_start
        while not self._stop.is_set():
            if beat >= count_in_beats and not self.metronome:
                return
            if beat:
                last, due = due, self._next_click(due)
                if self.grid is not None:  # the tempo may change while waiting: look again
                    if not wait_until(due - REGRID_SECONDS, self._stop):
                        return
                    due = self._next_click(last)
            self.click_times.append(due)
            downbeat = beat % self.beats_per_bar == 0
            pitch = CLICK_DOWNBEAT if downbeat else CLICK_BEAT
            sinks = sorted(((lead_of(sink), i) for i, sink in enumerate(self.click_sinks)),
                           reverse=True)  # the slowest sink first, its latency early
            sent: list[tuple[float, int]] = []
            for lead, i in sinks:
                if not wait_until(due - lead, self._stop):
                    break
                self.click_sinks[i].send([0x90 | DRUM_CHANNEL, pitch,
                                          110 if downbeat else 80])
                sent.append((lead, i))
            if len(sent) == len(sinks) and wait_until(due, self._stop) \
                    and self.on_beat is not None:
                bar = beat // self.beats_per_bar - self.count_in_bars
                self.on_beat(bar, beat % self.beats_per_bar, beat < count_in_beats)
            for lead, i in sent:  # a click that began ends, even when stopped
                wait_until(due + CLICK_SECONDS - lead, self._stop)
                self.click_sinks[i].send([0x80 | DRUM_CHANNEL, pitch, 0])
            if self._stop.is_set():
                return
            beat += 1

    def _next_click(self, last: float) -> float:
        """The click after the one due at ``last``: the session's next beat (half a beat on,
        so a beat estimate that moved a little never gives the same beat twice), else a beat of
        ``qpm`` later."""
        grid = self.grid
        if grid is not None:
            probe = last + self.beat_seconds / 2
            try:
                at = grid(probe, 1.0)
            except Exception:  # noqa: BLE001 - the session went away: keep our own time
                at = probe
            if at != probe and last < at <= last + LONGEST_BEAT + self.beat_seconds:
                return at
        return last + self.beat_seconds

    def stop(self) -> NoteSequence:
        """Stop recording; the performance as a sequence (time 0 = first beat after count-in)."""
        if not self.recording:
            raise CadenzaError("not recording")
        self.t_stop = time.perf_counter()
        self.recording = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            events, self._events = self._events, []
        return events_to_sequence(events, self.t_zero, self.t_stop, self.qpm, self.beats_per_bar,
                                  name=self.name)

    def stop_clip(self) -> Clip | None:
        """Stop and return the recording as a library clip (None when nothing was played)."""
        seq = self.stop()
        if seq.is_empty:
            return None
        return Clip(self.name, sequence=seq)


def lead_of(sink: Sink) -> float:
    """How long before its beat a click goes to ``sink``: the latency it says it has (0 for a
    MIDI port), at most :data:`MAX_LEAD`."""
    try:
        lead = float(getattr(sink, "latency", 0.0) or 0.0)
    except Exception:  # noqa: BLE001 - a sink that cannot say (its engine went away)
        return 0.0
    return min(max(lead, 0.0), MAX_LEAD) if lead == lead else 0.0


def events_to_sequence(
    events: list[tuple[float, list[int]]],
    t_zero: float,
    t_end: float,
    qpm: float = 120.0,
    beats_per_bar: int = 4,
    name: str = "",
) -> NoteSequence:
    """Timestamped MIDI messages to a sequence: note-ons paired with note-offs (first in, first
    out per channel and pitch; a note-on with velocity 0 is a note-off), notes still held at the
    end closed at ``t_end``, sustain pedal (CC 64) and other controllers kept as control
    changes. Times are seconds after ``t_zero``; slightly early notes start at 0, earlier ones
    (played during the count-in) are dropped."""
    notes: list[Note] = []
    ccs: list[ControlChange] = []
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    end = max(0.0, t_end - t_zero)

    def rel(t: float) -> float:
        return min(end, max(0.0, t - t_zero))

    for stamp, data in sorted(events, key=lambda e: e[0]):
        if not data:
            continue
        status, channel = data[0] & 0xF0, data[0] & 0x0F
        if status == 0x90 and len(data) >= 3 and data[2] > 0:
            if stamp < t_zero - EARLY_TOLERANCE:
                continue
            open_notes.setdefault((channel, data[1]), []).append((rel(stamp), data[2]))
        elif status in (0x80, 0x90) and len(data) >= 3:
            pending = open_notes.get((channel, data[1]))
            if not pending:
                continue
            start, velocity = pending.pop(0)
            stop = max(rel(stamp), start + 0.005)
            notes.append(Note(data[1], velocity, start, stop, is_drum=channel == DRUM_CHANNEL,
                              instrument=channel))
        elif status == 0xB0 and len(data) >= 3:
            if stamp < t_zero - EARLY_TOLERANCE and data[1] != SUSTAIN_CC:
                continue
            ccs.append(ControlChange(rel(stamp), data[1], data[2], instrument=channel,
                                     is_drum=channel == DRUM_CHANNEL))
    for (channel, pitch), pending in open_notes.items():
        for start, velocity in pending:
            notes.append(Note(pitch, velocity, start, max(end, start + 0.005),
                              is_drum=channel == DRUM_CHANNEL, instrument=channel))
    notes.sort(key=lambda n: (n.start, n.pitch))
    return NoteSequence(
        notes=notes,
        control_changes=ccs,
        tempos=[TempoChange(0.0, float(qpm))],
        time_signatures=[TimeSignature(0.0, int(beats_per_bar), 4)],
        name=name,
    )
