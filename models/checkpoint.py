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
import types
import typing
import warnings
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
    """Build ``cls`` from ``data``, ignoring keys it does not know (older or newer files).

    A value of the wrong type for its field (a string for a number, a number for a list, ...)
    is a one-line :class:`CadenzaError`, before any model is built from it.
    """
    if not isinstance(data, dict):
        raise CadenzaError(f"model config for {cls.__name__} must be a JSON object, "
                           f"not {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _type_hints(cls)
    known = {}
    for key, value in data.items():
        if key not in names:
            continue
        problem = _type_problem(hints.get(key), value)
        if problem:
            raise CadenzaError(f"model config field '{key}' must be {problem}, "
                               f"not {json.dumps(value)[:60]}")
        known[key] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**known)
    except TypeError as exc:
        raise CadenzaError(f"model config does not fit {cls.__name__}: {exc}") from exc


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):  # pragma: no cover - an annotation that does not resolve
        return {}


_PLURAL = {int: "integers", float: "numbers", str: "strings", bool: "true or false values"}


def _type_problem(hint: Any, value: Any) -> str:
    """What ``value`` should have been for a field annotated ``hint`` ("" when it fits).

    Checks the types config dataclasses use (int, float, bool, str, tuples of those, dicts and
    optionals of them); other annotations are not checked.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return ""
        problems = [_type_problem(o, value) for o in options if o is not type(None)]
        return "" if not problems or "" in problems else " or ".join(problems)
    if hint is bool:
        return "" if isinstance(value, bool) else "true or false"
    if hint is int:
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if hint is float:
        return "" if isinstance(value, int | float) and not isinstance(value, bool) else "a number"
    if hint is str:
        return "" if isinstance(value, str) else "a string"
    if origin is tuple or hint is tuple:
        if not isinstance(value, list | tuple):
            return "a list"
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if args and any(_type_problem(args[0], v) for v in value):
            return "a list of " + _PLURAL.get(args[0], "values of one type")
        return ""
    if origin is dict or hint is dict:
        return "" if isinstance(value, dict) else "an object"
    return ""


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
    """The parsed ``config.json`` of a model folder (raises CadenzaError when unusable).

    Checks the folder and the file's shape: a JSON object with a string ``family``, an object
    ``config`` and (when present) a string ``name``. The config's fields are checked against
    the family's dataclass by :func:`config_from_dict`.
    """
    folder = Path(directory)
    if not folder.exists():
        raise CadenzaError(f"not a model folder (no such folder): {directory}")
    if not folder.is_dir():
        raise CadenzaError(f"not a model folder (a file, not a folder): {directory}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CadenzaError(f"not a model folder (no {CONFIG_FILE}): {directory}")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"unreadable model config {path}: {exc}") from exc
    if not isinstance(payload, dict):
        raise CadenzaError(f"model config {path} is not a JSON object")
    if "family" not in payload or "config" not in payload:
        raise CadenzaError(f"model config {path} lacks 'family' or 'config'")
    if not isinstance(payload["family"], str):
        raise CadenzaError(f"model config {path}: 'family' must be a string")
    if not isinstance(payload["config"], dict):
        raise CadenzaError(f"model config {path}: 'config' must be a JSON object")
    if not isinstance(payload.get("name", ""), str):
        raise CadenzaError(f"model config {path}: 'name' must be a string")
    return payload


def weights_path(directory: str | Path) -> Path:
    return Path(directory) / WEIGHTS_FILE


def load_weights(keras_model: Any, directory: str | Path) -> None:
    """Load ``model.weights.h5`` from ``directory`` into an already built model."""
    path = weights_path(directory)
    if not path.is_file():
        raise CadenzaError(f"model weights are missing: {path}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            keras_model.load_weights(str(path))
        except (OSError, ValueError) as exc:
            raise CadenzaError(f"model weights {path} do not fit the config: "
                               f"{short_reason(exc)}") from exc
    for warning in caught:
        # Keras loads a file that lacks some of the model's layers with only this warning (the
        # layers keep their random weights): for a model folder that is weights that don't fit.
        if "freshly-initialized weights" in str(warning.message):
            raise CadenzaError(f"model weights {path} do not fit the config: some of the "
                               f"model's layers are not in the file")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    # ... and a file with more layers than the model (a deeper network's) without a word.
    stored = _stored_weight_count(path)
    if stored is not None and stored != len(keras_model.weights):
        raise CadenzaError(f"model weights {path} do not fit the config: the file holds "
                           f"{stored} weight arrays, the model has {len(keras_model.weights)}")


def _stored_weight_count(path: Path) -> int | None:
    """The model's weight arrays in a ``.weights.h5`` file (an optimizer's state, which a file
    saved from a compiled model also holds, not counted); None when h5py cannot tell."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py comes with Keras
        return None
    count = 0

    def visit(name: str, item: object) -> None:
        nonlocal count
        if isinstance(item, h5py.Dataset) and not name.startswith("optimizer/"):
            count += 1

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError:
        return None
    return count


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """The start of an exception's message, on one line (Keras' can run to pages)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
