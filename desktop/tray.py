"""The system-tray icon: its picture and tooltip follow the party, its menu is PartyMenu.

Left click (or double click, or the menu's "Show QR code") asks for the QR window; the
party's errors and notes become tray notifications in plain language.
"""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon

from desktop import icons
from desktop.host import PartyHost
from desktop.menu import PartyMenu, status_line

log = logging.getLogger(__name__)

NOTICE_MS = {"info": 4000, "warning": 8000, "error": 10000}
_ICONS = {
    "info": QSystemTrayIcon.MessageIcon.Information,
    "warning": QSystemTrayIcon.MessageIcon.Warning,
    "error": QSystemTrayIcon.MessageIcon.Critical,
}


def tooltip(host: PartyHost) -> str:
    lines = [host.name, status_line(host)]
    if len(host.channels) > 1 and host.running:  # what plays on each, and who listens
        for index, channel in enumerate(host.channels):
            now = host.now_playing_on(index)
            count = (host.channel_status(index) or {}).get("listeners")
            heard = f"♪ {now}" if now else channel.source.short_label
            lines.append(f"{channel.name}: {heard}" + ("" if count is None else f" ({count})"))
    else:
        if host.now_playing:
            lines.append(f"♪ {host.now_playing}")
        if host.running:
            lines.append(host.source_label)
    if problem := host.problem:
        lines.append(problem)
    return "\n".join(line for line in lines if line)


class Tray(QObject):
    show_requested = Signal()

    def __init__(self, host: PartyHost, menu: PartyMenu, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.icon = QSystemTrayIcon(icons.state_icon("idle"), self)
        self.icon.setContextMenu(menu.menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self.show_requested)
        host.changed.connect(self.refresh)
        self._phase = ""
        self.refresh()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def refresh(self) -> None:
        phase = self.host.phase
        if phase != self._phase:
            self._phase = phase
            self.icon.setIcon(icons.state_icon(phase))
        self.icon.setToolTip(tooltip(self.host))

    def notify(self, level: str, message: str) -> None:
        title = {"error": "Party Stream: problem", "warning": "Party Stream: note"}.get(
            level, "Party Stream"
        )
        self.icon.showMessage(
            title, message, _ICONS.get(level, _ICONS["info"]), NOTICE_MS.get(level, 5000)
        )

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # On macOS a click opens the menu (the platform's way); elsewhere it shows the QR.
        log.info("tray icon activated: %s", reason.name)
        opens = [QSystemTrayIcon.ActivationReason.DoubleClick]
        if sys.platform != "darwin":
            opens.append(QSystemTrayIcon.ActivationReason.Trigger)
        if reason in opens:
            self.show_requested.emit()
