"""A waveform view: a min/max envelope per pixel column, cached per zoom level, and a playhead."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QScrollBar, QVBoxLayout, QWidget

from app.widgets.piano_roll import ZoomBar, _nice_step, _time_label

if TYPE_CHECKING:
    from models.audio_io import Audio

RULER_HEIGHT = 22
MIN_SPP, MAX_SPP = 1, 1 << 20


class WaveformView(QWidget):
    """Shows one ``Audio`` (mixed to mono for display). Zoom = samples per pixel column."""

    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 100)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._mono: np.ndarray = np.zeros(0, dtype=np.float32)
        self.sample_rate = 44100
        self.samples_per_pixel = 512
        self.offset_column = 0  # first visible column at the current zoom
        self.playhead: float | None = None
        self.follow_playhead = True
        self.placeholder = "Select an audio clip to see its waveform"
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.envelope_computations = 0  # how often an envelope was computed (cache misses)
        self._auto_fit = True  # keep the whole clip in view on resize until the user zooms

    # ------------------------------------------------------------------ data
    def set_audio(self, audio: Audio | None) -> None:
        if audio is None:
            self._mono = np.zeros(0, dtype=np.float32)
        else:
            samples = np.asarray(audio.samples, dtype=np.float32)
            self._mono = samples.mean(axis=1) if samples.ndim == 2 else samples
            self.sample_rate = int(audio.sample_rate)
        self._cache.clear()
        self.playhead = None
        self.offset_column = 0
        self.fit()

    @property
    def frames(self) -> int:
        return int(self._mono.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.frames else 0.0

    @property
    def cached_zoom_levels(self) -> list[int]:
        return sorted(self._cache)

    def envelope(self, samples_per_pixel: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mins, maxs) per column for the whole clip at this zoom; computed once, cached."""
        spp = int(samples_per_pixel or self.samples_per_pixel)
        if spp not in self._cache:
            self.envelope_computations += 1
            n = self.frames
            cols = max(1, math.ceil(n / spp))
            padded = np.zeros(cols * spp, dtype=np.float32)
            padded[:n] = self._mono
            blocks = padded.reshape(cols, spp)
            self._cache[spp] = (blocks.min(axis=1), blocks.max(axis=1))
        return self._cache[spp]

    # ------------------------------------------------------------------ view
    def _plot(self) -> QRectF:
        return QRectF(0, RULER_HEIGHT, self.width(), max(1, self.height() - RULER_HEIGHT))

    def total_columns(self) -> int:
        return max(1, math.ceil(self.frames / self.samples_per_pixel))

    def visible_time_range(self) -> tuple[float, float]:
        t0 = self.offset_column * self.samples_per_pixel / self.sample_rate
        return (t0, t0 + self.width() * self.samples_per_pixel / self.sample_rate)

    def fit(self) -> None:
        """The whole clip in view, from its start."""
        self._auto_fit = True
        width = max(1, self.width())
        spp = math.ceil(max(1, self.frames) / width)
        self.samples_per_pixel = int(max(MIN_SPP, min(MAX_SPP, spp)))
        self.set_offset_column(0)

    def set_zoom(self, samples_per_pixel: int, anchor_x: float | None = None) -> None:
        anchor_x = self.width() / 2 if anchor_x is None else anchor_x
        anchor_frame = (self.offset_column + anchor_x) * self.samples_per_pixel
        spp = int(max(MIN_SPP, min(MAX_SPP, samples_per_pixel)))
        self.samples_per_pixel = spp
        self.set_offset_column(int(anchor_frame / spp - anchor_x))

    def zoom_in(self) -> None:
        self._auto_fit = False
        self.set_zoom(max(1, self.samples_per_pixel // 2))

    def zoom_out(self) -> None:
        self._auto_fit = False
        self.set_zoom(self.samples_per_pixel * 2)

    def set_offset_column(self, column: int) -> None:
        limit = max(0, self.total_columns() - self.width() // 2)
        self.offset_column = max(0, min(limit, int(column)))
        self.view_changed.emit()
        self.update()

    def set_playhead(self, seconds: float | None) -> None:
        self.playhead = seconds
        if seconds is not None and self.follow_playhead:
            t0, t1 = self.visible_time_range()
            if not t0 <= seconds < t1:
                col = int(seconds * self.sample_rate / self.samples_per_pixel)
                self.set_offset_column(col - self.width() // 10)
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0 or event.angleDelta().x() / 120.0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            spp = self.samples_per_pixel * (0.5 if steps > 0 else 2.0)
            self._auto_fit = False
            self.set_zoom(int(spp), event.position().x())
        else:
            self.set_offset_column(self.offset_column - int(steps * self.width() * 0.1))
        event.accept()

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        super().resizeEvent(event)
        if self._auto_fit and self.frames:
            self.fit()
        self.view_changed.emit()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        p = QPainter(self)
        dark = self.palette().window().color().lightness() < 128
        p.fillRect(self.rect(), QColor(30, 32, 36) if dark else QColor(250, 250, 252))
        plot = self._plot()
        mid = plot.center().y()
        half = plot.height() / 2 - 4
        if self.frames:
            p.setPen(QPen(QColor(70, 73, 80) if dark else QColor(200, 203, 210), 1))
            p.drawLine(QPointF(0, mid), QPointF(self.width(), mid))
            mins, maxs = self.envelope()
            first = self.offset_column
            last = min(len(mins), first + self.width() + 1)
            colour = QColor(90, 170, 250) if dark else QColor(40, 110, 200)
            p.setPen(QPen(colour, 1))
            lo = mins[first:last]
            hi = maxs[first:last]
            for i in range(last - first):
                y0 = mid - float(hi[i]) * half
                y1 = mid - float(lo[i]) * half
                p.drawLine(QPointF(i + 0.5, y0), QPointF(i + 0.5, max(y1, y0 + 1)))
        else:
            p.setPen(self.palette().windowText().color())
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
        self._paint_ruler(p, dark)
        if self.playhead is not None:
            x = (self.playhead * self.sample_rate / self.samples_per_pixel) - self.offset_column
            if 0 <= x <= self.width():
                p.setPen(QPen(QColor(255, 90, 80), 2))
                p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        p.end()

    def _paint_ruler(self, p: QPainter, dark: bool) -> None:
        p.fillRect(QRectF(0, 0, self.width(), RULER_HEIGHT),
                   QColor(40, 42, 48) if dark else QColor(232, 234, 238))
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        p.setPen(QColor(200, 202, 210) if dark else QColor(50, 50, 55))
        if not self.frames:
            return
        sec_per_px = self.samples_per_pixel / self.sample_rate
        step = _nice_step(80 * sec_per_px)
        t0, t1 = self.visible_time_range()
        t = math.floor(t0 / step) * step
        while t <= t1:
            x = (t - t0) / sec_per_px
            if x >= 0:
                p.drawLine(QPointF(x, RULER_HEIGHT - 6), QPointF(x, RULER_HEIGHT))
                p.drawText(QPointF(x + 3, RULER_HEIGHT - 8), _time_label(t, step))
            t += step


class WaveformPanel(QWidget):
    """The waveform with zoom buttons and a horizontal scroll bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = WaveformView()
        self.bar = ZoomBar()
        for key in ("vin", "vout"):
            self.bar.buttons[key].hide()
        self.scroll = QScrollBar(Qt.Orientation.Horizontal)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.scroll)
        self.bar.buttons["in"].clicked.connect(self.view.zoom_in)
        self.bar.buttons["out"].clicked.connect(self.view.zoom_out)
        self.bar.buttons["fit"].clicked.connect(self.view.fit)
        self.view.view_changed.connect(self._sync_scroll)
        self.scroll.valueChanged.connect(self._scrolled)
        self._syncing = False

    def set_audio(self, audio: Audio | None, title: str = "") -> None:
        self.view.set_audio(audio)
        self.bar.title.setText(title)

    def _sync_scroll(self) -> None:
        self._syncing = True
        self.scroll.setRange(0, max(0, self.view.total_columns() - self.view.width() // 2))
        self.scroll.setPageStep(max(1, self.view.width()))
        self.scroll.setValue(self.view.offset_column)
        self._syncing = False

    def _scrolled(self, value: int) -> None:
        if not self._syncing:
            self.view.set_offset_column(value)
