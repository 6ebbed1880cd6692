"""The note-state input (which pitches sound, since when) and the note-off rule, on real files."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.midi_io import read_midi
from models.performance_rnn import data as data_lib
from models.performance_rnn import encoding as enc
from models.performance_rnn import notes as notes_lib
from tests.models import card_text


@pytest.fixture(scope="module")
def files(datasets_dir: Path) -> list[Path]:
    piano = datasets_dir / "piano"
    asap = sorted((piano / "asap").rglob("*.mid"))[:3]
    return asap + sorted((piano / "pop909").glob("*.mid"))[:3]


@pytest.fixture(scope="module")
def events(files: list[Path]) -> list[np.ndarray]:
    return [enc.encode(read_midi(f))[:3000] for f in files]


def _direct(ev: np.ndarray, t: int) -> np.ndarray:
    """The features after event ``t``, counted from scratch."""
    clock = 0
    counts = np.zeros(128, int)
    began = np.zeros(128)
    for e in ev[:t + 1].tolist():
        if enc.TIME_SHIFT <= e < enc.VELOCITY:
            clock += e - enc.TIME_SHIFT + 1
        elif e < enc.NOTE_OFF:
            if counts[e] == 0:
                began[e] = clock
            counts[e] += 1
        elif e < enc.TIME_SHIFT and counts[e - enc.NOTE_OFF] > 0:
            counts[e - enc.NOTE_OFF] -= 1
    out = np.zeros(256, np.float32)
    out[:128] = counts > 0
    out[128:] = np.where(counts > 0, np.exp(-(clock - began) / 100.0), 0.0)
    return out


def test_features_count_sounding_notes_and_their_age(events: list[np.ndarray]) -> None:
    for ev in events:
        feats, _ = notes_lib.note_features(ev)
        assert feats.shape == (ev.size, 256)
        for t in (0, 1, 57, 500, 1499, ev.size - 1):
            np.testing.assert_allclose(feats[t], _direct(ev, t), atol=1e-6)
        # Real piano music: several notes sound at once, and they age.
        assert feats[:, :128].sum(axis=1).max() >= 4
        assert 0.0 < feats[:, 128:][feats[:, :128] > 0].min() < 0.5


def test_state_carries_across_windows_checkpoints_and_the_live_tracker(
        events: list[np.ndarray]) -> None:
    states = data_lib.NoteStates(events)
    for i, ev in enumerate(events):
        whole, end = notes_lib.note_features(ev)
        first, middle = notes_lib.note_features(ev[:1234])
        rest, end2 = notes_lib.note_features(ev[1234:], middle)
        np.testing.assert_allclose(np.concatenate([first, rest]), whole, atol=1e-6)
        assert (end.counts == end2.counts).all() and np.allclose(end.onsets, end2.onsets)
        for pos in (0, 127, 128, 129, 1000, ev.size - 1):
            got, want = states.before(i, pos), notes_lib.advance(ev[:pos])
            assert (got.counts == want.counts).all()
            np.testing.assert_allclose(got.onsets, want.onsets)
        pair = notes_lib.NoteTracker.from_state(notes_lib.NoteState(), 2)
        live = np.stack([notes_lib.NoteTracker.update(pair, np.asarray([e, e]))[1]
                         for e in ev[:800]])
        np.testing.assert_allclose(live, whole[:800], atol=1e-6)


def test_augmented_state_is_the_state_of_the_augmented_events(events: list[np.ndarray]) -> None:
    ev = events[0]
    before = notes_lib.advance(ev[:900])
    for semitones in (-3, 2):
        got = before.transposed(semitones)
        want = notes_lib.advance(enc.transpose_events(ev[:900], semitones))
        assert (got.counts == want.counts).all()
        sounding = want.counts > 0
        np.testing.assert_allclose(got.onsets[sounding], want.onsets[sounding])
    # Stretching drops trailing time shifts: compare at a prefix that ends on a note event.
    cut = next(k for k in range(900, 0, -1) if ev[k - 1] < enc.TIME_SHIFT)
    before = notes_lib.advance(ev[:cut])
    stretched = notes_lib.advance(enc.stretch_events(ev[:cut], 1.05))
    got = before.stretched(1.05)
    sounding = got.counts > 0
    assert (got.counts == stretched.counts).all()
    assert np.abs(got.onsets[sounding] - stretched.onsets[sounding]).max() <= 1.0


def test_no_real_note_off_is_ever_masked(events: list[np.ndarray]) -> None:
    """The mask allows a note-off only for a sounding pitch: every note-off in real files and in
    augmented training windows (state carried in from before the window) is allowed."""
    for ev in events:
        feats, _ = notes_lib.note_features(ev)
        nxt = ev[1:].astype(int)
        is_off = (nxt >= enc.NOTE_OFF) & (nxt < enc.TIME_SHIFT)
        pitch = np.clip(nxt - enc.NOTE_OFF, 0, 127)
        assert feats[:-1][np.arange(nxt.size), pitch][is_off].min() == 1.0
        assert is_off.sum() > 100
    encoded = data_lib.EncodedSet([str(i) for i in range(len(events))], events)
    sampler = data_lib.WindowSampler(encoded, 128, data_lib.Augment(3, 0.05), note_state=True)
    (x, _, feats), y = sampler.batch(32, np.random.default_rng(5))
    assert feats.shape == (32, 128, 256)
    is_off = (y >= enc.NOTE_OFF) & (y < enc.TIME_SHIFT)
    pitch = np.clip(y - enc.NOTE_OFF, 0, 127)
    allowed = np.take_along_axis(feats[..., :128], pitch[..., None], axis=-1)[..., 0]
    assert is_off.sum() > 100 and allowed[is_off].min() == 1.0
    # Windows start mid-piece: notes held from before the window sound at its first position.
    assert feats[:, 0, :128].sum() > 0


def test_warm_start_with_the_note_state_begins_as_the_old_model(events: list[np.ndarray]) -> None:
    from models.performance_rnn.evaluate import evaluate_events
    from models.performance_rnn.model import build_model, get_config
    from models.performance_rnn.train import copy_weights

    old = build_model(get_config("tiny", note_features=0))
    new = build_model(get_config("tiny"))
    assert not old.uses_notes and new.uses_notes
    copy_weights(old, new)
    ev = events[3][:400].astype(np.int32)[None]
    controls = enc.controls_from_events(ev[0], enabled=False)[None]
    a, b = old.logits(ev, controls), new.logits(ev, controls)
    feats, _ = notes_lib.note_features(ev[0])
    sounding = feats[:, :128] > 0
    np.testing.assert_allclose(b[0, :, :128], a[0, :, :128], atol=1e-5)
    np.testing.assert_allclose(b[0, :, 256:], a[0, :, 256:], atol=1e-5)
    np.testing.assert_allclose(b[0, :, 128:256][sounding], a[0, :, 128:256][sounding], atol=1e-5)
    assert (b[0, :, 128:256][~sounding] == notes_lib.MASKED_LOGIT).all()
    # Masking silent note-offs only moves probability to events that can happen: the
    # whole-file NLL is finite and lower than without the rule.
    old_sums = evaluate_events(old, events[3:5], chunk=500)
    new_sums = evaluate_events(new, events[3:5], chunk=500)
    assert old_sums["events"] == new_sums["events"]
    assert math.isfinite(new_sums["nll_sum"]) and new_sums["nll_sum"] < old_sums["nll_sum"]


def test_generated_note_offs_are_for_sounding_notes(events: list[np.ndarray]) -> None:
    from models.performance_rnn.generate import Continuer
    from models.performance_rnn.model import build_model, get_config

    model = build_model(replace(get_config("tiny"), layers=(16,)))
    # A network that wants note-offs above all: only those of sounding notes may come out.
    bias = np.zeros(enc.NUM_CLASSES, np.float32)
    bias[enc.NOTE_OFF:enc.TIME_SHIFT] = 8.0
    model.dense.bias.assign(bias)
    session = Continuer(model)
    session.prime(enc.decode(events[0][:300]))
    at_end = notes_lib.advance(session.primer_events).counts
    offs = 0
    for take in [*session.generate_detailed(4.0, variations=3, seed=2),
                 *session.generate_detailed(2.0, variations=2, seed=3, beam_size=2,
                                            branch_factor=2)]:
        counts = at_end.astype(int)
        for e in take.events.tolist():
            if e < enc.NOTE_OFF:
                counts[e] += 1
            elif e < enc.TIME_SHIFT:
                assert counts[e - enc.NOTE_OFF] > 0
                counts[e - enc.NOTE_OFF] -= 1
                offs += 1
    assert offs > 20


def test_train_warm_starts_into_the_note_state(files: list[Path], tmp_path: Path) -> None:
    import json

    from models.errors import CadenzaError
    from models.performance_rnn.train import train

    data = tmp_path / "data"
    data.mkdir()
    for f in files[3:6]:
        (data / f.name).symlink_to(f)
    plain = tmp_path / "plain"
    train(data, plain, config_name="tiny", note_features=0, steps=2, checkpoint_steps=2,
          val_windows=2, verbose=0, log=lambda s: None)
    assert json.loads((plain / "config.json").read_text())["config"]["note_features"] == 0
    said: list[str] = []
    result = train(data, tmp_path / "notes", init_from=plain, note_features=8, steps=2,
                   checkpoint_steps=2, val_windows=2, verbose=0, log=said.append)
    saved = json.loads((tmp_path / "notes" / "config.json").read_text())["config"]
    assert saved["note_features"] == 8 and result.step == 2
    assert any("note-state input 0 -> 8" in line for line in said)
    assert "reads the note state (which pitches sound" in card_text(tmp_path / "notes")
    with pytest.raises(CadenzaError, match="--note-features"):
        train(data, tmp_path / "bad", note_features=-1, steps=2, verbose=0, log=lambda s: None)


_ON_ANOTHER_BACKEND = """
import numpy as np, keras
from models.performance_rnn import encoding as enc
from models.performance_rnn.model import build_model, get_config
from models.performance_rnn.generate import make_engine
keras.utils.set_random_seed(1)
m = build_model(get_config("tiny"))
kernel = m.lstms[0].cell.kernel
w = keras.ops.convert_to_numpy(kernel).copy()
w[409:] = np.random.default_rng(0).normal(0, 0.3, w[409:].shape)  # the note rows matter
kernel.assign(w)
ev = np.asarray([enc.VELOCITY + 20, 60, 64, 267, 188, 67, 270, 192, 195, 72, 300, 200], np.int32)
ctl = enc.controls_from_events(ev, enabled=False)
ref = m.logits(ev[None], ctl[None])[0]
for name in ("numpy", "keras"):
    e = make_engine(m, name)
    st, lg = e.prime(ev[:4], ctl[:4])
    outs = [lg[0]]
    for x in ev[4:]:
        outs.append(np.array(e.step(np.asarray([x]), st, e.first_bias(ctl[0]))[0]))
    got, want = np.stack(outs)[:-1], ref[3:-1]
    assert ((got < -1e8) == (want < -1e8)).all() and (want < -1e8).any()
    assert np.abs(np.where(want > -1e8, got - want, 0)).max() < 1e-4, name
print("ok", keras.backend.backend())
"""


def test_the_note_state_model_runs_on_jax() -> None:
    """The network, its note-off rule and both engines on another Keras backend."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _ON_ANOTHER_BACKEND], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ok jax" in done.stdout
