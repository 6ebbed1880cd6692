"""The user's preferences, kept in an INI file where ``QSettings("Cadenza", "Cadenza")`` (INI
format, user scope) would keep it, but read and written by Cadenza itself as plain strings.

Qt's own reader is never used on the file: it turns an ``@Variant(...)`` value into the object it
describes, and PySide6 unpickles Python objects stored that way, so a settings file could run
code when the app starts. Here every value is a plain string, checked against the choices it
may take; an ``@Variant``, ``@ByteArray`` or any other typed value is ignored (the default is
used). The file is written through :mod:`models.files` (atomically).

Tests point the INI location at a temporary folder with
``QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, tmp)`` before anything is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path

from PySide6.QtCore import QSettings

from models import files
from models.errors import CadenzaError

log = logging.getLogger(__name__)

ORGANISATION = "Cadenza"
APPLICATION = "Cadenza"
COMPUTE_CHOICES = ("auto", "cpu", "gpu")
THEME_CHOICES = ("dark", "light", "system")
MAX_SETTINGS_BYTES = 1024 * 1024


@dataclass
class Settings:
    """Every preference; an empty string means "the system default"."""

    audio_device: str = ""
    midi_in: str = ""
    midi_out: str = ""
    soundfont: str = ""
    compute_device: str = "auto"
    theme: str = "dark"

    def normalised(self) -> Settings:
        if self.compute_device not in COMPUTE_CHOICES:
            self.compute_device = "auto"
        if self.theme not in THEME_CHOICES:
            self.theme = "dark"
        return self


class SettingsStore:
    """An INI file of plain string values (``section/key``), read without Qt's typed values.

    The same small API as ``QSettings`` where Cadenza used it: ``value``, ``setValue``,
    ``sync``, ``fileName``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def fileName(self) -> str:  # noqa: N802 - the QSettings name
        return str(self.path)

    def read(self) -> dict[str, str]:
        """Every plain value in the file, by ``section/key``; typed values are skipped."""
        try:
            if self.path.stat().st_size > MAX_SETTINGS_BYTES:
                log.warning("%s: too large, ignored", self.path)
                return {}
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        values: dict[str, str] = {}
        section = "General"
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith((";", "#")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip() or "General"
                continue
            key, sep, value = line.partition("=")
            if not sep:
                continue
            decoded = _decode(value.strip())
            if decoded is None:
                log.warning("%s: [%s] %s is not a plain value, ignored", self.path, section,
                            key.strip())
                continue
            name = key.strip() if section == "General" else f"{section}/{key.strip()}"
            values[name] = decoded
        return values

    def value(self, key: str, default: str | None = None) -> str | None:
        return self.read().get(key, default)

    def setValue(self, key: str, value: object) -> None:  # noqa: N802 - the QSettings name
        self.write({**self.read(), key: "" if value is None else str(value)})

    def write(self, values: dict[str, str]) -> None:
        sections: dict[str, dict[str, str]] = {}
        for name, value in values.items():
            section, _, key = name.rpartition("/")
            sections.setdefault(section or "General", {})[key] = value
        lines: list[str] = []
        for section, entries in sections.items():
            lines.append(f"[{section}]")
            lines.extend(f"{key}={_encode(value)}" for key, value in entries.items())
            lines.append("")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CadenzaError(f"{self.path}: cannot write the settings ({exc.strerror})") \
                from exc
        files.write_text(self.path, "\n".join(lines))

    def sync(self) -> None:
        """Every change is written at once; nothing to do."""


def _decode(value: str) -> str | None:
    """An INI value as QSettings writes a plain string, or None for a typed value."""
    if value.startswith("@@"):
        value = value[1:]
    elif value.startswith("@String(") and value.endswith(")"):
        value = value[len("@String("):-1]
    elif value.startswith("@"):
        return None  # @Variant, @ByteArray, @Rect, ...: never constructed
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
    return "".join(out)


def _encode(value: str) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r") \
        .replace("\t", "\\t").replace('"', '\\"')
    if value.startswith("@"):
        value = "@" + value
    if value != value.strip() or any(c in value for c in ",;=#"):
        value = f'"{value}"'
    return value


def open_qsettings() -> SettingsStore:
    """The app's settings store: the INI file QSettings would use (user scope)."""
    # Only the file's name is asked of Qt; its reader would construct typed values.
    location = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                         APPLICATION).fileName()
    return SettingsStore(location)


def load_settings(store: SettingsStore | None = None) -> Settings:
    store = store or open_qsettings()
    stored = store.read()
    values = {}
    for f in fields(Settings):
        value = stored.get(f"prefs/{f.name}")
        values[f.name] = f.default if value is None else value
    return Settings(**values).normalised()


def save_settings(settings: Settings, store: SettingsStore | None = None) -> None:
    store = store or open_qsettings()
    values = store.read()
    for f in fields(Settings):
        values[f"prefs/{f.name}"] = str(getattr(settings, f.name))
    store.write(values)
