"""How a status looks: a colour that reads on the current palette, and an icon whose
*shape* says the status on its own (tick, cross, clock...), so that colour is never the
only signal (colour-blind users, grey screenshots, dark mode).

Colours are the Okabe-Ito set (distinguishable with the common colour-vision
deficiencies), darkened on light palettes and lightened on dark ones for contrast.
Icons are drawn with QPainter, so they need no icon theme and no font.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPalette, QPen, QPixmap

#: Okabe-Ito colours by the Phase column's key (gui.display.phase_key).
_BASE: Final = {
    "delivered": (0, 158, 115),  # bluish green
    "bounced": (213, 94, 0),  # vermillion
    "expired": (213, 94, 0),
    "ambiguous": (204, 121, 167),  # reddish purple
    "waiting": (230, 159, 0),  # orange
    "deferred": (230, 159, 0),
    "sending": (0, 114, 178),  # blue
    "connecting": (0, 114, 178),
    "mail": (0, 114, 178),
    "rcpt": (0, 114, 178),
    "data": (0, 114, 178),
    "end-of-data": (0, 114, 178),
    "resolving": (86, 180, 233),  # sky blue
}
#: Keys drawn in the palette's own muted text colour (nothing to worry about, or moot).
_NEUTRAL: Final = frozenset({"queued", "invalid", "suppressed"})

_SHAPE: Final = {
    "delivered": "tick",
    "bounced": "cross",
    "expired": "bang",
    "ambiguous": "half",
    "waiting": "clock",
    "deferred": "clock",
    "sending": "play",
    "connecting": "play",
    "mail": "play",
    "rcpt": "play",
    "data": "play",
    "end-of-data": "play",
    "resolving": "play",
    "queued": "ring",
    "invalid": "slash",
    "suppressed": "slash",
}


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def status_color(key: str, palette: QPalette) -> QColor:
    """The text colour for a status/phase key, readable on ``palette``'s base."""
    dark = is_dark(palette)
    rgb = _BASE.get(key)
    if rgb is None or key in _NEUTRAL:
        return palette.color(QPalette.ColorRole.PlaceholderText)
    return _adjusted(rgb, dark)


def _adjusted(rgb: tuple[int, int, int], dark: bool) -> QColor:
    color = QColor(*rgb)
    return color.lighter(125) if dark else color.darker(140)


def status_icon(key: str, palette: QPalette) -> QIcon:
    color = status_color(key, palette)
    return _icon(_SHAPE.get(key, "ring"), color.rgb(), is_dark(palette))


@cache
def _icon(shape: str, rgb: int, dark: bool) -> QIcon:
    size = 16
    pixmap = QPixmap(size * 2, size * 2)
    pixmap.setDevicePixelRatio(2.0)
    pixmap.fill(Qt.GlobalColor.transparent)
    color = QColor.fromRgb(rgb)
    mark = QColor("#1b1b1b") if dark else QColor("#ffffff")
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    circle = QRectF(1.5, 1.5, 13, 13)
    pen = QPen(mark, 1.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    if shape in ("ring", "slash"):
        painter.setPen(QPen(color, 1.6))
        painter.drawEllipse(circle)
        if shape == "slash":
            painter.drawLine(QPointF(4.5, 11.5), QPointF(11.5, 4.5))
    elif shape == "half":
        painter.setPen(QPen(color, 1.6))
        painter.drawEllipse(circle)
        half = QPainterPath()
        half.moveTo(8, 1.5)
        half.arcTo(circle, 90, 180)
        half.closeSubpath()
        painter.fillPath(half, color)
    else:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawEllipse(circle)
        painter.setPen(pen)
        painter.setBrush(mark)
        _draw_mark(painter, shape)
    painter.end()
    return QIcon(pixmap)


def _draw_mark(painter: QPainter, shape: str) -> None:
    if shape == "tick":
        painter.drawPolyline([QPointF(4.8, 8.2), QPointF(7.0, 10.4), QPointF(11.2, 5.6)])
    elif shape == "cross":
        painter.drawLine(QPointF(5.5, 5.5), QPointF(10.5, 10.5))
        painter.drawLine(QPointF(10.5, 5.5), QPointF(5.5, 10.5))
    elif shape == "bang":
        painter.drawLine(QPointF(8, 4.5), QPointF(8, 8.8))
        painter.drawPoint(QPointF(8, 11.3))
    elif shape == "clock":
        painter.drawLine(QPointF(8, 8), QPointF(8, 4.6))
        painter.drawLine(QPointF(8, 8), QPointF(10.6, 9.6))
    elif shape == "play":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.drawPolygon([QPointF(6.2, 4.8), QPointF(11.4, 8), QPointF(6.2, 11.2)])
