"""The relative-attention Transformer: its Keras graph and its numpy engine agree, on TensorFlow
and on JAX; its cache slides past the window; its note-off rule holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

_CHECK = r"""
import numpy as np
import keras

from models.performance_rnn import encoding as enc
from models.performance_rnn.transformer import (PerformanceTransformer, TransformerEngine,
                                                TransformerShape)

keras.utils.set_random_seed(0)
# a real little phrase: notes on and off, shifts, velocities
ev = np.array([360, 60, 64, 290, 188, 280, 192, 365, 67, 270, 195, 259, 62, 300], np.int64)
ctl = np.repeat(enc.control_vector(2.0, "C major")[None], ev.size, 0)
for note_features in (0, 8):
    shape = TransformerShape(d_model=32, layers=2, heads=2, d_ff=64, max_len=16,
                             note_features=note_features)
    model = PerformanceTransformer(shape)
    want = model.logits(ev[None], ctl[None])[0]
    engine = TransformerEngine(model)

    def close(got, ref):
        masked = ref < -1e8
        assert ((got < -1e8) == masked).all()
        return float(np.abs(np.where(masked, 0.0, got - ref)).max())

    state, last = engine.prime(ev[:5], ctl[:5])
    errors = [close(last[0], want[4])]
    bias = engine.first_bias(ctl[0])
    for k in range(5, ev.size):
        errors.append(close(engine.step(ev[k:k + 1], state, bias)[0], want[k]))
    assert max(errors) < 1e-4, errors
    if note_features:
        # pitch 61 never sounds: its note-off is masked everywhere
        assert (want[:, enc.NOTE_OFF + 61] < -1e8).all()
    # three rows far past the window: the cache slides and stays within it
    rows = engine.tile(engine.zero_state(1), 3)
    bias3 = engine.first_bias(np.repeat(ctl[:1], 3, 0))
    step = np.full(3, 300)
    for _ in range(40):
        logits = engine.step(step, rows, bias3)
        step = np.argmax(logits, axis=1)
        assert np.isfinite(logits[logits > -1e8]).all()
    assert 0 < rows[0].length <= shape.max_len
print("ok", keras.backend.backend())
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_transformer_graph_and_its_engine_agree(backend: str) -> None:
    if backend == "jax":
        pytest.importorskip("jax")
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", _CHECK], env=env, cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ok {backend}" in done.stdout


def three_small_pieces(tmp_path: Path, datasets_dir: Path) -> Path:
    """A folder of the three smallest piano files (a run of seconds)."""
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    smallest = sorted((datasets_dir / "piano").rglob("*.mid"), key=lambda f: f.stat().st_size)
    for i, f in enumerate(smallest[:3]):
        shutil.copy(f, data / f"{i}.mid")
    return data


def test_a_transformer_trains_resumes_loads_generates_and_is_evaluated(tmp_path: Path,
                                                                         datasets_dir: Path
                                                                         ) -> None:
    import numpy as np

    from models.errors import CadenzaError
    from models.midi_io import read_midi
    from models.performance_rnn.evaluate import evaluate_dir, evaluate_events
    from models.performance_rnn.model import get_config
    from models.performance_rnn.train import train
    from models.registry import ModelRegistry

    data = three_small_pieces(tmp_path, datasets_dir)
    out = tmp_path / "tt"
    first = train(data, out, config_name="transformer-tiny", steps=6, checkpoint_steps=3,
                  val_windows=2, verbose=0, log=lambda s: None)
    assert first.step == 6 and np.isfinite(first.val_nll)
    again = train(data, out, config_name="transformer-tiny", steps=9, checkpoint_steps=3,
                  val_windows=2, verbose=0, log=lambda s: None)
    assert again.step == 9  # resumed, not restarted
    assert "Music Transformer" in (out / "MODEL_CARD.md").read_text()
    model = ModelRegistry([tmp_path]).load(str(out), "performance")
    takes = model.generate(read_midi(ROOT / "assets" / "examples" / "piano-phrase.mid"),
                           seconds=2.0, variations=2, seed=1)
    assert len(takes) == 2 and all(t.continuation.total_time <= 2.0 + 1e-6 for t in takes)
    # Windowed evaluation: a sequence shorter than the window is scored as one pass.
    seq = np.array([360, 60, 64, 290, 188, 280, 192, 365, 67, 270], np.int32)
    sums = evaluate_events(model.network, [seq])
    from models.performance_rnn import encoding as enc

    off = np.zeros((1, seq.size - 1, enc.CONTROL_SIZE), np.float32)
    off[..., 0] = 1.0
    logits = model.network.logits(seq[None, :-1], off)[0]
    logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                              keepdims=True)
                           ) - logits.max(-1, keepdims=True)
    want = -float(logp[np.arange(seq.size - 1), seq[1:]].sum())
    assert sums["events"] == seq.size - 1 and sums["nll_sum"] == pytest.approx(want, rel=1e-4)
    whole = evaluate_dir(model, data)
    assert whole["files"] == 3 and np.isfinite(whole["nll_per_event"])
    with pytest.raises(CadenzaError, match="heads"):
        from models.performance_rnn.model import build_model

        build_model(get_config("transformer-tiny", heads=3))


