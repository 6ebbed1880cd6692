"""A piano roll drawn with QPainter: keyboard strip, ruler, notes, playhead.

Only the visible part is drawn: notes are kept sorted by start with a parallel array of starts,
so the visible ones are found with two binary searches (fast for tens of thousands of notes).
Ctrl+wheel zooms time (Ctrl+Shift+wheel zooms pitch), wheel scrolls pitch, Shift+wheel scrolls
time; :class:`PianoRollPanel` adds zoom buttons and a time scroll bar.

Time stays in seconds on the x axis (``time_to_x``, ``set_playhead(seconds)``); the ruler and the
grid count **bars and beats** from the clip's own tempo map and time signatures
(:class:`models.beats.BarGrid`: tempo and metre changes move the bar lines, compound metres such
as 6/8 count dotted-quarter beats), with bar numbers and the metre at the left; the context menu
(or the panel's ``sec`` button) switches the ruler to seconds. A sequence without any tempo or
time signature (what the live panel builds as you play) has no bars to count: it shows seconds.

A clip whose notes are all on the GM drum channel is drawn as **drum lanes** instead of pitches:
Magenta's nine drum classes (``DRUM_TYPE_PITCHES`` of the MusicVAE converters, the grouping the
drum model hears), named on the left (kick at the bottom, cymbals at the top), plus an "Other"
lane for GM percussion outside them. Rows are then lanes: ``pitch_to_y`` and the pitch range
speak of lane rows (0 is the bottom lane).
"""

from __future__ import annotations

import bisect
import math

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QContextMenuEvent, QFont, QPainter, QPen, QPolygonF, QWheelEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QScrollBar,
    QToolButton,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from models.beats import BAR, BEAT, STEP, BarGrid
from models.music_vae.converters import DRUM_TYPE_PITCHES
from models.sequence import Note, NoteSequence, pitch_name

KEYS_WIDTH = 46
DRUM_KEYS_WIDTH = 76  # room for the lane names
RULER_HEIGHT = 22
BLACK = {1, 3, 6, 8, 10}
MIN_PPS, MAX_PPS = 2.0, 2000.0
MIN_KEY, MAX_KEY = 3.0, 40.0
READ_KEY = 5.0  # pixels per semitone a result card gets at least, to read its notes
READ_LANE = 14.0  # pixels per drum lane, likewise
MIN_ROLL_HEIGHT, MAX_ROLL_HEIGHT = 120, 460
BAR_LABEL_PX = 30  # bar numbers at least this far apart (every 2nd, 4th, ... bar when closer)

# Magenta's nine drum classes, top to bottom as a drum machine lists them (cymbals above, then
# toms, snare, and the kick at the bottom): (name shown, full name, class in DRUM_TYPE_PITCHES).
DRUM_LANES = (
    ("Crash", "crash cymbal", 7),
    ("Ride", "ride cymbal", 8),
    ("Open HH", "open hi-hat", 3),
    ("Closed HH", "closed hi-hat (and pedal)", 2),
    ("High tom", "high tom", 6),
    ("Mid tom", "mid tom", 5),
    ("Low tom", "low tom (and floor toms)", 4),
    ("Snare", "snare (side stick, claps, rim)", 1),
    ("Kick", "bass drum", 0),
)
OTHER_LANE = ("Other", "other percussion")


