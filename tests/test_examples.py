"""The example files in assets/examples: they load, they suit their workspace, and they are what
scripts/make_examples.py writes (so the script and the committed files never drift)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from models.audio_io import read_audio
from models.midi_io import read_midi
from models.music_vae.data import midi_file_windows
from models.music_vae.model import get_config
from models.sequence import SUSTAIN_CC

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
SCRIPT = ROOT / "scripts" / "make_examples.py"

MIDI = ["piano-phrase.mid", "melody-a.mid", "melody-b.mid", "drums-rock.mid", "drums-funk.mid"]
WAV = ["sound-flute.wav", "sound-cello.wav", "sound-organ.wav"]
MELODIES = ["melody-a.mid", "melody-b.mid"]
GROOVES = ["drums-rock.mid", "drums-funk.mid"]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_examples", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_folder_holds_the_examples_and_nothing_else(script):
    names = sorted(p.name for p in EXAMPLES.iterdir())
    assert names == sorted([*MIDI, *WAV, "README.md"])
    assert list(script.MIDI_FILES) == MIDI and list(script.WAV_FILES) == WAV
    readme = (EXAMPLES / "README.md").read_text()
    for name in [*MIDI, *WAV, "Apache-2.0", "FluidR3_GM", "MIT", "scripts/make_examples.py"]:
        assert name in readme


@pytest.mark.parametrize("name", MIDI)
def test_midi_examples_load_in_4_4_with_a_tempo(name):
    seq = read_midi(EXAMPLES / name)
    assert len(seq.notes) >= 8
    assert [(t.numerator, t.denominator) for t in seq.time_signatures] == [(4, 4)]
    assert len(seq.tempos) == 1 and 100 <= seq.qpm <= 120


def test_piano_phrase_is_an_expressive_8_second_piano_primer():
    seq = read_midi(EXAMPLES / "piano-phrase.mid")
    assert 7.5 <= seq.total_time <= 9.0
    assert not any(n.is_drum for n in seq.notes) and {n.program for n in seq.notes} == {0}
    assert len({n.velocity for n in seq.notes}) >= 15  # dynamics, not one level
    low, high = seq.pitch_range()
    assert low <= 48 and high >= 76  # a left hand under a melody
    # polyphonic: notes sound together
    assert any(a.start < b.end and b.start < a.end
               for a, b in itertools.combinations(seq.notes, 2))
    # human timing: onsets off the sixteenth-note grid, by a few milliseconds
    sixteenth = 60.0 / seq.qpm / 4
    offsets = [abs(n.start / sixteenth - round(n.start / sixteenth)) * sixteenth
               for n in seq.notes]
    assert sum(o > 0.002 for o in offsets) > len(offsets) // 2
    assert max(offsets) < 0.06
    pedal = [c for c in seq.control_changes if c.number == SUSTAIN_CC]
    assert {c.value for c in pedal} == {0, 127} and len(pedal) >= 6
    assert pedal[0].value == 127 and pedal[-1].value == 0  # pressed at the start, lifted at end


@pytest.mark.parametrize("name", MELODIES)
def test_melodies_give_2_bar_melody_windows(name):
    seq = read_midi(EXAMPLES / name)
    assert seq.qpm == 120.0 and 3.5 <= seq.total_time <= 4.0  # 2 bars at 120 bpm
    notes = sorted(seq.notes, key=lambda n: n.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(notes))  # monophonic
    windows = midi_file_windows(EXAMPLES / name, get_config("melody-2bar").converter())
    assert windows.shape[0] >= 1 and windows.shape[1] == 32
    assert midi_file_windows(EXAMPLES / name, get_config("drums-2bar").converter()).size == 0


def test_the_two_melodies_differ():
    converter = get_config("melody-2bar").converter()
    a, b = (midi_file_windows(EXAMPLES / n, converter)[0] for n in MELODIES)
    assert np.mean(a != b) > 0.5
    pitches = [{n.pitch for n in read_midi(EXAMPLES / n).notes} for n in MELODIES]
    assert len(pitches[0] ^ pitches[1]) >= 4


@pytest.mark.parametrize("name", GROOVES)
def test_grooves_give_2_bar_drum_windows(name):
    seq = read_midi(EXAMPLES / name)
    assert all(n.is_drum for n in seq.notes)
    assert seq.total_time == pytest.approx(8 * 60.0 / seq.qpm, abs=0.2)  # 2 bars
    windows = midi_file_windows(EXAMPLES / name, get_config("drums-2bar").converter())
    assert windows.shape[0] >= 1 and windows.shape[1] == 32
    assert np.count_nonzero(windows[0]) >= 12  # a groove, not a few hits
    assert midi_file_windows(EXAMPLES / name, get_config("melody-2bar").converter()).size == 0


def test_the_two_grooves_differ():
    converter = get_config("drums-2bar").converter()
    rock, funk = (midi_file_windows(EXAMPLES / n, converter)[0] for n in GROOVES)
    assert np.mean(rock != funk) > 0.5
    assert read_midi(EXAMPLES / GROOVES[0]).qpm != read_midi(EXAMPLES / GROOVES[1]).qpm


@pytest.mark.parametrize("name", WAV)
def test_sounds_are_4_second_16_khz_notes(name):
    path = EXAMPLES / name
    assert path.stat().st_size < 200_000
    audio = read_audio(path)
    assert audio.sample_rate == 16000 and audio.channels == 1
    assert audio.duration == pytest.approx(4.0, abs=0.01)
    x = audio.samples[:, 0].astype(np.float64)
    sr = audio.sample_rate

    def rms_db(part: np.ndarray) -> float:
        return float(20 * np.log10(np.sqrt(np.mean(part**2)) + 1e-12))

    assert rms_db(x) == pytest.approx(-20.0, abs=1.0)  # loudness-normalised, not silent
    assert 0.1 < np.abs(x).max() <= 0.95
    held, end = rms_db(x[sr // 2: 3 * sr]), rms_db(x[-sr // 4:])
    assert held > -30 and end < held - 20  # held for 3 s, then released


def test_midi_files_are_what_the_script_writes(script, tmp_path):
    written = script.main(tmp_path, sounds=False)
    assert sorted(p.name for p in written) == sorted(MIDI)
    for name in MIDI:
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_sounds_are_what_the_script_renders(script, tmp_path):
    """The same instrument and pitch: spectra match (to within FluidSynth version changes)."""
    written = script.main(tmp_path, sounds=True)
    assert sorted(p.name for p in written) == sorted([*MIDI, *WAV])
    for name in WAV:
        fresh = read_audio(tmp_path / name).samples[:, 0]
        kept = read_audio(EXAMPLES / name).samples[:, 0]
        assert fresh.shape == kept.shape
        spectra = [np.log1p(np.abs(np.fft.rfft(x[:48000]))) for x in (fresh, kept)]
        assert np.corrcoef(*spectra)[0, 1] > 0.98, name
    # and each instrument differs from the others
    spectra = [np.log1p(np.abs(np.fft.rfft(read_audio(EXAMPLES / n).samples[:48000, 0])))
               for n in WAV]
    for a, b in itertools.combinations(spectra, 2):
        assert np.corrcoef(a, b)[0, 1] < 0.98
