"""Morph: NSynth's WaveNet autoencoder (data set, model, training, fast generation, morphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_from_dir(directory: str | Path) -> Any:
    """The :class:`models.nsynth.morph.Morpher` of a model folder (for the registry)."""
    from models.nsynth.morph import Morpher

    return Morpher.load(directory)
