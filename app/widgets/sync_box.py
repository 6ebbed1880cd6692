"""The Live panel's sync section: whose time Cadenza keeps (Internal / MIDI clock in from a
port / Ableton Link), MIDI clock out to chosen ports, the tempo, Link's peers and a beat
indicator. The work is done by :class:`app.sync.SyncSession` (no Qt); this box only shows it,
polling it on a timer on the GUI thread."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from models.errors import CadenzaError

INTERNAL = "Internal"
LINK = "Ableton Link (local network)"
CLOCK_IN = "MIDI clock in: "
UPDATE_MS = 30
BEATS_PER_BAR = 4


class BeatLights(QWidget):
    """Four lights, one per beat of the bar; the current beat lit, brightest on its start."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.beat: float | None = None
        self.setMinimumSize(4 * 22, 20)

    def set_beat(self, beat: float | None) -> None:
        if beat != self.beat:
            self.beat = beat
            self.update()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        size = min(self.height() - 4, 16)
        for i in range(BEATS_PER_BAR):
            colour = QColor(70, 70, 70)
            if self.beat is not None and self.beat >= 0:
                current = int(self.beat) % BEATS_PER_BAR
                if i == current:
                    fade = 1.0 - min(1.0, self.beat - int(self.beat))
                    base = QColor(255, 170, 40) if i == 0 else QColor(96, 214, 128)
                    colour = QColor(int(70 + (base.red() - 70) * (0.35 + 0.65 * fade)),
                                    int(70 + (base.green() - 70) * (0.35 + 0.65 * fade)),
                                    int(70 + (base.blue() - 70) * (0.35 + 0.65 * fade)))
            p.setBrush(colour)
            p.setPen(Qt.PenStyle.NoPen)
            p.drawEllipse(QRectF(2 + i * 22, (self.height() - size) / 2, size, size))
        p.end()


