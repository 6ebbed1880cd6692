"""mu-law, the rendered data set, the model's shapes and causality, fast generation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from app.cli import main
from models.nsynth.mulaw import mu_law_decode, mu_law_encode, scale_codes


def test_mu_law_round_trip() -> None:
    x = np.linspace(-1, 1, 10001, dtype=np.float32)
    q = mu_law_encode(x)
    assert q.dtype == np.uint8 and q.min() == 0 and q.max() == 255
    assert np.all(np.diff(q.astype(int)) >= 0)
    y = mu_law_decode(q)
    # mu-law steps are fine near zero and coarse near full scale
    assert np.all(np.abs(y - x) <= 0.02 * np.abs(x) + 2e-4 + 0.035 * np.abs(x))
    assert np.abs(mu_law_decode(mu_law_encode(np.float32(0.001))) - 0.001) < 1e-4
    assert np.array_equal(mu_law_encode(mu_law_decode(np.arange(256))), np.arange(256))
    s = scale_codes(np.array([0, 255]))
    assert s[0] == -1.0 and s[1] == 1.0


def test_dataset_command_renders_splits_by_program_and_drops_silence(tmp_path: Path) -> None:
    out = tmp_path / "set"
    # church organ (19) has no sample at pitch 108 in FluidR3: that render is silent
    code = main(["dataset", "nsynth", "--out", str(out), "--programs", "0,19",
                 "--pitches", "60,108", "--velocities", "100"])
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    notes = manifest["notes"]
    assert manifest["dropped_silent"] == 1
    assert len(notes) == 3
    assert not any(n["program"] == 19 and n["pitch"] == 108 for n in notes)
    train = {n["program"] for n in notes if n["split"] == "train"}
    valid = {n["program"] for n in notes if n["split"] == "valid"}
    assert train and valid and not train & valid
    assert {n["family"] for n in notes} == {"piano", "organ"}
    for n in notes:
        x, sr = soundfile.read(out / n["file"])
        assert sr == 16000 and x.shape == (64000,)
        assert n["file"].startswith(n["split"] + "/")
        assert np.sqrt(np.mean(x ** 2)) > 0.01


def test_encoder_hop_and_decoder_shapes() -> None:
    from models.nsynth.model import build_model, tiny_config

    model = build_model(tiny_config())
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64000)).astype("float32")
    emb = np.asarray(model.encode(x))
    assert emb.shape == (1, 125, 16)
    lag = np.zeros((1, 2048, model.config.lag_channels), "float32")
    assert np.asarray(model((x[:, :2048], lag))).shape == (1, 2048, 256)
    with pytest.raises(ValueError, match="pitch-lag"):
        model.decode(x[:, :2048], emb[:, :4])


def test_decoder_is_causal() -> None:
    """Also through the pitch lag: output t sees x only up to t - 1."""
    from models.nsynth.model import build_model, lag_features, tiny_config

    model = build_model(tiny_config())
    taps = model.config.lag_taps
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, 1024)).astype("float32")
    emb = rng.normal(size=(1, 2, 16)).astype("float32")
    t = 700
    y = x.copy()
    y[:, t:] = rng.uniform(-1, 1, (1, 1024 - t))
    a = np.asarray(model.decode(x, emb, lag_features(x, [9.5], taps)))
    b = np.asarray(model.decode(y, emb, lag_features(y, [9.5], taps)))
    np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
    assert np.abs(a[:, t + 1] - b[:, t + 1]).max() > 1e-4  # sample t feeds output t+1


def need_engine(engine: str) -> None:
    """The compiled engines need their library: TensorFlow (xla) or JAX (jax, on the GPU
    machine or with jax installed)."""
    from models.nsynth.fastgen import jax_available, xla_available

    if engine == "xla" and not xla_available():
        pytest.skip("TensorFlow is not installed")
    if engine == "jax" and not jax_available():
        pytest.skip("JAX is not installed")


@pytest.mark.parametrize("engine", ["numpy", "xla", "jax"])
@pytest.mark.parametrize("kernel,base,pitch_lag", [(2, 2, False), (3, 3, True)])
def test_fast_generation_matches_teacher_forced_logits(engine: str, kernel: int, base: int,
                                                       pitch_lag: bool) -> None:
    from models.nsynth.fastgen import FastGenerator

    need_engine(engine)
    from models.nsynth.model import build_model, lag_features, tiny_config

    config = replace(tiny_config(), dec_kernel=kernel, dec_base=base, dec_cycle=3,
                     pitch_lag=pitch_lag)
    model = build_model(config)
    rng = np.random.default_rng(2)
    x = scale_codes(rng.integers(0, 256, (3, 1536)))
    emb = np.asarray(model.encode(x))
    # a fractional period, an integer one and an unvoiced voice
    periods = np.array([36.4, 100.0, 0.0])
    if pitch_lag:
        lag = lag_features(x, periods, config.lag_taps)
        assert lag.shape == (3, 1536, 4)
        reference = np.asarray(model.decode(x, emb, lag))
        # the pitch lag matters: a wrong period gives other logits
        other = np.asarray(model.decode(x, emb, lag_features(x, periods * 1.5, config.lag_taps)))
        assert np.abs(other[:2, 200:] - reference[:2, 200:]).max() > 1e-3
        np.testing.assert_array_equal(other[2], reference[2])
    else:
        reference = np.asarray(model.decode(x, emb))
    fast = FastGenerator(model, engine=engine).forced_logits(emb, x, periods)
    assert fast.shape == reference.shape
    assert np.abs(fast - reference).max() < 1e-4


def test_lag_features_read_one_period_back() -> None:
    from models.nsynth.model import lag_features, lag_period

    x = np.arange(1, 11, dtype=np.float32)[None].repeat(2, 0)  # x[t] = t + 1
    f = lag_features(x, np.array([2.5, 0.0]), (-1, 0, 1))
    # t = 5: x at 5 - 2.5 + k = 1.5, 2.5, 3.5 -> 2.5, 3.5, 4.5; voiced
    np.testing.assert_allclose(f[0, 5], [2.5, 3.5, 4.5, 1.0])
    np.testing.assert_allclose(f[0, 1], [0.0, 0.0, 0.5, 1.0])  # before the start: zeros
    assert not f[1].any()  # unvoiced
    assert lag_period(440.0, 16000) == pytest.approx(16000 / 440)
    assert lag_period(float("nan"), 16000) == lag_period(10.0, 16000) == 0.0


@pytest.mark.parametrize("engine", ["xla", "jax"])
@pytest.mark.parametrize("pitch_lag", [False, True])
def test_generation_engines_agree_on_greedy_audio(engine: str, pitch_lag: bool) -> None:
    from models.nsynth.fastgen import FastGenerator
    from models.nsynth.model import build_model, tiny_config

    need_engine(engine)
    model = build_model(replace(tiny_config(), pitch_lag=pitch_lag))
    emb = np.random.default_rng(3).normal(size=(2, 2, 16)).astype("float32")
    periods = np.array([40.3, 0.0])
    a = FastGenerator(model, engine="numpy").generate(emb, temperature=0.0, periods=periods)
    # chunks of 384: the loop state carries across calls, and the last chunk is shorter
    b = FastGenerator(model, engine=engine).generate(emb, temperature=0.0, chunk=384,
                                                     periods=periods)
    assert a.shape == (2, 1024)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("engine", ["xla", "jax"])
def test_compiled_loops_belong_to_their_generator(engine: str) -> None:
    """A generator's compiled loop runs its own model's weights, and goes when the generator
    (and its model) goes: nothing keeps loops of models no longer loaded, and no later model
    can be handed an earlier one's loop."""
    import gc
    import weakref

    import keras

    from models.nsynth.fastgen import FastGenerator
    from models.nsynth.model import build_model, tiny_config

    need_engine(engine)
    emb = np.random.default_rng(4).normal(size=(1, 1, 16)).astype("float32")
    outputs, loops = [], []
    for seed in range(2):
        keras.utils.set_random_seed(seed)
        model = build_model(tiny_config())
        gen = FastGenerator(model, engine=engine)
        got = gen.generate(emb, temperature=0.0)
        expected = FastGenerator(model, engine="numpy").generate(emb, temperature=0.0)
        np.testing.assert_array_equal(got, expected)
        outputs.append(got)
        loops.append(weakref.ref(gen._compiled(forced=False)))
        del model, gen
        gc.collect()
    assert not np.array_equal(outputs[0], outputs[1])  # the two models do differ
    assert all(loop() is None for loop in loops)


