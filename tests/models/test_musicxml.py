"""MusicXML in and out (models/musicxml.py, models/music_files.py): real Nottingham tunes through
music21 and back, hand-written scores of the kinds MuseScore writes (pickups, parts, drum staves,
.mxl archives), and broken files refused in one line before music21 sees them."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from models import limits
from models.errors import CadenzaError
from models.midi_io import read_midi
from models.music_files import read_sequence, write_sequence
from models.musicxml import musicxml_bytes, musicxml_to_sequence, read_musicxml, write_musicxml
from models.sequence import Note, NoteSequence, TempoChange, TimeSignature

ROOT = Path(__file__).resolve().parents[2]


def nottingham(datasets_dir: Path, name: str) -> Path:
    return datasets_dir / "melody" / "nottingham" / name


def on_grid(seq: NoteSequence) -> list[tuple[int, int, int]]:
    """(pitch, onset, end) in sixteenths of the sequence's first tempo."""
    sixteenth = 60.0 / seq.qpm / 4
    return sorted((n.pitch, round(n.start / sixteenth), round(n.end / sixteenth))
                  for n in seq.notes)


def signatures(seq: NoteSequence) -> list[tuple[float, int, int]]:
    return [(round(t.time, 6), t.numerator, t.denominator) for t in seq.time_signatures]


@pytest.mark.parametrize("name", ["jigs1.mid", "reelsa-c1.mid", "ashover1.mid"])
@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_nottingham_tunes_survive_musicxml(datasets_dir, tmp_path, name, suffix):
    """A 6/8 jig, a 4/4 reel and a tune whose metre changes between 3/4 and 2/4: MIDI ->
    MusicXML -> NoteSequence keeps every pitch, onset and end (on the sixteenth grid, where the
    tunes are), the tempo and the time signatures, and the pickup where it was."""
    source = read_midi(nottingham(datasets_dir, name))
    sixteenth = 60.0 / source.qpm / 4
    assert all(abs(n.start / sixteenth - round(n.start / sixteenth)) < 1e-6
               for n in source.notes)  # the tunes are on the grid, so nothing may move
    out = tmp_path / f"tune{suffix}"
    write_musicxml(source, out)
    assert (out.read_bytes()[:2] == b"PK") == (suffix == ".mxl")
    back = read_musicxml(out)
    assert back.name == "tune"
    assert on_grid(back) == on_grid(source)
    assert [(t.time, t.qpm) for t in back.tempos] == [(0.0, source.qpm)]
    assert signatures(back) == signatures(source)
    if name == "jigs1.mid":
        assert signatures(back) == [(0.0, 6, 8)]
        assert min(n.start for n in back.notes) == pytest.approx(1.25)  # the pickup eighth
    assert {n.is_drum for n in back.notes} == {False}


def test_tempo_and_tempo_changes_survive(tmp_path):
    """96 qpm, then 140 from bar 3: the marks come back at the same seconds, the notes too."""
    beat = 60.0 / 96
    notes = [Note(60 + i % 12, 90, i * beat, (i + 1) * beat) for i in range(8)]
    later = 8 * beat
    fast = 60.0 / 140
    notes += [Note(72, 90, later + i * fast, later + (i + 0.5) * fast) for i in range(8)]
    seq = NoteSequence(notes=notes, tempos=[TempoChange(0.0, 96.0), TempoChange(later, 140.0)],
                       time_signatures=[TimeSignature(0.0, 4, 4)])
    back = musicxml_to_sequence(musicxml_bytes(seq))
    assert [(round(t.time, 6), t.qpm) for t in back.tempos] == [(0.0, 96.0),
                                                                 (round(later, 6), 140.0)]
    assert [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in back.notes] == [
        (n.pitch, round(n.start, 6), round(n.end, 6)) for n in seq.notes]


def test_written_notes_land_on_the_sixteenth_grid(tmp_path):
    """Played (off-grid) notes are quantized to sixteenths: onsets and ends move to the
    nearest one, and a very short note lasts a sixteenth."""
    seq = NoteSequence(notes=[Note(60, 100, 0.02, 0.47), Note(62, 100, 0.49, 0.53),
                              Note(64, 100, 1.13, 1.88)], tempos=[TempoChange(0.0, 120.0)])
    back = musicxml_to_sequence(musicxml_bytes(seq))
    assert [(n.pitch, n.start, n.end) for n in back.notes] == [
        (60, 0.0, 0.5), (62, 0.5, 0.625), (64, 1.125, 1.875)]


