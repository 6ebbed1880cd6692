"""Bars and beats of a sequence, in seconds: what a ruler needs to count music as musicians do.

A :class:`BarGrid` is built from a sequence's tempo map and time signatures. Time is first turned
into quarter notes (the tempo map is piecewise constant, so quarters are piecewise linear in
seconds), and bars are laid in quarter notes from each time signature on:

* a bar is ``numerator * 4 / denominator`` quarters long;
* its beats are the denominator's note, except in compound metres (6/8, 9/8, 12/8, 6/4, ...:
  a numerator divisible by 3 and above 3, denominator 4 or more), where a beat is three of them
  (a dotted quarter in 6/8), as musicians count jigs and slip jigs;
* a time signature starts a new bar where it stands; a bar cut short by it is still counted;
* bars are numbered from 1 at time 0 (a pickup the file writes as a mostly empty first bar is
  bar 1, as in the file and in a DAW).

No tempo means the MIDI standard's 120 quarters per minute; no time signature means 4/4. Tempos
that are not positive and signatures with a zero numerator or denominator are ignored.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from models.sequence import DEFAULT_QPM, TempoChange, TimeSignature

EPS = 1e-9
SIXTEENTH = 0.25  # quarters

BAR, BEAT, STEP = 0, 1, 2  # grid levels: bar lines, beats, sixteenth-note steps


@dataclass(frozen=True)
class GridLine:
    """One line of the grid: where (seconds), which bar (from 1) and beat (from 1; sixteenth
    lines carry their beat), its ``level`` (BAR, BEAT or STEP) and the metre in force."""

    time: float
    bar: int
    beat: int
    level: int
    numerator: int
    denominator: int


@dataclass(frozen=True)
class _Metre:
    start_q: float  # quarters where it starts
    end_q: float  # where the next one starts (inf for the last)
    first_bar: int
    numerator: int
    denominator: int

    @property
    def bar_q(self) -> float:
        return self.numerator * 4.0 / self.denominator

    @property
    def beat_q(self) -> float:
        if self.numerator % 3 == 0 and self.numerator > 3 and self.denominator >= 4:
            return 3 * 4.0 / self.denominator
        return 4.0 / self.denominator


def beats_per_bar(numerator: int, denominator: int) -> int:
    """How many beats a musician counts in a bar: 2 in 6/8, 3 in 9/8, 3 in 3/4, 7 in 7/8."""
    m = _Metre(0.0, math.inf, 1, numerator, denominator)
    return max(1, round(m.bar_q / m.beat_q))


class BarGrid:
    """Seconds <-> quarter notes <-> bars and beats, for one tempo map and metre list."""

    def __init__(self, tempos: Sequence[TempoChange] = (),
                 time_signatures: Sequence[TimeSignature] = ()) -> None:
        # tempo segments: (start seconds, start quarters, qpm)
        changes = sorted((t for t in tempos if t.qpm > 0 and t.time >= 0), key=lambda t: t.time)
        if not changes or changes[0].time > EPS:
            changes.insert(0, TempoChange(0.0, DEFAULT_QPM))
        self._t: list[float] = []
        self._q: list[float] = []
        self._qpm: list[float] = []
        for change in changes:
            if self._t and change.time - self._t[-1] < EPS:  # two at one time: the later wins
                self._qpm[-1] = change.qpm
                continue
            q = self._q[-1] + (change.time - self._t[-1]) * self._qpm[-1] / 60.0 if self._t \
                else 0.0
            self._t.append(change.time)
            self._q.append(q)
            self._qpm.append(change.qpm)

        sigs = sorted((s for s in time_signatures if s.numerator > 0 and s.denominator > 0
                       and s.time >= 0), key=lambda s: s.time)
        if not sigs or sigs[0].time > EPS:
            sigs.insert(0, TimeSignature(0.0, 4, 4))
        starts: list[tuple[float, int, int]] = []
        for s in sigs:
            q = self.quarters(s.time)
            if starts and q - starts[-1][0] < EPS:
                starts[-1] = (starts[-1][0], s.numerator, s.denominator)
            elif not starts or (s.numerator, s.denominator) != starts[-1][1:]:
                starts.append((q, s.numerator, s.denominator))
        self._metres: list[_Metre] = []
        bar = 1
        for i, (q, num, den) in enumerate(starts):
            end = starts[i + 1][0] if i + 1 < len(starts) else math.inf
            metre = _Metre(q, end, bar, num, den)
            self._metres.append(metre)
            if end < math.inf:
                bar += max(1, math.ceil((end - q) / metre.bar_q - 1e-6))
        self._metre_q = [m.start_q for m in self._metres]

    # ------------------------------------------------------------------ time
    def quarters(self, seconds: float) -> float:
        """Quarter notes from time 0 to ``seconds``."""
        i = max(0, bisect.bisect_right(self._t, seconds) - 1)
        return self._q[i] + (seconds - self._t[i]) * self._qpm[i] / 60.0

    def seconds(self, quarters: float) -> float:
        """The time ``quarters`` quarter notes after time 0."""
        i = max(0, bisect.bisect_right(self._q, quarters) - 1)
        return self._t[i] + (quarters - self._q[i]) * 60.0 / self._qpm[i]

    def qpm_at(self, seconds: float) -> float:
        return self._qpm[max(0, bisect.bisect_right(self._t, seconds) - 1)]

    @property
    def max_qpm(self) -> float:
        return max(self._qpm)

    # ------------------------------------------------------------------ bars
    def _metre_at_q(self, q: float) -> _Metre:
        return self._metres[max(0, bisect.bisect_right(self._metre_q, q + EPS) - 1)]

    def time_signature_at(self, seconds: float) -> tuple[int, int]:
        m = self._metre_at_q(self.quarters(seconds))
        return (m.numerator, m.denominator)

    def bar_start(self, bar: int) -> float:
        """Seconds where bar ``bar`` (from 1) starts."""
        i = max(0, bisect.bisect_right([m.first_bar for m in self._metres], bar) - 1)
        m = self._metres[i]
        return self.seconds(m.start_q + (bar - m.first_bar) * m.bar_q)

    def position(self, seconds: float) -> tuple[int, int, float]:
        """``(bar, beat, fraction of the beat)`` at ``seconds``, bar and beat from 1."""
        q = self.quarters(seconds)
        m = self._metre_at_q(q)
        k = math.floor((q - m.start_q) / m.bar_q + EPS)
        into = q - (m.start_q + k * m.bar_q)
        beat = math.floor(into / m.beat_q + EPS)
        return (m.first_bar + k, beat + 1, max(0.0, into / m.beat_q - beat))

    def bars_between(self, t0: float, t1: float) -> float:
        """How many bars (fractional) lie between two times (in each bar's own length)."""
        q0, q1 = self.quarters(t0), self.quarters(t1)
        total = 0.0
        for m in self._metres:
            lo, hi = max(q0, m.start_q), min(q1, m.end_q)
            if hi > lo:
                total += (hi - lo) / m.bar_q
        return total

    def lines(self, t0: float, t1: float, level: int = STEP) -> list[GridLine]:
        """The grid lines from ``t0`` to ``t1`` seconds, down to ``level`` (BAR: bar lines only,
        BEAT: and beats, STEP: and sixteenth notes)."""
        q0, q1 = self.quarters(max(0.0, t0)), self.quarters(max(0.0, t1))
        out: list[GridLine] = []
        for m in self._metres:
            lo, hi = max(q0, m.start_q), min(q1, m.end_q)
            if hi < lo:
                continue
            bar_q, beat_q = m.bar_q, m.beat_q
            step = bar_q if level == BAR else beat_q if level == BEAT else min(SIXTEENTH, beat_q)
            k = max(0, math.floor((lo - m.start_q) / bar_q + EPS))
            while True:
                bar_at = m.start_q + k * bar_q
                if bar_at > hi + EPS or bar_at >= m.end_q - EPS:
                    break
                n = 0
                while True:
                    into = n * step
                    q = bar_at + into
                    if into >= bar_q - EPS or q >= m.end_q - EPS or q > hi + EPS:
                        break
                    if q >= lo - EPS:
                        beat = math.floor(into / beat_q + EPS)
                        on_beat = abs(into - beat * beat_q) < 1e-6
                        kind = BAR if n == 0 else BEAT if on_beat else STEP
                        out.append(GridLine(self.seconds(q), m.first_bar + k, beat + 1, kind,
                                            m.numerator, m.denominator))
                    n += 1
                k += 1
        return out
