"""MusicVAE converters against note_seq (the reference) on real Nottingham and Groove files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

note_seq = pytest.importorskip("note_seq")
from note_seq import drums_lib, melodies_lib, sequences_lib  # noqa: E402
from note_seq.drums_encoder_decoder import (  # noqa: E402
    DEFAULT_DRUM_TYPE_PITCHES,
    MultiDrumOneHotEncoding,
)
from note_seq.protobuf import music_pb2  # noqa: E402

from models.midi_io import read_midi  # noqa: E402
from models.music_vae import converters as conv  # noqa: E402
from models.sequence import Note, NoteSequence, TempoChange, TimeSignature  # noqa: E402


def to_proto(seq: NoteSequence) -> music_pb2.NoteSequence:
    """The same notes, tempo and metre as a note_seq proto (no MIDI reader differences)."""
    ns = music_pb2.NoteSequence()
    ns.ticks_per_quarter = 480
    for t in seq.tempos:
        ns.tempos.add(time=t.time, qpm=t.qpm)
    for t in seq.time_signatures:
        ns.time_signatures.add(time=t.time, numerator=t.numerator, denominator=t.denominator)
    for n in seq.notes:
        ns.notes.add(pitch=n.pitch, velocity=n.velocity, start_time=n.start, end_time=n.end,
                     instrument=n.instrument, program=n.program, is_drum=n.is_drum)
    ns.total_time = seq.total_time
    return ns


def ref_melodies(ns: music_pb2.NoteSequence) -> list[list[int]]:
    """Magenta's extract_melodies loop (min_bars=1, gap 1 bar, pad_end, polyphony ignored) over
    note_seq's Melody.from_quantized_sequence (note-seq 0.0.5 lacks extract_melodies)."""
    q = sequences_lib.quantize_note_sequence(ns, 4)
    spb = int(sequences_lib.steps_per_bar_in_quantized_sequence(q))
    out = []
    for inst in sorted({n.instrument for n in q.notes}):
        search = 0
        while True:
            m = melodies_lib.Melody()
            m.from_quantized_sequence(q, search_start_step=search, instrument=inst, gap_bars=1.0,
                                      ignore_polyphonic_notes=True, pad_end=True)
            if not m:
                break
            search = m.end_step + (0 - m.end_step) % spb
            if len(m) >= spb:
                out.append(list(m))
    return out


def ref_drums(ns: music_pb2.NoteSequence) -> list[list[int]]:
    enc = MultiDrumOneHotEncoding()
    q = sequences_lib.quantize_note_sequence(ns, 4)
    spb = int(sequences_lib.steps_per_bar_in_quantized_sequence(q))
    keep = [n for n in q.notes if n.is_drum and n.pitch in enc._inverse_drum_map]
    del q.notes[:]
    q.notes.extend(keep)
    out, search = [], 0
    while True:
        d = drums_lib.DrumTrack()
        d.from_quantized_sequence(q, search_start_step=search, gap_bars=1.0, pad_end=True)
        search = d.end_step + (search - d.end_step) % spb
        if not d:
            break
        out.append([enc.encode_event(e) for e in d])
    return out


@pytest.fixture(scope="module")
def nottingham_44(datasets_dir: Path) -> list[Path]:
    files = sorted((datasets_dir / "melody" / "nottingham").glob("*.mid"))
    picked = []
    for f in files[::7]:
        seq = read_midi(f)
        if [(t.numerator, t.denominator) for t in seq.time_signatures] == [(4, 4)]:
            picked.append(f)
        if len(picked) == 15:
            break
    assert len(picked) == 15
    return picked


@pytest.fixture(scope="module")
def groove_files(datasets_dir: Path) -> list[Path]:
    files = sorted((datasets_dir / "drums" / "groove").rglob("*4-4.mid"))
    return files[::60][:12]


def test_melodies_match_note_seq_on_nottingham(nottingham_44):
    total = 0
    for f in nottingham_44:
        seq = read_midi(f)
        mine = conv.Converter("melody", max_bars=None).event_lists(seq)
        assert mine == ref_melodies(to_proto(seq)), f.name
        total += sum(len(m) for m in mine)
    assert total > 1500


def test_melodies_match_note_seq_reading_the_file_itself(nottingham_44):
    # note_seq's own MIDI reader (pretty_midi) gives the same events on these files.
    for f in nottingham_44[:8]:
        ref = ref_melodies(note_seq.midi_file_to_note_sequence(str(f)))
        assert conv.Converter("melody", max_bars=None).event_lists(read_midi(f)) == ref


def test_polyphonic_pop909_melody_rules_match_note_seq(datasets_dir):
    # POP909's PIANO track is polyphonic: highest note on a shared onset, later notes cut.
    seq = read_midi(datasets_dir / "piano" / "pop909" / "003.mid")
    seq.time_signatures = [TimeSignature(0.0, 4, 4)]
    mine = conv.Converter("melody", max_bars=None).event_lists(seq)
    assert len(mine) >= 3
    assert mine == ref_melodies(to_proto(seq))


