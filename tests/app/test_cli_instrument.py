# ruff: noqa: F811 - the JACK fixtures are imported from test_live_transport
"""``cadenza render --instrument DIR`` and ``cadenza duet --instrument DIR``: a morph instrument
folder (WAVs + instrument.sfz) instead of FluidSynth, run in-process on a real folder of
FluidSynth notes and a real MIDI file."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.cli import main
from models.midi_io import read_midi, write_midi
from models.nsynth.evaluate import estimate_f0
from models.nsynth.instrument import MorphInstrument
from models.nsynth.voices import render_sequence
from models.sequence import Note, NoteSequence
from tests.app.test_live_transport import Capture, live_engine, live_jack  # noqa: F401

HELD = Note(62, 100, 0.0, 1.5)  # alone, between the key centers 56 and 64: repitched
LATER = [Note(55, 90, 2.0, 2.6), Note(67, 90, 2.0, 2.6)]
RELEASE = 0.2
TAIL = 0.5
RATE = 22050


def cents(f0: float, pitch: int) -> float:
    return 1200 * np.log2(f0 / (440.0 * 2 ** ((pitch - 69) / 12)))


def cadenza(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``main()`` in-process: (exit code, stdout, stderr); an argparse exit counts too."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cadenza: error:"), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def instrument_dir(flute_instrument_dir: Path) -> Path:
    """FluidSynth flute notes every 8 semitones from C3 (16 kHz, 2 s, peak 0.8) with their SFZ
    (release 0.2 s): the shared ``flute_instrument_dir``."""
    return flute_instrument_dir


@pytest.fixture(scope="module")
def midi_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-midi") / "phrase.mid"
    write_midi(NoteSequence(notes=[HELD, *LATER]), path)
    return path


@pytest.fixture()
def no_sfz_dir(tmp_path: Path, instrument_dir: Path) -> Path:
    """A folder with a WAV of the instrument but no SFZ."""
    folder = tmp_path / "wavs-only"
    folder.mkdir()
    (folder / "note-56.wav").write_bytes((instrument_dir / "note-56.wav").read_bytes())
    return folder


# ---------------------------------------------------------------------------- render
def test_render_with_an_instrument(capsys, instrument_dir: Path, midi_file: Path,
                                   tmp_path: Path) -> None:
    out = tmp_path / "phrase.wav"
    code, stdout, err = cadenza(capsys, "render", midi_file, "-o", out, "--instrument",
                                instrument_dir, "--sample-rate", RATE, "--tail", TAIL)
    assert code == 0, err
    end = max(n.end for n in read_midi(midi_file).notes)
    assert end == pytest.approx(2.6, abs=0.01)
    # the line the FluidSynth render prints
    assert re.fullmatch(rf"{re.escape(str(out))}: {end + TAIL:.1f} s at {RATE} Hz "
                        rf"rendered in \d+\.\d\d s", stdout.strip()), stdout
    data, rate = soundfile.read(out, dtype="float32")
    assert rate == RATE and data.ndim == 2 and data.shape[1] == 2
    assert data.shape[0] / RATE == pytest.approx(end + TAIL, abs=0.01)
    x = data[:, 0]

    def part(t0: float, t1: float) -> np.ndarray:
        return x[int(t0 * RATE): int(t1 * RATE)]

    def rms(t0: float, t1: float) -> float:
        return float(np.sqrt(np.mean(part(t0, t1) ** 2)))

    assert rms(0.05, 1.45) > 0.02 and rms(2.05, 2.55) > 0.02  # sound where the notes are
    # the instrument's 0.2 s release, then silence (FluidSynth's reverb would ring on)
    assert np.abs(part(1.5 + RELEASE + 0.02, 2.0)).max() < 1e-3
    assert np.abs(part(2.6 + RELEASE + 0.02, end + TAIL)).max() < 1e-3
    f0 = estimate_f0(x, RATE, start=0.2, end=1.4)
    assert abs(cents(f0, HELD.pitch)) < 30, (f0, cents(f0, HELD.pitch))
    # and it is the instrument's own rendering, sample for sample (16-bit PCM)
    expected = render_sequence(MorphInstrument.load(instrument_dir), read_midi(midi_file),
                               sample_rate=RATE, tail=TAIL).samples
    assert expected.shape == data.shape
    assert np.abs(expected - data).max() < 2e-4


def test_render_bad_instruments_are_one_line_and_exit_2(capsys, instrument_dir: Path,
                                                        midi_file: Path, no_sfz_dir: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "o.wav"
    for folder, words in ((tmp_path / "nowhere", ["no instrument folder", "nowhere"]),
                          (no_sfz_dir, ["no sfz", "wavs-only"])):
        code, _, err = cadenza(capsys, "render", midi_file, "-o", out, "--instrument", folder)
        assert code == 2
        line = one_line_error(err).lower()
        assert all(w in line for w in words), line
    sf2 = tmp_path / "some.sf2"
    sf2.write_bytes(b"RIFF")
    code, _, err = cadenza(capsys, "render", midi_file, "-o", out, "--soundfont", sf2,
                           "--instrument", instrument_dir)
    assert code == 2
    line = one_line_error(err)
    assert "--soundfont" in line and "--instrument" in line
    assert not out.exists()


# ---------------------------------------------------------------------------- duet
def test_duet_instrument_errors_come_before_midi_and_the_model(
        capsys, monkeypatch: pytest.MonkeyPatch, instrument_dir: Path, no_sfz_dir: Path,
        tmp_path: Path) -> None:
    """Each is exit 2 with one line before the MIDI system is asked (here there is none: no
    ALSA sequencer, and a JACK server that does not exist) and long before the model loads."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-nowhere")
    base = ["duet", "--input", "cadenza-no-such-keyboard"]
    started = time.perf_counter()
    code, _, err = cadenza(capsys, *base, "--output", "Some Synth", "--instrument",
                           instrument_dir)
    assert code == 2
    line = one_line_error(err)
    assert "--instrument" in line and "--output audio" in line, line
    code, _, err = cadenza(capsys, *base, "--output", "audio", "--soundfont", "x.sf2",
                           "--instrument", instrument_dir)
    assert code == 2
    line = one_line_error(err)
    assert "--soundfont" in line and "--instrument" in line, line
    for folder, word in ((tmp_path / "nowhere", "no instrument folder"), (no_sfz_dir, "no sfz")):
        code, _, err = cadenza(capsys, *base, "--output", "audio", "--instrument", folder)
        assert code == 2
        assert word in one_line_error(err).lower(), err
    assert time.perf_counter() - started < 5


