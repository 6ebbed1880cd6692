"""Live DDSP voices on a tiny trained model: pitch, held notes, the pedal, bend, the mix moving
under a sounding note, and the speed of eight voices."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from models.nsynth.signal import cents, estimate_f0, log_mel

RATE = 48000
BLOCK = 256


@pytest.fixture(scope="module")
def live_model(nsynth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A tiny DDSP model (30 steps), and two of its training notes as sources: a piano and a
    flute (programs 0 and 73)."""
    from models.ddsp.morph import DDSPMorpher
    from models.ddsp.train import train

    out = tmp_path_factory.mktemp("models") / "tiny-ddsp-live"
    train(nsynth_data, out, preset="tiny", steps=30, eval_every=30, seed=1)
    morpher = DDSPMorpher.load(out)
    notes = sorted((nsynth_data / "train").glob("*.wav")) + sorted(
        (nsynth_data / "valid").glob("*.wav"))
    piano = next(p for p in notes if p.name.startswith("p000-n060"))
    flute = next(p for p in notes if p.name.startswith("p073-n060"))
    sources = [morpher.source_audio(str(piano)), morpher.source_audio(str(flute))]
    return morpher, morpher.encode_batch(sources), morpher.loudness(sources)


def voices(live_model: tuple, weights: tuple[float, ...] = (0.5, 0.5), **kwargs: object):
    from models.ddsp.voices import DDSPVoices

    morpher, emb, loud = live_model
    return DDSPVoices(morpher, emb, loud, weights, RATE, **kwargs)


def play(v: object, seconds: float) -> np.ndarray:
    """``seconds`` rendered in blocks of 256, as the live render thread does."""
    n = int(round(seconds * RATE / BLOCK))
    out = np.zeros(n * BLOCK, np.float32)
    for i in range(n):
        v.render(BLOCK, out[i * BLOCK:(i + 1) * BLOCK])  # type: ignore[attr-defined]
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def hz(pitch: float) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


