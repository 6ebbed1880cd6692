"""A tiny trained model: training, save/load, resume, the Morph API, instruments, CLI."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from app.cli import main
from models.errors import CadenzaError
from models.registry import ModelRegistry


def test_tiny_model_trains_and_loss_falls(tiny_model_dir: Path) -> None:
    history = json.loads((tiny_model_dir / "history.json").read_text())["log"]
    assert [h["step"] for h in history] == [10, 20, 30, 40]
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    assert history[-1]["loss"] < np.log(256) - 0.5
    assert (tiny_model_dir / "MODEL_CARD.md").read_text().startswith("# NSynth")
    with h5py.File(tiny_model_dir / "model.weights.h5") as f:  # compact: no optimizer state
        assert "optimizer" not in f


def test_save_load_through_the_registry_gives_identical_outputs(tiny_model_dir: Path,
                                                                tiny_morpher) -> None:
    from models.nsynth.model import build_model, lag_features
    from models.nsynth.morph import Morpher

    loaded = ModelRegistry([tiny_model_dir.parent]).load("tiny-nsynth")
    assert isinstance(loaded, Morpher)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2048)).astype("float32")
    x = (x, lag_features(x, [50.0], loaded.config.lag_taps))
    np.testing.assert_array_equal(np.asarray(loaded.model(x)), np.asarray(tiny_morpher.model(x)))
    fresh = build_model(loaded.config)  # different random weights: the comparison can fail
    assert not np.allclose(np.asarray(fresh(x)), np.asarray(loaded.model(x)))


def test_training_resumes_where_it_stopped(nsynth_data: Path, tiny_model_dir: Path,
                                           tmp_path: Path) -> None:
    import shutil

    from models.nsynth.train import train

    out = tmp_path / "run"
    shutil.copytree(tiny_model_dir, out)  # a run stopped at step 40
    lines: list[str] = []
    result = train(nsynth_data, out, steps=43, eval_every=10, log=lines.append)
    assert f"resuming {out} at step 40" in lines
    assert result.step == 43
    state = np.load(out / "train_state.npz")
    assert int(state["step"]) == 43
    # the optimizer's own iteration counter came back
    assert int(state["optimizer_00000"]) == 43
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history["log"]] == [10, 20, 30, 40, 43]
    assert [r["start_step"] for r in history["runs"]] == [0, 40]
    assert (state["optimizer_00003"].shape
            == np.load(tiny_model_dir / "train_state.npz")["optimizer_00003"].shape)


def test_mix_endpoints_and_xy_corners(tiny_morpher) -> None:
    from models.errors import CadenzaError
    from models.nsynth.morph import mix, mix_xy

    a = tiny_morpher.encode("gm:0", pitch=60)
    b = tiny_morpher.encode("gm:flute", pitch=60)
    assert a.shape == (125, 16) and not np.allclose(a, b)
    np.testing.assert_array_equal(mix([a, b], 0.0), a)
    np.testing.assert_array_equal(mix([a, b], 1.0), b)
    np.testing.assert_allclose(mix([a, b], 0.5), (a + b) / 2, atol=1e-6)
    c, d = a * 2, b - 1
    for (x, y), want in {(0, 0): a, (1, 0): b, (0, 1): c, (1, 1): d}.items():
        np.testing.assert_allclose(mix_xy([a, b, c, d], x, y), want, atol=1e-6)
    with pytest.raises(CadenzaError):
        mix([a, b], 1.5)


def test_encode_normalises_resamples_and_rejects_bad_audio(tiny_morpher, tmp_path: Path) -> None:
    from models.audio_io import Audio
    from models.errors import CadenzaError

    t = np.arange(22050 * 2) / 22050
    tone = 0.01 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.stack([tone, tone], 1), 22050, subtype="FLOAT")
    e1 = tiny_morpher.encode(path)
    e2 = tiny_morpher.encode(Audio(tone * 20, 22050))  # same sound, louder: same embedding
    assert e1.shape == (125, 16)
    np.testing.assert_allclose(e1, e2, atol=1e-3)
    with pytest.raises(CadenzaError, match="silent"):
        tiny_morpher.encode(np.zeros(16000, np.float32))
    with pytest.raises(CadenzaError, match="NaN"):
        tiny_morpher.encode(np.full(16000, np.nan, np.float32))


def test_decode_is_batched_reports_progress_and_cancels(tiny_morpher) -> None:
    from models.nsynth.fastgen import Cancelled

    emb = tiny_morpher.encode("gm:0")[:4]
    seen: list[float] = []
    outs = tiny_morpher.decode(np.stack([emb, emb]), progress=seen.append)
    assert len(outs) == 2 and outs[0].sample_rate == 16000 and outs[0].frames == 4 * 512
    assert seen[-1] == 1.0
    single = tiny_morpher.decode(emb, temperature=0.0)
    assert single.samples.shape == (2048, 1) and np.all(np.isfinite(single.samples))
    with pytest.raises(Cancelled):
        tiny_morpher.decode(emb, cancel=lambda: True)


def test_morph_instrument_folder_sfz_and_playback(tiny_morpher, tmp_path: Path) -> None:
    from models.nsynth.instrument import MorphInstrument, build_instrument, parse_sfz

    out = tmp_path / "inst"
    build_instrument(tiny_morpher, ["gm:0", "gm:73"], out, amount=0.3, pitches=[48, 60, 72])
    wavs = sorted(p.name for p in out.glob("*.wav"))
    assert wavs == ["morph-p048.wav", "morph-p060.wav", "morph-p072.wav"]
    regions, group = parse_sfz(out / "instrument.sfz")
    assert float(group["ampeg_release"]) > 0
    covered = sorted(k for r in regions for k in range(int(r["lokey"]), int(r["hikey"]) + 1))
    assert covered == list(range(128))  # every key once: no gaps, no overlaps
    for r in regions:
        assert int(r["lokey"]) <= int(r["pitch_keycenter"]) <= int(r["hikey"])
        assert (out / r["sample"]).is_file()
    inst = MorphInstrument.load(out)
    assert inst.pitches == [48, 60, 72]
    note = inst.note(62, 100, 0.5)
    assert note.dtype == np.float32 and note.shape == (int(0.8 * 16000),)
    assert np.abs(note).max() > 0.01 and abs(note[-1]) < 1e-3  # released to silence
    soft = inst.note(62, 30, 0.5)
    assert np.abs(soft).max() < np.abs(note).max()
    assert inst.note(62, 100, 0.5, sample_rate=48000).shape == (int(0.8 * 48000),)


def test_cli_morph_evaluate_and_instrument(tiny_model_dir: Path, nsynth_data: Path,
                                           tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.wav"
    assert main(["morph", "gm:0", "gm:flute", "--pitch", "64", "--mix", "0.5",
                 "--model", str(tiny_model_dir), "-o", str(out)]) == 0
    x, sr = soundfile.read(out)
    assert sr == 16000 and x.shape == (64000,)
    # The same morph written at a DAW's rate: the same sound, resampled.
    out48 = tmp_path / "m48.wav"
    assert main(["morph", "gm:0", "gm:flute", "--pitch", "64", "--mix", "0.5",
                 "--model", str(tiny_model_dir), "-o", str(out48), "--sample-rate", "48000"]) == 0
    y, sr48 = soundfile.read(out48)
    assert sr48 == 48000 and y.shape == (192000,)
    assert np.abs(y).max() == pytest.approx(np.abs(x).max(), rel=0.1)
    capsys.readouterr()
    assert main(["evaluate", "nsynth", "--data", str(nsynth_data / "valid"),
                 "--model", str(tiny_model_dir), "--limit", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"pitch_accuracy", "spectral_distance", "notes"}
    assert result["notes"] == 1 and result["spectral_distance"] > 0
    four = tmp_path / "four"
    wav = next((nsynth_data / "train").glob("*.wav"))
    assert main(["morph-instrument", "gm:0", "gm:19", "gm:73", str(wav), "--xy", "0.2,0.9",
                 "--pitches", "60,67", "--model", str(tiny_model_dir), "-o", str(four),
                 "--sample-rate", "44100"]) == 0
    notes = sorted(four.glob("*.wav"))
    assert len(notes) == 2 and all(soundfile.info(n).samplerate == 44100 for n in notes)


def _wav_with_rate_zero(path: Path) -> None:
    soundfile.write(path, np.zeros(100, np.float32), 8000)
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<L", 0)
    path.write_bytes(bytes(data))


def test_bad_inputs_exit_2_with_one_line(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tmp_path / "nan.wav"
    soundfile.write(nan, np.full(1000, np.nan, np.float32), 16000, subtype="FLOAT")
    zero_rate = tmp_path / "zero.wav"
    _wav_with_rate_zero(zero_rate)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(16000, np.float32), 16000)
    model = ["--model", str(tiny_model_dir)]
    cases = [
        ["morph", str(empty), "gm:0", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", str(nan), "gm:0", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", str(zero_rate), "gm:0", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", str(silent), "gm:0", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", "gm:0", "gm:1", "gm:2", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", "gm:0", "gm:1", "--mix", "2", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", "gm:0", "gm:nosuchthing", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", "gm:0", "missing.wav", "-o", str(tmp_path / "o.wav"), *model],
        ["morph", "gm:0", "gm:1", "-o", str(tmp_path / "o.mp4"), *model],
        ["morph", "gm:0", "gm:1", "-o", str(tmp_path / "o.wav"), "--sample-rate", "0", *model],
        ["morph", "gm:0", "gm:1", "-o", str(tmp_path / "o.wav"), "--model", str(tmp_path)],
        ["evaluate", "nsynth", "--data", str(tmp_path / "nowhere"), *model],
        ["dataset", "nsynth", "--out", str(tmp_path / "d"), "--programs", "200"],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("cadenza: error: ") and "\n" not in err, (argv, err)
    assert not (tmp_path / "o.wav").exists()


def test_the_decoder_uses_the_pitch_it_is_given(nsynth_data: Path, tiny_morpher) -> None:
    """After 40 steps the tiny decoder already predicts an unseen instrument's note better from
    its true pitch period than from a wrong one: the pitch-lag input is learnt, not ignored."""
    from models.nsynth.dataset import load_split, note_f0s
    from models.nsynth.model import lag_features, lag_period
    from models.nsynth.mulaw import mu_law_encode, scale_codes

    audio, records = load_split(nsynth_data, "valid")  # the flute, never trained on
    f0s = note_f0s(nsynth_data, records, audio)
    assert np.all(np.isfinite(f0s))
    codes = mu_law_encode(audio.astype(np.float32) / 32768.0)[:, 4096:8192]
    x = scale_codes(codes)
    model = tiny_morpher.model
    emb = model.encode(x)

    def nll(periods: np.ndarray) -> float:
        lag = lag_features(scale_codes(mu_law_encode(audio.astype(np.float32) / 32768.0)),
                           periods, model.config.lag_taps, start=4096, length=4096)
        logits = np.asarray(model.decode(x, emb, lag), np.float64)
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                                  keepdims=True))
        logp -= logits.max(-1, keepdims=True)
        return float(-np.take_along_axis(logp, codes[..., None].astype(int), -1).mean())

    true = np.array([lag_period(f, 16000) for f in f0s])
    right, wrong, none = nll(true), nll(true * 1.19), nll(np.zeros_like(true))
    assert right < wrong - 0.05 and right < none - 0.05, (right, wrong, none)


def test_a_morph_plays_at_the_pitch_of_its_main_source() -> None:
    from models.nsynth.morph import mix_weights, morph_f0

    nan = float("nan")
    assert mix_weights(2, 0.25) == [0.75, 0.25]
    assert mix_weights(4, xy=(1.0, 0.0)) == [0.0, 1.0, 0.0, 0.0]
    assert sum(mix_weights(4, xy=(0.3, 0.8))) == pytest.approx(1.0)
    assert morph_f0([440.0, 220.0], mix_weights(2, 0.4)) == 440.0
    assert morph_f0([440.0, 220.0], mix_weights(2, 0.6)) == 220.0
    assert morph_f0([440.0, 220.0], mix_weights(2, 0.5)) == 440.0  # a tie: the first
    assert morph_f0([nan, 220.0], mix_weights(2, 0.1)) == 220.0  # a drum has no pitch
    assert np.isnan(morph_f0([nan, nan], [0.5, 0.5]))
    with pytest.raises(CadenzaError):
        mix_weights(3)


def test_the_decoded_sound_follows_its_sources_loudness(tiny_morpher) -> None:
    """Turned down where the sources are quiet (a released note's silence), never up."""
    from models.nsynth.signal import follow_envelope, loudness_db

    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(16 * 512)).astype(np.float32)  # about -20 dB throughout
    target = np.r_[np.full(8, -10.0), np.full(8, -100.0)]  # loud, then silence
    out = follow_envelope(noise, target)
    level = loudness_db(out)
    np.testing.assert_allclose(out[:7 * 512], noise[:7 * 512])  # louder target: untouched
    assert np.all(level[9:] < -90)  # the tail is silent
    assert np.all(np.diff(np.abs(out[7 * 512:9 * 512]) / (np.abs(noise[7 * 512:9 * 512]) + 1e-9)
                          ) <= 1e-4)  # a ramp down, no step up

    a = tiny_morpher.source_audio("gm:flute", 60)
    b = tiny_morpher.source_audio("gm:0", 67)
    f0, env = tiny_morpher.guide([a, b], [0.75, 0.25])
    assert abs(1200 * np.log2(f0 / 261.63)) < 50  # the flute weighs most: its middle C
    np.testing.assert_allclose(env, 0.75 * loudness_db(a) + 0.25 * loudness_db(b))
    audio = tiny_morpher.decode(tiny_morpher.encode_batch([a])[0][:16], f0=f0, envelope=env,
                                seed=1)
    # within a couple of dB: the gain moves smoothly between frame centres
    assert np.all(loudness_db(audio.samples[:, 0]) <= env[:16] + 2.0)


