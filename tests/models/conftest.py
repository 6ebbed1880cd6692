"""Fixtures shared by the model families' tests."""

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
