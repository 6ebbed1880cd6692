"""The user's preferences, kept with ``QSettings("Cadenza", "Cadenza")`` in INI format.

Tests point the INI location at a temporary folder with
``QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, tmp)`` before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from PySide6.QtCore import QSettings

ORGANISATION = "Cadenza"
APPLICATION = "Cadenza"
COMPUTE_CHOICES = ("auto", "cpu", "gpu")
THEME_CHOICES = ("dark", "light", "system")


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


def open_qsettings() -> QSettings:
    """The app's settings store (INI, user scope)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)


def load_settings(store: QSettings | None = None) -> Settings:
    store = store or open_qsettings()
    values = {}
    for f in fields(Settings):
        value = store.value(f"prefs/{f.name}", f.default)
        values[f.name] = "" if value is None else str(value)
    return Settings(**values).normalised()


def save_settings(settings: Settings, store: QSettings | None = None) -> None:
    store = store or open_qsettings()
    for f in fields(Settings):
        store.setValue(f"prefs/{f.name}", getattr(settings, f.name))
    store.sync()
