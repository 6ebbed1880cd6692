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
    names = [e.name for e in registry.list() if not e.broken]
    assert names == ["b-model", "a-model"]  # ordered by family, then name
    (junk,) = [e for e in registry.list() if e.broken]  # listed as broken, with its reason
    assert junk.name == "junk" and "unreadable model config" in junk.broken
    assert [e.name for e in registry.list("performance")] == ["a-model"]
    entry = registry.get("a-model")
    assert entry.summary == "Piano."
    assert not entry.has_weights
    assert registry.get(str(tmp_path / "b-model")).family == "music_vae"
    with pytest.raises(CadenzaError, match="no model named 'nope'"):
        registry.get("nope")
    with pytest.raises(CadenzaError, match="no performance model is installed"):
        registry.default("performance")


def test_a_shipped_model_marked_default_is_its_familys_default(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    monkeypatch.setattr("models.registry.SHIPPED_DIR", shipped)
    for root, name in ((shipped, "a-lstm"), (shipped, "b-transformer"), (user, "0-mine")):
        save_model_dir(root / name, "performance", TinyConfig(), card=f"# {name}\nPiano.\n")
        (root / name / "model.weights.h5").write_bytes(b"")
    registry = ModelRegistry([shipped, user])
    assert registry.default("performance").name == "a-lstm"  # unmarked: the first by name
    for root, name in ((shipped, "b-transformer"), (user, "0-mine")):
        config = root / name / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "default": True}))
    assert registry.default("performance").name == "b-transformer"
    assert registry.entry(None, "performance").name == "b-transformer"
    assert [e.is_default for e in registry.list("performance")] == [False, False, True]
    # a user's folder cannot claim to be the default
    assert not registry.get("0-mine").is_default


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


# ---------------------------------------------------------------------- loading: one path, guards
def _shipped_copy(tmp_path: Path, name: str = "performance-small") -> Path:
    """A copy of a shipped model folder (config, weights, card) to break."""
    import shutil

    from models.registry import SHIPPED_DIR

    return Path(shutil.copytree(SHIPPED_DIR / name, tmp_path / "models" / "copy"))


def _load_error(registry: ModelRegistry, name: str, family: str | None = "performance") -> str:
    with pytest.raises(CadenzaError) as info:
        registry.load(name, family)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert len(message) < 400
    return message


def test_every_broken_model_folder_is_a_one_line_error(tmp_path: Path) -> None:
    folder = _shipped_copy(tmp_path)
    registry = ModelRegistry([tmp_path / "models"])
    assert registry.load(str(folder), "performance").family == "performance"  # the copy loads
    registry.unload()
    config = folder / "config.json"
    good = json.loads(config.read_text())

    assert "no such folder" in _load_error(registry, str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in _load_error(registry, str(empty))
    cases = {
        "{not json": "unreadable model config",
        "[1, 2]": "is not a JSON object",
        json.dumps({"family": "performance"}): "lacks 'family' or 'config'",
        json.dumps({**good, "config": [256, 256]}): "'config' must be a JSON object",
        json.dumps({**good, "family": 3}): "'family' must be a string",
        json.dumps({**good, "config": {**good["config"], "layers": "big"}}):
            "field 'layers' must be a list",
        json.dumps({**good, "config": {**good["config"], "layers": [256, "x"]}}):
            "field 'layers' must be a list of integers",
        json.dumps({**good, "config": {**good["config"], "name": 5}}):
            "field 'name' must be a string",
        json.dumps({**good, "config": {**good["config"], "note_features": 6.5}}):
            "field 'note_features' must be an integer",
        json.dumps({**good, "config": {**good["config"], "layers": [128, 128]}}):
            "do not fit the config",  # weights of 2 x 256 into 2 x 128
        json.dumps({**good, "config": {**good["config"], "layers": [0, 256]}}):
            "field 'layers' must be a list of values 1..4096",  # checked before building
        json.dumps({**good, "config": {**good["config"], "layers": [256]}}):
            "do not fit the config",
    }
    for text, expected in cases.items():
        config.write_text(text)
        assert expected in _load_error(registry, str(folder)), text
    config.write_text(json.dumps(good))
    (folder / "model.weights.h5").write_bytes(b"not hdf5")
    assert "do not fit the config" in _load_error(registry, str(folder))
    (folder / "model.weights.h5").unlink()
    message = _load_error(registry, "performance-small")  # by name: the same checks
    assert message.startswith("model 'performance-small' has no weights")
    assert registry.loaded() == []


def test_asking_for_one_family_and_finding_another_is_one_line(tmp_path: Path) -> None:
    from models.registry import SHIPPED_DIR

    registry = ModelRegistry([SHIPPED_DIR])
    assert _load_error(registry, "melody-2bar") == (
        "model 'melody-2bar' is a MusicVAE model, not a PerformanceRNN (performance) model")
    assert _load_error(registry, "performance-small", "nsynth") == (
        "model 'performance-small' is a PerformanceRNN (performance) model, not a NSynth model")
    assert registry.loaded() == []  # nothing was built for a wrong family
    assert "no model named 'nope'" in _load_error(registry, "nope")
    assert "no nsynth model is installed" in _load_error(ModelRegistry([tmp_path]), None, "nsynth")


def test_every_family_loads_as_a_facade_of_the_same_shape() -> None:
    import dataclasses

    from models.registry import SHIPPED_DIR

    registry = ModelRegistry([SHIPPED_DIR])
    operations = {"performance": ("generate", "session", "stream", "evaluate"),
                  "music_vae": ("encode", "decode", "sample", "interpolate", "blend4"),
                  "nsynth": ("encode_batch", "decode", "source_audio", "guide")}
    for name, family in (("performance-small", "performance"), ("melody-2bar", "music_vae"),
                         ("nsynth-small", "nsynth")):
        model = registry.load(name, family)
        assert (model.name, model.family, model.path) == (name, family, SHIPPED_DIR / name)
        assert dataclasses.is_dataclass(model.config)
        assert callable(model.close)
        assert all(callable(getattr(model, op)) for op in operations[family])
        # by path (relative or absolute) or by name: the one model, loaded once
        assert registry.load(str(SHIPPED_DIR / name)) is model
        assert registry.load(str(SHIPPED_DIR / ".." / "shipped" / name), family) is model
        if registry.default(family).name == name:
            assert registry.load(None, family) is model  # the installed default
    assert sorted(p.name for p in registry.loaded()) == ["melody-2bar", "nsynth-small",
                                                         "performance-small"]
    registry.close()
    assert registry.loaded() == []
