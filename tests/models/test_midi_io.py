"""MIDI reading and writing: real files from the data sets, hand-built bytes, bad input."""

from __future__ import annotations

import io
import math
import struct
import warnings
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import soundfile

from models.errors import CadenzaError
from models.midi_io import HANGING_NOTE_MIN_SECONDS, midi_bytes, read_midi, write_midi
from models.sequence import (
    ControlChange,
    Note,
    NoteSequence,
    PitchBend,
    TempoChange,
    TimeSignature,
)

COLLECTIONS = ["piano/asap", "piano/pop909", "melody/nottingham", "drums/groove"]


# ------------------------------------------------------------------------------ helpers
def varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def track(*events: tuple[int, bytes], end_delta: int = 0) -> bytes:
    """An MTrk chunk from (delta ticks, raw event bytes) pairs, closed by end-of-track."""
    body = b"".join(varlen(d) + e for d, e in events) + varlen(end_delta) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">L", len(body)) + body


def smf(fmt: int, division: int, *tracks: bytes) -> bytes:
    return b"MThd" + struct.pack(">LHHh", 6, fmt, len(tracks), division) + b"".join(tracks)


def tempo(micro: int) -> bytes:
    return b"\xff\x51\x03" + micro.to_bytes(3, "big")


def name(text: str) -> bytes:
    raw = text.encode()
    return b"\xff\x03" + varlen(len(raw)) + raw


def on(ch: int, pitch: int, vel: int = 100) -> bytes:
    return bytes([0x90 | ch, pitch, vel])


def off(ch: int, pitch: int) -> bytes:
    return bytes([0x80 | ch, pitch, 0])


def notes_of(seq: NoteSequence) -> list[tuple]:
    return [(n.pitch, n.start, n.end, n.velocity, n.is_drum, n.instrument) for n in seq.notes]


def times(seq: NoteSequence) -> list[float]:
    return [t for n in seq.notes for t in (n.start, n.end)]


def sample_files(datasets_dir: Path, collection: str, count: int = 3) -> list[Path]:
    files = sorted((datasets_dir / collection).rglob("*.mid"))
    assert len(files) >= count, f"too few MIDI files in {collection}"
    step = len(files) // count
    return [files[i * step] for i in range(count)]


def ambiguous_keys(seq: NoteSequence) -> set[tuple[int, int]]:
    """(instrument, pitch) pairs where pairing note-offs is a choice: overlaps or zero-length."""
    keys: set[tuple[int, int]] = set()
    by_key: dict[tuple[int, int], list[Note]] = {}
    for n in seq.notes:
        by_key.setdefault((n.instrument, n.pitch), []).append(n)
    for key, notes in by_key.items():
        notes.sort(key=lambda n: n.start)
        if any(n.end <= n.start for n in notes) or any(
            b.start < a.end for a, b in zip(notes, notes[1:], strict=False)
        ):
            keys.add(key)
    return keys


