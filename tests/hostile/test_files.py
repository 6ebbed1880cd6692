"""Hostile input files: corrupt, truncated, huge note counts, events hours apart, 100,000 tempo
changes, and instrument folders with broken SFZ files. Each is refused in one line, quickly,
before a model loads, and leaves no output file."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from models import limits
from tests.hostile.conftest import (
    assert_refused,
    notes_apart,
    notes_track,
    smf,
    tempo_track,
    write_wav,
)

GOOD = notes_track(8)
MIDI_FILES = {
    "empty": (b"", "empty file"),
    "text": (b"hello, I am not a MIDI file\n", "no MThd"),
    "truncated header": (b"MThd\x00\x00\x00\x06\x00", "truncated"),
    "truncated track": (smf(GOOD)[:-7], "truncated"),
    "format 7": (smf(GOOD, fmt=7), "unknown MIDI format"),
    "zero division": (smf(GOOD, division=0), "zero ticks"),
    "bad SMPTE division": (smf(GOOD, division=-(7 << 8) | 4), "SMPTE"),
    "garbage events": (smf(b"\x00\x90\x3c\xff\xff\xff\xff"), "corrupt"),
    "a million notes": (smf(notes_track(1_000_000)), "MiB"),
    "over 100,000 notes": (smf(notes_track(limits.MIDI_MAX_NOTES + 1, gap=1)), "notes"),
    "100,000 tempo changes": (smf(tempo_track(100_000), GOOD), "tempo changes"),
    "events 5.9 hours apart": (notes_apart(5.9), "h long"),
    "events 7 hours apart": (notes_apart(7.0), "hour limit"),
    "riff without MIDI": (b"RIFF\x10\x00\x00\x00RMIDdata\x00\x00", "no MThd"),
}
SLOW_FILES = {"over 100,000 notes"}  # parsed in full before the count is known: a few seconds


def _command(kind: str, path: Path, tmp_path: Path, melodies: tuple[Path, Path]) -> list:
    if kind == "render":
        return ["render", path, "-o", tmp_path / "out.wav"]
    if kind == "continue":
        return ["continue", path, "-o", tmp_path / "out.mid"]
    return ["interpolate", melodies[0], path, "-o", tmp_path / "out.mid"]


def _cases() -> list:
    """Every file through every command; the slow file (a few seconds of parsing) once, marked
    slow: the million-note file covers huge note counts quickly."""
    cases = []
    for name in MIDI_FILES:
        for command in ("render", "continue", "interpolate"):
            if name in SLOW_FILES:
                if command == "continue":
                    cases.append(pytest.param(name, command, marks=pytest.mark.slow))
                continue
            cases.append((name, command))
    return cases


@pytest.mark.parametrize(("name", "command"), _cases())
def test_hostile_midi_files(cli, tmp_path: Path, melodies, name: str, command: str) -> None:
    data, words = MIDI_FILES[name]
    path = tmp_path / "hostile.mid"
    path.write_bytes(data)
    within = 15.0 if name in SLOW_FILES else 2.0
    assert_refused(cli(_command(command, path, tmp_path, melodies)), words, within=within)
    assert not list(tmp_path.glob("out*"))


def _mxl(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


_REST = b"<note><rest/><duration>1</duration></note>"
MUSICXML_FILES = {
    "empty": ("hostile.musicxml", b"", "empty file"),
    "a MIDI file": ("hostile.musicxml", smf(GOOD), "not well-formed"),
    "a web page": ("hostile.xml", b"<html><body>hi</body></html>", "<html>"),
    "truncated": ("hostile.musicxml", b"<score-partwise><part-list><score-part id=", "XML"),
    "corrupt archive": ("hostile.mxl", b"PK\x03\x04" + bytes(64), "corrupt compressed"),
    "archive of 9 MiB unpacked": ("hostile.mxl", _mxl("s.musicxml", b" " * (9 * 2**20)), "MiB"),
    "over 20,000 notes": ("hostile.musicxml", b"<score-partwise><part>"
                          + _REST * (limits.MUSICXML_MAX_NOTES + 1) + b"</part></score-partwise>",
                          "notes"),
    "over 8 MiB": ("hostile.musicxml", b"<score-partwise>" + b" " * (9 * 2**20), "MiB"),
}


@pytest.mark.parametrize("command", ["render", "continue", "interpolate"])
@pytest.mark.parametrize("name", sorted(MUSICXML_FILES))
def test_hostile_musicxml_files(cli, tmp_path: Path, melodies, name: str, command: str) -> None:
    """MusicXML input clips: refused from their bytes, before music21 or a model loads."""
    file_name, data, words = MUSICXML_FILES[name]
    path = tmp_path / file_name
    path.write_bytes(data)
    assert_refused(cli(_command(command, path, tmp_path, melodies)), file_name, words)
    assert not list(tmp_path.glob("out*"))


@pytest.mark.parametrize("kind", ["missing", "a folder"])
@pytest.mark.parametrize("command", ["render", "continue", "interpolate"])
def test_input_that_is_no_file(cli, tmp_path: Path, melodies, kind: str, command: str) -> None:
    path = tmp_path / "input.mid"
    if kind == "a folder":
        path.mkdir()
    assert_refused(cli(_command(command, path, tmp_path, melodies)), "input.mid")


def test_ten_thousand_tempo_changes_are_within_the_limit(tmp_path: Path) -> None:
    """The limit is not a guess: a file just under it reads in well under a second or two."""
    import time

    from models.midi_io import read_midi

    path = tmp_path / "tempi.mid"
    path.write_bytes(smf(tempo_track(limits.MIDI_MAX_TEMPO_CHANGES), GOOD))
    started = time.perf_counter()
    seq = read_midi(path)
    assert len(seq.tempos) > 1000 and seq.notes
    assert time.perf_counter() - started < 5.0


# ------------------------------------------------------------------------------ morph sources
@pytest.mark.parametrize("kind", ["empty wav", "not audio", "ten minutes and more"])
def test_hostile_morph_sources(cli, tmp_path: Path, sounds, kind: str) -> None:
    bad = tmp_path / "bad.wav"
    if kind == "empty wav":
        sf.write(bad, np.zeros(0, np.float32), 16000)
        words = "empty"
    elif kind == "not audio":
        bad.write_bytes(b"RIFF....WAVEjunk" * 10)
        words = "not a readable sound file"
    else:
        sf.write(bad, np.zeros(int((limits.SOURCE_MAX_SECONDS + 1) * 8000), np.int16), 8000)
        words = "min long"
    assert_refused(cli(["morph", sounds[0], bad, "-o", tmp_path / "out.wav"]), words)
    assert not (tmp_path / "out.wav").exists()


def _bad_source(path: Path, kind: str) -> Path:
    """A sound file of the kind named, written with soundfile (16 kHz unless said)."""
    rate = 16000
    t = np.arange(4 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    if kind == "silence":
        sf.write(path, np.zeros(4 * rate, np.float32), rate)
    elif kind == "silent after 4 s":
        sf.write(path, np.concatenate([np.zeros(4 * rate), tone]).astype(np.float32), rate)
    elif kind == "NaN samples":
        tone[1000] = np.nan
        sf.write(path, tone, rate, subtype="FLOAT")
    elif kind == "infinite samples":
        tone[-1] = np.inf
        sf.write(path, tone, rate, subtype="FLOAT")
    elif kind == "one silent sample":
        sf.write(path, np.zeros(1, np.float32), rate)
    elif kind == "white noise":
        sf.write(path, 0.3 * np.random.default_rng(0).standard_normal(4 * rate), rate)
    elif kind == "clicks":
        clicks = np.zeros(4 * rate, np.float32)
        clicks[::4000] = 0.9
        sf.write(path, clicks, rate)
    elif kind == "one sample":
        sf.write(path, np.array([0.5], np.float32), rate)
    elif kind == "8-bit":
        sf.write(path, tone, rate, subtype="PCM_U8")
    elif kind == "6 channels":
        sf.write(path, np.stack([tone] * 6, axis=1), rate)
    elif kind == "384 kHz":
        t = np.arange(4 * 384000) / 384000
        sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 384000)
    elif kind == "NaN after 4 s":
        tail = np.full(rate, np.nan, np.float32)
        sf.write(path, np.concatenate([tone, tail]), rate, subtype="FLOAT")
    elif kind == "huge":
        # 590 s at 384 kHz in 6 channels (2.7 GB, 5.4 GB as float32): a tone for 4 s, then
        # zeros the file system keeps sparse
        rate, channels = 384000, 6
        t = np.arange(4 * rate) / rate
        head = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        sf.write(path, np.stack([head] * channels, axis=1), rate, subtype="PCM_16")
        data = int(590 * rate) * channels * 2
        with path.open("r+b") as f:
            f.seek(4)
            f.write((36 + data).to_bytes(4, "little"))
            f.seek(40)
            f.write(data.to_bytes(4, "little"))
            f.truncate(44 + data)
        assert sf.info(str(path)).duration == 590
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind, words", [
    ("silence", "silent"), ("silent after 4 s", "silent"), ("NaN samples", "NaN"),
    ("infinite samples", "infinite"), ("one silent sample", "silent"),
])
def test_unusable_morph_sources_are_refused_before_the_model_loads(
        cli, tmp_path: Path, sounds, kind: str, words: str) -> None:
    bad = _bad_source(tmp_path / "bad.wav", kind)
    for command in ("morph", "morph-instrument"):
        out = tmp_path / ("out.wav" if command == "morph" else "inst")
        assert_refused(cli([command, sounds[0], bad, "-o", out]), "bad.wav", words)
        assert not out.exists()


ODD_SOURCES = ["white noise", "clicks", "one sample", "8-bit", "6 channels", "384 kHz",
               "NaN after 4 s", "huge"]


@pytest.mark.parametrize("kind", ODD_SOURCES)
def test_odd_morph_sources_are_read_quickly(tmp_path: Path, kind: str) -> None:
    """What the command does to a source before the model loads: of a file, only the 4 s a
    morph uses are read, however long it is."""
    from models.nsynth.sources import check_source, prepare_audio

    odd = _bad_source(tmp_path / "odd.wav", kind)
    started, cpu = time.perf_counter(), time.thread_time()
    check_source(odd)
    assert time.thread_time() - cpu < 1.0 and time.perf_counter() - started < 10
    x = prepare_audio(odd)
    assert x.shape == (64000,) and np.isfinite(x).all() and 0 < np.abs(x).max() < 0.951


@pytest.mark.parametrize("kinds", [ODD_SOURCES[:4], ODD_SOURCES[4:]])
def test_odd_morph_sources_make_a_morph_in_seconds(cli, tmp_path: Path, kinds: list[str]) -> None:
    """Sounds a morph can use, however odd, four at a time (``--xy``): a 4-second morph in the
    time of the model's load and one decode."""
    odd = [_bad_source(tmp_path / f"odd{i}.wav", kind) for i, kind in enumerate(kinds)]
    out = tmp_path / "out.wav"
    outcome = cli(["morph", *odd, "--xy", "0.4,0.6", "-o", out, "--seed", "1"])
    assert outcome.code == 0, outcome.err
    assert outcome.seconds < 60, f"{outcome.seconds:.1f} s"
    x, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and x.shape == (64000,) and np.isfinite(x).all() and np.abs(x).max() > 0


