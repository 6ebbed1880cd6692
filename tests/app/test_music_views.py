"""Views that read like music: the piano roll's ruler in bars and beats (from real files' tempo
maps and time signatures), drum clips as named lanes, Interpolate's cells showing their whole
window on one pitch scale, and result cards tall enough to read (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QBoxLayout, QScrollArea

from app.jobs import InterpolateResult
from app.widgets.piano_roll import READ_KEY, READ_LANE, PianoRoll, PianoRollPanel
from models.midi_io import read_midi, write_midi
from models.sequence import Note, NoteSequence, TempoChange, TimeSignature


@pytest.fixture()
def roll(qtbot):  # type: ignore[no-untyped-def]
    w = PianoRoll()
    qtbot.addWidget(w)
    w.resize(1000, 300)
    w.show()
    qtbot.waitExposed(w)
    return w


def _nottingham(datasets_dir: Path, name: str) -> NoteSequence:
    return read_midi(datasets_dir / "melody" / "nottingham" / f"{name}.mid")


def _groove(datasets_dir: Path) -> Path:
    return sorted((datasets_dir / "drums" / "groove").rglob("*_beat_4-4.mid"))[0]


def _shown_bars(roll: PianoRoll, seconds: float) -> None:
    """Show the first ``seconds`` of the clip across the roll and paint it."""
    roll.show_time_window(0.0, seconds)
    roll.grab()


def test_a_waltz_ruler_counts_bars_of_three_beats(roll, datasets_dir):
    waltz = _nottingham(datasets_dir, "waltzes1")
    assert [(t.numerator, t.denominator) for t in waltz.time_signatures] == [(3, 4)]
    qpm = waltz.qpm
    roll.set_sequence(waltz)
    _shown_bars(roll, 6 * 3 * 60 / qpm)  # six bars
    bar_s = 3 * 60 / qpm
    assert [b for b, _x in roll.painted_bars][:6] == [1, 2, 3, 4, 5, 6]
    for bar, x in roll.painted_bars:
        assert x == pytest.approx(roll.time_to_x((bar - 1) * bar_s), abs=0.01)
    first = [(bar, beat) for bar, beat, _x in roll.painted_beats if bar == 1]
    assert first == [(1, 2), (1, 3)]  # beats 2 and 3 between the bar lines
    assert roll.painted_beats[0][2] == pytest.approx(roll.time_to_x(60 / qpm), abs=0.01)


def test_a_jig_ruler_counts_two_dotted_quarter_beats(roll, datasets_dir):
    jig = _nottingham(datasets_dir, "jigs1")
    assert [(t.numerator, t.denominator) for t in jig.time_signatures] == [(6, 8)]
    qpm = jig.qpm
    roll.set_sequence(jig)
    bar_s = 3 * 60 / qpm  # six eighths are three quarters
    _shown_bars(roll, 4 * bar_s)
    for bar, x in roll.painted_bars:
        assert x == pytest.approx(roll.time_to_x((bar - 1) * bar_s), abs=0.01)
    assert [b for b, _x in roll.painted_bars][:4] == [1, 2, 3, 4]
    beats = [(bar, beat, x) for bar, beat, x in roll.painted_beats if bar == 2]
    assert [(bar, beat) for bar, beat, _x in beats] == [(2, 2)]  # one beat between bar lines
    assert beats[0][2] == pytest.approx(roll.time_to_x(4.5 * 60 / qpm), abs=0.01)  # dotted


def test_a_tempo_and_metre_change_written_to_a_file_move_the_bar_lines(roll, tmp_path):
    # 2 bars of 4/4 at 120, then 60 qpm, then 3/4 from bar 4 (at 8 s)
    seq = NoteSequence(
        notes=[Note(60 + i % 12, 90, 0.5 * i, 0.5 * i + 0.4) for i in range(24)],
        tempos=[TempoChange(0.0, 120.0), TempoChange(4.0, 60.0)],
        time_signatures=[TimeSignature(0.0, 4, 4), TimeSignature(8.0, 3, 4)])
    path = tmp_path / "changes.mid"
    write_midi(seq, path)
    roll.set_sequence(read_midi(path))
    _shown_bars(roll, 14.5)
    expected = {1: 0.0, 2: 2.0, 3: 4.0, 4: 8.0, 5: 11.0, 6: 14.0}
    assert [b for b, _x in roll.painted_bars] == list(expected)
    for bar, x in roll.painted_bars:
        assert x == pytest.approx(roll.time_to_x(expected[bar]), abs=0.05), bar
    assert roll.position_text(roll.time_to_x(9.0), 5).startswith("bar 4, beat 2 (3/4, ♩ = 60)")


def test_the_ruler_switches_to_seconds_and_a_session_remembers_it(window, datasets_dir):
    (clip,) = window.open_files([datasets_dir / "melody" / "nottingham" / "jigs1.mid"])
    panel = window.piano_roll
    panel.roll.grab()
    assert panel.roll.shows_bars and panel.roll.painted_bars
    panel.seconds_button.click()
    panel.roll.grab()
    assert panel.roll.ruler_seconds and not panel.roll.shows_bars
    assert panel.roll.painted_bars == []
    data = window.session_data()
    assert data.window["ruler_seconds"] is True
    panel.roll.set_ruler_seconds(False)
    assert not panel.seconds_button.isChecked()
    window.apply_session(data)
    assert panel.roll.ruler_seconds and panel.seconds_button.isChecked()


def test_a_sequence_without_tempo_or_metre_keeps_seconds(roll):
    roll.set_sequence(NoteSequence(notes=[Note(60, 90, 0.0, 1.0)]))
    roll.grab()
    assert roll.bar_grid is None and not roll.shows_bars and roll.painted_bars == []


def test_a_groove_shows_as_named_drum_lanes(window, datasets_dir, qtbot):
    path = _groove(datasets_dir)
    (clip,) = window.open_files([path])
    roll = window.piano_roll.roll
    assert roll.is_drum_view
    assert roll.lane_names()[-2:] == ["Snare", "Kick"]
    assert set(roll.lane_names()) >= {"Kick", "Snare", "Closed HH", "Open HH", "High tom",
                                      "Mid tom", "Low tom", "Crash", "Ride"}
    assert roll.keys_width > 46  # the names, not piano keys
    lo, hi = roll.visible_pitch_range()
    assert (lo, hi) == (0, len(roll.lane_names()) - 1)  # every lane in view
    image = roll.grab().toImage()
    lanes = roll.lane_names()
    seen = set()
    for note in roll.visible_notes():
        row = roll.row_of(note)
        name = lanes[len(lanes) - 1 - row]
        expected = {36: "Kick", 35: "Kick", 38: "Snare", 40: "Snare", 37: "Snare",
                    42: "Closed HH", 44: "Closed HH", 46: "Open HH", 49: "Crash", 55: "Crash",
                    51: "Ride", 59: "Ride", 53: "Ride", 43: "Low tom", 48: "Mid tom",
                    50: "High tom"}.get(note.pitch)
        if expected is not None:
            assert name == expected, note.pitch
        top = roll.pitch_to_y(row + 1)
        assert roll.pitch_to_y(row + 1) <= top + roll.key_height / 2 <= roll.pitch_to_y(row)
        if name in ("Kick", "Snare") and name not in seen:
            x, y = int(roll.time_to_x(note.start)), int(top + roll.key_height / 2)
            pixel = image.pixelColor(x, y)
            assert pixel.green() > pixel.red() and pixel.green() > pixel.blue(), name
            seen.add(name)
    assert seen == {"Kick", "Snare"}
    assert roll.painted_bars[0][0] == 1  # the groove's own 4/4 bars


def _interpolate_ws(qtbot):  # type: ignore[no-untyped-def]
    from app.workspaces.interpolate_ws import InterpolateWorkspace

    ws = InterpolateWorkspace()
    qtbot.addWidget(ws)
    ws.resize(1500, 700)
    ws.show()
    qtbot.waitExposed(ws)
    return ws


def _windows(seq: NoteSequence, seconds: float, count: int, cut: float) -> list[NoteSequence]:
    """``count`` windows of ``seconds`` from ``seq``, silent after ``cut`` seconds (as a decoded
    window often is: its last notes end before the window does)."""
    out = []
    for i in range(count):
        part = seq.trim(i * seconds, (i + 1) * seconds)
        part.notes = [n for n in part.notes if n.end <= cut]
        out.append(part)
    return out


def test_interpolate_cells_show_their_whole_window(qtbot, datasets_dir):
    ws = _interpolate_ws(qtbot)
    reel = _nottingham(datasets_dir, "reelsa-c1")
    window = 2 * 4 * 60 / reel.qpm  # two 4/4 bars
    steps = _windows(reel, window, 7, cut=0.65 * window)
    ws.show_result(InterpolateResult(steps, window))
    qtbot.wait(50)
    assert len(ws.cards) == 7
    for card in ws.cards:
        roll = card.panel.roll
        t0, t1 = roll.visible_time_range()
        assert t0 == 0.0 and t1 == pytest.approx(window, rel=1e-3)
        card.panel.bar.buttons["fit"].click()  # Fit: still the whole window, not its notes
        t0, t1 = roll.visible_time_range()
        assert t0 == 0.0 and t1 == pytest.approx(window, rel=1e-3)
        roll.grab()
        assert [b for b, _x in roll.painted_bars][:2] == [1, 2]
        assert roll.painted_bars[1][1] == pytest.approx(
            roll.note_area().left() + roll.note_area().width() / 2, abs=0.5)
        assert card.panel.roll.visible_pitch_range() == ws.cards[0].panel.roll \
            .visible_pitch_range()  # one pitch scale for every step
    # all seven steps fit, or the row scrolls to reach them
    area = ws.results.parentWidget().parentWidget()
    assert isinstance(area, QScrollArea)
    bar = area.horizontalScrollBar()
    overflow = ws.results.width() - area.viewport().width()
    assert bar.maximum() == max(0, overflow)
    assert ws.cards[-1].geometry().right() <= ws.results.width()
    # a long window (16 bars) is shown one cell per line, the whole width
    long = 16 * 4 * 60 / reel.qpm
    ws.show_result(InterpolateResult(_windows(reel, long, 3, cut=long), long))
    qtbot.wait(50)
    assert ws.results_layout.direction() == QBoxLayout.Direction.TopToBottom
    assert ws.results.width() <= area.viewport().width()  # one line each, no sideways scroll
    roll = ws.cards[0].panel.roll
    roll.grab()
    assert roll.visible_time_range()[1] == pytest.approx(long, rel=1e-3)
    assert [b for b, _x in roll.painted_bars][0] == 1 and len(roll.painted_bars) >= 8


def test_interpolate_drum_cells_are_lanes(qtbot, datasets_dir):
    ws = _interpolate_ws(qtbot)
    groove = read_midi(_groove(datasets_dir))
    window = 2 * 4 * 60 / groove.qpm
    ws.show_result(InterpolateResult(_windows(groove, window, 3, cut=window), window))
    qtbot.wait(50)
    for card in ws.cards:
        roll = card.panel.roll
        assert roll.is_drum_view and roll.lane_names()[-1] == "Kick"
        assert roll.key_height >= READ_LANE - 0.01


def test_result_cards_are_tall_enough_to_read(qtbot, datasets_dir):
    from app.workspaces.continue_ws import ContinueWorkspace

    ws = ContinueWorkspace()
    qtbot.addWidget(ws)
    ws.resize(1200, 600)
    ws.show()
    qtbot.waitExposed(ws)
    # four octaves of notes, as a piano continuation often spans
    wide = NoteSequence(notes=[Note(40 + (i * 5) % 49, 80, 0.25 * i, 0.25 * i + 0.2)
                               for i in range(60)], tempos=[TempoChange(0.0, 120.0)])
    assert wide.pitch_range()[1] - wide.pitch_range()[0] >= 47
    ws.show_variations([wide, wide.transpose(2), wide.transpose(-2)], boundary=5.0)
    qtbot.wait(50)
    for card in ws.cards:
        roll = card.panel.roll
        assert roll.key_height >= READ_KEY - 0.01, roll.key_height
        lo, hi = roll.visible_pitch_range()
        assert lo <= min(n.pitch for n in card.sequence.notes)
        assert hi >= max(n.pitch for n in card.sequence.notes)


def test_the_panel_fit_reaches_a_clip_s_nominal_length(qtbot):
    panel = PianoRollPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 300)
    panel.show()
    panel.set_sequence(NoteSequence(notes=[Note(60, 90, 0.0, 1.0)],
                                    tempos=[TempoChange(0.0, 120.0)]))
    panel.roll.set_length(4.0)
    panel.fit()
    assert panel.roll.visible_time_range() == (0.0, pytest.approx(4.0))