# ------------------------------------------------------------------------------ data sets
@pytest.mark.parametrize("collection", COLLECTIONS)
def test_notes_match_pretty_midi(datasets_dir: Path, collection: str) -> None:
    """Pitch, start, end (1 ms), velocity and drum flag agree with pretty_midi's reading.

    pretty_midi closes every open note of a pitch at one note-off and keeps open a note whose
    note-off shares its tick; we pair first-in first-out and keep zero-length notes. Those
    (instrument, pitch) groups are compared on starts only, and only there may we have extra notes.
    """
    for path in sample_files(datasets_dir, collection):
        seq = read_midi(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(str(path))
        theirs = sorted(
            (n.pitch, n.start, n.end, n.velocity, inst.is_drum)
            for inst in pm.instruments for n in inst.notes
        )
        assert theirs, path
        loose = ambiguous_keys(seq)
        unmatched = sorted(seq.notes, key=lambda n: (n.pitch, n.start))
        for pitch, start, end, velocity, is_drum in theirs:
            match = next(
                (n for n in unmatched
                 if n.pitch == pitch and abs(n.start - start) < 1e-3
                 and n.velocity == velocity and n.is_drum == is_drum),
                None,
            )
            assert match is not None, f"{path.name}: no note {pitch} at {start:.4f}"
            unmatched.remove(match)
            if (match.instrument, pitch) not in loose:
                assert abs(match.end - end) < 1e-3, f"{path.name}: note {pitch} at {start:.4f}"
        extra = [n for n in unmatched if (n.instrument, n.pitch) not in loose]
        assert not extra, f"{path.name}: notes pretty_midi does not have: {extra[:3]}"
        assert len(unmatched) <= max(3, len(seq.notes) // 100), path.name


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_data_set_round_trip(datasets_dir: Path, collection: str, tmp_path: Path) -> None:
    """read -> write -> read keeps notes, controllers and tempos within one tick."""
    for path in sample_files(datasets_dir, collection, count=2):
        seq = read_midi(path)
        out = tmp_path / f"{path.stem}.mid"
        write_midi(seq, out)
        back = read_midi(out)
        slowest = min([t.qpm for t in seq.tempos] or [120.0])
        tick = 60.0 / slowest / seq.ticks_per_quarter + 1e-9
        assert back.ticks_per_quarter == seq.ticks_per_quarter
        a = sorted(notes_of(seq), key=lambda n: (n[0], n[1]))
        b = sorted(notes_of(back), key=lambda n: (n[0], n[1]))
        assert len(a) == len(b), path.name
        for x, y in zip(a, b, strict=True):
            assert x[0] == y[0] and x[3] == y[3] and x[4] == y[4]
            assert abs(x[1] - y[1]) <= tick and abs(x[2] - y[2]) <= tick, (path.name, x, y)
        assert len(back.control_changes) == len(seq.control_changes)
        for x, y in zip(seq.control_changes, back.control_changes, strict=True):
            assert (x.number, x.value) == (y.number, y.value)
            assert abs(x.time - y.time) <= tick
        assert len(back.tempos) == len(seq.tempos)
        for x, y in zip(seq.tempos, back.tempos, strict=True):
            assert abs(x.time - y.time) <= tick and x.qpm == pytest.approx(y.qpm, rel=1e-5)
        assert [(t.numerator, t.denominator) for t in back.time_signatures] == [
            (t.numerator, t.denominator) for t in seq.time_signatures
        ]


def test_sustain_and_tempo_changes_survive(datasets_dir: Path) -> None:
    """Files with sustain pedal and many tempo changes (POP909) keep both after a round trip."""
    path = next(
        p for p in sample_files(datasets_dir, "piano/pop909", count=10)
        if len(read_midi(p).tempos) > 2
        and any(c.number == 64 for c in read_midi(p).control_changes)
    )
    seq = read_midi(path)
    back = read_midi(midi_bytes(seq))
    pedal = [(round(c.time, 2), c.value) for c in seq.control_changes if c.number == 64]
    assert pedal == [(round(c.time, 2), c.value) for c in back.control_changes if c.number == 64]
    assert [round(t.qpm, 3) for t in back.tempos] == [round(t.qpm, 3) for t in seq.tempos]
    assert back.sustain_intervals(0) == pytest.approx(seq.sustain_intervals(0), abs=2e-3)


def test_drum_files_are_drums(datasets_dir: Path) -> None:
    seq = read_midi(sample_files(datasets_dir, "drums/groove", count=1)[0])
    assert seq.notes and all(n.is_drum for n in seq.notes)
    back = read_midi(midi_bytes(seq))
    assert all(n.is_drum for n in back.notes)


# ------------------------------------------------------------------------------ hand-built
def test_format_0_channels_programs_and_drums() -> None:
    data = smf(0, 96, track(
        (0, tempo(500_000)),
        (0, bytes([0xC0, 40])),           # violin on channel 1
        (0, on(0, 60)), (0, on(9, 36, 90)),
        (96, off(0, 60)), (0, off(9, 36)),
        (0, bytes([0xC0, 0])),            # back to piano: the next note takes it
        (0, on(0, 62, 80)), (96, off(0, 62)),
    ))
    seq = read_midi(data)
    assert notes_of(seq) == [
        (36, 0.0, 0.5, 90, True, 1), (60, 0.0, 0.5, 100, False, 0), (62, 0.5, 1.0, 80, False, 0)
    ]
    assert [n.program for n in seq.notes] == [0, 40, 0]
    assert seq.qpm == 120.0


def test_format_1_track_names_and_instruments() -> None:
    data = smf(1, 480,
               track((0, name("Song")), (0, tempo(600_000))),
               track((0, name("Lead")), (0, on(2, 70)), (480, off(2, 70))),
               track((0, name("Drums")), (0, on(9, 38)), (240, off(9, 38))))
    seq = read_midi(data)
    assert seq.name == "Song"
    assert seq.instrument_names == {0: "Lead", 1: "Drums"}
    assert notes_of(seq) == [(38, 0.0, 0.3, 100, True, 1), (70, 0.0, 0.6, 100, False, 0)]
    assert seq.qpm == pytest.approx(100.0)


def test_format_2_tracks_play_one_after_another() -> None:
    data = smf(2, 100,
               track((0, tempo(1_000_000)), (0, on(0, 60)), (100, off(0, 60)), end_delta=100),
               track((0, on(0, 64)), (50, off(0, 64))),
               track((0, tempo(500_000)), (0, on(0, 67)), (100, off(0, 67))))
    seq = read_midi(data)
    # Track 1 lasts 200 ticks at 1 s per 100 ticks; track 2 keeps that tempo; track 3 sets 120.
    assert [(n.pitch, n.start, n.end) for n in seq.notes] == [
        (60, 0.0, 1.0), (64, 2.0, 2.5), (67, 2.5, 3.0)
    ]
    assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 60.0), (2.5, 120.0)]


