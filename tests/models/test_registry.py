"""The model registry and model folders, on real folders written to a temporary root."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from models.checkpoint import (
    CARD_FILE,
    CARD_WIDTH,
    config_from_dict,
    read_model_dir,
    save_model_dir,
    wrap_card,
)
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


def test_cards_are_wrapped_but_commands_stay_whole(tmp_path: Path) -> None:
    prose = " ".join(["word"] * 40)
    command = "    cadenza train melody-2bar " + " ".join(["--data DIR"] * 20)
    item = "- reconstruction accuracy: " + " ".join(["0.9"] * 40)
    card = f"# m\n\n{prose}\n\n{command}\n\n{item}\n"
    save_model_dir(tmp_path / "m", "performance", TinyConfig(), card=card)
    written = (tmp_path / "m" / CARD_FILE).read_text()
    lines = written.splitlines()
    assert command in lines
    assert all(len(line) <= CARD_WIDTH for line in lines if line != command)
    assert written.split() == card.split()  # only the line breaks moved
    start = next(i for i, line in enumerate(lines) if line.startswith("- reconstruction"))
    item_lines = lines[start + 1:]
    assert item_lines and all(line.startswith("  0.9") for line in item_lines)


def test_a_template_paragraph_is_reflowed_whole_and_no_line_starts_a_list(tmp_path: Path) -> None:
    # A template's own short line break, one long line, and a " - " a break could land before.
    words = [f"w{i}" for i in range(60)]
    card = ("# m\n\n" + " ".join(words[:5]) + "\n" + " ".join(words[5:40])
            + "\nbeta = (1 - 0.9995^step) x 0.2 " + " ".join(words[40:]) + "\n")
    for width in range(60, 101):
        wrapped = wrap_card(card, width)
        body = wrapped.splitlines()[2:]
        assert wrapped.split() == card.split()
        assert all(len(line) <= width for line in body)
        assert all(len(line) > width - 25 for line in body[:-1])  # no short line inside
        assert not any(re.fullmatch(r"[-*+>#=|]+|\d+[.)]", line.split()[0]) for line in body)


def test_shipped_cards_keep_prose_within_the_card_width() -> None:
    shipped = Path(__file__).resolve().parents[2] / "models" / "shipped"
    cards = sorted(shipped.glob(f"*/{CARD_FILE}"))
    assert len(cards) >= 5
    for card in cards:
        text = card.read_text()
        assert wrap_card(text) == text, f"{card.parent.name}: a prose line is over {CARD_WIDTH}"


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


def test_summary_is_the_first_sentence_of_a_wrapped_card(tmp_path: Path) -> None:
    sentence = "A model for " + " ".join(["melodies"] * 20) + " (4/4)."
    save_model_dir(tmp_path / "m", "music_vae", TinyConfig(),
                   card=f"# m\n\n{sentence} Second sentence.\n\n## Data\n\nMore.\n")
    assert len((tmp_path / "m" / CARD_FILE).read_text().splitlines()[2]) < len(sentence)
    assert ModelRegistry([tmp_path]).get("m").summary == sentence


def test_unknown_family_and_broken_folders_give_clean_errors(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"family": "theremin", "config": {}}))
    registry = ModelRegistry([tmp_path])
    with pytest.raises(CadenzaError, match="unknown family 'theremin'"):
        registry.load("odd")
    with pytest.raises(CadenzaError, match="not a model folder"):
        read_model_dir(tmp_path / "missing")
