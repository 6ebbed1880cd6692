"""Tiny MusicVAE models trained in seconds on real files, shared by the MusicVAE tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def link_files(files: list[Path], root: Path, dest: Path) -> Path:
    """Symlink ``files`` (keeping their paths relative to ``root``) under ``dest``."""
    for f in files:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(f)
    return dest


@pytest.fixture(scope="session")
def nottingham_subset(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.midi_io import read_midi

    root = datasets_dir / "melody" / "nottingham"
    picked = []
    for f in sorted(root.glob("*.mid"))[::5]:
        if [(t.numerator, t.denominator) for t in read_midi(f).time_signatures] == [(4, 4)]:
            picked.append(f)
        if len(picked) == 24:
            break
    return link_files(picked, root, tmp_path_factory.mktemp("nottingham"))


@pytest.fixture(scope="session")
def tiny_melody(nottingham_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny melody-2bar model folder: 40 steps (two epochs of 20)."""
    from models.music_vae.train import train

    root = tmp_path_factory.mktemp("models")
    out = root / "tiny-melody"
    train("melody-2bar", [str(nottingham_subset)], out, size="tiny", steps=40,
          cache_dir=root / "cache", steps_per_epoch=20, val_examples=64, verbose=0,
          overrides={"validation_fraction": 0.25})
    return out


@pytest.fixture(scope="session")
def tiny_drums(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny drums-2bar model folder (enough for CLI file handling)."""
    from models.checkpoint import save_model_dir
    from models.music_vae.model import FAMILY, build_model, get_config

    out = tmp_path_factory.mktemp("drums") / "tiny-drums"
    config = get_config("drums-2bar", "tiny")
    net = build_model(config)
    save_model_dir(out, FAMILY, config, net.keras_model, card="# tiny drums\n", name="tiny-drums")
    return out


def history(out: Path) -> list[dict]:
    """The training metrics every period (``steps_per_epoch`` steps)."""
    return json.loads((out / "history.json").read_text())["log"]