def test_running_status_and_velocity_zero_note_off() -> None:
    # One status byte, then note/velocity pairs; velocity 0 switches the note off.
    body = (b"\x00\x90\x3c\x64" + b"\x00\x40\x50" + b"\x60\x3c\x00" + b"\x00\x40\x00"
            + b"\x00\x43\x70" + b"\x60\x43\x00" + b"\x00\xff\x2f\x00")
    data = smf(0, 96, b"MTrk" + struct.pack(">L", len(body)) + body)
    seq = read_midi(data)
    assert [(n.pitch, n.velocity, n.start, n.end) for n in seq.notes] == [
        (60, 100, 0.0, 0.5), (64, 80, 0.0, 0.5), (67, 112, 0.5, 1.0)
    ]


def test_tempo_change_mid_file_gives_exact_seconds() -> None:
    data = smf(1, 96,
               track((0, tempo(500_000)), (192, tempo(1_000_000)), (96, tempo(250_000))),
               track((0, on(0, 60)), (192, off(0, 60)),    # 0 .. 1.0 s at 120 qpm
                     (0, on(0, 62)), (96, off(0, 62)),      # 1.0 .. 2.0 s at 60 qpm
                     (0, on(0, 64)), (192, off(0, 64))))    # 2.0 .. 2.5 s at 240 qpm
    seq = read_midi(data)
    assert [(n.pitch, n.start, n.end) for n in seq.notes] == [
        (60, 0.0, 1.0), (62, 1.0, 2.0), (64, 2.0, 2.5)
    ]
    assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 120.0), (1.0, 60.0), (2.0, 240.0)]
    back = read_midi(midi_bytes(seq))
    assert [n.pitch for n in back.notes] == [60, 62, 64]
    assert times(back) == pytest.approx([0.0, 1.0, 1.0, 2.0, 2.0, 2.5])


def test_late_first_tempo_starts_at_120() -> None:
    data = smf(0, 480, track((960, tempo(1_000_000)), (0, on(0, 60)), (480, off(0, 60))))
    seq = read_midi(data)
    assert [(t.time, t.qpm) for t in seq.tempos] == [(0.0, 120.0), (1.0, 60.0)]
    assert [(n.start, n.end) for n in seq.notes] == [(1.0, 2.0)]