def test_f0_estimator_on_a_synthetic_and_a_rendered_a4() -> None:
    from models.nsynth.dataset import gm_renderer, render_gm_note
    from models.nsynth.evaluate import cents, estimate_f0

    t = np.arange(64000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 880 * t + 1)
    assert abs(cents(estimate_f0(tone, 16000), 440.0)) < 5
    low = np.sign(np.sin(2 * np.pi * 65.41 * t))  # a square wave at C2
    assert abs(cents(estimate_f0(low, 16000), 65.41)) < 5
    renderer = gm_renderer()
    try:
        violin = render_gm_note(renderer, 40, 69, 100)
    finally:
        renderer.close()
    assert abs(cents(estimate_f0(violin, 16000), 440.0)) < 5
    assert np.isnan(estimate_f0(np.random.default_rng(0).normal(size=64000), 16000))
    assert np.isnan(estimate_f0(np.zeros(64000), 16000))


def test_general_midi_names_are_the_standards_128() -> None:
    from models.errors import CadenzaError
    from models.nsynth.dataset import GM_NAMES, gm_family, gm_name, parse_gm

    assert len(GM_NAMES) == len(set(GM_NAMES)) == 128
    assert (gm_name(0), gm_name(40), gm_name(73), gm_name(127)) == (
        "Acoustic Grand Piano", "Violin", "Flute", "Gunshot")
    assert gm_family(73) == "pipe"
    assert parse_gm("gm:19") == parse_gm("church organ") == parse_gm("Church_Organ") == 19
    assert parse_gm("flute") == 73
    with pytest.raises(CadenzaError, match="no General MIDI instrument"):
        parse_gm("kazoo")