def test_chords_and_uneven_overlaps_come_back_as_the_same_notes():
    """Notes that sound together become chords; notes that overlap unevenly are cut and tied
    in the score, and read back as the notes they were."""
    seq = NoteSequence(notes=[
        Note(60, 80, 0.0, 1.0), Note(64, 80, 0.0, 1.0), Note(67, 80, 0.0, 1.0),  # a chord
        Note(72, 80, 0.5, 2.5), Note(48, 80, 1.0, 1.75), Note(50, 80, 1.75, 3.5),  # overlaps
        Note(55, 80, 2.5, 2.75), Note(55, 80, 2.75, 3.0),  # the same pitch struck again
    ], tempos=[TempoChange(0.0, 120.0)], time_signatures=[TimeSignature(0.0, 3, 4)])
    xml = musicxml_bytes(seq)
    assert b"<chord" in xml and b'<tie type="start"' in xml
    back = musicxml_to_sequence(xml)
    assert on_grid(back) == on_grid(seq)


def test_a_played_piano_phrase_keeps_its_notes_on_the_grid():
    seq = read_midi(ROOT / "assets" / "examples" / "piano-phrase.mid")
    back = musicxml_to_sequence(musicxml_bytes(seq))
    sixteenth = 60.0 / seq.qpm / 4
    want = sorted({(n.pitch, round(n.start / sixteenth)) for n in seq.notes})
    assert sorted({(n.pitch, round(n.start / sixteenth)) for n in back.notes}) == want


def test_parts_are_instruments_with_their_programs_and_names():
    seq = NoteSequence(notes=[Note(72, 80, 0.0, 0.5, program=73, instrument=0),
                              Note(40, 80, 0.0, 2.0, program=32, instrument=1)],
                       instrument_names={0: "Tin whistle"})
    back = musicxml_to_sequence(musicxml_bytes(seq))
    assert back.instruments() == [0, 1]
    assert [(n.pitch, n.program, n.instrument) for n in back.notes] == [(40, 32, 1),
                                                                       (72, 73, 0)]
    assert back.instrument_names == {0: "Tin whistle", 1: "Acoustic Bass"}


# ------------------------------------------------------------------------------ scores by hand
def score(*parts: tuple[str, str, str], divisions: int = 2) -> bytes:
    """A partwise score: (part list entry's insides, the part's measures) per part."""
    plist = "".join(f'<score-part id="P{i}">{head}</score-part>'
                    for i, (head, _m, _a) in enumerate(parts, 1))
    body = "".join(f'<part id="P{i}">{measures}</part>' for i, (_h, measures, _a) in
                   enumerate(parts, 1))
    return (f'<?xml version="1.0" encoding="UTF-8"?><score-partwise version="4.0">'
            f"<part-list>{plist}</part-list>{body}</score-partwise>").encode()


def pitched(step: str, octave: int, duration: int, kind: str) -> str:
    return (f"<note><pitch><step>{step}</step><octave>{octave}</octave></pitch>"
            f"<duration>{duration}</duration><type>{kind}</type></note>")


def test_a_pickup_bar_is_padded_so_bars_fall_on_whole_bars():
    """A 6/8 tune with a one-eighth anacrusis, as MuseScore writes it (measure 0, implicit):
    the pickup ends where the first full bar starts, one bar (1.5 s at 120 qpm) in."""
    attributes = ("<attributes><divisions>2</divisions><time><beats>6</beats>"
                  "<beat-type>8</beat-type></time></attributes>")
    tempo = '<direction><direction-type><metronome><beat-unit>quarter</beat-unit>' \
            '<per-minute>120</per-minute></metronome></direction-type>' \
            '<sound tempo="120"/></direction>'
    dotted = [pitched(s, 4, 3, "quarter").replace("</type>", "</type><dot/>") for s in "GB"]
    measures = (f'<measure number="0" implicit="yes">{attributes}{tempo}'
                f'{pitched("D", 5, 1, "eighth")}</measure>'
                f'<measure number="1">{dotted[0]}{dotted[1]}</measure>')
    seq = musicxml_to_sequence(score(("<part-name>Fiddle</part-name>", measures, "")))
    assert [(n.pitch, n.start, n.end) for n in seq.notes] == [
        (74, 1.25, 1.5), (67, 1.5, 2.25), (71, 2.25, 3.0)]
    assert signatures(seq) == [(0.0, 6, 8)]
    assert seq.instrument_names == {0: "Fiddle"}