def test_smpte_division_ignores_tempo() -> None:
    division = -(25 << 8) | 40  # 25 frames/s x 40 ticks/frame: 1 ms ticks
    assert struct.pack(">h", division) == b"\xe7\x28"
    data = smf(0, division, track((0, tempo(1_000_000)), (500, on(0, 60)), (1000, off(0, 60)),
                                  (250, on(0, 62)), (1, off(0, 62))))
    seq = read_midi(data)
    assert [n.pitch for n in seq.notes] == [60, 62]
    assert times(seq) == pytest.approx([0.5, 1.5, 1.75, 1.751], abs=1e-12)
    assert seq.ticks_per_quarter == 500  # 1000 ticks/s at 120 qpm: nothing lost on writing
    back = read_midi(midi_bytes(seq))
    assert times(back) == pytest.approx([0.5, 1.5, 1.75, 1.751], abs=1e-12)


def test_hanging_notes_close_at_the_end() -> None:
    # 60 never ends: it lasts to the end of the file (the other track ends at 2 s).
    data = smf(1, 480,
               track((0, tempo(500_000)), end_delta=1920),
               track((0, on(0, 60)), (480, on(0, 64)), (480, off(0, 64)), (0, on(0, 67))))
    seq = read_midi(data)
    assert [(n.pitch, n.start, n.end) for n in seq.notes] == [
        (60, 0.0, 2.0), (64, 0.5, 1.0), (67, 1.0, 2.0)
    ]
    # A hanging note that is the file's last event still gets a short length.
    seq = read_midi(smf(0, 480, track((960, on(0, 72)))))
    assert [(n.start, n.end) for n in seq.notes] == [(1.0, 1.0 + HANGING_NOTE_MIN_SECONDS)]


def test_same_pitch_overlaps_pair_first_in_first_out() -> None:
    data = smf(0, 480, track((0, on(0, 60, 90)), (480, on(0, 60, 50)),
                             (480, off(0, 60)), (480, off(0, 60)),
                             (0, on(0, 62)), (0, off(0, 62)),           # zero-length
                             (480, off(0, 65))))                          # stray note-off
    seq = read_midi(data)
    assert [(n.pitch, n.velocity, n.start, n.end) for n in seq.notes] == [
        (60, 90, 0.0, 1.0), (60, 50, 0.5, 1.5), (62, 100, 1.5, 1.5)
    ]


def test_restrike_written_note_on_before_note_off() -> None:
    """Some writers put the re-strike's note-on before the old note's note-off at one tick."""
    data = smf(0, 480, track((0, on(0, 60, 90)), (480, on(0, 60, 50)), (0, off(0, 60)),
                             (480, off(0, 60))))
    assert [(n.velocity, n.start, n.end) for n in read_midi(data).notes] == [
        (90, 0.0, 0.5), (50, 0.5, 1.0)
    ]


def test_controllers_pitch_bends_and_time_signatures() -> None:
    data = smf(0, 480, track(
        (0, b"\xff\x58\x04\x03\x02\x18\x08"),            # 3/4
        (0, bytes([0xB0, 64, 127])), (0, on(0, 60)), (480, off(0, 60)),
        (0, bytes([0xE0, 0x00, 0x60])),                  # bend +4096
        (480, bytes([0xB0, 64, 0])),
        (0, b"\xff\x58\x04\x06\x03\x18\x08"),            # 6/8 at 1 s
    ))
    seq = read_midi(data)
    assert [(c.time, c.number, c.value) for c in seq.control_changes] == [
        (0.0, 64, 127), (1.0, 64, 0)
    ]
    assert [(b.time, b.bend) for b in seq.pitch_bends] == [(0.5, 4096)]
    assert [(t.time, t.numerator, t.denominator) for t in seq.time_signatures] == [
        (0.0, 3, 4), (1.0, 6, 8)
    ]
    assert seq.sustain_intervals(0) == [(0.0, 1.0)]
    assert seq.apply_sustain().notes[0].end == 1.0