@pytest.mark.parametrize("pitch", [40, 84])
def test_a_note_sounds_at_its_keys_pitch(live_model: tuple, pitch: int) -> None:
    v = voices(live_model)
    v.note_on(0, pitch, 100)
    x = play(v, 1.0)
    assert v.active_voices == 1 and v.sounding() == {(0, pitch)}
    assert rms(x[RATE // 5:]) > 1e-3
    f0 = estimate_f0(x, RATE, fmax=4000.0, start=0.2, end=0.9)
    assert abs(cents(f0, hz(pitch))) < 50, f0


@pytest.mark.parametrize("rate", [16000, 48000])
def test_a_notes_attack_is_the_models_own_decode(live_model: tuple, rate: int) -> None:
    """Before its sustain frame a live note has the inputs of an offline decode of source A at
    the key's pitch: frame by frame, interpolated and synthesized the same (times the gain)."""
    from models.ddsp.voices import DDSPVoices

    morpher, emb, loud = live_model
    v = DDSPVoices(morpher, emb, loud, [1.0, 0.0], rate, gain=0.5)
    v.note_on(0, 60, 127)
    n = int(0.1 * rate)
    x = np.concatenate([v.render(BLOCK) for _ in range(n // BLOCK)])
    ref = morpher.decode(emb[0], f0=hz(60), envelope=loud[0], sample_rate=rate)
    ref = ref.samples[:x.size, 0]
    assert rms(ref) > 1e-3
    assert np.abs(x - 0.5 * ref).max() < 1e-3 * np.abs(ref).max() + 1e-6


def test_a_held_note_sustains_until_the_note_off_then_decays(live_model: tuple) -> None:
    v = voices(live_model)
    v.note_on(0, 60, 100)
    held = play(v, 6.0)
    level = rms(held[RATE // 2:RATE])
    assert level > 1e-3
    for s in range(1, 12):  # every half second of the 6 s still sounds at the held level
        part = rms(held[s * RATE // 2:(s + 1) * RATE // 2])
        assert level / 3 < part < level * 3, (s, part, level)
    v.note_off(0, 60)
    after = play(v, 1.5)
    assert rms(after[:RATE // 20]) > level / 4  # a release, not a cut
    assert rms(after[-RATE // 5:]) < 1e-5
    assert v.active_voices == 0
    # no click at the note-off: no jump bigger than the held note's own
    jumps = np.abs(np.diff(np.concatenate([held[-RATE // 10:], after[:RATE // 10]])))
    assert jumps.max() < 1.5 * np.abs(np.diff(held[RATE:])).max() + 1e-3


def test_the_sustain_pedal_holds_after_the_note_off(live_model: tuple) -> None:
    v = voices(live_model)
    v.control(0, 64, 127)
    v.note_on(0, 60, 100)
    first = play(v, 0.5)
    v.note_off(0, 60)
    pedal = play(v, 2.0)
    level = rms(first[RATE // 4:])
    assert rms(pedal[-RATE // 2:]) > level / 3
    assert v.active_voices == 1
    v.control(0, 64, 0)
    lifted = play(v, 1.5)
    assert rms(lifted[-RATE // 5:]) < 1e-5 and v.active_voices == 0


def test_pitch_bend_moves_the_pitch(live_model: tuple) -> None:
    v = voices(live_model)
    v.note_on(0, 57, 100)
    play(v, 0.3)
    v.send([0xE0, 0x7F, 0x7F])  # full bend up: +2 semitones
    bent = play(v, 0.8)
    f0 = estimate_f0(bent, RATE, start=0.2, end=0.7)
    assert abs(cents(f0, hz(59))) < 50, f0
    v.pitch_bend(0, 8192)
    back = play(v, 0.8)
    assert abs(cents(estimate_f0(back, RATE, start=0.2, end=0.7), hz(57))) < 50


def test_velocity_plays_softer(live_model: tuple) -> None:
    """Velocity lowers the decoder's loudness input (20 dB at velocity 40): a trained model
    follows it about dB for dB (the small one: -20 dB); the tiny one, barely trained, less."""
    loud, soft = voices(live_model), voices(live_model)
    loud.note_on(0, 60, 127)
    soft.note_on(0, 60, 40)
    assert rms(play(soft, 1.0)[RATE // 2:]) < rms(play(loud, 1.0)[RATE // 2:])


def test_set_mix_moves_a_sounding_note_from_a_to_b_without_a_click(live_model: tuple) -> None:
    a, b = voices(live_model, (1.0, 0.0)), voices(live_model, (0.0, 1.0))
    for v in (a, b):
        v.note_on(0, 60, 100)
    ref_a, ref_b = play(a, 3.0), play(b, 3.0)
    mel_a = log_mel(ref_a[RATE:], RATE).mean(0)
    mel_b = log_mel(ref_b[RATE:], RATE).mean(0)
    assert np.linalg.norm(mel_a - mel_b) > 1.0  # the two sources sound different

    v = voices(live_model, (1.0, 0.0))
    v.note_on(0, 60, 100)
    before = play(v, 1.5)
    v.set_mix([0.0, 1.0])
    after = play(v, 1.5)
    near_a = log_mel(before[RATE // 2:], RATE).mean(0)
    near_b = log_mel(after[RATE // 2:], RATE).mean(0)
    assert np.linalg.norm(near_a - mel_a) < np.linalg.norm(near_a - mel_b)
    assert np.linalg.norm(near_b - mel_b) < 0.5 * np.linalg.norm(near_b - mel_a)
    assert np.allclose(v.weights, [0.0, 1.0])
    jumps = np.abs(np.diff(np.concatenate([before[-RATE // 10:], after[:RATE // 5]])))
    steady = max(np.abs(np.diff(ref_a[RATE:])).max(), np.abs(np.diff(ref_b[RATE:])).max())
    assert jumps.max() < 1.5 * steady + 1e-3


def test_set_xy_follows_the_pads_layout(live_model: tuple) -> None:
    from models.ddsp.voices import pad_weights
    from models.errors import CadenzaError

    v = voices(live_model)
    v.set_xy(0.25, 0.9)
    assert np.allclose(v.weights, [0.75, 0.25])
    assert np.allclose(pad_weights(3, 0.5, 0.5), [0.25, 0.25, 0.5])
    assert np.allclose(pad_weights(4, 1.0, 1.0), [0, 0, 0, 1])
    with pytest.raises(CadenzaError):
        v.set_mix([1.0, 0.0, 0.0])
    with pytest.raises(CadenzaError):
        v.set_mix([0.0, 0.0])


def test_voices_are_stolen_and_cut(live_model: tuple) -> None:
    v = voices(live_model, max_voices=2)
    for p in (60, 62, 64):
        v.note_on(0, p, 100)
        play(v, 0.05)
    assert v.active_voices == 2 and v.sounding() == {(0, 62), (0, 64)}
    v.note_on(9, 60, 100)  # drums are not played
    assert v.active_voices == 2
    v.send([0xB0, 120, 0])
    assert v.active_voices == 0 and rms(play(v, 0.1)) == 0.0


def test_a_sequence_plays_on_the_voices(live_model: tuple) -> None:
    from models.nsynth.voices import play_sequence
    from models.sequence import Note, NoteSequence

    seq = NoteSequence(notes=[Note(60, 100, 0.5, 1.5), Note(67, 90, 1.0, 2.0)])
    audio = play_sequence(voices(live_model), seq, tail=1.0)
    x = audio.samples[:, 0]
    assert audio.sample_rate == RATE and x.shape[0] == 3 * RATE
    assert rms(x[:RATE * 45 // 100]) == 0.0 and rms(x[int(0.7 * RATE):RATE]) > 1e-3
    assert rms(x[-RATE // 5:]) < 1e-5


def test_eight_voices_render_faster_than_real_time(live_model: tuple) -> None:
    v = voices(live_model)
    for i in range(8):
        v.note_on(0, 48 + 3 * i, 100)
    play(v, 0.2)
    seconds = 4.0
    cpu, wall = time.process_time(), time.perf_counter()
    n = int(seconds * RATE / BLOCK)
    buf = np.zeros(BLOCK, np.float32)
    for i in range(n):
        if i % 8 == 0:
            v.set_xy((i % 400) / 400)
        v.render(BLOCK, buf)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert v.active_voices == 8
    assert cpu < 0.5 * seconds, cpu  # at most half a core (about 0.1 on a quiet machine)
    assert wall < seconds, wall


def test_a_note_added_into_queued_blocks_sounds_as_if_it_began_with_them(
        live_model: tuple) -> None:
    """What a live player does on a key press (``take_fresh``, then ``render(only=)`` into the
    blocks it has queued): the same audio as a note that began with those blocks, and the
    voices sounding already are left alone."""
    queued = voices(live_model)
    queued.note_on(0, 55, 100)
    blocks = [queued.render(BLOCK) for _ in range(3)]  # rendered, queued, not heard yet
    assert queued.take_fresh().size == 0  # the full renders took the first note in
    queued.note_on(0, 67, 90)
    fresh = queued.take_fresh()
    assert fresh.size == 1 and queued.take_fresh().size == 0
    for block in blocks:
        block += queued.render(BLOCK, only=fresh)
    spliced = np.concatenate(blocks + [queued.render(BLOCK) for _ in range(5)])

    together = voices(live_model)
    together.note_on(0, 55, 100)
    together.note_on(0, 67, 90)
    both = play(together, 8 * BLOCK / RATE)
    assert rms(both) > 1e-3
    assert np.allclose(spliced, both, atol=1e-5), np.abs(spliced - both).max()

    alone = voices(live_model)
    alone.note_on(0, 55, 100)
    assert rms(both - play(alone, 8 * BLOCK / RATE)) > 0.1 * rms(both)  # the note is in it
