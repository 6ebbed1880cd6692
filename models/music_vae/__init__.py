"""MusicVAE (Interpolate): converters, model, data, training, generation, evaluation.

The registry calls :func:`load_from_dir`; it returns a :class:`~models.music_vae.generate.MusicVAE`
with ``encode``, ``decode``, ``sample``, ``interpolate``, ``blend4`` and ``grid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_NAMES = ("melody-2bar", "melody-16bar", "drums-2bar")


def load_from_dir(directory: str | Path) -> Any:
    """The MusicVAE model object of a model folder (config.json + model.weights.h5)."""
    from models.music_vae.generate import load

    return load(directory)
