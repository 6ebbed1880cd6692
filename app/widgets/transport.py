"""The transport bar: Play, Stop, Loop, the sound MIDI clips play with, and the position."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStyle, QToolButton, QWidget

GM_SOUND = "General MIDI"
MORPH_SOUND = "Morph instrument"


def clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{secs:04.1f}"


class TransportBar(QWidget):
    play_clicked = Signal()
    stop_clicked = Signal()
    loop_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transport")
        style = self.style()
        self.play_button = QToolButton()
        self.play_button.setText("Play")
        self.play_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play the selected clip (Space)")
        self.stop_button = QToolButton()
        self.stop_button.setText("Stop")
        self.stop_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop))
        self.stop_button.setToolTip("Stop")
        self.loop_button = QToolButton()
        self.loop_button.setText("Loop")
        self.loop_button.setCheckable(True)
        self.loop_button.setToolTip("Start again at the end")
        for b in (self.play_button, self.stop_button, self.loop_button):
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setMinimumWidth(72)
        self.position = QLabel(clock(0) + " / " + clock(0))
        self.position.setObjectName("position")
        self.sound = QComboBox()
        self.sound.addItem(GM_SOUND)
        self.sound.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.sound.setMinimumContentsLength(len(MORPH_SOUND))
        self.sound.setToolTip("What MIDI clips sound like when played or exported as WAV: the "
                              "General MIDI soundfont, or the morph instrument made in Morph")
        self.sound.setEnabled(False)
        self.state = QLabel("")
        self.state.setObjectName("transportState")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(self.play_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.loop_button)
        row.addSpacing(8)
        row.addWidget(self.sound)
        row.addSpacing(12)
        row.addWidget(self.position)
        row.addSpacing(12)
        row.addWidget(self.state, 1)
        self.play_button.clicked.connect(self.play_clicked)
        self.stop_button.clicked.connect(self.stop_clicked)
        self.loop_button.toggled.connect(self.loop_toggled)
        self.set_playing(False)

    @property
    def loop(self) -> bool:
        return self.loop_button.isChecked()

    @property
    def use_instrument(self) -> bool:
        """Whether MIDI clips play with the morph instrument."""
        return self.sound.currentText() == MORPH_SOUND

    def set_instrument_available(self, available: bool) -> None:
        """Offer the morph instrument (and choose it) once one has been made."""
        has = self.sound.findText(MORPH_SOUND) >= 0
        if available and not has:
            self.sound.addItem(MORPH_SOUND)
        if available:
            self.sound.setCurrentText(MORPH_SOUND)
        elif has:
            self.sound.removeItem(self.sound.findText(MORPH_SOUND))
        self.sound.setEnabled(self.sound.count() > 1)

    def set_position(self, seconds: float, total: float) -> None:
        self.position.setText(f"{clock(seconds)} / {clock(total)}")

    def set_playing(self, playing: bool) -> None:
        self.play_button.setEnabled(not playing)
        self.stop_button.setEnabled(True)

    def set_state(self, text: str) -> None:
        self.state.setText(text)
