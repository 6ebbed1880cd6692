"""The relative-attention Transformer: its Keras graph and its numpy engine agree, on TensorFlow
and on JAX; its cache slides past the window; its note-off rule holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