def test_a_drum_staff_reads_as_drums():
    """A percussion part as MuseScore writes it: unpitched notes on a five-line drum staff
    (kick on F4, snare on C5, closed hi-hat as an x on G5) become General MIDI drums."""
    def unpitched(step: str, octave: int, head: str = "") -> str:
        notehead = f"<notehead>{head}</notehead>" if head else ""
        return (f"<note><unpitched><display-step>{step}</display-step><display-octave>{octave}"
                f"</display-octave></unpitched><duration>1</duration><type>eighth</type>"
                f"{notehead}</note>")

    head = ('<part-name>Drumset</part-name><score-instrument id="P1-I36"><instrument-name>'
            'Bass Drum 1</instrument-name></score-instrument><score-instrument id="P1-I39">'
            '<instrument-name>Acoustic Snare</instrument-name></score-instrument>'
            '<midi-instrument id="P1-I36"><midi-channel>10</midi-channel>'
            '<midi-unpitched>37</midi-unpitched></midi-instrument>'
            '<midi-instrument id="P1-I39"><midi-channel>10</midi-channel>'
            '<midi-unpitched>39</midi-unpitched></midi-instrument>')
    measure = ('<measure number="1"><attributes><divisions>2</divisions><time><beats>2</beats>'
               '<beat-type>4</beat-type></time><clef><sign>percussion</sign></clef>'
               '</attributes>' + unpitched("F", 4) + unpitched("G", 5, "x")
               + unpitched("C", 5) + unpitched("G", 5, "x") + "</measure>")
    seq = musicxml_to_sequence(score((head, measure, "")))
    assert all(n.is_drum for n in seq.notes)
    assert [n.pitch for n in seq.notes] == [36, 42, 38, 42]


def test_drums_are_refused_when_writing_and_the_old_file_is_kept(tmp_path):
    out = tmp_path / "groove.musicxml"
    out.write_bytes(b"the old file")
    groove = read_midi(ROOT / "assets" / "examples" / "drums-rock.mid")
    with pytest.raises(CadenzaError, match="drums") as info:
        write_musicxml(groove, out)
    assert "\n" not in str(info.value)
    assert out.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groove.musicxml"]


def test_writing_replaces_the_old_file_in_one_step(tmp_path):
    out = tmp_path / "tune.mxl"
    out.write_bytes(b"the old file")
    seq = NoteSequence(notes=[Note(60, 80, 0.0, 0.5)])
    write_sequence(seq, out)
    assert zipfile.is_zipfile(out)
    assert [p.name for p in tmp_path.iterdir()] == ["tune.mxl"]  # no temporary file left
    assert [n.pitch for n in read_sequence(out).notes] == [60]


def test_read_and_write_sequence_choose_by_extension(tmp_path):
    seq = NoteSequence(notes=[Note(64, 80, 0.0, 0.5), Note(67, 80, 0.5, 1.0)])
    for name in ("a.mid", "a.musicxml", "a.xml", "a.mxl"):
        write_sequence(seq, tmp_path / name)
        assert [n.pitch for n in read_sequence(tmp_path / name).notes] == [64, 67]
    assert (tmp_path / "a.mid").read_bytes()[:4] == b"MThd"
    assert b"<score-partwise" in (tmp_path / "a.xml").read_bytes()