def drum_lane_name(pitch: int) -> str:
    """The lane a GM drum pitch is drawn in ("Kick" for 35 and 36, "Other" outside the nine)."""
    for name, _full, cls in DRUM_LANES:
        if pitch in DRUM_TYPE_PITCHES[cls]:
            return name
    return OTHER_LANE[0]


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
    ruler_changed = Signal(bool)  # True: the ruler counts seconds (the user switched it)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(240, 140)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._notes: list[Note] = []
        self._starts: list[float] = []
        self._rows: list[int] = []  # the row each note is drawn in (its pitch, or its lane)
        self._max_duration = 0.0
        self._total = 0.0
        self._length = 0.0  # a nominal length (a model's window), shown even where it is silent
        self._grid: BarGrid | None = None
        self._lanes: list[tuple[str, str]] = []  # drum lanes, bottom row first; [] for pitches
        self._pitch_span: tuple[int, int] | None = None  # fit to this range instead of the notes
        self.keys_width = float(KEYS_WIDTH)
        self.pixels_per_second = 60.0
        self.key_height = 8.0
        self.x_offset = 0.0  # seconds at the left edge
        self.top_pitch = 96.0  # row at the top edge (fractional): a pitch, or a drum lane
        self.playhead: float | None = None
        self.marker: float | None = None  # a dashed line (e.g. where a continuation starts)
        self.time_window: tuple[float, float] | None = None  # kept in view on resize
        self.follow_playhead = True
        self.ruler_seconds = False  # the user's choice: seconds instead of bars and beats
        self.placeholder = "Select a MIDI clip to see its notes"
        self.painted_notes = 0  # notes drawn by the last paint (for tests and profiling)
        self.painted_bars: list[tuple[int, float]] = []  # (bar, x) of the last paint's numbers
        self.painted_beats: list[tuple[int, int, float]] = []  # (bar, beat, x) of its beat ticks
        self._auto_fit = True  # refit pitches on resize until the user zooms

    # ------------------------------------------------------------------ data
    def set_sequence(self, seq: NoteSequence | None) -> None:
        notes = sorted(seq.notes, key=lambda n: (n.start, n.pitch)) if seq else []
        self._notes = notes
        self._starts = [n.start for n in notes]
        self._max_duration = max((n.end - n.start for n in notes), default=0.0)
        self._total = max((n.end for n in notes), default=0.0)
        self._length = 0.0
        self._pitch_span = None
        self._grid = BarGrid(seq.tempos, seq.time_signatures) \
            if seq is not None and (seq.tempos or seq.time_signatures) else None
        if notes and all(n.is_drum for n in notes):
            lanes = [(name, full) for name, full, _cls in reversed(DRUM_LANES)]
            row_of = {p: i for i, (_n, _f, cls) in enumerate(reversed(DRUM_LANES))
                      for p in DRUM_TYPE_PITCHES[cls]}
            if any(n.pitch not in row_of for n in notes):
                lanes.append(OTHER_LANE)
            self._lanes = lanes
            self._rows = [row_of.get(n.pitch, len(DRUM_LANES)) for n in notes]
            self.keys_width = float(DRUM_KEYS_WIDTH)
        else:
            self._lanes = []
            self._rows = [n.pitch for n in notes]
            self.keys_width = float(KEYS_WIDTH)
        self.x_offset = 0.0
        self.playhead = None
        self.marker = None
        self.time_window = None
        self._auto_fit = True
        self.fit_pitches()
        self.view_changed.emit()

    def set_length(self, seconds: float) -> None:
        """Treat the clip as ``seconds`` long even where its last notes end earlier (a model's
        window of 2 bars is 2 bars, rests included): Fit and scrolling reach its end."""
        self._length = max(0.0, seconds)
        self.view_changed.emit()
        self.update()

    def set_pitch_range(self, lo: int, hi: int) -> None:
        """Fit the pitch axis to ``lo..hi`` rather than to this clip's own notes (cards side by
        side share one range, so a note is at the same height in each)."""
        self._pitch_span = (min(lo, hi), max(lo, hi))
        self._auto_fit = True
        self.fit_pitches()

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
        limit = max(0.0, self.total_time - self.visible_seconds() * 0.5)
        self.x_offset = max(0.0, min(limit, t0))
        self.view_changed.emit()
        self.update()

    def set_ruler_seconds(self, seconds: bool) -> None:
        """Count the ruler in seconds (True) or in bars and beats (False, the default)."""
        if seconds != self.ruler_seconds:
            self.ruler_seconds = seconds
            self.ruler_changed.emit(seconds)
            self.update()

    @property
    def note_count(self) -> int:
        return len(self._notes)

    @property
    def total_time(self) -> float:
        """Where the clip ends: its last note's end, or its nominal length when later."""
        return max(self._total, self._length)

    @property
    def bar_grid(self) -> BarGrid | None:
        """The clip's bars and beats (None when it has no tempo or time signature at all)."""
        return self._grid

    @property
    def shows_bars(self) -> bool:
        """Whether the ruler and grid count bars and beats now (else seconds)."""
        return self._grid is not None and not self.ruler_seconds

    @property
    def is_drum_view(self) -> bool:
        return bool(self._lanes)

    def lane_names(self) -> list[str]:
        """The drum lanes, top to bottom ([] when pitches are shown)."""
        return [name for name, _full in reversed(self._lanes)]

    def row_of(self, note: Note) -> int:
        """The row ``note`` is drawn in: its pitch, or its drum lane (0 at the bottom)."""
        if not self._lanes:
            return note.pitch
        name = drum_lane_name(note.pitch)
        return next(i for i, (lane, _full) in enumerate(self._lanes) if lane == name)

    @property
    def row_count(self) -> int:
        return len(self._lanes) if self._lanes else 128

    # ------------------------------------------------------------------ geometry
    def note_area(self) -> QRectF:
        """Where notes are drawn: right of the keys, below the ruler."""
        return QRectF(self.keys_width, RULER_HEIGHT, max(1, self.width() - self.keys_width),
                      max(1, self.height() - RULER_HEIGHT))

    def visible_seconds(self) -> float:
        return self.note_area().width() / self.pixels_per_second

    def visible_time_range(self) -> tuple[float, float]:
        return (self.x_offset, self.x_offset + self.visible_seconds())

    def visible_pitch_range(self) -> tuple[int, int]:
        """The rows in view (pitches, or drum lanes in a drum view)."""
        rows = self.note_area().height() / self.key_height
        return (max(0, math.floor(self.top_pitch - rows)),
                min(self.row_count - 1, math.ceil(self.top_pitch)))

    def visible_note_indices(self) -> range:
        """Indices (into the start-sorted notes) that may overlap the visible time range."""
        t0, t1 = self.visible_time_range()
        lo = bisect.bisect_left(self._starts, t0 - self._max_duration)
        hi = bisect.bisect_right(self._starts, t1)
        return range(lo, hi)

    def _visible(self) -> list[tuple[Note, int]]:
        t0, _t1 = self.visible_time_range()
        p0, p1 = self.visible_pitch_range()
        return [(n, row) for i in self.visible_note_indices()
                if (n := self._notes[i]).end > t0 and p0 <= (row := self._rows[i]) <= p1]

    def visible_notes(self) -> list[Note]:
        return [n for n, _row in self._visible()]

    def time_to_x(self, t: float) -> float:
        return self.keys_width + (t - self.x_offset) * self.pixels_per_second

    def x_to_time(self, x: float) -> float:
        return self.x_offset + (x - self.keys_width) / self.pixels_per_second

    def pitch_to_y(self, pitch: float) -> float:
        """The y of a row's upper edge is ``pitch_to_y(row + 1)`` (rows are pitches, or lanes)."""
        return RULER_HEIGHT + (self.top_pitch - pitch) * self.key_height

    def preferred_height(self) -> int:
        """A height at which every note can be read: the rows the clip uses (or the range set
        with :meth:`set_pitch_range`) at ``READ_KEY`` pixels per semitone, or ``READ_LANE`` per
        drum lane, within ``MIN_ROLL_HEIGHT..MAX_ROLL_HEIGHT``."""
        if self._lanes:
            body = len(self._lanes) * READ_LANE
        else:
            lo, hi = self._fit_span()
            body = max(12, hi - lo) * READ_KEY
        return int(max(MIN_ROLL_HEIGHT, min(MAX_ROLL_HEIGHT, RULER_HEIGHT + body)))

    # ------------------------------------------------------------------ view control
    def _fit_span(self) -> tuple[int, int]:
        if self._pitch_span is not None:
            lo, hi = self._pitch_span
        elif self._notes:
            lo, hi = min(self._rows), max(self._rows)
        else:
            return (48, 84)
        return (lo - 2, hi + 3)

    def fit_pitches(self) -> None:
        """Zoom the pitch axis to the notes (with a little margin); a drum view shows all its
        lanes."""
        height = self.note_area().height()
        if self._lanes:
            self.key_height = max(1.0, height / len(self._lanes))
            self.top_pitch = float(len(self._lanes))
            self.update()
            return
        lo, hi = self._fit_span()
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
        anchor_t = self.x_to_time(anchor_x)
        self.pixels_per_second = max(MIN_PPS, min(MAX_PPS, self.pixels_per_second * factor))
        self.set_x_offset(anchor_t - (anchor_x - self.keys_width) / self.pixels_per_second)

    def zoom_pitch(self, factor: float) -> None:
        self._auto_fit = False
        area = self.note_area()
        centre = self.top_pitch - area.height() / self.key_height / 2
        top = max(MAX_KEY, area.height() / max(1, len(self._lanes))) if self._lanes else MAX_KEY
        self.key_height = max(MIN_KEY, min(top, self.key_height * factor))
        rows = area.height() / self.key_height
        self.top_pitch = min(float(self.row_count), max(rows, centre + rows / 2))
        self.view_changed.emit()
        self.update()

    def zoom_in(self) -> None:
        self.zoom_time(1.25)

    def zoom_out(self) -> None:
        self.zoom_time(0.8)

    def set_x_offset(self, seconds: float) -> None:
        self.time_window = None
        limit = max(0.0, self.total_time - self.visible_seconds() * 0.5)
        self.x_offset = max(0.0, min(limit, seconds))
        self.view_changed.emit()
        self.update()

    def scroll_pitch(self, semitones: float) -> None:
        rows = self.note_area().height() / self.key_height
        self.top_pitch = max(rows, min(float(self.row_count), self.top_pitch + semitones))
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
            self.scroll_pitch(steps * (1 if self._lanes else 3))
        event.accept()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt override
        menu = QMenu(self)
        seconds = menu.addAction("Ruler in seconds")
        seconds.setCheckable(True)
        seconds.setChecked(self.ruler_seconds or self._grid is None)
        seconds.setEnabled(self._grid is not None)
        seconds.toggled.connect(self.set_ruler_seconds)
        fit = menu.addAction("Fit pitches" if not self._lanes else "Fit lanes")
        fit.triggered.connect(self.fit_pitches)
        menu.exec(event.globalPos())

    def position_text(self, x: float, y: float) -> str:
        """What is under a point, in words: bar and beat, time, metre and tempo, and the pitch
        or drum lane (the roll's tooltip)."""
        t = max(0.0, self.x_to_time(x))
        parts = []
        if self._grid is not None:
            bar, beat, _frac = self._grid.position(t)
            num, den = self._grid.time_signature_at(t)
            parts.append(f"bar {bar}, beat {beat} ({num}/{den}, ♩ = "
                         f"{self._grid.qpm_at(t):.0f})")
        parts.append(_time_label(t, 0.05) + " s")
        if y >= RULER_HEIGHT:
            row = math.floor(self.top_pitch - (y - RULER_HEIGHT) / self.key_height)
            if self._lanes and 0 <= row < len(self._lanes):
                parts.append(self._lanes[row][1])
            elif not self._lanes and 0 <= row < 128:
                parts.append(pitch_name(row))
        return " · ".join(parts)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and self._notes:
            pos = event.pos()  # type: ignore[attr-defined]
            if pos.x() >= self.keys_width:
                QToolTip.showText(event.globalPos(),  # type: ignore[attr-defined]
                                  self.position_text(pos.x(), pos.y()), self)
                return True
        return super().event(event)

    def resizeEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit_pitches()
        self._apply_time_window()
        rows = self.note_area().height() / self.key_height
        self.top_pitch = max(rows, min(float(self.row_count), self.top_pitch))
        self.view_changed.emit()

    # ------------------------------------------------------------------ painting
    def _grid_level(self) -> tuple[int, int, int]:
        """How fine the bar grid is drawn at this zoom: ``(level, line_every, label_every)``:
        beats and sixteenths only where they are far enough apart; when bars are narrow, a
        line and a number on every 2nd, 4th, ... bar."""
        assert self._grid is not None
        px_quarter = self.pixels_per_second * 60.0 / self._grid.max_qpm
        num, den = self._grid.time_signature_at(self.x_offset)
        bar_px = px_quarter * num * 4.0 / den
        level = STEP if px_quarter / 4 >= 7 else BEAT if px_quarter >= 8 else BAR
        line_every = label_every = 1
        while bar_px * line_every < 6:
            line_every *= 2
        while bar_px * label_every < BAR_LABEL_PX:
            label_every *= 2
        return level, line_every, label_every

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

        # pitch lanes (black keys shaded, a line under each C) or drum lanes (every other shaded)
        for row in range(p0, p1 + 1):
            y = self.pitch_to_y(row + 1)
            if (row % 2 == 1) if self._lanes else (row % 12 in BLACK):
                p.fillRect(QRectF(area.left(), y, area.width(), self.key_height), lane_black)
            if self._lanes or row % 12 == 0:
                p.setPen(QPen(grid, 1))
                p.drawLine(QPointF(area.left(), y + self.key_height),
                           QPointF(area.right(), y + self.key_height))

        # time grid: bars, beats and sixteenths; or seconds
        t0, t1 = self.visible_time_range()
        step = _nice_step(80 / self.pixels_per_second)
        if self.shows_bars:
            assert self._grid is not None
            level, line_every, _label = self._grid_level()
            pens = {BAR: QPen(QColor(96, 100, 110) if dark else QColor(150, 154, 164), 1),
                    BEAT: QPen(grid, 1),
                    STEP: QPen(QColor(42, 44, 50) if dark else QColor(230, 232, 237), 1)}
            for line in self._grid.lines(t0, t1, level):
                if line.level == BAR and (line.bar - 1) % line_every:
                    continue
                x = self.time_to_x(line.time)
                if x >= area.left():
                    p.setPen(pens[line.level])
                    p.drawLine(QPointF(x, area.top()), QPointF(x, area.bottom()))
        else:
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
        for note, row in self._visible():
            y = self.pitch_to_y(row + 1)
            colour = velocity_colour(note.velocity, note.is_drum)
            if note.is_drum:
                x = self.time_to_x(note.start)
                cy = y + self.key_height / 2
                if self._lanes:  # tall in a lane, never wider than a third of a sixteenth
                    ry = max(2.0, min(7.0, self.key_height / 2 - 2))
                    qpm = self._grid.qpm_at(note.start) if self._grid else 120.0
                    rx = max(2.0, min(ry, 0.35 * self.pixels_per_second * 15.0 / qpm))
                else:
                    ry = rx = h / 2 + 1
                poly = QPolygonF([QPointF(x, cy - ry), QPointF(x + rx, cy), QPointF(x, cy + ry),
                                  QPointF(x - rx, cy)])
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

        if self._lanes:
            self._paint_lanes(p, dark, p0, p1)
        else:
            self._paint_keys(p, dark, p0, p1)
        if self.shows_bars:
            self._paint_bar_ruler(p, dark, t0, t1)
        else:
            self.painted_bars, self.painted_beats = [], []
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

    def _begin_strip(self, p: QPainter, background: QColor, point_size: float) -> None:
        """The strip left of the notes (keys or lane names): clipped, filled, its font set."""
        strip = QRectF(0, RULER_HEIGHT, self.keys_width, self.height() - RULER_HEIGHT)
        p.setClipRect(strip)
        p.fillRect(strip, background)
        font = QFont(self.font())
        font.setPointSizeF(point_size)
        p.setFont(font)

    def _end_strip(self, p: QPainter) -> None:
        """Unclip, and the strip's border against the notes."""
        kw = self.keys_width
        p.setClipping(False)
        p.setPen(QColor(80, 82, 90))
        p.drawLine(QPointF(kw - 0.5, RULER_HEIGHT), QPointF(kw - 0.5, self.height()))

    def _paint_keys(self, p: QPainter, dark: bool, p0: int, p1: int) -> None:
        kw = self.keys_width
        self._begin_strip(p, QColor(214, 216, 222) if dark else QColor(252, 252, 252),
                          max(6.5, min(8.5, self.key_height * 0.75)))
        black_w = kw * 0.58
        every_key = self.key_height >= 13
        for pitch in range(p0, p1 + 1):
            y = self.pitch_to_y(pitch + 1)
            pc = pitch % 12
            if pc in BLACK:
                p.fillRect(QRectF(0, y, black_w, self.key_height), QColor(22, 22, 26))
            elif pc in (0, 5):  # the line under C and F, between two white keys
                p.setPen(QColor(150, 152, 160))
                p.drawLine(QPointF(0, y + self.key_height), QPointF(kw, y + self.key_height))
            if pc == 0 or (every_key and pc not in BLACK):
                p.setPen(QColor(30, 30, 34))
                rect = QRectF(0, y + self.key_height - 14, kw - 3, 14)
                p.drawText(rect, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignRight,
                           pitch_name(pitch, sharp="♯"))
        self._end_strip(p)

    def _paint_lanes(self, p: QPainter, dark: bool, p0: int, p1: int) -> None:
        """The drum lanes' names where the keys would be."""
        kw = self.keys_width
        self._begin_strip(p, QColor(214, 216, 222) if dark else QColor(246, 246, 248),
                          max(6.0, min(8.5, self.key_height * 0.6)))
        for row in range(p0, p1 + 1):
            y = self.pitch_to_y(row + 1)
            if row % 2 == 1:
                p.fillRect(QRectF(0, y, kw, self.key_height), QColor(198, 201, 208))
            p.setPen(QColor(150, 152, 160))
            p.drawLine(QPointF(0, y + self.key_height), QPointF(kw, y + self.key_height))
            p.setPen(QColor(30, 30, 34))
            p.drawText(QRectF(4, y, kw - 6, self.key_height),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                       self._lanes[row][0])
        self._end_strip(p)

    def _ruler_background(self, p: QPainter, dark: bool) -> None:
        p.fillRect(QRectF(0, 0, self.width(), RULER_HEIGHT),
                   QColor(40, 42, 48) if dark else QColor(232, 234, 238))
        font = QFont(self.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        p.setPen(QColor(200, 202, 210) if dark else QColor(50, 50, 55))

    def _ruler_corner(self, p: QPainter, dark: bool, label: str) -> None:
        p.fillRect(QRectF(0, 0, self.keys_width, RULER_HEIGHT),
                   QColor(40, 42, 48) if dark else QColor(232, 234, 238))
        p.setPen(QColor(200, 202, 210) if dark else QColor(50, 50, 55))
        p.drawText(QRectF(0, 0, self.keys_width - 4, RULER_HEIGHT),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)

    def _paint_ruler(self, p: QPainter, dark: bool, t0: float, t1: float, step: float) -> None:
        self._ruler_background(p, dark)
        t = math.floor(t0 / step) * step
        while t <= t1:
            x = self.time_to_x(t)
            if x >= self.keys_width:
                p.drawLine(QPointF(x, RULER_HEIGHT - 6), QPointF(x, RULER_HEIGHT))
                p.drawText(QPointF(x + 3, RULER_HEIGHT - 8), _time_label(t, step))
            t += step
        self._ruler_corner(p, dark, "sec")

    def _paint_bar_ruler(self, p: QPainter, dark: bool, t0: float, t1: float) -> None:
        """Bar numbers (with the new metre where it changes), a long tick per bar, short ones
        per beat; the metre at the left edge in the corner."""
        assert self._grid is not None
        self._ruler_background(p, dark)
        level, line_every, label_every = self._grid_level()
        lines = self._grid.lines(t0, t1, min(level, BEAT))
        beat_px = min((b.time - a.time for a, b in zip(lines, lines[1:], strict=False)),
                      default=0.0) * self.pixels_per_second
        dim = QColor(130, 134, 144) if dark else QColor(120, 122, 130)
        ink = QColor(200, 202, 210) if dark else QColor(50, 50, 55)
        painted: list[tuple[int, float]] = []
        beats: list[tuple[int, int, float]] = []
        previous = self._grid.time_signature_at(max(0.0, t0 - 1e-3))
        for line in lines:
            x = self.time_to_x(line.time)
            metre = (line.numerator, line.denominator)
            if x < self.keys_width - 0.5:
                previous = metre
                continue
            if line.level == BAR:
                changed = metre != previous and line.time > 0
                previous = metre
                if (line.bar - 1) % line_every and not changed:
                    continue
                p.setPen(ink)
                p.drawLine(QPointF(x, 2), QPointF(x, RULER_HEIGHT))
                if ((line.bar - 1) % label_every == 0 or changed) and x < self.width() - 8:
                    label = str(line.bar) + (f"  {metre[0]}/{metre[1]}" if changed else "")
                    p.drawText(QPointF(x + 3, RULER_HEIGHT - 8), label)
                    painted.append((line.bar, x))
            else:
                p.setPen(dim)
                p.drawLine(QPointF(x, RULER_HEIGHT - 5), QPointF(x, RULER_HEIGHT))
                beats.append((line.bar, line.beat, x))
                if beat_px >= 34:
                    p.drawText(QPointF(x + 2, RULER_HEIGHT - 8), f"{line.bar}.{line.beat}")
        self.painted_bars, self.painted_beats = painted, beats
        num, den = self._grid.time_signature_at(max(0.0, t0))
        self._ruler_corner(p, dark, f"{num}/{den}")


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
        self._row = row = QHBoxLayout(self)
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
            self.add_button(key, text, tip)

    def add_button(self, key: str, text: str, tip: str, before: str | None = None
                   ) -> QToolButton:
        """Another button in the row (at the end, or before the button ``before``)."""
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        if before in self.buttons:
            self._row.insertWidget(self._row.indexOf(self.buttons[before]), b)
        else:
            self._row.addWidget(b)
        self.buttons[key] = b
        return b


class PianoRollPanel(QWidget):
    """The roll with zoom buttons, a seconds/bars switch for the ruler and a horizontal scroll
    bar. ``set_compact`` keeps only the title and Fit (a narrow result card)."""

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
        self.seconds_button = self.bar.add_button(
            "sec", "sec", "Ruler in seconds (off: bars and beats, from the clip's tempo and "
            "time signature)", before="out")
        self.seconds_button.setCheckable(True)
        self.seconds_button.toggled.connect(self.roll.set_ruler_seconds)
        self.roll.ruler_changed.connect(self._ruler_changed)
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
        self.seconds_button.setEnabled(self.roll.bar_grid is not None)

    def set_compact(self, compact: bool = True) -> None:
        """A narrow result card: the title and Fit only (the ruler's context menu still
        switches it to seconds), no scroll bar (the card shows its whole window)."""
        for key in ("in", "out", "vin", "vout", "sec"):
            self.bar.buttons[key].setVisible(not compact)
        self.scroll.setVisible(not compact)

    def chrome_height(self) -> int:
        """The height the panel adds around its roll (title row, scroll bar, spacing)."""
        extra = self.bar.sizeHint().height() + self.layout().spacing()
        if not self.scroll.isHidden():
            extra += self.scroll.sizeHint().height() + self.layout().spacing()
        return extra

    def fit(self) -> None:
        """Show the whole clip (up to its nominal length) and fit its pitches."""
        total = max(1.0, self.roll.total_time)
        self.roll.pixels_per_second = max(MIN_PPS, self.roll.note_area().width() / total)
        self.roll.set_x_offset(0.0)
        self.roll.fit_pitches()

    def _ruler_changed(self, seconds: bool) -> None:
        self.seconds_button.blockSignals(True)
        self.seconds_button.setChecked(seconds)
        self.seconds_button.blockSignals(False)

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
