"""The values of a panel's controls as plain JSON (for sessions), and back.

Only plain values are kept: numbers, booleans and strings. A combo box is kept as its index,
its text and its data when that is a string (a model name, a port); it is restored by that data,
else by the index when the text there still matches, else by the text (a clip picker's clip
ids change between runs, their names do not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtWidgets import QAbstractButton, QComboBox, QDoubleSpinBox, QSlider, QSpinBox

WATCHED = (QSpinBox, QDoubleSpinBox, QComboBox, QSlider, QAbstractButton)


def find_controls(owner: object, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The controls that are attributes of ``owner`` (checkable buttons only), by name."""
    found: dict[str, Any] = {}
    for name, value in vars(owner).items():
        if name.startswith("_") or name in skip or not isinstance(value, WATCHED):
            continue
        if isinstance(value, QAbstractButton) and not value.isCheckable():
            continue
        found[name] = value
    return found


def capture(controls: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, w in controls.items():
        if isinstance(w, QComboBox):
            data = w.currentData()
            state[name] = {"index": w.currentIndex(), "text": w.currentText(),
                           "data": data if isinstance(data, str) else None}
        elif isinstance(w, QDoubleSpinBox):
            state[name] = float(w.value())
        elif isinstance(w, QSpinBox | QSlider):
            state[name] = int(w.value())
        elif isinstance(w, QAbstractButton):
            state[name] = bool(w.isChecked())
    return state


def restore(controls: Mapping[str, Any], state: Mapping[str, Any],
            skip_signals: tuple[str, ...] = ()) -> None:
    """Set each control that ``state`` has a value of the right type for; others are left.
    Controls named in ``skip_signals`` are set without emitting their signals (buttons whose
    toggling would start something, such as recording)."""
    for name, w in controls.items():
        if name not in state:
            continue
        value = state[name]
        blocked = name in skip_signals and w.blockSignals(True)
        try:
            _set(w, value)
        finally:
            if name in skip_signals:
                w.blockSignals(bool(blocked))


def _set(w: Any, value: Any) -> None:
    if isinstance(w, QComboBox):
        if not isinstance(value, dict):
            return
        data, index, text = value.get("data"), value.get("index"), value.get("text")
        found = w.findData(data) if isinstance(data, str) else -1
        if found < 0 and isinstance(index, int) and 0 <= index < w.count() \
                and w.itemText(index) == text:
            found = index
        if found < 0 and isinstance(text, str):
            found = w.findText(text)
        if found >= 0:
            w.setCurrentIndex(found)
    elif isinstance(w, QDoubleSpinBox):
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            w.setValue(float(value))
    elif isinstance(w, QSpinBox | QSlider):
        if isinstance(value, int) and not isinstance(value, bool):
            w.setValue(value)
    elif isinstance(w, QAbstractButton) and isinstance(value, bool):
        w.setChecked(value)


def watch(controls: Mapping[str, Any], callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever any of the controls changes."""
    for w in controls.values():
        if isinstance(w, QComboBox):
            w.currentIndexChanged.connect(lambda *_: callback())
        elif isinstance(w, QSpinBox | QDoubleSpinBox | QSlider):
            w.valueChanged.connect(lambda *_: callback())
        elif isinstance(w, QAbstractButton):
            w.toggled.connect(lambda *_: callback())
