"""MusicVAE (Interpolate): converters, model, data, training, generation, evaluation.

The registry calls :func:`load_from_dir`; it returns a :class:`~models.music_vae.generate.MusicVAE`
with ``encode``, ``decode``, ``sample``, ``interpolate``, ``blend4`` and ``grid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_NAMES = ("melody-2bar", "melody-16bar", "drums-2bar")


def load_from_dir(directory: str | Path, name: str | None = None) -> Any:
    """The :class:`~models.music_vae.generate.MusicVAE` of a model folder (config.json +
    model.weights.h5); the registry calls this after its checks (use
    :meth:`models.registry.ModelRegistry.load`)."""
    from models.music_vae.generate import load

    return load(directory, name)
