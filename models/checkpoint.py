"""Model folders: a config dataclass as JSON, weights as ``.weights.h5``, and a model card.

A folder holds::

    config.json        {"family": "performance", "name": "...", "config": {dataclass fields}}
    model.weights.h5   Keras weights only
    MODEL_CARD.md      data, licenses, exact training command, metrics

The model is rebuilt from the config dataclass by its family's code and the weights are loaded
into it, so no code ever runs from a model file (the same guarantee as Keras' ``safe_mode``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, TypeVar

from models.errors import CadenzaError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "MODEL_CARD.md"
CARD_WIDTH = 100
_LIST_ITEM = re.compile(r"\s*(?:[-*] |\d+\. )")
# Words that would turn a wrapped line into a list item, heading, quote or table row.
_MARKDOWN_MARKER = re.compile(r"[-*+>#=|]+|\d+[.)]")

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("a model config must be a dataclass instance")
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build ``cls`` from ``data``, ignoring keys it does not know (older or newer files)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    try:
        return cls(**known)
    except TypeError as exc:
        raise CadenzaError(f"model config does not fit {cls.__name__}: {exc}") from exc


def save_model_dir(
    directory: str | Path,
    family: str,
    config: Any,
    keras_model: Any = None,
    card: str | None = None,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write config (and weights and card, when given) into ``directory``, each file beside its
    name and then renamed, so a reader never sees half a file."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "family": family,
        "name": name or out.name,
        "config": config_to_dict(config),
    }
    if extra:
        payload.update(extra)
    tmp = out / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / CONFIG_FILE)
    if keras_model is not None:
        tmp_w = out / ("tmp-" + WEIGHTS_FILE)
        keras_model.save_weights(str(tmp_w))
        tmp_w.replace(out / WEIGHTS_FILE)
    if card is not None:
        tmp_c = out / (CARD_FILE + ".tmp")
        tmp_c.write_text(wrap_card(card))
        tmp_c.replace(out / CARD_FILE)
    return out


def wrap_card(text: str, width: int = CARD_WIDTH) -> str:
    """Wrap a model card's prose at ``width`` characters.

    A paragraph or list item with a line over ``width`` is reflowed as a whole, so a template's
    own line breaks leave no short lines in the middle of it. Code lines (four-space indent: the
    training commands, to be copied whole), headings and table rows stay as they are; a
    wrapped list item continues under its text.
    """
    lines: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if any(len(line) > width for line in block):
            first = block[0].rstrip()
            lead = _LIST_ITEM.match(first)
            indent = len(lead.group(0)) if lead else len(first) - len(first.lstrip())
            words = " ".join(block).split()
            lines.extend(_fill(words, width, first[:len(first) - len(first.lstrip())],
                               " " * indent))
        else:
            lines.extend(block)
        block.clear()

    for line in text.splitlines():
        if not line.strip() or line.startswith(("    ", "#", "|")):
            flush()
            lines.append(line)
            continue
        if _LIST_ITEM.match(line):
            flush()
        block.append(line)
    flush()
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _fill(words: list[str], width: int, prefix: str, indent: str) -> list[str]:
    """Greedy fill of ``words`` into lines of at most ``width`` (a word longer than that gets a
    line of its own); no line but the first starts with a Markdown marker."""
    lines: list[str] = []
    line: list[str] = []
    for word in words:
        if line and len(prefix) + len(" ".join([*line, word])) > width:
            carry = [line.pop()] if _MARKDOWN_MARKER.fullmatch(word) and len(line) > 1 else []
            lines.append(prefix + " ".join(line))
            prefix, line = indent, carry
        line.append(word)
    if line:
        lines.append(prefix + " ".join(line))
    return lines


def read_model_dir(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder (raises CadenzaError when unusable)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CadenzaError(f"not a model folder (no {CONFIG_FILE}): {directory}")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"unreadable model config {path}: {exc}") from exc
    if not isinstance(payload, dict) or "family" not in payload or "config" not in payload:
        raise CadenzaError(f"model config {path} lacks 'family' or 'config'")
    return payload


def weights_path(directory: str | Path) -> Path:
    return Path(directory) / WEIGHTS_FILE


def load_weights(keras_model: Any, directory: str | Path) -> None:
    """Load ``model.weights.h5`` from ``directory`` into an already built model."""
    path = weights_path(directory)
    if not path.is_file():
        raise CadenzaError(f"model weights are missing: {path}")
    try:
        keras_model.load_weights(str(path))
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"model weights {path} do not fit the config: {exc}") from exc