# ------------------------------------------------------------------------------ writing
def sample_sequence() -> NoteSequence:
    return NoteSequence(
        notes=[
            Note(60, 100, 0.0, 0.5, program=0, instrument=0),
            Note(64, 90, 0.5, 1.25, program=24, instrument=0),   # program change mid-track
            Note(36, 120, 0.0, 0.1, is_drum=True, instrument=1),
            Note(48, 70, 1.0, 2.0, program=33, instrument=2),
        ],
        tempos=[TempoChange(0.0, 100.0), TempoChange(1.2, 140.0)],
        time_signatures=[TimeSignature(0.0, 3, 4), TimeSignature(1.8, 4, 4)],
        control_changes=[ControlChange(0.25, 64, 127), ControlChange(1.0, 64, 0),
                         ControlChange(1.5, 7, 90, instrument=2, program=33)],
        pitch_bends=[PitchBend(1.5, -8192, instrument=2, program=33),
                     PitchBend(1.75, 8191, instrument=2, program=33)],
        instrument_names={0: "Piano", 1: "Drums", 2: "Bassé"},
        ticks_per_quarter=220,
        name="Sketch",
    )


def test_write_layout(tmp_path: Path) -> None:
    path = tmp_path / "out.mid"
    write_midi(sample_sequence(), path)
    midi = mido.MidiFile(path)
    assert midi.type == 1 and midi.ticks_per_beat == 220 and len(midi.tracks) == 4
    conductor = [m.type for m in midi.tracks[0]]
    assert "set_tempo" in conductor and "time_signature" in conductor
    assert not any(m.type == "note_on" for m in midi.tracks[0])
    channels = [{m.channel for m in t if hasattr(m, "channel")} for t in midi.tracks[1:]]
    assert channels == [{0}, {9}, {1}]
    first_program = [next(m for m in t if not m.is_meta) for t in midi.tracks[1:]]
    assert [(m.type, m.program) for m in first_program] == [
        ("program_change", 0), ("program_change", 0), ("program_change", 33)
    ]


def test_write_read_round_trip_is_within_a_tick() -> None:
    seq = sample_sequence()
    back = read_midi(midi_bytes(seq))
    tick = 60.0 / 100.0 / 220
    assert back.name == "Sketch"
    assert back.instrument_names == {0: "Piano", 1: "Drums", 2: "Bassé"}
    expected = seq.sorted().notes
    assert len(back.notes) == len(expected)
    for x, y in zip(expected, back.notes, strict=True):
        assert (x.pitch, x.velocity, x.program, x.is_drum, x.instrument) == (
            y.pitch, y.velocity, y.program, y.is_drum, y.instrument)
        assert abs(x.start - y.start) <= tick and abs(x.end - y.end) <= tick
    assert [(round(t.time, 2), round(t.qpm, 3)) for t in back.tempos] == [(0.0, 100.0),
                                                                           (1.2, 140.0)]
    assert [(t.numerator, t.denominator) for t in back.time_signatures] == [(3, 4), (4, 4)]
    assert [(c.number, c.value, c.instrument) for c in back.control_changes] == [
        (64, 127, 0), (64, 0, 0), (7, 90, 2)]
    assert [(b.bend, b.instrument) for b in back.pitch_bends] == [(-8192, 2), (8191, 2)]


def test_many_instruments_skip_the_drum_channel() -> None:
    seq = NoteSequence(notes=[Note(60 + i, 100, i * 0.1, i * 0.1 + 0.5, instrument=i)
                              for i in range(12)])
    midi = mido.MidiFile(file=io.BytesIO(midi_bytes(seq)))
    channels = [next(m.channel for m in t if hasattr(m, "channel")) for t in midi.tracks[1:]]
    assert 9 not in channels and channels[:9] == list(range(9)) and channels[9] == 10
    assert not any(n.is_drum for n in read_midi(midi_bytes(seq)).notes)


