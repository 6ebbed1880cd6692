"""Shared fixtures: a tiny WaveNet model trained on the tiny data set of tests/models/conftest.py
(seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(nsynth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.nsynth.train import train

    out = tmp_path_factory.mktemp("models") / "tiny-nsynth"
    result = train(nsynth_data, out, preset="tiny", steps=40, eval_every=10, seed=1)
    assert result.step == 40
    return out


@pytest.fixture(scope="session")
def tiny_morpher(tiny_model_dir: Path):
    from models.nsynth.morph import Morpher

    return Morpher.load(tiny_model_dir)
