"""Model folders: a config dataclass as JSON, weights as ``.weights.h5``, and a model card.

A folder holds::

    config.json        {"family": "performance", "name": "...", "config": {dataclass fields}}
    model.weights.h5   Keras weights only
    MODEL_CARD.md      data, licenses, exact training command, metrics

The model is rebuilt from the config dataclass by its family's code and the weights are loaded
into it, so no code ever runs from a model file (the same guarantee as Keras' ``safe_mode``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import types
import typing
import warnings
from pathlib import Path
from typing import Any, TypeVar

from models import files, limits
from models.errors import CadenzaError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
CARD_FILE = "MODEL_CARD.md"
CARD_WIDTH = 100
_LIST_ITEM = re.compile(r"\s*(?:[-*] |\d+\. )")
# Words that would turn a wrapped line into a list item, heading, quote or table row.
_MARKDOWN_MARKER = re.compile(r"[-*+>#=|]+|\d+[.)]")

C = TypeVar("C")
# The config dataclass of each family, by name (for the size estimate of models.limits).
CONFIG_CLASSES = {"performance": "PerformanceConfig", "music_vae": "MusicVAEConfig",
                  "nsynth": "NSynthConfig"}


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
        limits.config_field(key, value)
        known[key] = tuple(value) if isinstance(value, list) else value
    try:
        config = cls(**known)
    except TypeError as exc:
        raise CadenzaError(f"model config does not fit {cls.__name__}: {exc}") from exc
    limits.model_size(cls.__name__, dataclasses.asdict(config))  # type: ignore[call-overload]
    return config


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
    """Write config (and weights and card, when given) into ``directory``, each file atomically
    (:mod:`models.files`: beside its name, flushed, then renamed), so a reader never sees half a
    file and a kill or a full disk leaves the old file. The weights go first and the config
    last, so a folder whose config is new has the new weights too."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CadenzaError(f"cannot make the model folder {out}: {exc.strerror or exc}") from exc
    payload: dict[str, Any] = {
        "family": family,
        "name": name or out.name,
        "config": config_to_dict(config),
    }
    if extra:
        payload.update(extra)
    if keras_model is not None:
        with files.replacing(out / WEIGHTS_FILE) as tmp:
            staged = tmp.with_name(tmp.name + ".weights.h5")  # Keras asks for this ending
            try:
                keras_model.save_weights(str(staged))
                os.replace(staged, tmp)
            finally:
                staged.unlink(missing_ok=True)
    if card is not None:
        files.write_text(out / CARD_FILE, wrap_card(card))
    files.write_text(out / CONFIG_FILE, json.dumps(payload, indent=2, sort_keys=True) + "\n")
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
        size = path.stat().st_size
        if size > limits.CONFIG_MAX_BYTES:
            raise CadenzaError(f"model config {path} is {size:,} bytes, more than the "
                               f"{limits.CONFIG_MAX_BYTES:,} a config may have")
        payload = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as exc:
        raise CadenzaError(f"model config {path} is nested too deeply") from exc
    except (OSError, ValueError) as exc:
        raise CadenzaError(f"unreadable model config {path}: {short_reason(exc)}") from exc
    if _depth(payload) > limits.CONFIG_MAX_DEPTH:
        raise CadenzaError(f"model config {path} is nested more than "
                           f"{limits.CONFIG_MAX_DEPTH} levels deep")
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
    try:  # the ranges and the size, before any family code sees the values
        for key, value in payload["config"].items():
            limits.config_field(key, value)
        with contextlib.suppress(TypeError, ValueError, IndexError):  # types: config_from_dict
            limits.model_size(CONFIG_CLASSES.get(payload["family"], ""), payload["config"])
    except CadenzaError as exc:
        raise CadenzaError(f"{path}: {exc}") from exc
    return payload


def _depth(value: Any, limit: int = limits.CONFIG_MAX_DEPTH + 1) -> int:
    """How deeply ``value`` nests lists and objects (counting stops past ``limit``)."""
    level, layer = 0, [value]
    while layer and level <= limit:
        nested = [v for item in layer if isinstance(item, dict | list)
                  for v in (item.values() if isinstance(item, dict) else item)]
        level += any(isinstance(item, dict | list) for item in layer)
        layer = nested
    return level


def read_card(directory: str | Path) -> str:
    """The model card of a folder ("" if none), bad bytes replaced, at most
    :data:`models.limits.CARD_MAX_BYTES`."""
    path = Path(directory) / CARD_FILE
    try:
        with open(path, "rb") as handle:
            data = handle.read(limits.CARD_MAX_BYTES)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


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
    _check_finite(keras_model, path)


def _check_finite(keras_model: Any, path: Path) -> None:
    """Refuse weights holding NaN or infinity: such a model only ever makes noise or silence."""
    import numpy as np
    from keras import ops

    for variable in keras_model.weights:
        values = np.asarray(ops.convert_to_numpy(variable))
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            name = getattr(variable, "path", None) or getattr(variable, "name", "a layer")
            raise CadenzaError(f"model weights {path} hold NaN or infinite values (in {name}): "
                               f"the model is broken")


def check_weights_file(directory: str | Path) -> None:
    """Refuse a weights file that holds NaN or infinite values, read with h5py alone (before
    the backend is imported or anything is built); a file h5py cannot read is left to
    :func:`load_weights`, which says why."""
    try:
        import h5py
        import numpy as np
    except ImportError:  # pragma: no cover - h5py comes with Keras
        return
    path = weights_path(directory)
    bad: list[str] = []

    def visit(name: str, item: object) -> None:
        if (not bad and isinstance(item, h5py.Dataset) and item.dtype.kind == "f"
                and not np.isfinite(item[()]).all()):
            bad.append(name)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError, TypeError):
        return
    if bad:
        raise CadenzaError(f"model weights {path} hold NaN or infinite values (in {bad[0]}): "
                           f"the model is broken")


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