@pytest.mark.parametrize("bad", [math.nan, -0.5, math.inf])
def test_write_rejects_bad_times(tmp_path: Path, bad: float) -> None:
    seq = NoteSequence(notes=[Note(60, 100, bad, 1.0)])
    with pytest.raises(CadenzaError, match=r"bad\.mid: cannot write a note at time"):
        write_midi(seq, tmp_path / "bad.mid")
    assert not (tmp_path / "bad.mid").exists()
    seq = NoteSequence(notes=[Note(60, 100, 0.0, 1.0)],
                       control_changes=[ControlChange(bad, 64, 127)])
    with pytest.raises(CadenzaError, match="control change"):
        midi_bytes(seq)


def test_write_rejects_backwards_notes_and_bad_pitch() -> None:
    with pytest.raises(CadenzaError, match="ends before it starts"):
        midi_bytes(NoteSequence(notes=[Note(60, 100, 2.0, 1.0)]))
    with pytest.raises(CadenzaError, match="pitch 128"):
        midi_bytes(NoteSequence(notes=[Note(128, 100, 0.0, 1.0)]))


# ------------------------------------------------------------------------------ bad input
def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mid"
    path.write_bytes(b"")
    with pytest.raises(CadenzaError, match=r"^empty\.mid: empty file"):
        read_midi(path)
    with pytest.raises(CadenzaError, match="empty file"):
        read_midi(b"")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CadenzaError, match=r"nothere\.mid: cannot read"):
        read_midi(tmp_path / "nothere.mid")


def test_truncated_real_file(datasets_dir: Path, tmp_path: Path) -> None:
    source = sample_files(datasets_dir, "piano/pop909", count=1)[0]
    path = tmp_path / "cut.mid"
    path.write_bytes(source.read_bytes()[:30])
    with pytest.raises(CadenzaError, match=r"^cut\.mid: truncated MIDI file"):
        read_midi(path)


@pytest.mark.parametrize("cut", [10, 14, 22, 40])
def test_truncated_at_any_point(cut: int) -> None:
    data = smf(1, 96, track((0, tempo(500_000))), track((0, on(0, 60)), (96, off(0, 60))))
    with pytest.raises(CadenzaError, match="truncated"):
        read_midi(data[:cut])


def test_event_cut_inside_a_track() -> None:
    # The chunk claims 4 bytes; only 3 are there.
    data = smf(0, 96, b"MTrk" + struct.pack(">L", 4) + b"\x00\x90\x3c")
    with pytest.raises(CadenzaError, match="truncated MIDI file .track 1 of 1 is cut off"):
        read_midi(data)
    body = b"\x00\x90\x3c"  # note-on missing its velocity, chunk size honest
    with pytest.raises(CadenzaError, match="MIDI data: truncated"):
        read_midi(smf(0, 96, b"MTrk" + struct.pack(">L", len(body)) + body))


def test_wav_passed_as_midi(tmp_path: Path) -> None:
    path = tmp_path / "tone.mid"
    soundfile.write(path, np.zeros(1000, dtype=np.float32), 16000, format="WAV")
    with pytest.raises(CadenzaError, match=r"^tone\.mid: not a MIDI file"):
        read_midi(path)


def test_text_passed_as_midi(tmp_path: Path) -> None:
    path = tmp_path / "notes.mid"
    path.write_text("C D E F G A B c\n")
    with pytest.raises(CadenzaError, match=r"notes\.mid: not a MIDI file"):
        read_midi(path)


def test_zero_division() -> None:
    with pytest.raises(CadenzaError, match="zero ticks per quarter"):
        read_midi(smf(0, 0, track((0, on(0, 60)), (96, off(0, 60)))))


