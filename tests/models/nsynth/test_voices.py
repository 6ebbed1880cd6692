"""Sampler voices of a morph instrument: pitch between key centers, envelope, pedal, stealing,
bend, and a NoteSequence rendered offline; on FluidSynth flute notes loaded from a real SFZ
folder (the ``flute_instrument_dir`` fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import CadenzaError
from models.nsynth.evaluate import estimate_f0
from models.nsynth.instrument import MorphInstrument
from models.nsynth.voices import SamplerVoices, render_sequence
from models.sequence import ControlChange, Note, NoteSequence

RATE = 48000


def midi_of(f0: float) -> float:
    return 69 + 12 * np.log2(f0 / 440.0)


@pytest.fixture(scope="module")
def instrument(flute_instrument_dir: Path) -> MorphInstrument:
    return MorphInstrument.load(flute_instrument_dir)


def test_notes_between_key_centers_are_repitched(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE)
    for pitch in (50, 61, 67):  # from key centers 48, 64 and 64
        voices.silence()
        voices.note_on(0, pitch, 100)
        out = np.concatenate([voices.render(256) for _ in range(int(0.9 * RATE / 256))])
        got = midi_of(estimate_f0(out, RATE))
        assert abs(got - pitch) < 0.25, (pitch, got)


def test_envelope_velocity_and_release(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE)
    silent = voices.render(1024)
    assert not silent.any()
    voices.note_on(0, 60, 127)
    loud = np.abs(voices.render(RATE // 4)).max()
    voices.silence()
    voices.note_on(0, 60, 40)
    soft = np.abs(voices.render(RATE // 4)).max()
    assert loud > 0.05
    assert 5 < loud / soft < 15  # velocity squared: (127/40)^2 = 10
    voices.note_off(0, 60)
    assert voices.sounding() == set()
    tail = voices.render(int(0.2 * RATE))  # the 0.2 s release
    assert voices.active_voices == 0
    assert np.abs(tail[-256:]).max() < 0.03 * np.abs(tail[:256]).max()  # faded out
    assert not voices.render(512).any()


def test_sustain_pedal_holds_and_lifting_it_releases(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE)
    voices.send([0xB0, 64, 127])
    voices.send([0x90, 64, 90])
    voices.render(4800)
    voices.send([0x80, 64, 0])
    voices.render(int(0.4 * RATE))  # longer than the release: the pedal holds it
    assert voices.active_voices == 1
    voices.send([0xB0, 64, 0])
    voices.render(int(0.25 * RATE))
    assert voices.active_voices == 0


def test_voices_are_stolen_oldest_first_and_drums_ignored(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE, max_voices=4)
    for pitch in range(60, 66):
        voices.note_on(0, pitch, 100)
    voices.note_on(9, 38, 100)  # drum channel
    assert voices.active_voices == 4
    assert voices.sounding() == {(0, p) for p in range(62, 66)}
    voices.send([0xB0, 123, 0])  # all notes off
    assert voices.sounding() == set()
    voices.send([0xB0, 120, 0])  # all sound off
    assert voices.active_voices == 0


def test_pitch_bend_moves_the_pitch_up_to_two_semitones(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE)
    voices.send([0xE0, 0x7F, 0x7F])  # full bend up
    voices.note_on(0, 60, 100)
    out = np.concatenate([voices.render(256) for _ in range(int(0.9 * RATE / 256))])
    assert abs(midi_of(estimate_f0(out, RATE)) - 62) < 0.3


def test_render_sequence_places_notes_and_leaves_gaps_silent(instrument: MorphInstrument) -> None:
    seq = NoteSequence(notes=[Note(60, 100, 0.0, 0.5), Note(67, 100, 0.0, 0.5),
                              Note(72, 90, 1.5, 2.0), Note(36, 100, 0.0, 2.0, is_drum=True)])
    audio = render_sequence(instrument, seq, sample_rate=44100, tail=0.5)
    assert audio.sample_rate == 44100 and audio.channels == 2
    assert abs(audio.duration - 2.5) < 0.01
    x = audio.samples[:, 0]
    chord, gap, last = x[:int(0.5 * 44100)], x[int(0.8 * 44100):int(1.5 * 44100)], \
        x[int(1.5 * 44100):int(2.0 * 44100)]
    assert np.abs(chord).max() > 0.05 and np.abs(last).max() > 0.05
    assert np.abs(gap).max() < 1e-4  # released by 0.7 s
    assert np.abs(x).max() <= 0.99
    # the pedal keeps the chord going across the gap
    pedal = NoteSequence(notes=seq.notes[:2],
                         control_changes=[ControlChange(0.0, 64, 127), ControlChange(1.2, 64, 0)])
    held = render_sequence(instrument, pedal, sample_rate=44100, tail=0.5).samples[:, 0]
    assert np.abs(held[int(0.9 * 44100):int(1.1 * 44100)]).max() > 0.01
    assert np.abs(held[int(1.5 * 44100):]).max() < 1e-4


def test_bad_settings_are_refused(instrument: MorphInstrument, tmp_path: Path) -> None:
    with pytest.raises(CadenzaError):
        SamplerVoices(instrument, 100)
    with pytest.raises(CadenzaError):
        SamplerVoices(instrument, RATE, max_voices=0)
    with pytest.raises(CadenzaError):
        render_sequence(instrument, NoteSequence(), tail=-1)
    empty = render_sequence(instrument, NoteSequence(), sample_rate=22050, tail=0.1)
    assert empty.samples.shape == (2205, 2) and not empty.samples.any()


def test_an_empty_block_renders_nothing_while_a_voice_sounds(instrument: MorphInstrument) -> None:
    voices = SamplerVoices(instrument, RATE)
    voices.note_on(0, 60, 100)
    assert voices.render(0).shape == (0,)
    assert voices.active_voices == 1 and np.abs(voices.render(256)).max() > 0


def test_a_note_added_into_queued_blocks_sounds_as_if_it_began_with_them(
        instrument: MorphInstrument) -> None:
    """``take_fresh`` and ``render(only=)``, as a live player adds a key press into the blocks
    it has queued: the same audio as a note that began with them."""
    queued = SamplerVoices(instrument, RATE)
    queued.note_on(0, 60, 100)
    blocks = [queued.render(256) for _ in range(3)]
    queued.note_on(0, 64, 100)
    fresh = queued.take_fresh()
    assert list(fresh) == [1]
    for block in blocks:
        block += queued.render(256, only=fresh)
    spliced = np.concatenate(blocks + [queued.render(256) for _ in range(3)])
    together = SamplerVoices(instrument, RATE)
    together.note_on(0, 60, 100)
    together.note_on(0, 64, 100)
    both = np.concatenate([together.render(256) for _ in range(6)])
    assert np.abs(both).max() > 1e-3
    assert np.allclose(spliced, both, atol=1e-6)