def test_cli_morph_at_a_session_tempo_writes_an_acidized_wav(tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:
    """--tempo 96: the WAV's acid chunk says 96 BPM, a one-shot (a single note: not looped or
    stretched) whose root note is the pitch the morph plays (the rendered sources' E4)."""
    from models.audio_io import read_audio

    out = tmp_path / "m.wav"
    assert main(["morph", "gm:0", "gm:flute", "--pitch", "64", "--mix", "0.3", "--tempo", "96",
                 "--model", str(tiny_model_dir), "-o", str(out), "--sample-rate", "48000"]) == 0
    audio = read_audio(out)
    assert audio.sample_rate == 48000 and audio.frames == 192000
    acid = audio.acid
    assert acid is not None and acid.tempo == 96.0 and acid.one_shot
    assert acid.root_note == 64 and acid.beats == round(4.0 * 96 / 60)
    plain = tmp_path / "plain.wav"  # without --tempo: no chunk, as before
    assert main(["morph", "gm:0", "gm:flute", "--pitch", "64", "--mix", "0.3",
                 "--model", str(tiny_model_dir), "-o", str(plain)]) == 0
    assert read_audio(plain).acid is None and b"acid" not in plain.read_bytes()


def test_morph_acid_root_note_follows_the_fundamental() -> None:
    from models.nsynth.morph import morph_acid, root_note

    assert root_note(440.0) == 69 and root_note(261.63) == 60 and root_note(329.0) == 64
    assert root_note(float("nan")) is None and root_note(0.0) is None
    assert root_note(1e6) is None  # past the MIDI range
    acid = morph_acid(float("nan"), 120.0)  # an unpitched morph: a tempo, no root note
    assert acid.tempo == 120.0 and acid.root_note is None and acid.one_shot


@pytest.mark.parametrize("value", ["nan", "-1", "0", "401", "1e400"])
def test_a_bad_morph_tempo_is_one_line_before_the_model_loads(value: str, tmp_path: Path,
                                                               capsys) -> None:
    assert main(["morph", "gm:0", "gm:flute", "--tempo", value, "--model",
                 str(tmp_path / "no-such-model"), "-o", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cadenza: error: --tempo must be 20..400 BPM") and err.count("\n") == 1
    assert not (tmp_path / "o.wav").exists()
