"""NoteSequence transforms on small hand-made sequences."""

from __future__ import annotations

import pytest

from models.sequence import (
    ControlChange,
    Note,
    NoteSequence,
    PitchBend,
    TempoChange,
    TimeSignature,
)


def spans(seq: NoteSequence) -> list[tuple[int, float, float]]:
    return [(n.pitch, n.start, n.end) for n in seq.sorted().notes]


def melody() -> NoteSequence:
    return NoteSequence(
        notes=[Note(60, 100, 0.0, 1.0), Note(64, 90, 1.0, 2.0), Note(67, 80, 2.0, 3.5),
               Note(38, 110, 0.5, 0.6, is_drum=True, instrument=1)],
        tempos=[TempoChange(0.0, 120.0), TempoChange(2.0, 60.0)],
        time_signatures=[TimeSignature(0.0, 4, 4), TimeSignature(2.5, 3, 4)],
        control_changes=[ControlChange(0.5, 7, 100), ControlChange(2.5, 7, 50)],
        pitch_bends=[PitchBend(1.5, 2048)],
    )


def test_queries() -> None:
    seq = melody()
    assert seq.total_time == 3.5
    assert seq.qpm == 120.0 and NoteSequence().qpm == 120.0
    assert seq.pitch_range() == (38, 67)
    assert seq.instruments() == [0, 1]
    assert NoteSequence().is_empty and not seq.is_empty
    assert (seq.time_signature.numerator, seq.time_signature.denominator) == (4, 4)


def test_transpose_moves_pitched_notes_only() -> None:
    seq = melody()
    up = seq.transpose(5)
    assert [n.pitch for n in up.notes] == [65, 69, 72, 38]
    assert [n.pitch for n in seq.notes] == [60, 64, 67, 38]  # the original is untouched
    # Notes pushed out of the range are dropped; drums never move.
    high = seq.transpose(5, max_pitch=70)
    assert [n.pitch for n in high.notes] == [65, 69, 38]
    assert [n.pitch for n in seq.transpose(-40, min_pitch=21).notes] == [24, 27, 38]


def test_stretch_scales_time_and_tempo() -> None:
    slow = melody().stretch(2.0)
    assert [(n.start, n.end) for n in slow.notes] == [(0.0, 2.0), (2.0, 4.0), (4.0, 7.0),
                                                      (1.0, 1.2)]
    assert [(t.time, t.qpm) for t in slow.tempos] == [(0.0, 60.0), (4.0, 30.0)]
    assert [t.time for t in slow.time_signatures] == [0.0, 5.0]
    assert [c.time for c in slow.control_changes] == [1.0, 5.0]
    assert [b.time for b in slow.pitch_bends] == [3.0]
    with pytest.raises(ValueError, match="positive"):
        melody().stretch(0.0)


def test_shift_moves_events_but_keeps_the_first_tempo_at_zero() -> None:
    moved = melody().shift(1.5)
    assert [(n.start, n.end) for n in moved.notes][:2] == [(1.5, 2.5), (2.5, 3.5)]
    assert [c.time for c in moved.control_changes] == [2.0, 4.0]
    assert [(t.time, t.qpm) for t in moved.tempos] == [(0.0, 120.0), (3.5, 60.0)]
    assert [t.time for t in moved.time_signatures] == [0.0, 4.0]


def test_trim_rebases_and_cuts() -> None:
    part = melody().trim(0.8, 2.5)
    # 60 began before the window: dropped; 67 is cut at the window's end.
    assert spans(part) == [(64, pytest.approx(0.2), pytest.approx(1.2)),
                           (67, pytest.approx(1.2), pytest.approx(1.7))]
    # The tempo in force at 0.8 s moves to 0; the change at 2.0 s follows, re-based.
    assert [(round(t.time, 6), t.qpm) for t in part.tempos] == [(0.0, 120.0), (1.2, 60.0)]
    assert [(t.time, t.numerator) for t in part.time_signatures] == [(0.0, 4)]
    assert [c.time for c in part.control_changes] == []
    assert [round(b.time, 6) for b in part.pitch_bends] == [0.7]
    assert melody().trim(5.0, 6.0).is_empty


