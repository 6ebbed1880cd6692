"""The model registry and model folders, on real folders written to a temporary root."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.checkpoint import config_from_dict, read_model_dir, save_model_dir
from models.errors import CadenzaError
from models.registry import ModelRegistry


@dataclass
class TinyConfig:
    layers: int = 2
    units: int = 64
    sizes: tuple[int, ...] = (1, 2)


def test_save_and_read_config_round_trip(tmp_path: Path) -> None:
    save_model_dir(tmp_path / "m", "performance", TinyConfig(layers=3), card="# m\nA test model.\n")
    payload = read_model_dir(tmp_path / "m")
    assert payload["family"] == "performance"
    assert payload["name"] == "m"
    config = config_from_dict(TinyConfig, payload["config"])
    assert config == TinyConfig(layers=3)
    assert isinstance(config.sizes, tuple)


def test_unknown_config_keys_are_ignored_and_bad_values_are_one_line_errors(tmp_path: Path) -> None:
    assert config_from_dict(TinyConfig, {"units": 8, "from_the_future": 1}) == TinyConfig(units=8)
    with pytest.raises(TypeError):
        save_model_dir(tmp_path, "performance", {"not": "a dataclass"})


def test_registry_lists_finds_and_reports(tmp_path: Path) -> None:
    save_model_dir(tmp_path / "b-model", "music_vae", TinyConfig(), card="# b\nMelodies.\n")
    save_model_dir(tmp_path / "a-model", "performance", TinyConfig(), card="# a\nPiano.\n")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    registry = ModelRegistry([tmp_path])
    names = [e.name for e in registry.list()]
    assert names == ["b-model", "a-model"]  # ordered by family, then name
    assert [e.name for e in registry.list("performance")] == ["a-model"]
    entry = registry.get("a-model")
    assert entry.summary == "Piano."
    assert not entry.has_weights
    assert registry.get(str(tmp_path / "b-model")).family == "music_vae"
    with pytest.raises(CadenzaError, match="no model named 'nope'"):
        registry.get("nope")
    with pytest.raises(CadenzaError, match="no performance model is installed"):
        registry.default("performance")


def test_unknown_family_and_broken_folders_give_clean_errors(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"family": "theremin", "config": {}}))
    registry = ModelRegistry([tmp_path])
    with pytest.raises(CadenzaError, match="unknown family 'theremin'"):
        registry.load("odd")
    with pytest.raises(CadenzaError, match="not a model folder"):
        read_model_dir(tmp_path / "missing")