def test_music21_is_imported_only_to_read_or_write():
    """Importing the modules (as the command line and the app do) costs nothing of music21;
    the first read pays for it once. The times are printed for the record."""
    code = ("import sys, time\n"
            "import models.music_files, models.musicxml, app.clips\n"
            "assert 'music21' not in sys.modules\n"
            "t = time.perf_counter(); import music21.musicxml.xmlToM21\n"
            "print(f'music21 import {time.perf_counter() - t:.2f} s')\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    print(run.stdout.strip())


# ------------------------------------------------------------------------------ bad files
def _bomb() -> bytes:
    """A .mxl whose score unpacks to 9 MiB (a few kB packed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("score.musicxml", b"<score-partwise>" + b" " * (9 * 2**20))
    return buffer.getvalue()


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


NOTE = b"<note><rest/><duration>1</duration></note>"
BAD_FILES = {
    "empty": ("x.musicxml", b"", "empty file"),
    "blank": ("x.musicxml", b"  \n", "empty file"),
    "text": ("x.xml", b"hello, I am not a score\n", "not well-formed"),
    "truncated": ("x.musicxml", score(("<part-name>A</part-name>",
                                       '<measure number="1">' + pitched("C", 4, 2, "quarter")
                                       + "</measure>", ""))[:-40], "not well-formed"),
    "html": ("x.xml", b"<html><body>a web page</body></html>", "<html>"),
    "timewise": ("x.musicxml", b"<score-timewise><part-list/></score-timewise>", "timewise"),
    "a MIDI file named .musicxml": ("x.musicxml", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0",
                                    "not well-formed"),
    "corrupt archive": ("x.mxl", b"PK\x03\x04" + b"\x00" * 40, "corrupt compressed"),
    "archive without a score": ("x.mxl", _zip("readme.txt", b"hi"), "holds no score"),
    "archive bomb": ("x.mxl", _bomb(), "MiB"),
    "too many notes": ("x.musicxml", b"<score-partwise><part-list/><part><measure>"
                       + NOTE * (limits.MUSICXML_MAX_NOTES + 1)
                       + b"</measure></part></score-partwise>", "notes"),
    "too large": ("x.musicxml", b"<score-partwise>" + b" " * (9 * 2**20), "MiB"),
    "entity bomb": ("x.musicxml", b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa">'
                    + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                               .encode() for i in range(8))
                    + b"]><score-partwise>&i;</score-partwise>", "not"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_one_line_and_fast(tmp_path, case):
    name, data, words = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    started = time.process_time()
    with pytest.raises(CadenzaError) as info:
        read_sequence(path)
    message = str(info.value)
    assert "\n" not in message and words.lower() in message.lower(), message
    assert message.startswith("x."), message  # it names the file
    assert time.process_time() - started < 1.0


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CadenzaError, match="cannot read"):
        read_musicxml(tmp_path / "missing.musicxml")
    (tmp_path / "folder.musicxml").mkdir()
    with pytest.raises(CadenzaError, match="cannot read"):
        read_musicxml(tmp_path / "folder.musicxml")


def test_without_music21_it_is_one_line_that_says_how_to_install_it(tmp_path, monkeypatch):
    path = tmp_path / "tune.musicxml"
    seq = NoteSequence(notes=[Note(60, 80, 0.0, 0.5)])
    write_musicxml(seq, path)
    monkeypatch.setitem(sys.modules, "music21", None)  # as if it were not installed
    for attempt in (lambda: read_musicxml(path), lambda: musicxml_bytes(seq)):
        with pytest.raises(CadenzaError, match=r"pip install music21"):
            attempt()


@pytest.mark.parametrize(("scale", "fifths", "black"), [
    ((62, 64, 66, 67, 69, 71, 73, 74), 2, b"<step>F</step>\n          <alter>1</alter>"),
    ((70, 72, 74, 75, 77, 79, 81, 82), -2, b"<step>B</step>\n          <alter>-1</alter>"),
])
def test_a_written_score_gets_the_likeliest_key_and_spells_by_it(scale, fifths, black):
    """D major gets two sharps and F#; B-flat major two flats and B-flat (not A#). A
    NoteSequence has no key: the score's is the one its notes fit best."""
    seq = NoteSequence(notes=[Note(p, 80, i * 0.5, (i + 1) * 0.5) for i, p in
                              enumerate(scale + scale[::-1])])
    xml = musicxml_bytes(seq, title="scale")
    assert f"<fifths>{fifths}</fifths>".encode() in xml
    assert black in xml
    assert b"<accidental>" not in xml  # every black key is in the key signature
    assert b"Music21" not in xml.split(b"<software>")[0]  # nobody's name as the composer
    assert [n.pitch for n in musicxml_to_sequence(xml).notes] == list(scale + scale[::-1])


def test_what_is_too_long_or_too_dense_to_write_is_one_line_fast(tmp_path):
    """A clip with a tempo of 60,000 qpm for an hour would be 3.6 million quarter notes of
    bars: refused before music21 builds any; so are more notes than a file may have."""
    fast = NoteSequence(notes=[Note(60, 80, 0.0, 1.0), Note(62, 80, 3599.0, 3600.0)],
                        tempos=[TempoChange(0.0, 60_000.0)])
    dense = NoteSequence(notes=[Note(60, 80, i * 0.01, i * 0.01 + 0.01)
                                for i in range(limits.MUSICXML_MAX_NOTES + 1)])
    for seq, words in ((fast, "quarter notes long"), (dense, "notes, more than")):
        started = time.process_time()
        with pytest.raises(CadenzaError, match=words):
            write_musicxml(seq, tmp_path / "long.musicxml")
        assert time.process_time() - started < 1.0
    assert not list(tmp_path.iterdir())


def test_a_real_compressed_score_reads_as_its_voices():
    """A Bach chorale as the music21 corpus ships it (a real .mxl: four parts, a pickup, ties,
    a tempo mark): four named instruments whose notes are music21's own, tied notes joined,
    moved one bar on so that the pickup ends at the first bar line."""
    from music21 import corpus

    path = corpus.getWork("bwv66.6")
    assert str(path).endswith(".mxl")
    seq = read_musicxml(path)
    assert seq.instrument_names == {0: "Soprano", 1: "Alto", 2: "Tenor", 3: "Bass"}
    assert signatures(seq) == [(0.0, 4, 4)]
    spq = 60.0 / seq.qpm
    reference = corpus.parse("bwv66.6")
    pickup = 4.0 - float(reference.parts[0].getElementsByClass("Measure")[0].duration
                         .quarterLength)
    assert pickup == 3.0
    for index, part in enumerate(reference.parts):
        want = [(n.pitch.midi, round((float(n.offset) + pickup) * spq, 6),
                 round((float(n.offset) + pickup + float(n.quarterLength)) * spq, 6))
                for n in part.stripTies().flatten().notes]
        got = [(n.pitch, round(n.start, 6), round(n.end, 6)) for n in seq.notes
               if n.instrument == index]
        assert got == want, part.partName


def _repeated_tune(path: Path, times: int = 2) -> None:
    """A 2/4 tune: bar 1 (p) and bar 2 (f) between repeat bar lines, first ending bar 3,
    second ending bar 4, then bar 5; written with music21 as MuseScore writes such marks."""
    from music21 import bar, dynamics, meter, note, spanner, stream

    part = stream.Part()
    bars = []
    for number, pitches in enumerate((["C4", "D4"], ["E4", "F4"], ["G4", "A4"], ["B4", "C5"],
                                      ["D5", "E5"]), start=1):
        m = stream.Measure(number=number)
        if number == 1:
            m.append(meter.TimeSignature("2/4"))
            m.insert(0, dynamics.Dynamic("p"))
            m.leftBarline = bar.Repeat(direction="start")
        if number == 2:
            m.insert(0, dynamics.Dynamic("f"))
        m.append([note.Note(p) for p in pitches])
        bars.append(m)
    bars[2].rightBarline = bar.Repeat(direction="end", times=times)
    part.append(bars)
    part.insert(0, spanner.RepeatBracket(bars[2], number=1))
    part.insert(0, spanner.RepeatBracket(bars[3], number=2))
    score = stream.Score()
    score.append(part)
    score.write("musicxml", path)


def test_repeats_are_played_out_and_dynamics_set_velocities(tmp_path):
    path = tmp_path / "repeats.musicxml"
    _repeated_tune(path)
    seq = read_musicxml(path)
    names = [n.pitch for n in seq.notes]
    # bars 1 2 3 (first ending), again 1 2, then 4 (second ending) and 5
    assert names == [60, 62, 64, 65, 67, 69, 60, 62, 64, 65, 71, 72, 74, 76], names
    assert [round(n.start, 3) for n in seq.notes] == [0.5 * k for k in range(14)]
    velocities = [n.velocity for n in seq.notes]
    assert velocities == [49, 49, 96, 96, 96, 96, 49, 49, 96, 96, 96, 96, 96, 96], velocities


def test_a_repeat_too_long_to_play_out_is_read_as_written_fast(tmp_path):
    path = tmp_path / "forever.musicxml"
    _repeated_tune(path, times=100000)
    started = time.perf_counter()
    seq = read_musicxml(path)
    assert time.perf_counter() - started < 5
    assert len(seq.notes) == 10  # as written: each bar once
