"""FluidSynth rendering with the real General MIDI soundfont."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import CadenzaError
from models.midi_io import read_midi
from models.render import Renderer, find_soundfont
from models.sequence import ControlChange, Note, NoteSequence

SR = 44100


@pytest.fixture(scope="module")
def renderer():
    with Renderer(sample_rate=SR) as r:
        yield r


def _fundamental(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    band = (freqs > 50) & (freqs < 2000)
    return float(freqs[band][np.argmax(spec[band])])


def test_single_a4_is_440_hz(renderer):
    audio = renderer.render(NoteSequence(notes=[Note(69, 100, 0.0, 2.0)]), tail=0.5)
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape == (int(2.5 * SR), 2)
    assert np.abs(audio.samples).max() > 0.02
    f0 = _fundamental(audio.samples[int(0.2 * SR): int(1.7 * SR), 0], SR)
    assert abs(f0 - 440.0) <= 4.4, f0
    # After the tail the note has died away: the release and the reverb fit in the tail.
    assert np.abs(audio.samples[-100:]).max() < np.abs(audio.samples).max() / 10


def test_c_major_scale_has_each_pitch(renderer):
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    seq = NoteSequence(notes=[Note(p, 90, 0.5 * i, 0.5 * i + 0.45) for i, p in enumerate(pitches)])
    audio = renderer.render(seq)
    assert audio.samples.shape[0] == int(round((seq.total_time + 1.0) * SR))
    for i, p in enumerate(pitches):
        part = audio.samples[int((0.5 * i + 0.05) * SR): int((0.5 * i + 0.4) * SR), 0]
        expected = 440.0 * 2 ** ((p - 69) / 12)
        assert abs(_fundamental(part, SR) - expected) / expected < 0.03


def test_drums_on_channel_10_differ_from_piano(renderer):
    drum = renderer.render(NoteSequence(notes=[Note(38, 110, 0.0, 0.3, is_drum=True)]))
    piano = renderer.render(NoteSequence(notes=[Note(38, 110, 0.0, 0.3)]))
    assert drum.samples.shape == piano.samples.shape
    assert np.abs(drum.samples).max() > 0.02
    assert not np.allclose(drum.samples, piano.samples, atol=0.01)
    # The piano's energy sits on the harmonics of D2 (73.4 Hz); a snare's is spread out.
    def harmonic_share(x):
        spec = np.abs(np.fft.rfft(x[: SR // 2, 0])) ** 2
        freqs = np.fft.rfftfreq(SR // 2, 1 / SR)
        f0 = 440.0 * 2 ** ((38 - 69) / 12)
        near = np.abs(freqs / f0 - np.round(freqs / f0)) * f0 < 6.0
        return spec[near & (freqs < 3000)].sum() / spec[freqs < 3000].sum()
    assert harmonic_share(piano.samples) > 0.6
    assert harmonic_share(drum.samples) < 0.5


def test_renders_are_identical_and_independent(renderer):
    seq = NoteSequence(
        notes=[Note(60, 80, 0.0, 1.0), Note(64, 90, 0.2301, 0.9), Note(67, 70, 0.5, 1.5)],
        control_changes=[ControlChange(0.1, 64, 127), ControlChange(1.2, 64, 0)],
    )
    first = renderer.render(seq).samples
    # Something loud, cut off mid-sound, in between must leave no trace.
    loud = NoteSequence(notes=[Note(30 + i, 127, 0.0, 3.0, program=48) for i in range(40)])
    renderer.render(loud, tail=0.0)
    again = renderer.render(seq).samples
    renderer.render(NoteSequence(notes=[Note(50, 60, 0.0, 0.013)]), tail=0.0123)
    third = renderer.render(seq).samples
    assert np.array_equal(again, third)
    # The first render of a fresh synth may differ by FluidSynth's first-block ramp only.
    assert np.abs(first - again).max() < 2e-3


def test_sustain_pedal_lengthens_notes(renderer):
    note = [Note(60, 90, 0.0, 0.3)]
    dry = renderer.render(NoteSequence(notes=note), tail=1.5).samples
    pedal = [ControlChange(0.0, 64, 127), ControlChange(1.5, 64, 0)]
    wet = renderer.render(NoteSequence(notes=note, control_changes=pedal), tail=0.3).samples
    window = slice(int(1.0 * SR), int(1.4 * SR))
    assert np.sqrt(np.mean(wet[window] ** 2)) > 5 * np.sqrt(np.mean(dry[window] ** 2))


def test_render_note_has_exact_length(renderer):
    audio = renderer.render_note(program=0, pitch=60, velocity=100, seconds_held=3.0,
                                 seconds_release=1.0)
    assert audio.samples.shape == (4 * SR, 2)
    assert np.abs(audio.samples[: 3 * SR]).max() > 0.02
    with Renderer(sample_rate=16000) as r16:
        a16 = r16.render_note(24, 60, 100, 3.0, 1.0)
    assert a16.sample_rate == 16000 and a16.samples.shape == (64000, 2)


def test_real_piano_performance(renderer, datasets_dir):
    path = sorted((datasets_dir / "piano" / "asap").rglob("*.mid"))[0]
    seq = read_midi(path).trim(0.0, 30.0)
    audio = renderer.render(seq, tail=1.0)
    expected = int(round((seq.total_time + 1.0) * SR))
    assert audio.samples.shape == (expected, 2)
    assert 28.0 < audio.samples.shape[0] / SR <= 31.0
    # Sound throughout: every second but the tail has signal.
    per_second = np.abs(audio.samples[: 28 * SR, 0]).reshape(28, SR).max(axis=1)
    assert (per_second > 1e-3).mean() > 0.9
    assert np.abs(audio.samples).max() < 1.0


def test_bad_sequences_raise(renderer):
    with pytest.raises(CadenzaError, match="NaN"):
        renderer.render(NoteSequence(notes=[Note(60, 80, float("nan"), 1.0)]))
    with pytest.raises(CadenzaError, match="rendering is limited to 30 min"):
        renderer.render(NoteSequence(notes=[Note(60, 80, 0.0, 7 * 3600.0)]))
    with pytest.raises(CadenzaError):
        renderer.render(NoteSequence(notes=[Note(200, 80, 0.0, 1.0)]))


def test_missing_or_bad_soundfont(tmp_path, monkeypatch):
    with pytest.raises(CadenzaError, match="fluid-soundfont-gm"):
        Renderer(soundfont=tmp_path / "nope.sf2")
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"not a soundfont at all")
    with pytest.raises(CadenzaError, match="not a SoundFont"):
        find_soundfont(junk)
    monkeypatch.setenv("CADENZA_SOUNDFONT", str(tmp_path / "also-missing.sf2"))
    with pytest.raises(CadenzaError, match="also-missing"):
        find_soundfont()
    monkeypatch.delenv("CADENZA_SOUNDFONT")
    assert find_soundfont().suffix in (".sf2", ".sf3")


def test_live_playing_messages_and_blocks():
    """The live API (what the app's live synth uses): messages now, then blocks of audio."""
    with Renderer(sample_rate=48000) as r:
        buf = np.zeros((256, 2), np.float32)

        def blocks(seconds: float) -> np.ndarray:
            out = []
            for _ in range(int(seconds * 48000 / 256)):
                r.write_block(buf)
                out.append(buf[:, 0].copy())
            return np.concatenate(out)

        assert not blocks(0.1).any()
        r.live_message([0xC0, 73])  # flute
        r.live_message([0x90, 69, 110])
        held = blocks(0.8)
        assert np.abs(held).max() > 0.02
        part = held[4800:4800 + 19200]
        spec = np.abs(np.fft.rfft(part * np.hanning(len(part))))
        assert abs(np.fft.rfftfreq(len(part), 1 / 48000)[np.argmax(spec)] - 440) < 6
        r.live_message([0x80, 69, 0])
        blocks(1.5)  # the release
        assert np.abs(blocks(0.1)).max() < 1e-4
        r.live_message([0x99, 38, 120])  # a snare on channel 10: the drum kit
        assert np.abs(blocks(0.2)).max() > 0.02
        with pytest.raises(CadenzaError):
            r.write_block(np.zeros((256, 2), np.float64))


def test_prepare_needs_no_soundfont_and_may_run_twice():
    """FluidSynth's one-time set-up (the app's opener runs it at start): a bare synthesizer."""
    from models.render import prepare

    prepare()
    prepare()
    with Renderer(sample_rate=48000) as r:  # what comes after still works
        assert r.sample_rate == 48000