def test_drums_match_note_seq_on_groove(groove_files):
    steps = 0
    for f in groove_files:
        seq = read_midi(f)
        mine = [[conv.drum_event_to_class(e) for e in ev]
                for ev in conv.Converter("drums", max_bars=None).event_lists(seq)]
        assert mine == ref_drums(to_proto(seq)), f.name
        steps += sum(len(m) for m in mine)
    assert steps > 600


def test_drum_map_and_512_classes_match_multidrum_encoding():
    enc = MultiDrumOneHotEncoding()
    assert conv.DRUM_TYPE_PITCHES == [list(p) for p in DEFAULT_DRUM_TYPE_PITCHES]
    assert conv.DRUM_CLASSES == enc.num_classes == 512
    for index in range(512):
        assert conv.drum_class_to_event(index) == enc.decode_event(index)
        assert conv.drum_event_to_class(enc.decode_event(index)) == index
    for pitch in range(128):
        assert conv.drum_event_to_class({pitch}) == enc.encode_event(frozenset([pitch]))


def test_melody_classes_match_note_seq_one_hot():
    from note_seq.melody_encoder_decoder import MelodyOneHotEncoding

    enc = MelodyOneHotEncoding(21, 109)
    assert enc.num_classes == conv.MELODY_CLASSES == 90
    for event in [-2, -1, *range(21, 109)]:
        assert conv.melody_event_to_class(event) == enc.encode_event(event)
        assert conv.melody_class_to_event(enc.encode_event(event)) == event


def test_quantization_at_a_non_120_tempo_matches_note_seq():
    rng = np.random.default_rng(3)
    notes, t = [], 0.0
    for _ in range(60):
        dur = float(rng.uniform(0.05, 0.9))
        notes.append(Note(int(rng.integers(50, 80)), 90, t, t + dur))
        t += float(rng.uniform(0.05, 0.7))
    seq = NoteSequence(notes=notes, tempos=[TempoChange(0.0, 87.5)],
                       time_signatures=[TimeSignature(0.0, 4, 4)])
    q = conv.quantize(seq, 4)
    ref = sequences_lib.quantize_note_sequence(to_proto(seq), 4)
    assert q.qpm == 87.5
    assert [(n.start_step, n.end_step) for n in q.notes] == [
        (n.quantized_start_step, n.quantized_end_step) for n in ref.notes]
    assert conv.Converter("melody", max_bars=None).event_lists(seq) == ref_melodies(to_proto(seq))


def test_tempo_and_metre_changes_split_the_sequence():
    notes = [Note(60 + i % 12, 80, i * 0.5, i * 0.5 + 0.4) for i in range(64)]
    seq = NoteSequence(notes=notes, tempos=[TempoChange(0.0, 120.0), TempoChange(16.0, 90.0)],
                       time_signatures=[TimeSignature(0.0, 4, 4)])
    parts = conv.split_on_time_changes(seq)
    assert len(parts) == 2
    assert [p.qpm for p in parts] == [120.0, 90.0]
    with pytest.raises(conv.ConversionError):
        conv.quantize(seq)
    waltz = NoteSequence(notes=notes, time_signatures=[TimeSignature(0.0, 3, 4)])
    assert conv.melody_converter().to_windows(waltz).shape == (0, 32)
    assert len(conv.melody_converter().to_windows(parts[0])) > 0


def test_windows_round_trip_and_bounds(nottingham_44, groove_files):
    mel = conv.melody_converter(2)
    windows = np.concatenate([mel.to_windows(read_midi(f)) for f in nottingham_44[:6]])
    assert windows.shape[1] == 32 and len(windows) > 50
    assert windows.min() >= 0 and windows.max() < 90
    for w in windows[:40]:
        back = mel.to_sequence(w)
        again = mel.to_windows(back)
        assert again.shape == (1, 32) and np.array_equal(again[0], w)
    drums = conv.drums_converter(2)
    dw = np.concatenate([drums.to_windows(read_midi(f)) for f in groove_files[:6]])
    assert dw.max() < 512 and dw.min() >= 0 and len(dw) > 20
    for w in dw[:30]:
        back = drums.to_sequence(w)
        assert all(n.is_drum for n in back.notes)
        assert np.array_equal(drums.to_windows(back)[0], w)


def test_sixteen_bar_windows_hop_one_bar(nottingham_44):
    mel16 = conv.melody_converter(16)
    seq = read_midi(nottingham_44[0])
    events = conv.Converter("melody", max_bars=100).event_lists(seq)
    windows = mel16.to_windows(seq)
    expected = set()
    for ev in events:
        labels = [conv.melody_event_to_class(e) for e in ev]
        for end in range(256, len(labels) + 1, 16):
            expected.add(tuple(labels[end - 256:end]))
    assert {tuple(w) for w in windows} == expected
    assert windows.shape[1] == 256


def test_a_shorter_hop_starts_windows_on_every_beat(groove_files):
    drums = conv.drums_converter(2)
    seq = read_midi(groove_files[0])
    beat = replace(drums, hop_steps=4).to_windows(seq)
    expected = set()
    for ev in drums.event_lists(seq):
        labels = drums.encode_events(ev)
        for end in range(32, len(labels) + 1, 4):
            if any(labels[end - 32:end]):
                expected.add(tuple(labels[end - 32:end]))
    assert {tuple(w) for w in beat} == expected
    assert len(beat) > len(drums.to_windows(seq))