def test_a_transformer_grows_in_depth_from_its_weights(tmp_path: Path, datasets_dir: Path
                                                      ) -> None:
    """``--init`` from a 1-block transformer with ``--depth 2``: the first block and every
    other layer are copied, the new block starts adding nothing, so the grown model's logits
    are the old model's; it then trains like any run. A width change or an LSTM is refused in
    one line, before any data is read."""
    import numpy as np

    from models.errors import CadenzaError
    from models.performance_rnn import encoding as enc
    from models.performance_rnn.model import build_model, get_config, read_config
    from models.performance_rnn.train import grow_transformer, train
    from models.registry import ModelRegistry

    data = three_small_pieces(tmp_path, datasets_dir)
    small = tmp_path / "one"
    train(data, small, config_name="transformer-tiny", steps=4, checkpoint_steps=4,
          val_windows=2, verbose=0, log=lambda s: None)
    old = ModelRegistry([tmp_path]).load(str(small), "performance").network
    grown = build_model(get_config("transformer-tiny", layers=(32, 32)))
    rng = np.random.default_rng(0)
    events = rng.integers(0, enc.NUM_CLASSES, (2, 40)).astype(np.int32)
    controls = np.zeros((2, 40, enc.CONTROL_SIZE), np.float32)
    controls[..., 0] = 1.0
    notes = rng.random((2, 40, 256)).astype(np.float32)
    before = grown.logits(events, controls, notes)
    grow_transformer(old, grown)
    after = grown.logits(events, controls, notes)
    np.testing.assert_allclose(after, old.logits(events, controls, notes), atol=1e-4)
    assert not np.allclose(before, after, atol=1e-3)  # the copy changed the fresh model

    said: list[str] = []
    deeper = tmp_path / "two"
    run = train(data, deeper, config_name="transformer-tiny", init_from=small, depth=2, steps=3,
                checkpoint_steps=3, val_windows=2, verbose=0, log=said.append)
    assert run.step == 3 and np.isfinite(run.val_nll)
    assert read_config(deeper).layers == (32, 32)
    assert any("1 -> 2 blocks" in line for line in said), said
    for bad, match in ((dict(depth=0), "--depth must be 1 to"),
                       (dict(depth=2, config_name="tiny", init_from=None), "LSTM stack"),):
        args = dict(config_name="transformer-tiny", init_from=small, steps=1, verbose=0,
                    log=lambda s: None) | bad
        if match == "LSTM stack":  # an LSTM grows no blocks: said at once
            lstm = tmp_path / "lstm"
            train(data, lstm, config_name="tiny", steps=1, checkpoint_steps=1, val_windows=2,
                  verbose=0, log=lambda s: None)
            args["init_from"] = lstm
        with pytest.raises(CadenzaError, match=match) as info:
            train(tmp_path / "nowhere", tmp_path / "bad", **args)
        assert "\n" not in str(info.value)
    with pytest.raises(CadenzaError, match="grows only in depth"):
        grow_transformer(old, build_model(get_config("transformer-tiny", layers=(64, 64))))
