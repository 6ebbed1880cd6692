"""The export dialog: where, which format (WAV, FLAC, AIFF, OGG Vorbis, MP3), which sample rate
(the clip's own, 44.1, 48 or 96 kHz) and which sample format (16-bit, 24-bit, 32-bit float).

For a MIDI clip or result (``notation=True``) it also offers the notes themselves, unrendered:
MIDI, and MusicXML (plain or compressed ``.mxl``) for MuseScore and other score editors.

Used by File ▸ Export Audio and by the workspaces' Export buttons; the writing itself happens in
the worker (``models.audio_io.write_audio``, ``models.musicxml.write_musicxml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

from app.clips import AUDIO_EXPORTS, AUDIO_SUFFIXES, NOTATION_EXPORTS, SEQUENCE_SUFFIXES

SAMPLE_RATES = (44100, 48000, 96000)
SAMPLE_FORMATS = (("16-bit", "PCM_16"), ("24-bit", "PCM_24"), ("32-bit float", "FLOAT"))
LOSSY = ("OGG", "MP3")
MP3_MAX_RATE = 48000
NOTATION = tuple(c for _l, _e, c in NOTATION_EXPORTS)
"""The formats that write the notes (no rendering): MIDI, MUSICXML, MXL."""
_EXPORTS = AUDIO_EXPORTS + NOTATION_EXPORTS
_NOTES = {
    "MIDI": "MIDI: the notes as they are, for a DAW; no sound is rendered.",
    "MUSICXML": "MusicXML: notation for MuseScore and other score editors, on the sixteenth "
                "grid, with the tempo and time signature.",
    "MXL": "Compressed MusicXML (.mxl): notation for MuseScore and other score editors, on the "
           "sixteenth grid, with the tempo and time signature.",
}


@dataclass(frozen=True)
class AudioExport:
    """What the dialog chose: ``rate`` 0 keeps the clip's own sample rate."""

    path: Path
    rate: int = 0
    subtype: str = "PCM_16"

    @property
    def container(self) -> str:
        """WAV, FLAC, AIFF, OGG, MP3; or MIDI, MUSICXML or MXL for the notes themselves."""
        suffix = self.path.suffix.lower()
        if suffix in (".midi", ".xml"):
            return "MIDI" if suffix == ".midi" else "MUSICXML"
        return next((c for _l, ext, c in _EXPORTS if suffix == ext),
                    "AIFF" if suffix == ".aif" else "WAV")

    @property
    def is_notation(self) -> bool:
        """Whether the notes are written (MIDI, MusicXML) rather than rendered audio."""
        return self.container in NOTATION

    def describe(self) -> str:
        if self.is_notation:
            return next(label for label, _e, c in NOTATION_EXPORTS if c == self.container)
        rate = f"{self.rate / 1000:g} kHz" if self.rate else "its own rate"
        depth = dict((v, k) for k, v in SAMPLE_FORMATS).get(self.subtype, self.subtype)
        if self.container in LOSSY:
            return f"{self.container} at {rate}"
        return f"{self.container}, {depth}, at {rate}"


def audio_export_path(path: str | Path) -> Path:
    """``path`` with an audio extension (``.wav`` added when it has none of Cadenza's)."""
    path = Path(path)
    return path if path.suffix.lower() in AUDIO_SUFFIXES else path.with_name(path.name + ".wav")


