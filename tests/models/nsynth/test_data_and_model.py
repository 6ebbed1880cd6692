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
    assert np.asarray(model(x[:, :2048])).shape == (1, 2048, 256)


def test_decoder_is_causal() -> None:
    from models.nsynth.model import build_model, tiny_config

    model = build_model(tiny_config())
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, 1024)).astype("float32")
    emb = rng.normal(size=(1, 2, 16)).astype("float32")
    t = 700
    y = x.copy()
    y[:, t:] = rng.uniform(-1, 1, (1, 1024 - t))
    a = np.asarray(model.decode(x, emb))
    b = np.asarray(model.decode(y, emb))
    np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-6)
    assert np.abs(a[:, t + 1] - b[:, t + 1]).max() > 1e-4  # sample t feeds output t+1


@pytest.mark.parametrize("engine", ["numpy", "xla"])
@pytest.mark.parametrize("kernel,base", [(2, 2), (3, 3)])
def test_fast_generation_matches_teacher_forced_logits(engine: str, kernel: int,
                                                       base: int) -> None:
    from models.nsynth.fastgen import FastGenerator
    from models.nsynth.model import build_model, tiny_config

    config = replace(tiny_config(), dec_kernel=kernel, dec_base=base, dec_cycle=3)
    model = build_model(config)
    rng = np.random.default_rng(2)
    x = scale_codes(rng.integers(0, 256, (2, 1536)))
    emb = np.asarray(model.encode(x))
    reference = np.asarray(model.decode(x, emb))
    fast = FastGenerator(model, engine=engine).forced_logits(emb, x)
    assert fast.shape == reference.shape
    assert np.abs(fast - reference).max() < 1e-4


def test_generation_engines_agree_on_greedy_audio() -> None:
    from models.nsynth.fastgen import FastGenerator
    from models.nsynth.model import build_model, tiny_config

    model = build_model(tiny_config())
    emb = np.random.default_rng(3).normal(size=(2, 2, 16)).astype("float32")
    a = FastGenerator(model, engine="numpy").generate(emb, temperature=0.0)
    b = FastGenerator(model, engine="xla").generate(emb, temperature=0.0, chunk=512)
    assert a.shape == (2, 1024)
    np.testing.assert_array_equal(a, b)


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
