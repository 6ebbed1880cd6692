"""The settings dialog: audio output, MIDI in/out, soundfont, compute device, theme."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.settings import COMPUTE_CHOICES, THEME_CHOICES, Settings

DEFAULT_LABEL = "System default"
NONE_LABEL = "None"


def _choice_combo(current: str, choices: list[str], empty_label: str) -> QComboBox:
    """An editable combo: the first entry means "" (default/none), then the known choices."""
    combo = QComboBox()
    combo.setEditable(True)
    combo.addItem(empty_label, "")
    for name in choices:
        combo.addItem(name, name)
    if current and current not in choices:
        combo.addItem(current, current)
    index = combo.findData(current)
    combo.setCurrentIndex(max(0, index))
    return combo


def _combo_value(combo: QComboBox, empty_label: str) -> str:
    text = combo.currentText().strip()
    if text == empty_label or not text:
        return ""
    index = combo.findText(text)
    return str(combo.itemData(index)) if index >= 0 and combo.itemData(index) else text


class SettingsDialog(QDialog):
    """Edits a copy of ``settings``; ``result_settings()`` gives the edited values."""

    def __init__(
        self,
        settings: Settings,
        audio_devices: list[str] | None = None,
        midi_inputs: list[str] | None = None,
        midi_outputs: list[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Cadenza Settings")
        self.setMinimumWidth(520)
        self._settings = replace(settings)
        self.audio = _choice_combo(settings.audio_device, audio_devices or [], DEFAULT_LABEL)
        self.midi_in = _choice_combo(settings.midi_in, midi_inputs or [], NONE_LABEL)
        self.midi_out = _choice_combo(settings.midi_out, midi_outputs or [], NONE_LABEL)
        self.soundfont = QLineEdit(settings.soundfont)
        self.soundfont.setPlaceholderText("Automatic (a General MIDI soundfont on this system)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        sf_row = QHBoxLayout()
        sf_row.addWidget(self.soundfont, 1)
        sf_row.addWidget(browse)
        self.compute = QComboBox()
        for value, label in zip(COMPUTE_CHOICES, ("Automatic (GPU when there is one)", "CPU",
                                                  "GPU"), strict=True):
            self.compute.addItem(label, value)
        self.compute.setCurrentIndex(max(0, self.compute.findData(settings.compute_device)))
        self.theme = QComboBox()
        for value in THEME_CHOICES:
            self.theme.addItem(value.capitalize(), value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))

        form = QFormLayout()
        form.addRow("Audio output:", self.audio)
        form.addRow("MIDI input:", self.midi_in)
        form.addRow("MIDI output:", self.midi_out)
        form.addRow("Soundfont:", sf_row)
        form.addRow("Compute device:", self.compute)
        form.addRow("Theme:", self.theme)
        note = QLabel("The compute device takes effect the next time Cadenza starts.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a soundfont", self.soundfont.text(),
                                              "SoundFont (*.sf2 *.sf3)")
        if path:
            self.soundfont.setText(path)

    def result_settings(self) -> Settings:
        return replace(
            self._settings,
            audio_device=_combo_value(self.audio, DEFAULT_LABEL),
            midi_in=_combo_value(self.midi_in, NONE_LABEL),
            midi_out=_combo_value(self.midi_out, NONE_LABEL),
            soundfont=self.soundfont.text().strip(),
            compute_device=str(self.compute.currentData()),
            theme=str(self.theme.currentData()),
        ).normalised()
