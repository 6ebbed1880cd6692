"""The session's time, as the Live panel's sync section sets it up (no Qt).

:class:`SyncSession` is one of three sources of tempo and beat: Cadenza's own (``internal``: a
:class:`app.clock.ClockOut` timeline, sending MIDI clock to the chosen outputs, or to none), an
external MIDI clock on an input (``midi-clock``: a :class:`app.clock.ClockIn`, forwarded to the
clock outputs), or an Ableton Link session (``link``, opt-in: :class:`app.link.LinkSync`, the
clock outputs on its beat). ``start()``/``stop()`` run it; ``bpm``, ``beat()`` and ``peers``
say where it is, for the panel's tempo and beat indicator. Ports come from the application's
:class:`app.devices.Devices`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from app.clock import PPQN, ClockIn, ClockOut, check_bpm
from models.errors import CadenzaError

log = logging.getLogger(__name__)

SOURCES = ("internal", "midi-clock", "link")


class SyncSession:
    """Tempo and beat from one source, MIDI clock out to chosen outputs (see the module)."""

    def __init__(self, devices: Any) -> None:
        self.devices = devices
        self.source = "internal"
        self.port = ""
        self.clock_ports: list[str] = []
        self._bpm = 120.0
        self.clock_out: ClockOut | None = None
        self.clock_in: ClockIn | None = None
        self.link: Any = None
        self._opened: list[Any] = []

    def configure(self, source: str, port: str = "", clock_ports: Sequence[str] = (),
                  bpm: float | None = None) -> None:
        """Choose the source (and its input port for ``midi-clock``), the clock outputs and the
        tempo; a running session starts again with them."""
        if source not in SOURCES:
            raise CadenzaError(f"sync source must be one of {', '.join(SOURCES)}")
        if source == "midi-clock" and not port:
            raise CadenzaError("choose the MIDI input that sends the clock")
        was_running = self.running
        self.stop()
        self.source, self.port, self.clock_ports = source, port, list(clock_ports)
        if bpm is not None:
            self._bpm = check_bpm(bpm)
        if was_running:
            self.start()

    @property
    def running(self) -> bool:
        return bool(self._opened)

    def start(self) -> None:
        if self.running:
            return
        try:
            if self.clock_ports:
                self.clock_out = self.devices.open_clock_out(self.clock_ports, bpm=self._bpm)
            else:
                self.clock_out = ClockOut([], bpm=self._bpm)  # the timeline alone
            self._opened.append(self.clock_out)
            if self.source == "internal":
                self.clock_out.start()
            elif self.source == "midi-clock":
                self.clock_in = ClockIn(self._on_clock)
                self._opened.insert(0, self.devices.open_clock_in(self.port, self.clock_in))
            else:
                from app.link import LinkSync

                self.link = LinkSync(bpm=self._bpm)
                self._opened.insert(0, self.link)
                at, bar = self.link.next_bar_time()
                self.clock_out.set_tempo(self.link.bpm)
                self.clock_out.start(at=at)
                self.link.follow(None, file_bpm=120.0, origin_beat=bar, clock_out=self.clock_out)
        except BaseException:
            self.stop()
            raise

    def _on_clock(self, event: str, clock: ClockIn) -> None:
        out = self.clock_out
        if out is None or out.closed:
            return
        if event in ("start", "continue"):
            out.start(beats=clock.pulse / PPQN)
        elif event in ("stop", "lost"):
            out.stop()
        elif event == "beat" and clock.bpm:
            out.set_tempo(max(20.0, min(400.0, clock.bpm)))
            at = clock.time_of(clock.beat)
            if at is not None:
                out.locate(clock.beat, at)

    def stop(self) -> None:
        opened, self._opened = self._opened, []
        for obj in opened:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 - closing must finish
                log.exception("closing %s", obj)
        self.clock_out = None
        self.clock_in = None
        self.link = None

    close = stop

    # ------------------------------------------------------------------ where it is
    @property
    def bpm(self) -> float | None:
        """The tempo now (None while following a clock that has not sent pulses yet)."""
        if self.source == "midi-clock":
            return self.clock_in.bpm if self.clock_in is not None else None
        if self.link is not None:
            return self.link.bpm
        return self._bpm

    def set_tempo(self, bpm: float) -> None:
        """Cadenza's tempo (internal), or the Link session's; an external clock sets its own."""
        self._bpm = check_bpm(bpm)
        if self.link is not None:
            self.link.set_tempo(bpm)
        elif self.clock_out is not None and self.source == "internal":
            self.clock_out.set_tempo(bpm)

    def beat(self, now: float | None = None) -> float | None:
        """The beat (quarter notes from the start) now; None when nothing runs."""
        now = time.perf_counter() if now is None else now
        if self.source == "midi-clock":
            if self.clock_in is None or not self.clock_in.running:
                return None
            return self.clock_in.position(now)
        if self.link is not None:
            return self.link.beat_at(now)
        if self.clock_out is not None and self.clock_out.running:
            return self.clock_out.position(now)
        return None

    def next_time(self, t: float, every: float = 1.0) -> float:
        """The perf_counter time of the next multiple of ``every`` beats at or after ``t``
        (``t`` itself when nothing runs): where an answer on the beat or bar starts."""
        beat = self.beat(t)
        bpm = self.bpm
        if beat is None or not bpm:
            return t
        target = math.ceil(beat / every - 1e-9) * every
        if self.link is not None:
            return self.link.time_of(target)
        return t + (target - beat) * 60.0 / bpm

    @property
    def peers(self) -> int | None:
        """Link peers (None unless on Link)."""
        return self.link.peers if self.link is not None else None
