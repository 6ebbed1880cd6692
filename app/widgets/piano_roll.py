"""A piano roll drawn with QPainter: keyboard strip, time ruler, notes, playhead.

Only the visible part is drawn: notes are kept sorted by start with a parallel array of starts,
so the visible ones are found with two binary searches (fast for tens of thousands of notes).
Ctrl+wheel zooms time (Ctrl+Shift+wheel zooms pitch), wheel scrolls pitch, Shift+wheel scrolls
time; :class:`PianoRollPanel` adds zoom buttons and a time scroll bar.
"""

from __future__ import annotations

import bisect
import math

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF, QWheelEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollBar, QToolButton, QVBoxLayout, QWidget

from models.sequence import Note, NoteSequence, pitch_name

KEYS_WIDTH = 46
RULER_HEIGHT = 22
BLACK = {1, 3, 6, 8, 10}
MIN_PPS, MAX_PPS = 2.0, 2000.0
MIN_KEY, MAX_KEY = 3.0, 40.0


def velocity_colour(velocity: int, drum: bool = False) -> QColor:
    """Soft notes are pale and blue, louder ones deeper, the loudest turn warm; drums are green."""
    v = max(1, min(127, velocity)) / 127.0
    if drum:
        colour = QColor.fromHsvF(0.36, 0.35 + 0.6 * v, 0.55 + 0.45 * v)
    else:
        # pale, cool blue when soft; saturated, warm orange when loud
        hue = 0.58 + 0.5 * max(0.0, v - 0.35) / 0.65  # blue, violet, then red-orange
        colour = QColor.fromHsvF(hue % 1.0, 0.25 + 0.7 * v, 0.6 + 0.4 * v)
    colour.setAlphaF(0.55 + 0.45 * v)
    return colour


