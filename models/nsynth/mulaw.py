"""8-bit mu-law companding, as NSynth's WaveNet uses for its input and its 256-way output."""

from __future__ import annotations

import numpy as np

MU = 255


def mu_law_encode(audio: np.ndarray, mu: int = MU) -> np.ndarray:
    """Float audio in [-1, 1] to integers 0..mu (uint8 for mu=255); values outside are clipped."""
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.floor((y + 1.0) / 2.0 * mu + 0.5)
    return q.astype(np.uint8 if mu <= 255 else np.int32)


def mu_law_decode(codes: np.ndarray, mu: int = MU) -> np.ndarray:
    """Integers 0..mu back to float32 audio in [-1, 1]."""
    y = 2.0 * (np.asarray(codes, dtype=np.float32) / mu) - 1.0
    x = np.sign(y) * ((1.0 + mu) ** np.abs(y) - 1.0) / mu
    return x.astype(np.float32)


def scale_codes(codes: np.ndarray, mu: int = MU) -> np.ndarray:
    """Codes 0..mu as the network's scalar input in [-1, 1] (float32)."""
    return (np.asarray(codes, dtype=np.float32) / (mu / 2.0) - 1.0).astype(np.float32)
