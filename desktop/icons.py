"""Our SVG icons as QIcons, rendered at every size a panel or window may ask for.

Pre-rendering each size (instead of relying on Qt's SVG icon-engine plugin) keeps icons
crisp on high-DPI screens and still works in a frozen build that left the plugin out.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from server.paths import resources_dir

SIZES = (16, 20, 22, 24, 32, 40, 44, 48, 64, 96, 128, 256)
STATES = ("idle", "starting", "live", "error")


def icon_dir() -> Path:
    return resources_dir() / "icons"


def render(path: Path, size: int) -> QImage:
    """The SVG at `path` as a square transparent image of `size` pixels."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    renderer = QSvgRenderer(str(path))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


@cache
def _icon(name: str) -> QIcon:
    path = icon_dir() / f"{name}.svg"
    icon = QIcon()
    if not path.exists():
        return icon
    for size in SIZES:
        icon.addPixmap(QPixmap.fromImage(render(path, size)))
    return icon


def app_icon() -> QIcon:
    return _icon("app")


def state_icon(state: str) -> QIcon:
    """The tray icon for a party state (stopping looks like starting: something is moving)."""
    if state == "stopping":
        state = "starting"
    return _icon(f"tray-{state if state in STATES else 'idle'}")


@cache
def swatch(colour: str) -> QIcon:
    """A channel's colour as a round dot, as the phones show it (menus, chips)."""
    icon = QIcon()
    for size in (16, 20, 24, 32, 48):
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(colour))
        margin = size / 8
        painter.drawEllipse(QRectF(margin, margin, size - 2 * margin, size - 2 * margin))
        painter.end()
        icon.addPixmap(QPixmap.fromImage(image))
    return icon