class PianoRoll(QWidget):
    """The roll itself. ``set_sequence`` shows a sequence; ``set_playhead`` moves the line."""

    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 140)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._notes: list[Note] = []
        self._starts: list[float] = []
        self._max_duration = 0.0
        self._total = 0.0
        self.pixels_per_second = 60.0
        self.key_height = 8.0
        self.x_offset = 0.0  # seconds at the left edge
        self.top_pitch = 96.0  # pitch at the top edge (fractional)
        self.playhead: float | None = None
        self.marker: float | None = None  # a dashed line (e.g. where a continuation starts)
        self.time_window: tuple[float, float] | None = None  # kept in view on resize
        self.follow_playhead = True
        self.placeholder = "Select a MIDI clip to see its notes"
        self.painted_notes = 0  # notes drawn by the last paint (for tests and profiling)
        self._auto_fit = True  # refit pitches on resize until the user zooms

    # ------------------------------------------------------------------ data
    def set_sequence(self, seq: NoteSequence | None) -> None:
        notes = sorted(seq.notes, key=lambda n: (n.start, n.pitch)) if seq else []
        self._notes = notes
        self._starts = [n.start for n in notes]
        self._max_duration = max((n.end - n.start for n in notes), default=0.0)
        self._total = max((n.end for n in notes), default=0.0)
        self.x_offset = 0.0
        self.playhead = None
        self.marker = None
        self.time_window = None
        self._auto_fit = True
        self.fit_pitches()
        self.view_changed.emit()

    def set_marker(self, seconds: float | None) -> None:
        """Draw a dashed line at ``seconds`` (``None`` removes it)."""
        self.marker = seconds
        self.update()

    def show_time_window(self, t0: float, t1: float) -> None:
        """Show ``t0..t1`` across the width, and keep showing it when resized (until the user
        zooms or scrolls)."""
        self.time_window = (max(0.0, t0), max(t0 + 0.1, t1))
        self._apply_time_window()

    def _apply_time_window(self) -> None:
        if self.time_window is None:
            return
        t0, t1 = self.time_window
        self.pixels_per_second = max(MIN_PPS, min(MAX_PPS, self.note_area().width() / (t1 - t0)))
        limit = max(0.0, self._total - self.visible_seconds() * 0.5)
        self.x_offset = max(0.0, min(limit, t0))
        self.view_changed.emit()
        self.update()
        self.update()

    @property
    def note_count(self) -> int:
        return len(self._notes)

    @property
    def total_time(self) -> float:
        return self._total

    # ------------------------------------------------------------------ geometry
    def note_area(self) -> QRectF:
        """Where notes are drawn: right of the keys, below the ruler."""
        return QRectF(KEYS_WIDTH, RULER_HEIGHT, max(1, self.width() - KEYS_WIDTH),
                      max(1, self.height() - RULER_HEIGHT))

    def visible_seconds(self) -> float:
        return self.note_area().width() / self.pixels_per_second

    def visible_time_range(self) -> tuple[float, float]:
        return (self.x_offset, self.x_offset + self.visible_seconds())

    def visible_pitch_range(self) -> tuple[int, int]:
        rows = self.note_area().height() / self.key_height
        return (max(0, math.floor(self.top_pitch - rows)), min(127, math.ceil(self.top_pitch)))

    def visible_note_indices(self) -> range:
        """Indices (into the start-sorted notes) that may overlap the visible time range."""
        t0, t1 = self.visible_time_range()
        lo = bisect.bisect_left(self._starts, t0 - self._max_duration)
        hi = bisect.bisect_right(self._starts, t1)
        return range(lo, hi)

    def visible_notes(self) -> list[Note]:
        t0, t1 = self.visible_time_range()
        p0, p1 = self.visible_pitch_range()
        return [n for i in self.visible_note_indices() if (n := self._notes[i]).end > t0
                and p0 <= n.pitch <= p1]

    def time_to_x(self, t: float) -> float:
        return KEYS_WIDTH + (t - self.x_offset) * self.pixels_per_second

    def pitch_to_y(self, pitch: float) -> float:
        return RULER_HEIGHT + (self.top_pitch - pitch) * self.key_height

    # ------------------------------------------------------------------ view control
    def fit_pitches(self) -> None:
        """Zoom the pitch axis to the notes (with a little margin)."""
        if self._notes:
            lo = min(n.pitch for n in self._notes) - 2
            hi = max(n.pitch for n in self._notes) + 3
        else:
            lo, hi = 48, 84
        height = self.note_area().height()
        # Fitting may go below MIN_KEY (the manual zoom limit) so a wide piece still fits.
        self.key_height = max(1.0, min(MAX_KEY, height / max(12, hi - lo)))
        rows = height / self.key_height
        centre = (lo + hi) / 2
        self.top_pitch = min(128.0, max(rows, centre + rows / 2))
        self.update()

    def zoom_time(self, factor: float, anchor_x: float | None = None) -> None:
        self.time_window = None
        area = self.note_area()
        anchor_x = area.center().x() if anchor_x is None else anchor_x
        anchor_t = self.x_offset + (anchor_x - KEYS_WIDTH) / self.pixels_per_second
        self.pixels_per_second = max(MIN_PPS, min(MAX_PPS, self.pixels_per_second * factor))
        self.set_x_offset(anchor_t - (anchor_x - KEYS_WIDTH) / self.pixels_per_second)

    def zoom_pitch(self, factor: float) -> None:
        self._auto_fit = False
        area = self.note_area()
        centre = self.top_pitch - area.height() / self.key_height / 2
        self.key_height = max(MIN_KEY, min(MAX_KEY, self.key_height * factor))
        rows = area.height() / self.key_height
        self.top_pitch = min(128.0, max(rows, centre + rows / 2))
        self.view_changed.emit()
        self.update()

    def zoom_in(self) -> None:
        self.zoom_time(1.25)

    def zoom_out(self) -> None:
        self.zoom_time(0.8)

    def set_x_offset(self, seconds: float) -> None:
        self.time_window = None
        limit = max(0.0, self._total - self.visible_seconds() * 0.5)
        self.x_offset = max(0.0, min(limit, seconds))
        self.view_changed.emit()
        self.update()

    def scroll_pitch(self, semitones: float) -> None:
        rows = self.note_area().height() / self.key_height
        self.top_pitch = max(rows, min(128.0, self.top_pitch + semitones))
        self.update()

    def set_playhead(self, seconds: float | None) -> None:
        self.playhead = seconds
        if seconds is not None and self.follow_playhead:
            t0, t1 = self.visible_time_range()
            if not t0 <= seconds < t1:
                self.set_x_offset(seconds - 0.1 * (t1 - t0))
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0 or event.angleDelta().x() / 120.0
        mods = event.modifiers()
        if mods & Qt.KeyboardModifier.ControlModifier:
            factor = 1.2 ** steps
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.zoom_pitch(factor)
            else:
                self.zoom_time(factor, event.position().x())
        elif mods & Qt.KeyboardModifier.ShiftModifier or event.angleDelta().x():
            self.set_x_offset(self.x_offset - steps * 0.1 * self.visible_seconds())
        else:
            self.scroll_pitch(steps * 3)
        event.accept()

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit_pitches()
        self._apply_time_window()
        rows = self.note_area().height() / self.key_height
        self.top_pitch = max(rows, min(128.0, self.top_pitch))
        self.view_changed.emit()

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        p = QPainter(self)
        pal = self.palette()
        dark = pal.window().color().lightness() < 128
        bg = QColor(30, 32, 36) if dark else QColor(250, 250, 252)
        lane_black = QColor(24, 25, 29) if dark else QColor(236, 238, 242)
        grid = QColor(58, 61, 68) if dark else QColor(210, 213, 220)
        text = pal.windowText().color()
        area = self.note_area()
        p.fillRect(self.rect(), bg)
        p0, p1 = self.visible_pitch_range()

        # pitch lanes
        for pitch in range(p0, p1 + 1):
            y = self.pitch_to_y(pitch + 1)
            if pitch % 12 in BLACK:
                p.fillRect(QRectF(area.left(), y, area.width(), self.key_height), lane_black)
            if pitch % 12 == 0:
                p.setPen(QPen(grid, 1))
                p.drawLine(QPointF(area.left(), y + self.key_height),
                           QPointF(area.right(), y + self.key_height))

        # time grid (seconds)
        t0, t1 = self.visible_time_range()
        step = _nice_step(80 / self.pixels_per_second)
        p.setPen(QPen(grid, 1))
        t = math.floor(t0 / step) * step
        while t <= t1:
            x = self.time_to_x(t)
            if x >= area.left():
                p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
            t += step

        # notes
        p.setClipRect(area)
        h = max(1.0, self.key_height - 1)
        outline = QColor(0, 0, 0, 90) if dark else QColor(0, 0, 0, 60)
        drawn = 0
        for note in self.visible_notes():
            y = self.pitch_to_y(note.pitch + 1)
            colour = velocity_colour(note.velocity, note.is_drum)
            if note.is_drum:
                x = self.time_to_x(note.start)
                r = h / 2 + 1
                cy = y + self.key_height / 2
                poly = QPolygonF([QPointF(x, cy - r), QPointF(x + r, cy), QPointF(x, cy + r),
                                  QPointF(x - r, cy)])
                p.setPen(QPen(outline, 1))
                p.setBrush(colour)
                p.drawPolygon(poly)
            else:
                x0 = self.time_to_x(note.start)
                w = max(1.5, (note.end - note.start) * self.pixels_per_second)
                p.fillRect(QRectF(x0, y + 0.5, w, h), colour)
                if w > 4 and h > 4:
                    p.setPen(QPen(outline, 1))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(QRectF(x0, y + 0.5, w, h))
            drawn += 1
        self.painted_notes = drawn
        p.setClipping(False)

        if not self._notes:
            p.setPen(text)
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)

        self._paint_keys(p, dark, p0, p1)
        self._paint_ruler(p, dark, t0, t1, step)

        if self.marker is not None:
            x = self.time_to_x(self.marker)
            if x >= area.left():
                p.setPen(QPen(QColor(240, 200, 90), 1.5, Qt.PenStyle.DashLine))
                p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
        if self.playhead is not None:
            x = self.time_to_x(self.playhead)
            if x >= area.left():
                p.setPen(QPen(QColor(255, 90, 80), 2))
                p.drawLine(QPointF(x, 0), QPointF(x, area.bottom()))
        p.end()

    def _paint_keys(self, p: QPainter, dark: bool, p0: int, p1: int) -> None:
        strip = QRectF(0, RULER_HEIGHT, KEYS_WIDTH, self.height() - RULER_HEIGHT)
        p.setClipRect(strip)
        p.fillRect(strip, QColor(214, 216, 222) if dark else QColor(252, 252, 252))
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, min(8.5, self.key_height * 0.75)))
        p.setFont(font)
        black_w = KEYS_WIDTH * 0.58
        every_key = self.key_height >= 13
        for pitch in range(p0, p1 + 1):
            y = self.pitch_to_y(pitch + 1)
            pc = pitch % 12
            if pc in BLACK:
                p.fillRect(QRectF(0, y, black_w, self.key_height), QColor(22, 22, 26))
            elif pc in (0, 5):  # the line under C and F, between two white keys
                p.setPen(QColor(150, 152, 160))
                p.drawLine(QPointF(0, y + self.key_height), QPointF(KEYS_WIDTH,
                                                                    y + self.key_height))
            if pc == 0 or (every_key and pc not in BLACK):
                p.setPen(QColor(30, 30, 34))
                rect = QRectF(0, y + self.key_height - 14, KEYS_WIDTH - 3, 14)
                p.drawText(rect, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignRight,
                           pitch_name(pitch, sharp="♯"))
        p.setClipping(False)
        p.setPen(QColor(80, 82, 90))
        p.drawLine(QPointF(KEYS_WIDTH - 0.5, RULER_HEIGHT), QPointF(KEYS_WIDTH - 0.5,
                                                                    self.height()))

    def _paint_ruler(self, p: QPainter, dark: bool, t0: float, t1: float, step: float) -> None:
        p.fillRect(QRectF(0, 0, self.width(), RULER_HEIGHT),
                   QColor(40, 42, 48) if dark else QColor(232, 234, 238))
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        p.setPen(QColor(200, 202, 210) if dark else QColor(50, 50, 55))
        t = math.floor(t0 / step) * step
        while t <= t1:
            x = self.time_to_x(t)
            if x >= KEYS_WIDTH:
                p.drawLine(QPointF(x, RULER_HEIGHT - 6), QPointF(x, RULER_HEIGHT))
                p.drawText(QPointF(x + 3, RULER_HEIGHT - 8), _time_label(t, step))
            t += step
        p.fillRect(QRectF(0, 0, KEYS_WIDTH, RULER_HEIGHT),
                   QColor(40, 42, 48) if dark else QColor(232, 234, 238))
        p.drawText(QRectF(0, 0, KEYS_WIDTH - 4, RULER_HEIGHT),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, "sec")


