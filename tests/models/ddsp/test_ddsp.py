"""The DDSP Morph family: features, synthesizers, the Keras model against the numpy engine,
training and resuming, the façade and the ``cadenza morph`` command on a tiny trained model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from models.ddsp.config import DDSPConfig, decoder_inputs
from models.ddsp.synth import frame_features, harmonic, noise_bank, upsample
from models.nsynth.signal import cents, estimate_f0

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def ddsp_dir(nsynth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.ddsp.train import train

    out = tmp_path_factory.mktemp("models") / "tiny-ddsp"
    first = train(nsynth_data, out, preset="tiny", steps=30, eval_every=10, seed=1)
    assert first.step == 30
    return out


def test_features_frames_and_loudness() -> None:
    sr, hop = 16000, 128
    t = np.arange(sr) / sr
    sine = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    mfcc, loud = frame_features(sine, sr, hop, 1024, 64, 20)
    assert mfcc.shape == (sr // hop, 20) and loud.shape == (sr // hop,)
    assert abs(float(np.median(loud)) - 0.0) < 3.0  # a full-scale 1 kHz sine: about 0 dB
    quiet = frame_features(sine * 0.01, sr, hop, 1024, 64, 20)[1]
    assert abs(float(np.median(loud - quiet)) - 40.0) < 0.5
    assert frame_features(np.zeros(sr, np.float32), sr, hop, 1024, 64, 20)[1].max() == -100.0
    # MFCCs leave the level out: a quieter copy has (almost) the same coefficients
    assert np.abs(np.median(mfcc - frame_features(sine * 0.5, sr, hop, 1024, 64, 20)[0])) < 0.05


def test_harmonic_synth_is_pitched_and_clean() -> None:
    sr = 16000
    n = 2 * sr
    amps = np.zeros((n, 10), np.float32)
    amps[:, [0, 1, 4]] = [0.3, 0.2, 0.1]
    out, _ = harmonic(np.full(n, 220.0), amps, sr)
    assert abs(cents(estimate_f0(out, sr), 220.0)) < 5
    spec = np.abs(np.fft.rfft(out[:sr] * np.hanning(sr))) ** 2
    freqs = np.fft.rfftfreq(sr, 1 / sr)
    near = np.zeros_like(spec, bool)
    for k in range(1, 11):
        near |= np.abs(freqs - 220.0 * k) < 5
    assert spec[near].sum() / spec.sum() > 0.999


def test_noise_bank_bands_stop_at_the_training_nyquist() -> None:
    bank = noise_bank(8, 8000.0, 48000, seconds=1.0)
    assert bank.shape == (48000, 8)
    assert np.allclose(np.sqrt((bank ** 2).mean(0)), 1.0, atol=1e-3)
    spec = np.abs(np.fft.rfft(bank.sum(1))) ** 2
    freqs = np.fft.rfftfreq(48000, 1 / 48000)
    assert spec[freqs > 8100].sum() < 1e-6 * spec.sum()


def test_upsample_is_linear_between_frame_centres() -> None:
    y = upsample(np.array([0.0, 1.0, 3.0], np.float32), 4, 12)
    assert np.allclose(y, [0, .25, .5, .75, 1, 1.5, 2, 2.5, 3, 3, 3, 3])


def test_numpy_engine_matches_the_keras_model(ddsp_dir: Path) -> None:
    from models.checkpoint import config_from_dict, load_weights, read_model_dir
    from models.ddsp.engine import DDSPEngine
    from models.ddsp.model import build_model

    config = config_from_dict(DDSPConfig, read_model_dir(ddsp_dir)["config"])
    keras_model = build_model(config)
    load_weights(keras_model, ddsp_dir)
    engine = DDSPEngine.from_file(config, ddsp_dir / "model.weights.h5")
    rng = np.random.default_rng(0)
    frames = 12
    mfcc = rng.standard_normal((2, frames, config.n_mfcc)).astype(np.float32)
    f0 = np.full((2, frames), 220.0, np.float32)
    f0[1] = 0.0  # unvoiced: noise only
    cond = decoder_inputs(f0, rng.uniform(-40, -10, (2, frames)))
    z = engine.encode(mfcc)
    assert np.allclose(z, np.asarray(keras_model.encode(mfcc)), atol=1e-5)
    controls, state = engine.controls(z, cond)
    amp, harm, noise = (np.asarray(a) for a in keras_model.controls(z, cond))
    assert np.allclose(controls.amplitude, amp, atol=1e-5)
    assert np.allclose(controls.harmonics, harm, atol=1e-5)
    assert np.allclose(controls.noise, noise, atol=1e-6)
    assert np.all(controls.amplitude[1] == 0)
    # frame by frame (live voices) gives what the whole sequence gives
    first, mid = engine.controls(z[:, :5], cond[:, :5])
    rest, _ = engine.controls(z[:, 5:], cond[:, 5:], mid)
    assert np.allclose(np.concatenate([first.amplitude, rest.amplitude], 1), controls.amplitude,
                       atol=1e-6)
    # the same synthesis (the noise bank read where the engine reads it for each voice)
    n = (frames - 1) * config.hop
    bank = engine.bank(config.sample_rate)
    noise_in = np.stack([bank[:n], bank[7919:7919 + n]])
    want = np.asarray(keras_model.synthesize(amp, harm, noise, f0, noise_in))
    got = engine.synthesize(controls, f0)[:, :n]
    assert np.abs(want - got).max() < 0.02 * max(np.abs(want).max(), 1e-3)


def test_training_learns_and_resumes(ddsp_dir: Path, nsynth_data: Path) -> None:
    from models.ddsp.train import train
    from models.training import read_history

    log = read_history(ddsp_dir)["log"]
    val = [e["val_loss"] for e in log if "val_loss" in e]
    assert val[-1] < val[0], val  # it learns
    result = train(nsynth_data, ddsp_dir, steps=40, eval_every=10, seed=1)
    assert result.step == 40  # resumed from 30, not started over
    assert not (ddsp_dir / "train_state.npz").stat().st_size == 0


def test_cli_train_ddsp(nsynth_data: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    """``cadenza train ddsp``: a run of the asked preset and settings, its result one JSON
    line."""
    import json

    from app.cli import main
    from models.training import read_history

    out = tmp_path / "cli-ddsp"
    code = main(["train", "ddsp", "--data", str(nsynth_data), "--out", str(out), "--config",
                 "tiny", "--steps", "2", "--eval-every", "2", "--crop-frames", "16"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 2 and np.isfinite(result["val_loss"])
    settings = read_history(out)["runs"][-1]["settings"]
    assert settings["crop_frames"] == 16 and settings["batch_size"] == 4  # tiny's, one changed


def test_morpher_renders_at_any_rate_without_keras(ddsp_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from models.registry import MORPH_FAMILIES, ModelRegistry\n"
        f"m = ModelRegistry().load({str(ddsp_dir)!r}, MORPH_FAMILIES)\n"
        "a = [m.source_audio(s, pitch=57) for s in ('gm:flute', 'gm:clarinet')]\n"
        "from models.nsynth.morph import mix\n"
        "f0, env = m.guide(a, [0.5, 0.5])\n"
        "out = m.decode(mix(list(m.encode_batch(a)), 0.5), f0=f0, envelope=env, "
        "sample_rate=48000)\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "assert out.sample_rate == 48000 and out.frames == 4 * 48000, out.frames\n"
        "assert np.isfinite(out.samples).all() and np.abs(out.samples).max() > 1e-3\n"
        f"import soundfile; soundfile.write({str(tmp_path / 'm.wav')!r}, out.samples, 48000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    audio, sr = soundfile.read(tmp_path / "m.wav")
    assert sr == 48000
    assert abs(cents(estimate_f0(audio, sr), 220.0)) < 50  # A3, the sources' pitch


def test_cli_morph_with_a_ddsp_model(ddsp_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    out = tmp_path / "morph.wav"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app", "morph", "gm:flute", "gm:clarinet", "--model",
         str(ddsp_dir), "--pitch", "67", "--sample-rate", "44100", "-o", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    took = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    audio, sr = soundfile.read(out)
    assert sr == 44100 and len(audio) == 4 * 44100
    assert abs(cents(estimate_f0(audio, sr), 392.0)) < 50  # G4, asked with --pitch
    assert took < 20, f"a cold morph took {took:.1f} s"


def test_morph_refuses_a_model_of_another_family(tmp_path: Path) -> None:
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    done = subprocess.run(
        [sys.executable, "-m", "app", "morph", "gm:flute", "gm:clarinet", "--model",
         "performance-small", "-o", str(tmp_path / "x.wav")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert "not a DDSP or NSynth model" in done.stderr
    assert done.stderr.count("\n") == 1


def test_wavetable_synthesis_equals_the_sum_of_sines() -> None:
    from models.ddsp.synth import harmonic_wavetable

    sr, hop, frames = 48000, 384.0, 40
    rng = np.random.default_rng(3)
    amps = rng.uniform(0, 0.05, (frames, 60)).astype(np.float32)
    n = int((frames - 1) * hop)
    f0 = np.linspace(65.0, 80.0, n)  # a glide: the phase is accumulated per sample
    want, end_a = harmonic(f0, upsample(amps, hop, n), sr)
    got, end_b = harmonic_wavetable(f0, amps, hop, sr)
    assert np.abs(want - got).max() < 1e-3 * np.abs(want).max()
    assert abs(end_a - end_b) < 1e-6


def test_loudness_mix_decays_between_its_sources() -> None:
    from models.ddsp.synth import MIX_FLOOR_DB, mix_db

    flute = np.array([-20.0, -20.0, -100.0, -100.0])  # released after two frames
    organ = np.array([-30.0, -30.0, -30.0, -100.0])  # rings one frame longer
    mixed = mix_db(np.stack([flute, organ], axis=-1), np.array([1.0, 1.0]))
    assert np.allclose(mixed[:2], -25.0)  # the mean in dB while both sound
    # one released: the mix still sounds, below the other source, above silence
    assert -30.0 > mixed[2] > -60.0 and mixed[2] == (MIX_FLOOR_DB - 30.0) / 2
    assert mixed[3] == -100.0  # both silent: silent
    lopsided = mix_db(np.stack([flute, organ], axis=-1), np.array([3.0, 1.0]))
    assert np.allclose(lopsided[:2], 0.75 * -20.0 + 0.25 * -30.0)


def test_a_run_warm_starts_from_a_model_folder(ddsp_dir: Path, nsynth_data: Path,
                                               tmp_path: Path) -> None:
    from models.ddsp.config import TRAINING
    from models.ddsp.train import train
    from models.training import read_history

    before = [e["val_loss"] for e in read_history(ddsp_dir)["log"] if "val_loss" in e][-1]
    settings = TRAINING["tiny"].__class__(**{**TRAINING["tiny"].__dict__, "learning_rate": 1e-9})
    out = tmp_path / "warm"
    result = train(nsynth_data, out, steps=2, eval_every=2, seed=1, preset="tiny",
                   settings=settings, init=ddsp_dir)
    assert result.step == 2  # a new run from step 0, with the folder's weights
    assert abs(result.val_loss - before) < 0.02 * before, (result.val_loss, before)
    fresh = train(nsynth_data, tmp_path / "fresh", steps=2, eval_every=2, seed=1, preset="tiny",
                  settings=settings)
    assert abs(fresh.val_loss - before) > abs(result.val_loss - before)