class AudioExportDialog(QDialog):
    """Choose the file, format, sample rate and sample format of an audio export; with
    ``notation`` (a MIDI clip or result), MIDI and MusicXML are offered too."""

    def __init__(self, stem: str, folder: Path | None = None, rate: int = 0,
                 own_rate: int | None = None, parent: QWidget | None = None,
                 notation: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export" if notation else "Export audio")
        self._notation = notation
        self.path = QLineEdit(str((folder or Path.home()) / f"{stem}.wav"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.format = QComboBox()
        for label, ext, container in AUDIO_EXPORTS:
            self.format.addItem(f"{label} ({ext})", container)
        if notation:
            self.format.insertSeparator(self.format.count())
            for label, ext, container in NOTATION_EXPORTS:
                self.format.addItem(f"{label} ({ext}): notes, no audio", container)
        self.rate = QComboBox()
        self.rate.addItem(f"As is ({own_rate} Hz)" if own_rate else "As is", 0)
        for hz in SAMPLE_RATES:
            self.rate.addItem(f"{hz / 1000:g} kHz", hz)
        self.rate.setCurrentIndex(max(0, self.rate.findData(rate)))
        self._own_rate = own_rate or 0
        self.depth = QComboBox()
        for label, subtype in SAMPLE_FORMATS:
            self.depth.addItem(label, subtype)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setObjectName("placeholder")
        self.note.setMinimumHeight(2 * self.note.fontMetrics().lineSpacing() + 4)
        self.setMinimumWidth(540)
        form = QFormLayout()
        form.addRow("File:", row)
        form.addRow("Format:", self.format)
        form.addRow("Sample rate:", self.rate)
        form.addRow("Sample format:", self.depth)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.rate.currentIndexChanged.connect(self._update)
        self.depth.currentIndexChanged.connect(self._update)
        self.path.textChanged.connect(self._path_edited)
        self._update()

    # ------------------------------------------------------------------ choices
    def set_format(self, container: str) -> None:
        self.format.setCurrentIndex(max(0, self.format.findData(container.upper())))

    def set_rate(self, rate: int) -> None:
        self.rate.setCurrentIndex(max(0, self.rate.findData(rate)))

    def set_subtype(self, subtype: str) -> None:
        self.depth.setCurrentIndex(max(0, self.depth.findData(subtype.upper())))

    def formats(self) -> list[str]:
        """The formats offered, in order (WAV ... MP3, then MIDI, MUSICXML, MXL for notes)."""
        return [str(self.format.itemData(i)) for i in range(self.format.count())
                if self.format.itemData(i) is not None]

    def choice(self) -> AudioExport:
        text = self.path.text().strip() or "export"
        if self._container() in NOTATION:
            path = Path(text)
            if path.suffix.lower() not in SEQUENCE_SUFFIXES:
                path = path.with_name(path.name + self._extension())
            return AudioExport(path)
        return AudioExport(audio_export_path(text), int(self.rate.currentData()),
                           str(self.depth.currentData()))

    # ------------------------------------------------------------------ internals
    def _container(self) -> str:
        return str(self.format.currentData())

    def _extension(self) -> str:
        return next(ext for _l, ext, c in _EXPORTS if c == self._container())

    def _format_changed(self) -> None:
        text = self.path.text().strip()
        if text:
            path = Path(text)
            known = path.suffix.lower() in AUDIO_SUFFIXES + SEQUENCE_SUFFIXES
            stem = path.stem if known else path.name
            self.path.blockSignals(True)
            self.path.setText(str(path.with_name(stem + self._extension())))
            self.path.blockSignals(False)
        self._update()

    def _path_edited(self, text: str) -> None:
        suffix = Path(text.strip()).suffix.lower()
        offered = _EXPORTS if self._notation else AUDIO_EXPORTS
        container = next((c for _l, ext, c in offered if ext == suffix),
                         "AIFF" if suffix == ".aif" else None)
        if self._notation and suffix in (".midi", ".xml"):
            container = "MIDI" if suffix == ".midi" else "MUSICXML"
        if container is not None and container != self._container():
            self.format.blockSignals(True)
            self.set_format(container)
            self.format.blockSignals(False)
        self._update()

    def _update(self) -> None:
        container = self._container()
        if container in NOTATION:  # the notes themselves: no rate, no sample format
            self.rate.setEnabled(False)
            self.depth.setEnabled(False)
            self.save_button.setEnabled(True)
            self.note.setText(_NOTES[container])
            return
        self.rate.setEnabled(True)
        lossy = container in LOSSY
        self.depth.setEnabled(not lossy)
        model = self.depth.model()
        float_item = model.item(self.depth.findData("FLOAT"))  # type: ignore[attr-defined]
        float_item.setEnabled(container != "FLAC")
        if container == "FLAC" and self.depth.currentData() == "FLOAT":
            self.set_subtype("PCM_24")
        rate = int(self.rate.currentData()) or self._own_rate
        problem = ""
        if container == "MP3" and rate > MP3_MAX_RATE:
            problem = "MP3 holds at most 48 kHz: choose 44.1 or 48 kHz, or another format."
        self.save_button.setEnabled(not problem)
        self.note.setText(problem or ("A lossy format: the sample format does not apply."
                                      if lossy else ""))

    def _browse(self) -> None:
        label = self.format.currentText()
        path, _ = QFileDialog.getSaveFileName(self, self.windowTitle(), self.path.text(),
                                              f"{label.split(' (')[0]} (*{self._extension()})")
        if path:
            self.path.setText(path)