def _nice_step(min_seconds: float) -> float:
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if step >= min_seconds:
            return float(step)
    return 1200.0


def _time_label(t: float, step: float) -> str:
    if t >= 60:
        m, s = divmod(t, 60)
        return f"{int(m)}:{s:0{4 if step < 1 else 2}.{1 if step < 1 else 0}f}"
    return f"{t:.{2 if step < 0.1 else 1 if step < 1 else 0}f}"


class ZoomBar(QWidget):
    """A title label and zoom buttons, shared by the piano roll and waveform panels."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("")
        self.title.setObjectName("clipTitle")
        row.addWidget(self.title, 1)
        self.buttons: dict[str, QToolButton] = {}
        for key, text, tip in (
            ("out", "−", "Zoom out in time (Ctrl+wheel)"),
            ("in", "+", "Zoom in in time (Ctrl+wheel)"),
            ("vout", "↕−", "Zoom out in pitch (Ctrl+Shift+wheel)"),
            ("vin", "↕+", "Zoom in in pitch (Ctrl+Shift+wheel)"),
            ("fit", "Fit", "Show the whole clip"),
        ):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setAutoRaise(True)
            row.addWidget(b)
            self.buttons[key] = b


class PianoRollPanel(QWidget):
    """The roll with zoom buttons and a horizontal scroll bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.roll = PianoRoll()
        self.bar = ZoomBar()
        self.scroll = QScrollBar(Qt.Orientation.Horizontal)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.bar)
        layout.addWidget(self.roll, 1)
        layout.addWidget(self.scroll)
        self.bar.buttons["in"].clicked.connect(self.roll.zoom_in)
        self.bar.buttons["out"].clicked.connect(self.roll.zoom_out)
        self.bar.buttons["vin"].clicked.connect(lambda: self.roll.zoom_pitch(1.25))
        self.bar.buttons["vout"].clicked.connect(lambda: self.roll.zoom_pitch(0.8))
        self.bar.buttons["fit"].clicked.connect(self.fit)
        self.roll.view_changed.connect(self._sync_scroll)
        self.scroll.valueChanged.connect(self._scrolled)
        self._syncing = False

    def set_sequence(self, seq: NoteSequence | None, title: str = "") -> None:
        self.roll.set_sequence(seq)
        self.bar.title.setText(title)

    def fit(self) -> None:
        total = max(1.0, self.roll.total_time)
        self.roll.pixels_per_second = max(MIN_PPS, self.roll.note_area().width() / total)
        self.roll.set_x_offset(0.0)
        self.roll.fit_pitches()

    def _sync_scroll(self) -> None:
        self._syncing = True
        page = self.roll.visible_seconds()
        self.scroll.setRange(0, int(max(0.0, self.roll.total_time - page * 0.5) * 100))
        self.scroll.setPageStep(int(page * 100))
        self.scroll.setValue(int(self.roll.x_offset * 100))
        self._syncing = False

    def _scrolled(self, value: int) -> None:
        if not self._syncing:
            self.roll.set_x_offset(value / 100.0)