def test_hours_long_delta(tmp_path: Path) -> None:
    path = tmp_path / "forever.mid"
    path.write_bytes(smf(0, 480, track((0, on(0, 60)), (0x0FFFFFFF, off(0, 60)))))
    with pytest.raises(CadenzaError, match=r"forever\.mid: .*hour limit"):
        read_midi(path)
    # Just under the cap is music, however long.
    five_hours = 5 * 3600 * 960
    seq = read_midi(smf(0, 480, track((0, on(0, 60)), (five_hours, off(0, 60)))))
    assert seq.notes[0].end == pytest.approx(5 * 3600)


def test_bad_status_and_data_bytes() -> None:
    body = b"\x00\xf4\x01\x02\x00\xff\x2f\x00"  # undefined status byte
    with pytest.raises(CadenzaError, match="corrupt MIDI file"):
        read_midi(smf(0, 96, b"MTrk" + struct.pack(">L", len(body)) + body))
    body = b"\x00\x90\x3c\xc8\x00\xff\x2f\x00"  # velocity 200
    with pytest.raises(CadenzaError, match="corrupt MIDI file"):
        read_midi(smf(0, 96, b"MTrk" + struct.pack(">L", len(body)) + body))
    body = b"\x00\x3c\x64\x00\xff\x2f\x00"  # running status with no status before it
    with pytest.raises(CadenzaError, match="corrupt MIDI file"):
        read_midi(smf(0, 96, b"MTrk" + struct.pack(">L", len(body)) + body))


def test_unknown_format_and_chunks() -> None:
    with pytest.raises(CadenzaError, match="unknown MIDI format 3"):
        read_midi(smf(3, 96, track((0, on(0, 60)), (96, off(0, 60)))))
    # An unknown chunk between tracks is skipped, as the standard asks.
    data = smf(0, 96, b"XFIH" + struct.pack(">L", 3) + b"abc"
               + track((0, on(0, 60)), (96, off(0, 60))))
    assert [(n.start, n.end) for n in read_midi(data).notes] == [(0.0, 0.5)]


# ------------------------------------------------------------------------------ read_midi_fast
def same_reading(a: NoteSequence, b: NoteSequence) -> None:
    """Everything but the instrument numbering is the same, to the bit."""
    key = lambda n: (n.start, n.pitch, n.end, n.velocity, n.program, n.is_drum)  # noqa: E731
    assert sorted(map(key, a.notes)) == sorted(map(key, b.notes))
    assert [(t.time, t.qpm) for t in a.tempos] == [(t.time, t.qpm) for t in b.tempos]
    assert [(t.time, t.numerator, t.denominator) for t in a.time_signatures] == \
        [(t.time, t.numerator, t.denominator) for t in b.time_signatures]
    # Controllers and bends of a channel that plays no note (symusic leaves those out).
    cc = lambda c: (c.time, c.number, c.value, c.program, c.is_drum)  # noqa: E731
    sounding_a, sounding_b = {n.instrument for n in a.notes}, {n.instrument for n in b.notes}
    assert sorted(cc(c) for c in a.control_changes if c.instrument in sounding_a) == \
        sorted(cc(c) for c in b.control_changes if c.instrument in sounding_b)
    assert sorted((p.time, p.bend) for p in a.pitch_bends if p.instrument in sounding_a) == \
        sorted((p.time, p.bend) for p in b.pitch_bends if p.instrument in sounding_b)
    assert set(a.instrument_names.values()) == set(b.instrument_names.values())
    assert a.ticks_per_quarter == b.ticks_per_quarter


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_fast_reader_agrees_on_the_data_sets(datasets_dir: Path, collection: str) -> None:
    from models.midi_io import read_midi_fast

    for path in sample_files(datasets_dir, collection, count=6):
        exact, fast = read_midi(path), read_midi_fast(path)
        same_reading(exact, fast)
        assert fast.name == exact.name == path.stem
        # Each fast instrument is one exact instrument (here: one track and channel each).
        pairs = {(e.instrument, f.instrument) for e, f in zip(exact.notes, fast.notes,
                                                                strict=True)}
        assert len({e for e, _ in pairs}) == len({f for _, f in pairs}) == len(pairs)