def test_concatenate_places_the_second_after_the_first() -> None:
    first = NoteSequence(notes=[Note(60, 100, 0.0, 1.0)])
    second = NoteSequence(notes=[Note(62, 100, 0.0, 0.5), Note(64, 100, 0.5, 1.0)],
                          control_changes=[ControlChange(0.25, 64, 127)])
    both = first.concatenate(second, gap=0.5)
    assert spans(both) == [(60, 0.0, 1.0), (62, 1.5, 2.0), (64, 2.0, 2.5)]
    assert [c.time for c in both.control_changes] == [1.75]
    assert spans(second) == [(62, 0.0, 0.5), (64, 0.5, 1.0)]  # inputs untouched
    assert len(first.notes) == 1


def test_sorted_orders_by_start_then_pitch() -> None:
    seq = NoteSequence(notes=[Note(67, 1, 1.0, 2.0), Note(64, 1, 0.0, 1.0),
                              Note(60, 1, 0.0, 1.0)])
    assert [n.pitch for n in seq.sorted().notes] == [60, 64, 67]
    assert [n.pitch for n in seq.notes] == [67, 64, 60]


def pedal_sequence() -> NoteSequence:
    return NoteSequence(
        notes=[
            Note(60, 100, 0.0, 0.5),   # released under the pedal: sounds until it comes up
            Note(64, 100, 0.25, 0.75),  # struck again at 1.25 s while the pedal is down
            Note(64, 100, 1.25, 1.5),   # then held to the pedal's release
            Note(67, 100, 2.5, 3.0),   # after the pedal: untouched
            Note(72, 100, 0.0, 0.5, instrument=1),  # another instrument, no pedal of its own
        ],
        control_changes=[ControlChange(0.1, 64, 127), ControlChange(2.0, 64, 0)],
    )


def test_apply_sustain_extends_notes_under_the_pedal() -> None:
    seq = pedal_sequence()
    assert seq.sustain_intervals(0) == [(0.1, 2.0)]
    assert seq.sustain_intervals(1) == []
    held = seq.apply_sustain()
    assert sorted((n.instrument, n.pitch, n.start, n.end) for n in held.notes) == [
        (0, 60, 0.0, 2.0),
        (0, 64, 0.25, 1.25),
        (0, 64, 1.25, 2.0),
        (0, 67, 2.5, 3.0),
        (1, 72, 0.0, 0.5),
    ]
    assert [n.end for n in seq.notes] == [0.5, 0.75, 1.5, 3.0, 0.5]  # the original is untouched


def test_apply_sustain_without_pedal_changes_nothing() -> None:
    seq = melody()
    assert spans(seq.apply_sustain()) == spans(seq)
    # A pedal that only comes up, or is pressed after every note, changes nothing either.
    seq.control_changes.append(ControlChange(0.0, 64, 0))
    seq.control_changes.append(ControlChange(3.6, 64, 127))
    assert spans(seq.apply_sustain()) == spans(seq)


def test_one_table_of_pitch_names() -> None:
    from models.sequence import KEY_NAMES, pitch_class, pitch_name

    assert pitch_name(60) == "C4" and pitch_name(61) == "C#4" and pitch_name(21) == "A0"
    assert pitch_name(70, sharp="♯") == "A♯4"
    assert [pitch_class(n) for n in ("C", "C#", "Db", "Bb", "B#", "Cb")] == [0, 1, 1, 10, 0, 11]
    assert len(KEY_NAMES) == 24 and KEY_NAMES[1] == "Db major" and KEY_NAMES[13] == "C# minor"
    with pytest.raises(ValueError):
        pitch_class("H")


def test_with_tempo_keeps_every_time_in_seconds() -> None:
    seq = melody()
    seq.time_signatures = [TimeSignature(0.0, 3, 4)]
    seq.control_changes = [ControlChange(0.7, 64, 127)]
    out = seq.with_tempo(96.0)
    assert [(t.time, t.qpm) for t in out.tempos] == [(0.0, 96.0)]
    assert spans(out) == spans(seq)
    assert out.time_signatures == seq.time_signatures
    assert out.control_changes == seq.control_changes
    assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 120.0), (2.0, 60.0)]  # a copy
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            seq.with_tempo(bad)
