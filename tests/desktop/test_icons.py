"""Our icons: every state renders crisp at panel sizes and reads on light and dark panels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from desktop import icons
from tests.desktop.conftest import qt_app

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
LIGHT_PANEL, DARK_PANEL = QColor("#f2f2f2"), QColor("#1e1e24")


def luminance(color: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    return (
        0.2126 * channel(color.redF())
        + 0.7152 * channel(color.greenF())
        + 0.0722 * channel(color.blueF())
    )


def contrast(a: QColor, b: QColor) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("state", icons.STATES)
def test_tray_icon_is_legible_on_any_panel(state: str) -> None:
    qt_app()
    path = icons.icon_dir() / f"tray-{state}.svg"
    image = icons.render(path, 64)
    tile = image.pixelColor(32, 6)  # the icon's own background, above the headband
    glyph = image.pixelColor(17, 43)  # inside the left ear cup
    assert tile.alpha() == 255 and glyph.alpha() == 255
    assert contrast(glyph, tile) >= 2.5, "the glyph stands out from its tile"
    assert contrast(tile, LIGHT_PANEL) >= 2.0, "the tile stands out on a light panel"
    assert contrast(tile, DARK_PANEL) >= 2.0, "the tile stands out on a dark panel"
    corner = image.pixelColor(0, 0)
    assert corner.alpha() == 0, "rounded, transparent corners"


@pytest.mark.parametrize("name", ["app", *(f"tray-{s}" for s in icons.STATES)])
def test_icons_have_every_size(name: str) -> None:
    qt_app()
    icon = icons.app_icon() if name == "app" else icons.state_icon(name.removeprefix("tray-"))
    assert not icon.isNull()
    for size in (16, 22, 24, 32, 48, 64, 128, 256):
        assert icon.pixmap(size, size).width() == size, "pre-rendered, not scaled up"


def test_stopping_looks_like_starting_and_unknown_falls_back() -> None:
    qt_app()
    assert icons.state_icon("stopping").cacheKey() == icons.state_icon("starting").cacheKey()
    assert icons.state_icon("weird").cacheKey() == icons.state_icon("idle").cacheKey()


def test_icon_sheet_for_review() -> None:
    """Every icon at panel sizes on a light and a dark panel, saved for people to look at."""
    qt_app()
    names = [f"tray-{s}" for s in icons.STATES] + ["app"]
    sizes = [16, 22, 24, 32, 48, 64]
    width = sum(sizes) + 12 * len(sizes) + 12
    sheet = QImage(width * 2, 76 * len(names), QImage.Format.Format_ARGB32)
    painter = QPainter(sheet)
    painter.fillRect(0, 0, width, sheet.height(), LIGHT_PANEL)
    painter.fillRect(width, 0, width, sheet.height(), DARK_PANEL)
    for row, name in enumerate(names):
        for left in (0, width):
            x = left + 12
            for size in sizes:
                image = icons.render(icons.icon_dir() / f"{name}.svg", size)
                painter.drawImage(QRectF(x, row * 76 + 6, size, size), image)
                x += size + 12
    painter.end()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert sheet.save(str(ARTIFACTS / "icons.png"))
