"""Morph: NSynth's WaveNet autoencoder (data set, model, training, fast generation, morphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_from_dir(directory: str | Path, name: str | None = None) -> Any:
    """The :class:`models.nsynth.morph.Morpher` of a model folder; the registry calls this after
    its checks (use :meth:`models.registry.ModelRegistry.load`)."""
    from models.nsynth.morph import Morpher

    return Morpher.load(directory, name=name)