# ------------------------------------------------------------------------------ instruments
def _instrument(folder: Path, sfz: str | bytes, wav_seconds: float = 0.5) -> Path:
    folder.mkdir()
    write_wav(folder / "note.wav", wav_seconds)
    (folder / "instrument.sfz").write_bytes(sfz.encode() if isinstance(sfz, str) else sfz)
    return folder


SFZ = {
    "release abc": ("<group> ampeg_release=abc\n<region> sample=note.wav pitch_keycenter=60",
                    "ampeg_release"),
    "release nan": ("<group> ampeg_release=nan\n<region> sample=note.wav pitch_keycenter=60",
                    "ampeg_release"),
    "release 1e9": ("<group> ampeg_release=1e9\n<region> sample=note.wav pitch_keycenter=60",
                    "ampeg_release"),
    "no sample=": ("<region> pitch_keycenter=60", "no sample="),
    "missing sample": ("<region> sample=gone.wav pitch_keycenter=60", "does not exist"),
    "keycenter abc": ("<region> sample=note.wav pitch_keycenter=abc", "pitch_keycenter"),
    "no keycenter": ("<region> sample=note.wav", "pitch_keycenter"),
    "key 300": ("<region> sample=note.wav pitch_keycenter=300", "0..127"),
    "no regions": ("<group> ampeg_release=0.3", "no regions"),
    "sample is the sfz": ("<region> sample=instrument.sfz pitch_keycenter=60",
                          "instrument.sfz"),
    "bad bytes": (b"<region> sample=\xff\xfe.wav pitch_keycenter=60", "does not exist"),
    "a megabyte": ("// " + "x" * (limits.SFZ_MAX_BYTES + 10), "kB"),
}


