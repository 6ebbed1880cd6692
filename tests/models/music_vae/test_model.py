"""Tiny MusicVAE models trained for a few dozen steps on real melodies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.midi_io import read_midi
from models.registry import ModelRegistry
from tests.models import card_text

from .conftest import history

# The tiny training fixture is a few seconds alone, minutes on a CPU shared with other trainings.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def model(tiny_melody):
    return ModelRegistry([tiny_melody.parent]).load("melody-2bar")


@pytest.fixture(scope="module")
def clips(nottingham_subset):
    files = sorted(nottingham_subset.glob("*.mid"))
    return [read_midi(files[0]), read_midi(files[1]), read_midi(files[2]), read_midi(files[3])]


def test_training_lowers_the_loss_and_writes_a_model_folder(tiny_melody):
    epochs = [e for e in history(tiny_melody) if "loss" in e]
    assert len(epochs) >= 2 and epochs[-1]["loss"] < epochs[0]["loss"]
    payload = json.loads((tiny_melody / "config.json").read_text())
    assert payload["family"] == "music_vae" and payload["config"]["kind"] == "melody"
    card = card_text(tiny_melody)
    assert "GPL-3.0" not in card or "nottingham" in card  # the source is a temporary folder
    assert "reconstruction accuracy" in card and "steps of batch" in card


def test_registry_load_gives_the_same_outputs(tiny_melody, model, clips):
    from models.music_vae.generate import load

    fresh = load(tiny_melody)
    mu1, s1 = model.encode(clips[:2])
    mu2, s2 = fresh.encode(clips[:2], backend="keras")
    np.testing.assert_allclose(mu1, mu2, atol=1e-5)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert np.array_equal(model.decode_labels(mu1), fresh.decode_labels(mu2))


def test_numpy_and_keras_paths_agree(model):
    z = np.random.default_rng(0).standard_normal((4, model.z_size)).astype(np.float32)
    assert np.array_equal(model.decode_labels(z), model.decode_labels(z, backend="keras"))
    a = model.decode_labels(z, temperature=1.0, seed=5)
    b = model.decode_labels(z, temperature=1.0, seed=5, backend="keras")
    assert np.array_equal(a, b)


def test_interpolation_ends_are_reconstructions(model, clips):
    seqs = model.interpolate(clips[0], clips[1], steps=5)
    assert len(seqs) == 5
    mu, _ = model.encode(clips[:2])
    recon = model.decode_labels(mu)
    labels = [model.converter.to_windows(s) for s in (seqs[0], seqs[-1])]
    for got, want in zip(labels, recon, strict=True):
        if len(got):  # a silent reconstruction has no window
            assert np.array_equal(got[0], want)
    ends = model.decode(mu)
    assert [(n.pitch, n.start, n.end) for n in seqs[0].notes] == [
        (n.pitch, n.start, n.end) for n in ends[0].notes]
    assert [(n.pitch, n.start, n.end) for n in seqs[-1].notes] == [
        (n.pitch, n.start, n.end) for n in ends[1].notes]


def test_slerp_and_lerp_differ_between_the_same_ends(model):
    mu = np.random.default_rng(2).standard_normal((2, model.z_size)).astype(np.float32)
    s = model.interpolation_latents(mu[0], mu[1], 5, "slerp")
    lin = model.interpolation_latents(mu[0], mu[1], 5, "lerp")
    np.testing.assert_allclose(s[[0, -1]], lin[[0, -1]], atol=1e-5)
    assert np.abs(s[2] - lin[2]).max() > 1e-3
    # slerp keeps the norm between the two ends' norms better than lerp's chord
    assert np.linalg.norm(s[2]) > np.linalg.norm(lin[2])


def test_blend4_at_the_corners_gives_the_corners(model, clips):
    zs = model.encode(clips)[0]
    corners = model.decode(zs)
    for (x, y), want in zip([(0, 0), (1, 0), (0, 1), (1, 1)], corners, strict=True):
        got = model.blend4(list(zs), x, y)
        assert [(n.pitch, n.start) for n in got.notes] == [(n.pitch, n.start) for n in want.notes]
    from_seqs = model.blend4(clips, 1, 1)
    assert [n.pitch for n in from_seqs.notes] == [n.pitch for n in corners[3].notes]
    grid = model.grid(list(zs), 3)
    assert len(grid) == 3 and all(len(row) == 3 for row in grid)
    assert [n.pitch for n in grid[2][2].notes] == [n.pitch for n in corners[3].notes]


def test_sampling_is_reproducible_with_a_seed(model):
    a = model.sample(4, temperature=0.8, seed=11)
    b = model.sample(4, temperature=0.8, seed=11)
    c = model.sample(4, temperature=0.8, seed=12)
    notes = lambda seqs: [[(n.pitch, n.start) for n in s.notes] for s in seqs]  # noqa: E731
    assert notes(a) == notes(b)
    assert notes(a) != notes(c)


def test_no_melody_is_a_cadenza_error_and_a_waltz_is_a_melody(model):
    from models.errors import CadenzaError
    from models.sequence import Note, NoteSequence, TimeSignature

    drums_only = NoteSequence(notes=[Note(36, 100, 0.0, 0.1, is_drum=True)])
    with pytest.raises(CadenzaError, match="drums only"):
        model.encode([drums_only])
    too_high = NoteSequence(notes=[Note(120, 90, 0.0, 0.5)])
    with pytest.raises(CadenzaError, match="outside the melody model's pitches 21-108"):
        model.encode([too_high])
    waltz = NoteSequence(notes=[Note(60, 90, 0.0, 0.5)],
                         time_signatures=[TimeSignature(0.0, 3, 4)])
    assert model.encode([waltz])[0].shape == (1, model.z_size)


def test_evaluate_reports_the_keys(model, nottingham_subset):
    from models.music_vae.evaluate import evaluate_folder

    out = evaluate_folder(model, nottingham_subset, limit=64)
    assert {"reconstruction_accuracy", "kl", "examples"} <= set(out)
    assert 0.0 <= out["reconstruction_accuracy"] <= 1.0 and out["examples"] == 64


def test_resume_continues_from_the_saved_step(tiny_melody, nottingham_subset, tmp_path):
    import shutil

    from models.music_vae.train import train

    out = tmp_path / "resumed"
    shutil.copytree(tiny_melody, out)
    before = [e for e in history(out) if "loss" in e]
    # Training settings may change on resume (word dropout, a new learning rate); the
    # architecture may not (z_size is ignored).
    result = train("melody-2bar", [str(nottingham_subset)], out, steps=60,
                   cache_dir=tiny_melody.parent / "cache", steps_per_epoch=20, val_examples=32,
                   verbose=0, overrides={"input_dropout": 0.25, "learning_rate": 1e-3,
                                         "z_size": 99})
    assert result.step == 60
    after = [e for e in history(out) if "loss" in e]
    assert len(after) == len(before) + 1 and after[-1]["step"] == 60
    # The settings live in the run's history; config.json holds the architecture alone.
    saved = json.loads((out / "history.json").read_text())["runs"][-1]["settings"]
    assert saved["input_dropout"] == 0.25 and saved["learning_rate"] == 1e-3
    arch = json.loads((out / "config.json").read_text())["config"]
    assert arch == json.loads((tiny_melody / "config.json").read_text())["config"]
    assert "learning_rate" not in arch and arch["z_size"] == 8
    assert "Decoder input dropout in training: 0.25" in card_text(out)


def test_decoder_input_dropout_masks_what_the_decoder_sees(model, clips):
    from models.music_vae.data import BatchSampler

    labels = model.to_labels(clips[:2]).astype(np.int32)
    net = model.net
    z = np.zeros((len(labels), model.z_size), np.float32)
    beta = np.zeros((len(labels), 1), np.float32)
    ones = np.ones(labels.shape, np.float32)
    full = np.asarray(net.keras_model([labels, z, beta, ones])["logits"])
    np.testing.assert_allclose(full, net.teacher_forced(labels)["logits"], atol=1e-5)
    # Zeroing the input of step t changes step t+1 and later, never the steps before it.
    keep = ones.copy()
    keep[:, 10] = 0.0
    masked = np.asarray(net.keras_model([labels, z, beta, keep])["logits"])
    np.testing.assert_allclose(masked[:, :11], full[:, :11], atol=1e-5)
    assert np.abs(masked[:, 11] - full[:, 11]).max() > 1e-4

    windows = np.tile(labels, (32, 1))
    sampler = BatchSampler(windows, 64, model.z_size, "melody", 0, lambda k: 0.1, 0,
                           input_dropout=0.3)
    (_, _, _, drop_keep), _ = sampler.batch(1)
    assert drop_keep.shape == (64, labels.shape[1]) and 0.25 < 1 - drop_keep.mean() < 0.35
    (_, _, _, no_drop), _ = BatchSampler(windows, 8, model.z_size, "melody", 0,
                                         lambda k: 0.1).batch(1)
    assert no_drop.min() == 1.0


@pytest.mark.parametrize("layers", [1, 2])
def test_scheduled_sampling_feeds_the_decoders_own_greedy_choices(tiny_melody, model, clips,
                                                                  layers):
    from dataclasses import replace

    from models.checkpoint import load_weights
    from models.music_vae.generate import MusicVAE
    from models.music_vae.model import build_model

    labels = model.to_labels(clips[:3]).astype(np.int32)
    if layers == 1:  # the trained tiny model
        net = build_model(model.config)
        load_weights(net.keras_model, tiny_melody)
    else:  # a stacked decoder (as the shipped models have), random weights
        net = build_model(replace(model.config, dec_rnn_size=(16, 16)))
    vae = MusicVAE(net)
    assert net.scheduled_model is not net.keras_model
    assert ({id(v) for v in net.scheduled_model.trainable_variables}
            == {id(v) for v in net.keras_model.trainable_variables})
    n = len(labels)
    z = np.zeros((n, model.z_size), np.float32)
    beta = np.zeros((n, 1), np.float32)
    ones = np.ones(labels.shape, np.float32)
    teacher = np.asarray(net.keras_model([labels, z, beta, ones])["logits"])
    # No own choices: the stepped graph is teacher forcing.
    stepped = np.asarray(net.scheduled_model([labels, z, beta, ones, 0 * ones])["logits"])
    np.testing.assert_allclose(stepped, teacher, atol=1e-4)
    # Only own choices: it is the greedy free-running decode from the posterior mean.
    free = np.asarray(net.scheduled_model([labels, z, beta, ones, ones])["logits"])
    mu, _ = vae.encode(labels)
    assert np.array_equal(np.argmax(free, -1), vae.decode_labels(mu, 0.0))
    # Own choices from step 10 on change step 11 and later, never the steps before.
    own = 0 * ones
    own[:, 10:] = 1.0
    half = np.asarray(net.scheduled_model([labels, z, beta, ones, own])["logits"])
    np.testing.assert_allclose(half[:, :11], teacher[:, :11], atol=1e-4)


def test_sampling_schedules_follow_magenta():
    from models.music_vae.model import get_training, sampling_probability

    off = get_training("melody-2bar", "tiny")
    assert sampling_probability(off, 10_000) == 0.0
    const = get_training("melody-2bar", "tiny", sampling_rate=0.3)
    assert sampling_probability(const, 0) == sampling_probability(const, 9999) == 0.3
    inv = get_training("melody-2bar", "tiny", sampling_schedule="inverse_sigmoid",
                       sampling_rate=1000.0)
    assert sampling_probability(inv, 0) == pytest.approx(1 - 1000 / 1001)
    assert sampling_probability(inv, 7000) == pytest.approx(1 - 1000 / (1000 + np.exp(7)))
    assert sampling_probability(inv, 10**7) == pytest.approx(1.0)
    exp = get_training("melody-2bar", "tiny", sampling_schedule="exponential",
                       sampling_rate=0.999)
    assert sampling_probability(exp, 1000) == pytest.approx(1 - 0.999 ** 1000)


def test_warm_start_begins_from_another_models_weights(tiny_melody, nottingham_subset,
                                                       tmp_path):
    from models.music_vae.model import load_model
    from models.music_vae.train import train

    cache = tiny_melody.parent / "cache"
    # Zero steps: the new folder holds exactly the weights it started from.
    copy = tmp_path / "copy"
    result = train("melody-2bar", [str(nottingham_subset)], copy, steps=0, cache_dir=cache,
                   val_examples=16, verbose=0, init_from=tiny_melody)
    assert result.step == 0
    for a, b in zip(load_model(copy).keras_model.get_weights(),
                    load_model(tiny_melody).keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # A warm start with scheduled sampling trains from step 0 on the same architecture.
    out = tmp_path / "warm"
    result = train("melody-2bar", [str(nottingham_subset)], out, steps=20, cache_dir=cache,
                   steps_per_epoch=10, val_examples=16, verbose=0, init_from=tiny_melody,
                   overrides={"sampling_rate": 0.5, "learning_rate": 1e-3})
    assert result.step == 20
    saved = json.loads((out / "history.json").read_text())
    run = saved["runs"][-1]
    assert run["settings"]["sampling_rate"] == 0.5
    assert run["init_from"] == str(tiny_melody) and run["init"] == "weights"
    assert run["start_step"] == 0
    # The runs behind the starting point come first, on the card too.
    before = json.loads((tiny_melody / "history.json").read_text())["runs"]
    assert saved["lineage"] == before
    assert f"# warm start from {tiny_melody} (fresh optimizer, step 0)" in card_text(out)
    assert before[0]["command"] in card_text(out)
    epochs = [e for e in saved["log"] if "loss" in e]
    assert len(epochs) == 2 and all(np.isfinite(e["loss"]) for e in epochs)
    assert "Scheduled sampling: 0.5 of the decoder's inputs" in card_text(out)
    # The stepped graph resumes too: its optimizer state has the saved graph's layout.
    result = train("melody-2bar", [str(nottingham_subset)], out, steps=30, cache_dir=cache,
                   steps_per_epoch=10, val_examples=16, verbose=0)
    assert result.step == 30


def test_hierarchical_model_trains_and_decodes(nottingham_subset, tmp_path):
    from models.music_vae.generate import load
    from models.music_vae.train import train

    out = tmp_path / "tiny16"
    train("melody-16bar", [str(nottingham_subset)], out, size="tiny", steps=20,
          cache_dir=tmp_path / "cache", steps_per_epoch=10, val_examples=16, verbose=0,
          overrides={"validation_fraction": 0.25})
    epochs = [e for e in history(out) if "loss" in e]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    m = load(out)
    z = np.random.default_rng(1).standard_normal((2, m.z_size)).astype(np.float32)
    fast = m.decode_labels(z, temperature=0.7, seed=2)
    assert fast.shape == (2, 256)
    assert np.array_equal(fast, m.decode_labels(z, temperature=0.7, seed=2, backend="keras"))
    seq = m.decode(z[:1], temperature=1.5, seed=1)[0]
    assert seq.notes and max(n.end for n in seq.notes) <= m.window_seconds() + 1e-6


def test_hierarchical_encoder_reads_bars_and_both_paths_agree():
    from models.music_vae.generate import NumpyVAE
    from models.music_vae.model import build_model, get_config

    config = get_config("melody-16bar", "tiny", enc_top_rnn_size=(12,))
    net = build_model(config)
    names = [layer.name for layer in net.keras_model.layers]
    assert "encoder_0" in names and "encoder_top_0" in names
    labels = np.random.default_rng(3).integers(0, config.num_classes, (3, config.num_steps))
    mu, sigma = net.encode(labels)
    mu_np, sigma_np = NumpyVAE(net).encode(labels)
    np.testing.assert_allclose(mu_np, mu, atol=1e-5)
    np.testing.assert_allclose(sigma_np, sigma, atol=1e-5)
    # The last bar reaches z through the bar-level layers.
    changed = labels.copy()
    changed[:, -16:] = (changed[:, -16:] + 1) % config.num_classes
    assert not np.allclose(net.encode(changed)[0], mu)


def test_warm_start_into_another_architecture_copies_the_layers_that_fit(
        nottingham_subset, tmp_path):
    from models.music_vae.model import load_model
    from models.music_vae.train import train

    cache = tmp_path / "cache"
    flat = tmp_path / "flat"
    train("melody-16bar", [str(nottingham_subset)], flat, size="tiny", steps=10,
          cache_dir=cache, steps_per_epoch=10, val_examples=16, verbose=0,
          overrides={"validation_fraction": 0.25})
    out = tmp_path / "hier"
    result = train("melody-16bar", [str(nottingham_subset)], out, size="tiny", steps=0,
                   cache_dir=cache, val_examples=16, verbose=0, init_from=flat,
                   init_architecture=False,
                   overrides={"validation_fraction": 0.25, "enc_top_rnn_size": (24,)})
    assert result.step == 0
    old = {layer.name: layer.get_weights() for layer in load_model(flat).keras_model.layers}
    new = load_model(out)
    assert new.config.enc_top_rnn_size == (24,)
    for layer in new.keras_model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name == "encoder_top_0":
            assert layer.name not in old
        else:  # everything else has the same shapes: copied
            for a, b in zip(weights, old[layer.name], strict=True):
                np.testing.assert_array_equal(a, b)
    history_file = json.loads((out / "history.json").read_text())
    assert history_file["runs"][-1]["init"] == "layers"
    assert f"# warm start from the matching layers of {flat}" in card_text(out)
    assert "a bidirectional [24] LSTM reads the bars" in card_text(out)


def test_model_folder_weights_hold_no_optimizer_state(tiny_melody):
    from models.music_vae.model import load_model

    params = load_model(tiny_melody).count_params()
    # float32 weights plus HDF5 overhead, not the 3x that Adam's two moments would add
    assert (tiny_melody / "model.weights.h5").stat().st_size < params * 4 * 1.5 + 200_000
    assert (tiny_melody / "train_state.npz").is_file()  # the optimizer state lives apart