class SyncBox(QGroupBox):
    """The sync section (see the module docstring). ``message`` carries one-line errors."""

    message = Signal(str)

    def __init__(self, devices: Any = None, parent: QWidget | None = None) -> None:
        super().__init__("Sync", parent)
        self.devices = devices
        self.session: Any = None
        self.source_combo = QComboBox()
        self.source_combo.addItem(INTERNAL, "internal")
        self.source_combo.addItem(LINK, "link")
        self.source_combo.setToolTip("Link is off unless chosen here: it talks on the local "
                                     "network")
        self.clock_list = QListWidget()
        self.clock_list.setMaximumHeight(70)
        self.clock_list.setToolTip("Send MIDI clock (24 ppqn, Start/Stop, Song Position) to the "
                                   "checked outputs")
        self.tempo_spin = QDoubleSpinBox()
        self.tempo_spin.setRange(20.0, 400.0)
        self.tempo_spin.setDecimals(1)
        self.tempo_spin.setValue(120.0)
        self.tempo_spin.setSuffix(" BPM")
        self.run_button = QPushButton("Start sync")
        self.run_button.setCheckable(True)
        self.lights = BeatLights()
        self.state_label = QLabel("Stopped")
        self.peers_label = QLabel("")
        form = QFormLayout(self)
        form.addRow("Time from:", self.source_combo)
        form.addRow("Clock out to:", self.clock_list)
        form.addRow("Tempo:", self.tempo_spin)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.lights)
        row.addWidget(self.state_label, 1)
        form.addRow(row)
        form.addRow(self.peers_label)
        self.run_button.toggled.connect(self.set_running)
        self.source_combo.currentIndexChanged.connect(self._reconfigure)
        self.clock_list.itemChanged.connect(self._reconfigure)
        self.tempo_spin.valueChanged.connect(self._tempo_changed)
        self._timer = QTimer(self)
        self._timer.setInterval(UPDATE_MS)
        self._timer.timeout.connect(self.refresh)

    # ------------------------------------------------------------------ ports
    def set_ports(self, inputs: list[str], outputs: list[str]) -> None:
        """The MIDI ports there are now (the panel's port watcher found them)."""
        current = self.source_combo.currentData()
        checked = set(self.checked_outputs())
        self.source_combo.blockSignals(True)
        self.source_combo.clear()
        self.source_combo.addItem(INTERNAL, "internal")
        for name in inputs:
            self.source_combo.addItem(CLOCK_IN + name, f"midi-clock:{name}")
        self.source_combo.addItem(LINK, "link")
        index = self.source_combo.findData(current) if current else 0
        self.source_combo.setCurrentIndex(max(0, index))
        self.source_combo.blockSignals(False)
        self.clock_list.blockSignals(True)
        self.clock_list.clear()
        for name in outputs:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in checked
                               else Qt.CheckState.Unchecked)
            self.clock_list.addItem(item)
        self.clock_list.blockSignals(False)

    def checked_outputs(self) -> list[str]:
        return [self.clock_list.item(i).text() for i in range(self.clock_list.count())
                if self.clock_list.item(i).checkState() == Qt.CheckState.Checked]

    def choose_source(self, source: str, port: str = "") -> bool:
        index = self.source_combo.findData(f"{source}:{port}" if port else source)
        if index < 0:
            return False
        self.source_combo.setCurrentIndex(index)
        return True

    def check_output(self, name_substring: str, on: bool = True) -> bool:
        for i in range(self.clock_list.count()):
            item = self.clock_list.item(i)
            if name_substring.lower() in item.text().lower():
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                return True
        return False

    # ------------------------------------------------------------------ running
    def _session(self) -> Any:
        if self.session is None:
            if self.devices is None:
                raise CadenzaError("no devices: sync needs the app's MIDI system")
            from app.sync import SyncSession

            self.session = SyncSession(self.devices)
        return self.session

    def _configure(self) -> None:
        source, _, port = (self.source_combo.currentData() or "internal").partition(":")
        self._session().configure(source, port, self.checked_outputs(),
                                  bpm=self.tempo_spin.value())
        self.tempo_spin.setEnabled(source != "midi-clock")

    def _reconfigure(self, *_: object) -> None:
        if self.session is None:
            return
        try:
            self._configure()
        except CadenzaError as exc:
            self.message.emit(str(exc))
            self.set_running(False)

    def set_running(self, on: bool) -> None:
        try:
            if on:
                self._configure()
                self._session().start()
                self._timer.start()
            elif self.session is not None:
                self.session.stop()
        except CadenzaError as exc:
            self.message.emit(str(exc))
            on = False
            if self.session is not None:
                self.session.stop()
        if not on:
            self._timer.stop()
        self.run_button.blockSignals(True)
        self.run_button.setChecked(on)
        self.run_button.setText("Stop sync" if on else "Start sync")
        self.run_button.blockSignals(False)
        self.refresh()

    def _tempo_changed(self, value: float) -> None:
        if self.session is not None and self.session.running:
            try:
                self.session.set_tempo(value)
            except CadenzaError as exc:
                self.message.emit(str(exc))

    def refresh(self) -> None:
        """Tempo, beat and peers from the session (the timer calls this every 30 ms)."""
        session = self.session
        if session is None or not session.running:
            self.lights.set_beat(None)
            self.state_label.setText("Stopped")
            self.peers_label.setText("")
            return
        beat = session.beat(time.perf_counter())
        bpm = session.bpm
        self.lights.set_beat(beat)
        if session.source == "midi-clock" and beat is None:
            self.state_label.setText("Waiting for the clock's Start")
        else:
            tempo = f"{bpm:.1f} BPM" if bpm else "tempo not known yet"
            where = "" if beat is None else \
                f" · bar {int(beat // BEATS_PER_BAR) + 1}, beat {int(beat % BEATS_PER_BAR) + 1}"
            self.state_label.setText(tempo + where)
        if session.source == "link" and bpm and self.tempo_spin.value() != round(bpm, 1) \
                and not self.tempo_spin.hasFocus():
            self.tempo_spin.blockSignals(True)
            self.tempo_spin.setValue(bpm)
            self.tempo_spin.blockSignals(False)
        peers = session.peers
        self.peers_label.setText("" if peers is None else
                                 f"Link: {peers} peer{'s' if peers != 1 else ''}")

    def session_bpm(self) -> float | None:
        """The session's tempo while sync runs (None when off or not known yet)."""
        session = self.session
        if session is None or not session.running:
            return None
        bpm = session.bpm
        return float(bpm) if bpm and 20.0 <= bpm <= 400.0 else None

    def next_time(self, t: float, every: float = 1.0) -> float:
        """The next grid point (see :meth:`app.sync.SyncSession.next_time`); ``t`` when
        sync is off. Called from the duet's model thread: it only reads the session."""
        session = self.session
        if session is None or not session.running:
            return t
        return session.next_time(t, every)

    def next_bar(self, t: float) -> tuple[float, int] | None:
        """The session's next bar line at or after ``t``: its perf_counter time and its number
        (1 for the first bar); None when sync is off or its beat is not known (a MIDI clock
        that has not started)."""
        session = self.session
        if session is None or not session.running or session.beat(t) is None:
            return None
        at = session.next_time(t, float(BEATS_PER_BAR))
        beat = session.beat(at)
        if beat is None:
            return None
        return at, int(round(beat / BEATS_PER_BAR)) + 1

    def stop(self) -> None:
        """Stop syncing and close the clock ports (the panel lets go of its devices)."""
        self.set_running(False)
        self.session = None