def test_fast_reader_sees_tempo_changes_and_overlaps_as_the_exact_one_does(tmp_path) -> None:
    from models.midi_io import read_midi_fast

    data = smf(1, 480,
               track((0, tempo(500_000)), (960, tempo(250_000)), (960, tempo(1_000_000))),
               track((0, name("Lead")), (0, on(0, 60, 90)), (480, on(0, 60, 50)),
                     (480, off(0, 60)), (480, off(0, 60)), (0, on(0, 62)), (0, off(0, 62)),
                     (7, bytes([0xB0, 64, 127])), (5, bytes([0xE0, 0, 80])),
                     (900, on(9, 36)), (1, off(9, 36))))
    path = tmp_path / "overlaps.mid"
    path.write_bytes(data)
    fast = read_midi_fast(path)
    same_reading(read_midi(path), fast)
    assert [(n.pitch, n.velocity, n.start, n.end) for n in fast.notes[:2]] == [
        (60, 90, 0.0, 1.0), (60, 50, 0.5, 1.25)]
    assert fast.instrument_names[0] == "Lead"


@pytest.mark.parametrize("kind", ["format 2", "smpte", "riff", "truncated", "text", "missing"])
def test_fast_reader_leaves_what_symusic_cannot_read_to_read_midi(kind: str,
                                                                   tmp_path: Path) -> None:
    from models.midi_io import read_midi_fast

    plain = track((0, on(0, 60)), (100, off(0, 60)))
    data = {
        "format 2": smf(2, 100, plain, track((0, on(0, 64)), (50, off(0, 64)))),
        "smpte": smf(0, -(25 << 8) | 40, plain),
        "riff": b"RIFF" + struct.pack("<L", 26) + b"RMIDdata" + struct.pack("<L", 14)
                + smf(0, 96, plain)[:14],
        "truncated": smf(0, 96, plain)[:-5],
        "text": b"hello, this is not a MIDI file at all",
        "missing": None,
    }[kind]
    path = tmp_path / "in.mid"
    if data is not None:
        path.write_bytes(data)
    try:
        exact: NoteSequence | str = read_midi(path)
    except CadenzaError as exc:
        exact = str(exc)
    try:
        fast: NoteSequence | str = read_midi_fast(path)
    except CadenzaError as exc:
        fast = str(exc)
    if isinstance(exact, str):
        assert fast == exact  # the careful reader's one line
    else:
        assert not isinstance(fast, str)
        assert notes_of(fast) == notes_of(exact)


def test_a_take_given_the_session_tempo_reads_back_with_it_and_the_same_seconds(
        tmp_path: Path) -> None:
    """A performance at 96 BPM: one tempo event (625,000 us per quarter), the notes where they
    were in seconds (to half a tick: 480 ticks per quarter at 96 BPM is 1.3 ms a tick)."""
    played = NoteSequence(
        notes=[Note(60 + i % 12, 80, 0.1234 * i + 0.01, 0.1234 * i + 0.3) for i in range(40)],
        tempos=[TempoChange(0.0, 120.0), TempoChange(2.0, 70.0)],
        time_signatures=[TimeSignature(0.0, 3, 4)])
    path = tmp_path / "take.mid"
    write_midi(played.with_tempo(96.0), path)
    meta = [m for track in mido.MidiFile(path).tracks for m in track if m.is_meta]
    assert [m.tempo for m in meta if m.type == "set_tempo"] == [625_000]
    assert [(m.numerator, m.denominator) for m in meta if m.type == "time_signature"] == [(3, 4)]
    back = read_midi(path)
    assert [(t.time, t.qpm) for t in back.tempos] == [(0.0, 96.0)]
    half_tick = 60.0 / 96.0 / 480 / 2
    for mine, theirs in zip(played.notes, back.sorted().notes, strict=True):
        assert theirs.pitch == mine.pitch
        assert theirs.start == pytest.approx(mine.start, abs=half_tick + 1e-9)
        assert theirs.end == pytest.approx(mine.end, abs=half_tick + 1e-9)
