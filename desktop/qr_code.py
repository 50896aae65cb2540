"""A QR code widget: segno computes the modules, Qt paints them pixel-aligned.

Painting the module matrix ourselves (rather than scaling a bitmap) keeps every module
edge on a device pixel at any size and any screen scale, which is what phone cameras
need from across a room. Dark modules on white with the standard 4-module quiet zone.
"""

from __future__ import annotations

import math

import segno
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

QUIET_ZONE = 4  # modules of white around the code, as the QR standard asks
DARK = QColor("#0c0a14")
LIGHT = QColor("#ffffff")


def qr_matrix(text: str) -> list[list[bool]]:
    """The code's modules (True = dark), without the quiet zone."""
    code = segno.make(text, error="m", micro=False)
    return [[bool(m) for m in row] for row in code.matrix]


class QrCode(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._matrix: list[list[bool]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> None:
        if text == self._text:
            return
        self._text = text
        self._matrix = qr_matrix(text) if text else []
        self.setAccessibleName(f"QR code for {text}" if text else "")
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(320, 320)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return width

    def paintEvent(self, event: QPaintEvent) -> None:
        side = min(self.width(), self.height())
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        card = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        path = QPainterPath()
        path.addRoundedRect(card, side * 0.04, side * 0.04)
        painter.fillPath(path, LIGHT)
        if not self._matrix:
            return
        count = len(self._matrix) + 2 * QUIET_ZONE
        dpr = self.devicePixelRatioF()
        module = math.floor(side * dpr / count) / dpr  # whole device pixels per module
        offset_x = card.x() + (side - module * count) / 2 + QUIET_ZONE * module
        offset_y = card.y() + (side - module * count) / 2 + QUIET_ZONE * module
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(DARK)
        offset_x = round(offset_x * dpr) / dpr
        offset_y = round(offset_y * dpr) / dpr
        for y, row in enumerate(self._matrix):
            x = 0
            while x < len(row):  # one rectangle per run of dark modules
                if not row[x]:
                    x += 1
                    continue
                start = x
                while x < len(row) and row[x]:
                    x += 1
                painter.drawRect(
                    QRectF(
                        offset_x + start * module,
                        offset_y + y * module,
                        (x - start) * module,
                        module,
                    )
                )
        painter.end()
