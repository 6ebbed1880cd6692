"""Bars and beats in seconds (models/beats.py), from tempo maps and time signatures."""

from __future__ import annotations

import pytest

from models.beats import BAR, BEAT, STEP, BarGrid, beats_per_bar
from models.sequence import TempoChange, TimeSignature


def _bars(grid: BarGrid, t1: float) -> list[tuple[int, float]]:
    return [(line.bar, round(line.time, 6)) for line in grid.lines(0.0, t1, BAR)]


def test_no_tempo_and_no_metre_is_120_in_four_four():
    grid = BarGrid()
    assert _bars(grid, 6.0) == [(1, 0.0), (2, 2.0), (3, 4.0), (4, 6.0)]
    assert grid.time_signature_at(3.0) == (4, 4)


def test_three_four_counts_three_quarter_beats():
    grid = BarGrid([TempoChange(0.0, 120.0)], [TimeSignature(0.0, 3, 4)])
    assert _bars(grid, 4.5) == [(1, 0.0), (2, 1.5), (3, 3.0), (4, 4.5)]
    beats = [(line.bar, line.beat, line.time) for line in grid.lines(0.0, 1.4, BEAT)]
    assert beats == [(1, 1, 0.0), (1, 2, 0.5), (1, 3, 1.0)]
    assert grid.position(2.1) == (2, 2, pytest.approx(0.2))


def test_six_eight_counts_two_dotted_quarter_beats():
    grid = BarGrid([TempoChange(0.0, 120.0)], [TimeSignature(0.0, 6, 8)])
    assert _bars(grid, 3.0) == [(1, 0.0), (2, 1.5), (3, 3.0)]
    beats = [line.time for line in grid.lines(0.0, 1.49, BEAT) if line.level == BEAT]
    assert beats == [0.75]  # the second dotted quarter; the bar line is beat 1
    steps = grid.lines(0.0, 1.49, STEP)
    assert len(steps) == 12  # twelve sixteenths to the bar, six to each beat
    assert [line.beat for line in steps] == [1] * 6 + [2] * 6
    assert [beats_per_bar(n, d) for n, d in ((6, 8), (9, 8), (12, 8), (3, 4), (7, 8), (2, 2))] \
        == [2, 3, 4, 3, 7, 2]


def test_a_tempo_change_moves_the_later_bars():
    grid = BarGrid([TempoChange(0.0, 120.0), TempoChange(4.0, 60.0)], [TimeSignature(0.0)])
    assert _bars(grid, 12.0) == [(1, 0.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 12.0)]
    assert grid.quarters(6.0) == pytest.approx(10.0)
    assert grid.seconds(10.0) == pytest.approx(6.0)
    assert grid.bars_between(0.0, 12.0) == pytest.approx(4.0)


def test_a_metre_change_starts_a_new_bar_and_counts_on():
    grid = BarGrid([TempoChange(0.0, 120.0)],
                   [TimeSignature(0.0, 3, 4), TimeSignature(3.0, 7, 8), TimeSignature(4.75, 4, 4)])
    assert _bars(grid, 7.0) == [(1, 0.0), (2, 1.5), (3, 3.0), (4, 4.75), (5, 6.75)]
    assert grid.time_signature_at(3.5) == (7, 8)
    assert grid.bar_start(4) == pytest.approx(4.75)
    # a signature that stands mid-bar cuts that bar short: the next bar starts there
    cut = BarGrid([], [TimeSignature(0.0, 4, 4), TimeSignature(3.0, 3, 4)])
    assert _bars(cut, 4.5) == [(1, 0.0), (2, 2.0), (3, 3.0), (4, 4.5)]


def test_nonsense_tempos_and_signatures_are_ignored():
    grid = BarGrid([TempoChange(0.0, 0.0), TempoChange(1.0, -5.0)],
                   [TimeSignature(0.0, 0, 4), TimeSignature(0.0, 3, 0)])
    assert _bars(grid, 4.0) == [(1, 0.0), (2, 2.0), (3, 4.0)]
