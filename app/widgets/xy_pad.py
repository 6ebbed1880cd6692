"""An XY pad: a square with four labelled corners and a point to drag between them."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class XYPad(QWidget):
    """``position`` is (x, y) in 0..1, (0, 0) top left. Emits ``moved(x, y)`` while dragging."""

    moved = Signal(float, float)

    def __init__(self, corners: tuple[str, str, str, str] = ("A", "B", "C", "D"),
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.corners = corners  # top-left, top-right, bottom-left, bottom-right
        self.position = (0.5, 0.5)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(220, 220)

    def _square(self) -> QRectF:
        side = min(self.width(), self.height()) - 8
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def set_position(self, x: float, y: float) -> None:
        self.position = (min(1.0, max(0.0, x)), min(1.0, max(0.0, y)))
        self.moved.emit(*self.position)
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self._drag(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._drag(event)

    def _drag(self, event: QMouseEvent) -> None:
        if not self.isEnabled():
            return
        sq = self._square()
        pos = event.position()
        self.set_position((pos.x() - sq.left()) / sq.width(), (pos.y() - sq.top()) / sq.height())

    def paintEvent(self, event) -> None:  # type: ignore[no-untyped-def]  # noqa: N802, ANN001
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        sq = self._square()
        enabled = self.isEnabled()
        base = pal.base().color()
        p.setPen(QPen(pal.mid().color(), 1))
        p.setBrush(base)
        p.drawRoundedRect(sq, 6, 6)
        p.setPen(QPen(pal.mid().color(), 1, Qt.PenStyle.DotLine))
        p.drawLine(QPointF(sq.center().x(), sq.top()), QPointF(sq.center().x(), sq.bottom()))
        p.drawLine(QPointF(sq.left(), sq.center().y()), QPointF(sq.right(), sq.center().y()))
        text = pal.text().color()
        if not enabled:
            text.setAlpha(140)
        p.setPen(text)
        m = 8
        flags = Qt.AlignmentFlag
        p.drawText(sq.adjusted(m, m, -m, -m), flags.AlignTop | flags.AlignLeft, self.corners[0])
        p.drawText(sq.adjusted(m, m, -m, -m), flags.AlignTop | flags.AlignRight, self.corners[1])
        p.drawText(sq.adjusted(m, m, -m, -m), flags.AlignBottom | flags.AlignLeft, self.corners[2])
        p.drawText(sq.adjusted(m, m, -m, -m), flags.AlignBottom | flags.AlignRight,
                   self.corners[3])
        x = sq.left() + self.position[0] * sq.width()
        y = sq.top() + self.position[1] * sq.height()
        dot = pal.highlight().color() if enabled else pal.mid().color()
        p.setPen(QPen(QColor(0, 0, 0, 80), 1))
        p.setBrush(dot)
        p.drawEllipse(QPointF(x, y), 8, 8)
        p.end()