@pytest.mark.parametrize("name", list(SFZ))
def test_hostile_instrument_folders(cli, primer: Path, tmp_path: Path, name: str) -> None:
    sfz, words = SFZ[name]
    folder = _instrument(tmp_path / "inst", sfz)
    out = tmp_path / "out.wav"
    assert_refused(cli(["render", primer, "-o", out, "--instrument", folder]), words)
    assert not out.exists()


def test_an_instrument_folder_without_sfz(cli, primer: Path, tmp_path: Path) -> None:
    (tmp_path / "inst").mkdir()
    assert_refused(cli(["render", primer, "-o", tmp_path / "o.wav", "--instrument",
                        tmp_path / "inst"]), "no SFZ")
    shutil.rmtree(tmp_path / "inst")
    assert_refused(cli(["render", primer, "-o", tmp_path / "o.wav", "--instrument",
                        tmp_path / "inst"]), "no instrument folder")


def test_every_limit_is_documented() -> None:
    """docs/limits.md names every limit of models.limits."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "limits.md").read_text()
    names = [n for n in dir(limits) if n.isupper() and not n.startswith("_")]
    assert len(names) > 30
    assert [n for n in names if f"`{n}`" not in text] == []


def test_ten_thousand_tempo_changes_split_in_bounded_time() -> None:
    """Interpolate splits a file at its tempo changes: 10,000 of them (the limit) over 10,000
    notes take seconds, not hours (each part is cut from its own window)."""
    import time

    from models.music_vae.converters import split_on_time_changes
    from models.sequence import Note, NoteSequence, TempoChange

    seq = NoteSequence(
        notes=[Note(60 + i % 12, 80, i * 0.1, i * 0.1 + 0.05) for i in range(10_000)],
        tempos=[TempoChange(i * 0.1, 100.0 + 40 * (i % 2)) for i in range(10_000)])
    started = time.perf_counter()
    parts = split_on_time_changes(seq)
    assert len(parts) == 10_000 and all(len(p.notes) == 1 for p in parts)
    assert parts[1].notes[0].start == pytest.approx(0.0) and parts[1].qpm == 140.0
    assert time.perf_counter() - started < 20.0