def test_duet_with_a_good_instrument_goes_on_to_the_midi_ports(
        capsys, monkeypatch: pytest.MonkeyPatch, instrument_dir: Path) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-nowhere")
    code, _, err = cadenza(capsys, "duet", "--input", "cadenza-no-such-keyboard", "--output",
                           "audio", "--instrument", instrument_dir)
    assert code == 2
    line = one_line_error(err).lower()
    assert "midi" in line and "instrument" not in line and "sfz" not in line, line


@pytest.mark.jack
def test_duet_audio_output_plays_the_instrument(live_engine, instrument_dir: Path) -> None:
    """The sink ``cadenza duet --output audio`` builds (``rig.synth``, which --thru plays too):
    with --instrument the morph instrument sounds, in tune; without, FluidSynth."""
    from app.commands.sound import audio_synth
    from app.sampler import SamplerSynth
    from app.transport import LiveSynth

    cap = Capture(live_engine)
    synth = audio_synth(live_engine, instrument=MorphInstrument.load(instrument_dir))
    try:
        assert isinstance(synth, SamplerSynth)
        time.sleep(0.2)
        quiet = len(cap.audio())
        synth.send([0x90, HELD.pitch, 100])  # as the duet's scheduler and --thru send
        time.sleep(0.8)
        synth.send([0x80, HELD.pitch, 0])
        deadline = time.monotonic() + 3.0  # the release (0.2 s; longer if the load made
        while synth.active_voices and time.monotonic() < deadline:  # blocks late)
            time.sleep(0.02)
        time.sleep(0.2)  # the queue and the capture
        rec = cap.audio()[quiet:, 0]
    finally:
        synth.close()
        cap.close()
    assert np.abs(rec).max() > 0.05
    loud = np.flatnonzero(np.abs(rec) > 0.01)
    f0 = estimate_f0(rec[loud[0]: loud[0] + 24000], live_engine.sample_rate, start=0.1,
                     end=0.5)
    assert abs(cents(f0, HELD.pitch)) < 30, f0
    assert np.abs(rec[-4800:]).max() < 1e-3  # the instrument's release, then silence
    fluid = audio_synth(live_engine)
    try:
        assert isinstance(fluid, LiveSynth)
    finally:
        fluid.close()


