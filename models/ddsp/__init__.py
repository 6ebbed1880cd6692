"""Morph with DDSP: a timbre encoder and a harmonic-plus-noise synthesizer that a small network
drives (model, synthesizers, training, numpy inference, morphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_from_dir(directory: str | Path, name: str | None = None) -> Any:
    """The :class:`models.ddsp.morph.DDSPMorpher` of a model folder; the registry calls this
    after its checks (use :meth:`models.registry.ModelRegistry.load`)."""
    from models.ddsp.morph import DDSPMorpher

    return DDSPMorpher.load(directory, name=name)
