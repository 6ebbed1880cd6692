"""Ableton Link (opt-in: it talks on the local network), through LinkPython-extern.

:class:`LinkSync` joins a Link session: the shared tempo (changed from either side), the shared
beat and phase on a bar of ``quantum`` beats, start/stop sync, the number of peers. Link keeps
time on its own clock (microseconds); :meth:`LinkSync.perf_time` and :meth:`LinkSync.link_time`
map it to the ``perf_counter`` timeline the transport and the MIDI clock use.
:meth:`LinkSync.follow` keeps a :class:`app.transport.Transport` (and a MIDI clock out) on the
session's beat from a thread of its own.

Link was chosen over ``aalink`` (both measured in a private network namespace, two peers):
LinkPython-extern gives Link's whole session-state API (beat at any time, time at any beat,
start/stop with a beat request) synchronously from any thread, without an asyncio loop; both
kept the peers' phase within 0.2 ms.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from app.clock import check_bpm
from models.errors import CadenzaError

log = logging.getLogger(__name__)

QUANTUM = 4.0  # beats to a bar: starts are quantized to it
FOLLOW_SECONDS = 0.01  # how often a follower locks the transport to the session


def _link_module() -> Any:
    try:
        import link
    except ImportError as exc:
        raise CadenzaError("Ableton Link needs the LinkPython-extern package "
                           f"(pip install LinkPython-extern): {exc}") from exc
    return link


class LinkSync:
    """A member of a Link session (see the module docstring). ``close()`` leaves it."""

    def __init__(self, bpm: float = 120.0, quantum: float = QUANTUM) -> None:
        link = _link_module()
        self.quantum = float(quantum)
        self._link = link.Link(check_bpm(bpm))
        self._link.startStopSyncEnabled = True
        self._link.enabled = True
        self._offset = self._measure_offset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ clocks
    def _measure_offset(self) -> float:
        """perf_counter - Link's clock, from the tightest of a few readings."""
        best = (math.inf, 0.0)
        clock = self._link.clock()
        for _ in range(5):
            a = time.perf_counter()
            micros = clock.micros()
            b = time.perf_counter()
            if b - a < best[0]:
                best = (b - a, (a + b) / 2 - micros / 1e6)
        return best[1]

    def clock_micros(self) -> int:
        """Link's clock now (microseconds; the system's monotonic clock, shared by processes)."""
        return int(self._link.clock().micros())

    def perf_time(self, link_micros: int) -> float:
        """The perf_counter time of a Link clock time."""
        return link_micros / 1e6 + self._offset

    def link_time(self, perf: float) -> int:
        return int(round((perf - self._offset) * 1e6))

    # ------------------------------------------------------------------ the session
    def _state(self) -> Any:
        return self._link.captureAppSessionState()

    @property
    def bpm(self) -> float:
        return float(self._state().tempo())

    def set_tempo(self, bpm: float) -> None:
        """A new tempo for the whole session."""
        bpm = check_bpm(bpm)
        state = self._state()
        state.setTempo(bpm, self._link.clock().micros())
        self._link.commitAppSessionState(state)

    @property
    def peers(self) -> int:
        """Other members of the session."""
        return int(self._link.numPeers())

    @property
    def playing(self) -> bool:
        return bool(self._state().isPlaying())

    def set_playing(self, playing: bool, at: float | None = None) -> None:
        """Start or stop the session (start/stop sync); a start puts beat 0 of a bar at ``at``
        (perf_counter; default now)."""
        at = time.perf_counter() if at is None else at
        state = self._state()
        micros = self.link_time(at)
        if playing:
            state.setIsPlayingAndRequestBeatAtTime(True, micros, 0.0, self.quantum)
        else:
            state.setIsPlaying(False, micros)
        self._link.commitAppSessionState(state)

    def beat_at(self, perf: float | None = None) -> float:
        """The session's beat at perf_counter time ``perf`` (default now)."""
        perf = time.perf_counter() if perf is None else perf
        return float(self._state().beatAtTime(self.link_time(perf), self.quantum))

    def phase_at(self, perf: float | None = None) -> float:
        """Where in the bar (0 to ``quantum`` beats) the session is at ``perf``."""
        perf = time.perf_counter() if perf is None else perf
        return float(self._state().phaseAtTime(self.link_time(perf), self.quantum))

    def time_of(self, beat: float) -> float:
        """The perf_counter time of the session's ``beat``."""
        return self.perf_time(self._state().timeAtBeat(beat, self.quantum))

    def next_bar_time(self, lead: float = 0.05) -> tuple[float, float]:
        """(perf_counter time, beat) of the next bar line at least ``lead`` s away: where a
        start quantized to the bar goes."""
        beat = self.beat_at(time.perf_counter() + lead)
        bar = math.ceil(beat / self.quantum) * self.quantum
        return self.time_of(bar), bar

    # ------------------------------------------------------------------ following
    def follow(self, transport: Any, file_bpm: float, origin_beat: float,
               clock_out: Any = None) -> None:
        """Keep ``transport`` (or None) on the session's beat from a thread (until :meth:`close`):
        position ``(beat - origin_beat)`` beats of the file (at ``file_bpm``), the session's
        tempo; ``clock_out`` (a :class:`app.clock.ClockOut`) gets the tempo and the beat too."""
        if self._thread is not None:
            raise CadenzaError("this Link session already drives a transport")
        file_bpm = check_bpm(file_bpm)

        def run() -> None:
            while not self._stop.wait(FOLLOW_SECONDS):
                try:
                    now = time.perf_counter()
                    beat = self.beat_at(now)
                    bpm = self.bpm
                    if transport is not None and transport.is_playing:
                        transport.sync_to((beat - origin_beat) * 60.0 / file_bpm, now,
                                          bpm / file_bpm)
                    if clock_out is not None and clock_out.running:
                        if abs(clock_out.bpm - bpm) > 1e-6:
                            clock_out.set_tempo(bpm)
                        clock_out.locate(beat - origin_beat, now)
                except Exception:  # noqa: BLE001 - keep following
                    log.exception("Link follower")

        self._thread = threading.Thread(target=run, name="cadenza-link-follow", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Leave the session (Link stops talking on the network). Safe twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._link.enabled = False

    def __enter__(self) -> LinkSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