# ---------------------------------------------------------------------------- --morph
def test_morph_option_errors_come_before_midi_and_the_model(
        capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, midi_file: Path) -> None:
    """``duet`` and ``play`` with ``--morph``: each mistake is exit 2 with one line, before the
    MIDI system or the sound is asked (there is none here) and before any model loads."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "cadenza-nowhere")
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    cases = [
        (["--output", "Some Synth", "--morph", "gm:flute", "gm:clarinet"],
         ("--morph", "--output audio")),
        (["--output", "audio", "--morph", "gm:flute"], ("2 or 4 sounds",)),
        (["--output", "audio", "--soundfont", "x.sf2", "--morph", "gm:flute", "gm:oboe"],
         ("--soundfont", "--morph", "exclude")),
        (["--output", "audio", "--morph", "gm:flute", "gm:oboe", "--morph-xy", "2,0"],
         ("--morph-xy",)),
        (["--output", "audio", "--morph", "gm:flute", str(tmp_path / "none.wav")],
         ("none.wav",)),
        (["--output", "audio", "--morph", "gm:flute", str(silent)], ("silent",)),
        (["--output", "audio", "--morph", "gm:flute", "gm:no-such-instrument"],
         ("no-such-instrument",)),
    ]
    started = time.perf_counter()
    for command in (["duet", "--input", "cadenza-no-such-keyboard"], ["play", midi_file]):
        for extra, words in cases:
            code, _, err = cadenza(capsys, *command, *extra)
            assert code == 2, (command, extra)
            line = one_line_error(err)
            assert all(w.lower() in line.lower() for w in words), (extra, line)
    code, _, err = cadenza(capsys, "duet", "--input", "cadenza-no-such-keyboard", "--output",
                           "audio", "--instrument", tmp_path, "--morph", "gm:flute", "gm:oboe")
    assert "--instrument and --morph exclude" in one_line_error(err)
    assert time.perf_counter() - started < 10
    # good sounds go on to the devices
    code, _, err = cadenza(capsys, "duet", "--input", "cadenza-no-such-keyboard", "--output",
                           "audio", "--morph", "gm:flute", "gm:clarinet")
    assert code == 2 and "midi" in one_line_error(err).lower()


@pytest.mark.jack
def test_play_and_duet_play_a_morph_live_from_the_ddsp_model(
        capsys, live_engine, midi_file: Path) -> None:
    """``--morph`` builds the DDSP live voices (the sink ``duet`` answers on and ``play``
    plays to): a note sounds in tune; ``cadenza play --output audio --morph`` plays a file
    through them to the end."""
    import argparse

    from app.commands.sound import audio_synth, load_live_morph
    from app.sampler import DDSPSynth

    args = argparse.Namespace(morph=["gm:flute", "gm:clarinet"], morph_xy=(0.3, 0.5),
                              morph_model=None)
    live = load_live_morph(args)
    assert live.name == "gm:flute x gm:clarinet"
    assert np.allclose(live.weights, [0.7, 0.3])
    cap = Capture(live_engine)
    synth = audio_synth(live_engine, live=live)
    try:
        assert isinstance(synth, DDSPSynth)
        time.sleep(0.2)
        quiet = len(cap.audio())
        synth.send([0x90, 67, 100])
        time.sleep(0.8)
        synth.send([0x80, 67, 0])
        time.sleep(1.2)
        rec = cap.audio()[quiet:, 0]
    finally:
        synth.close()
        cap.close()
    assert np.abs(rec).max() > 0.02
    loud = np.flatnonzero(np.abs(rec) > 0.1 * np.abs(rec).max())
    f0 = estimate_f0(rec[loud[0]: loud[0] + 24000], live_engine.sample_rate, start=0.1,
                     end=0.45)
    assert abs(cents(f0, 67)) < 30, f0
    assert np.abs(rec[-4800:]).max() < 1e-3  # released

    code, out, err = cadenza(capsys, "play", midi_file, "--output", "audio",
                             "--audio-device", "system", "--morph", "gm:flute", "gm:clarinet")
    assert code == 0, err
    assert "morph gm:flute x gm:clarinet" in out, out
