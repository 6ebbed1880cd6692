"""Shared fixtures: a tiny rendered data set and a tiny model trained on it (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def nsynth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.nsynth.dataset import build_dataset

    out = tmp_path_factory.mktemp("nsynth-data")
    # programs in three families, one note each at two pitches; 73 (flute) is held out
    build_dataset(out, programs=[0, 19, 73], pitches=[60, 72], velocities=[100])
    return out


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
