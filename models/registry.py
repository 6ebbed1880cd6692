"""Named models: the ones shipped with Cadenza and the ones the user trained.

Each is a folder (see :mod:`models.checkpoint`). Listing reads only the small ``config.json`` and
the model card; the weights are loaded on demand, by the model family's own code, and kept.

:meth:`ModelRegistry.load` is the one way a model is loaded (the CLI, the worker's jobs and the
duet all go through it): it checks the folder, the config, the family and the weights in one
place, each problem a one-line :class:`CadenzaError`, and returns the family's façade, which
has the same shape for every family (:class:`LoadedModel`: ``name``, ``family``, ``path``,
``config``, ``close()``, plus the family's operations):

* ``performance``: :class:`models.performance_rnn.facade.PerformanceRNN` (Continue: generation
  with progress and cancel, sessions, the live stream);
* ``music_vae``: :class:`models.music_vae.generate.MusicVAE` (Interpolate);
* ``nsynth``: :class:`models.nsynth.morph.Morpher` (Morph, WaveNet decoder);
* ``ddsp``: :class:`models.ddsp.morph.DDSPMorpher` (Morph, DDSP decoder; the same operations).

Loaded models are kept by their resolved folder, so a name and a path of the same folder are
one model.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_weights_file,
    read_card,
    read_model_dir,
    short_reason,
)
from models.errors import CadenzaError

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"

# family name -> module that provides ``load_from_dir(directory, name) -> LoadedModel``
FAMILIES: dict[str, str] = {
    "performance": "models.performance_rnn",
    "music_vae": "models.music_vae",
    "nsynth": "models.nsynth",
    "ddsp": "models.ddsp",
}
# How messages name each family.
FAMILY_LABELS: dict[str, str] = {
    "performance": "PerformanceRNN (performance)",
    "music_vae": "MusicVAE",
    "nsynth": "NSynth",
    "ddsp": "DDSP",
}
# The families that Morph can use (their façades have the same operations), the preferred first.
MORPH_FAMILIES = ("ddsp", "nsynth")


def family_label(family: str) -> str:
    return FAMILY_LABELS.get(family, family)


class LoadedModel(Protocol):
    """What :meth:`ModelRegistry.load` returns for every family (plus the family's operations)."""

    name: str
    family: str
    path: Path | None
    config: Any

    def close(self) -> None: ...


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
    broken: str = ""
    """Why the folder cannot be used ("" when it can): listed, never loaded or a default."""

    @property
    def is_default(self) -> bool:
        """A shipped model marked ``"default": true`` in its ``config.json``: its family's
        default (a user's folder cannot claim it)."""
        return self.shipped and self.extra.get("default") is True

    @property
    def card(self) -> str:
        """The model card, bad bytes replaced (a folder is untrusted input)."""
        return read_card(self.path)

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
                except CadenzaError as exc:
                    # A broken folder (the user's models folder is untrusted) is listed with
                    # its reason, never loaded, and never stops the listing.
                    entries.setdefault(config.parent.name, ModelEntry(
                        name=config.parent.name, family="unknown", path=config.parent,
                        config={}, shipped=root == SHIPPED_DIR, broken=str(exc)))
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
        """A model by name, or by the path of a model folder.

        A name that is no installed model but looks like a path (it has a ``/`` or names an
        existing folder) is read as a folder, so a missing or broken folder says so.
        """
        path = Path(name_or_path).expanduser()
        if (path / CONFIG_FILE).is_file():
            return self._entry_at(path)
        entries = self.list()
        for entry in entries:
            if entry.name == name_or_path:
                if entry.broken:
                    raise CadenzaError(f"model '{entry.name}' in {entry.path} is broken: "
                                       f"{entry.broken}")
                return entry
        if "/" in name_or_path or os.sep in name_or_path or path.exists():
            return self._entry_at(path)  # raises: missing folder, no config.json, ...
        names = ", ".join(e.name for e in entries) or "none installed"
        raise CadenzaError(f"no model named '{name_or_path}' (available: {names})")

    @staticmethod
    def _entry_at(path: Path) -> ModelEntry:
        payload = read_model_dir(path)
        extra = {k: v for k, v in payload.items() if k not in ("name", "family", "config")}
        return ModelEntry(
            name=str(payload.get("name") or path.name),
            family=payload["family"],
            path=path,
            config=dict(payload["config"]),
            shipped=False,
            extra=extra,
        )

    def default(self, family: str) -> ModelEntry:
        entries = [e for e in self.list(family) if e.has_weights and not e.broken]
        if not entries:
            raise CadenzaError(
                f"no {family} model is installed: train one with 'cadenza train' "
                f"or pass --model PATH"
            )
        marked = [e for e in entries if e.is_default]
        shipped = [e for e in entries if e.shipped]
        return (marked or shipped or entries)[0]

    def entry(self, name_or_path: str | None = None,
              family: str | tuple[str, ...] | None = None) -> ModelEntry:
        """The entry :meth:`load` would load, checked: found, a known family (``family`` when
        given: one, or a tuple of families in the order of preference) and weights present.
        ``None`` is the installed default of ``family`` (of the first one that has a model)."""
        families = (family,) if isinstance(family, str) else family
        if name_or_path is None:
            if not families:
                raise CadenzaError("which model? (a name or a folder)")
            for fam in families[:-1]:
                if any(e.has_weights and not e.broken for e in self.list(fam)):
                    entry = self.default(fam)
                    break
            else:
                entry = self.default(families[-1])
        else:
            entry = self.get(str(name_or_path))
        if entry.family not in FAMILIES:
            raise CadenzaError(f"model '{entry.name}' has unknown family '{entry.family}'")
        if families is not None and entry.family not in families:
            wanted = " or ".join(family_label(f) for f in families)
            raise CadenzaError(f"model '{entry.name}' is a {family_label(entry.family)} model, "
                               f"not a {wanted} model")
        if not entry.has_weights:
            raise CadenzaError(f"model '{entry.name}' has no weights ({WEIGHTS_FILE} is missing "
                               f"in {entry.path}): train it with 'cadenza train' first")
        return entry

    def load(self, name_or_path: str | None = None,
             family: str | tuple[str, ...] | None = None) -> Any:
        """The family's façade (see the module docstring) of a model, by name or folder (the
        installed default of ``family`` for ``None``); built from config and weights the first
        time, then kept by its resolved folder. With ``family``, a model of another family is a
        one-line error."""
        entry = self.entry(name_or_path, family)
        key = str(entry.path.resolve())
        if key not in self._loaded:
            check_weights_file(entry.path)  # NaN weights: refused before anything is built
            module = importlib.import_module(FAMILIES[entry.family])
            try:
                model = module.load_from_dir(entry.path, entry.name)
            except CadenzaError:
                raise
            except (ValueError, TypeError, KeyError, IndexError, OSError) as exc:
                # A config whose values have the right types but make no network (no layers,
                # a size of 0, ...): the family's code fails while building it.
                raise CadenzaError(f"model '{entry.name}' in {entry.path} cannot be built from "
                                   f"its config: {short_reason(exc)}") from exc
            self._loaded[key] = model
        return self._loaded[key]

    def loaded(self) -> list[Path]:
        """The folders of the models loaded so far (resolved)."""
        return [Path(k) for k in self._loaded]

    def unload(self, name_or_path: str | None = None) -> None:
        """Forget (and close) one loaded model, or all of them."""
        if name_or_path is None:
            keys = list(self._loaded)
        else:
            keys = [str(self.get(name_or_path).path.resolve())]
        for key in keys:
            model = self._loaded.pop(key, None)
            close = getattr(model, "close", None)
            if callable(close):
                close()

    def close(self) -> None:
        """Close every loaded model (the worker calls this when it stops)."""
        self.unload()
