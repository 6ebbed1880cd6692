"""Named models: the ones shipped with Cadenza and the ones the user trained.

Each is a folder (see :mod:`models.checkpoint`). Listing reads only the small ``config.json`` and
the model card; the weights are loaded on demand, by the model family's own code, and kept.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.checkpoint import CARD_FILE, WEIGHTS_FILE, read_model_dir
from models.errors import CadenzaError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"

# family name -> module that provides ``load_from_dir(directory) -> model``
FAMILIES: dict[str, str] = {
    "performance": "models.performance_rnn",
    "music_vae": "models.music_vae",
    "nsynth": "models.nsynth",
}


def user_models_dir() -> Path:
    """Where ``cadenza train`` output can be installed for the app: $CADENZA_MODELS_DIR or XDG."""
    if env := os.environ.get("CADENZA_MODELS_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cadenza" / "models"


@dataclass
class ModelEntry:
    name: str
    family: str
    path: Path
    config: dict[str, Any]
    shipped: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def card(self) -> str:
        card = self.path / CARD_FILE
        return card.read_text() if card.is_file() else ""

    @property
    def has_weights(self) -> bool:
        return (self.path / WEIGHTS_FILE).is_file()

    @property
    def summary(self) -> str:
        """The first sentence of the model card's first paragraph, or the family name.

        Cards are wrapped, so the paragraph's lines are joined first.
        """
        for paragraph in re.split(r"\n\s*\n", self.card):
            text = " ".join(line.strip() for line in paragraph.splitlines()
                            if not line.lstrip().startswith("#")).strip()
            if text:
                return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
        return self.family


class ModelRegistry:
    """Finds model folders under the given roots; loads a model the first time it is asked for."""

    def __init__(self, roots: list[Path] | None = None) -> None:
        self.roots = list(roots) if roots is not None else [SHIPPED_DIR, user_models_dir()]
        self._loaded: dict[str, Any] = {}

    def list(self, family: str | None = None) -> list[ModelEntry]:
        entries: dict[str, ModelEntry] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            for config in sorted(root.glob("*/config.json")):
                try:
                    payload = read_model_dir(config.parent)
                except CadenzaError:
                    continue
                name = str(payload.get("name") or config.parent.name)
                extra = {k: v for k, v in payload.items() if k not in ("name", "family", "config")}
                entries.setdefault(
                    name,
                    ModelEntry(
                        name=name,
                        family=str(payload["family"]),
                        path=config.parent,
                        config=dict(payload["config"]),
                        shipped=root == SHIPPED_DIR,
                        extra=extra,
                    ),
                )
        found = sorted(entries.values(), key=lambda e: (e.family, e.name))
        return [e for e in found if family is None or e.family == family]

    def get(self, name_or_path: str) -> ModelEntry:
        """A model by name, or by the path of a model folder."""
        path = Path(name_or_path)
        if (path / "config.json").is_file():
            payload = read_model_dir(path)
            return ModelEntry(
                name=str(payload.get("name") or path.name),
                family=str(payload["family"]),
                path=path,
                config=dict(payload["config"]),
                shipped=False,
            )
        for entry in self.list():
            if entry.name == name_or_path:
                return entry
        names = ", ".join(e.name for e in self.list()) or "none installed"
        raise CadenzaError(f"no model named '{name_or_path}' (available: {names})")

    def default(self, family: str) -> ModelEntry:
        entries = [e for e in self.list(family) if e.has_weights]
        if not entries:
            raise CadenzaError(
                f"no {family} model is installed: train one with 'cadenza train' "
                f"or pass --model PATH"
            )
        shipped = [e for e in entries if e.shipped]
        return (shipped or entries)[0]

    def load(self, name_or_path: str) -> Any:
        """The model object, built by its family from config and weights; cached."""
        entry = self.get(name_or_path)
        key = str(entry.path.resolve())
        if key not in self._loaded:
            module_name = FAMILIES.get(entry.family)
            if module_name is None:
                raise CadenzaError(f"model '{entry.name}' has unknown family '{entry.family}'")
            module = importlib.import_module(module_name)
            self._loaded[key] = module.load_from_dir(entry.path)
        return self._loaded[key]

    def unload(self, name_or_path: str | None = None) -> None:
        if name_or_path is None:
            self._loaded.clear()
        else:
            self._loaded.pop(str(self.get(name_or_path).path.resolve()), None)
