"""The tray menu's actions, shared by the tray, the QR window's buttons and the fallback window.

One set of QActions means every place shows the same labels and enabled states: the labels
follow PartyHost's phase in `refresh()`, and choosing a source is reported as a signal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from desktop.devices import DeviceCache, DeviceSnapshot
from desktop.host import PartyHost
from server.phase import Phase
from server.sources.base import SourceSpec

log = logging.getLogger(__name__)

TOGGLE_LABELS = {
    Phase.IDLE: "Start party",
    Phase.ERROR: "Start party",
    Phase.STARTING: "Cancel starting",
    Phase.LIVE: "Stop party",
    Phase.STOPPING: "Stopping…",
}


def status_line(host: PartyHost) -> str:
    """One short line for the top of the menu and the tooltip."""
    phase = host.phase
    if phase == Phase.LIVE:
        if host.switching_to is not None:
            return f"Live · switching to {host.switching_to.short_label}…"
        return f"Live · {listeners_text(host.listeners)}"
    if phase == Phase.STARTING:
        return "Starting the party…"
    if phase == Phase.STOPPING:
        return "Stopping the party…"
    if phase == Phase.ERROR:
        return "Not running · there was a problem" if not host.running else "Problem"
    return "Not running"


def listeners_text(count: int | None) -> str:
    if count is None:
        return "counting listeners…"
    return f"{count} listener" + ("" if count == 1 else "s")


def ellipsize(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PartyMenu(QObject):
    source_chosen = Signal(object)  # SourceSpec
    open_file_requested = Signal()
    open_folder_requested = Signal()
    open_url_requested = Signal()

    def __init__(
        self,
        host: PartyHost,
        devices: DeviceCache,
        parent: QObject | None = None,
        *,
        spawn: Callable[[Coroutine[Any, Any, Any], str], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.host = host
        self.devices = devices
        self._spawn = spawn
        self.menu = QMenu()
        self.menu.setToolTipsVisible(True)

        self.status_action = self._action("Not running", enabled=False)
        self.menu.addSeparator()
        self.toggle = self._action("Start party")
        self.source_menu = QMenu("Source", self.menu)
        self.source_menu.setToolTipsVisible(True)
        self.menu.addMenu(self.source_menu)
        self.previous_track = self._action("Previous track")
        self.next_track = self._action("Next track")
        self.type_track = self._action("What's playing…")
        self.type_track.setToolTip("Tell the guests what plays when the computer cannot")
        self.menu.addSeparator()
        self.show_qr = self._action("Show QR code")
        self.show_listeners = self._action("Listeners…")
        self.open_player = self._action("Open player in browser")
        self.menu.addSeparator()
        self.open_settings = self._action("Settings…")
        self.open_logs = self._action("Open logs")
        self.about = self._action("About Party Stream")
        self.menu.addSeparator()
        self.quit = self._action("Quit")

        self._sources = QActionGroup(self)
        # one source at a time, or none (a saved microphone that is unplugged right now)
        self._sources.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.system = self._source_action("System audio")
        self.mic_menu = QMenu("Microphone / line-in", self.source_menu)
        self.mic_menu.setToolTipsVisible(True)
        self.source_menu.addMenu(self.mic_menu)
        self.open_file = self._source_action("Open file or playlist…")
        self.open_folder = self._source_action("Open folder…")
        self.open_url = self._source_action("Open URL…")
        self.shuffle = QAction("Shuffle playlists and folders", self.source_menu)
        self.shuffle.setCheckable(True)
        self.source_menu.addAction(self.shuffle)
        self.source_menu.addSeparator()
        self.demo = self._source_action("Demo music")
        self.mic_actions: list[QAction] = []

        self.system.triggered.connect(self._pick_system)
        self.demo.triggered.connect(lambda: self._choose(SourceSpec("demo")))
        self.open_file.triggered.connect(self._pick_file)
        self.open_folder.triggered.connect(self._pick_folder)
        self.shuffle.toggled.connect(self._toggle_shuffle)
        self.open_url.triggered.connect(self._pick_url)
        self.source_menu.aboutToShow.connect(self.refresh_devices)
        self.host.changed.connect(self.refresh)
        self._scanning = False
        self._shown: DeviceSnapshot | None = None
        self._show_devices(devices.snapshot)
        self.refresh()

    def _action(self, text: str, *, enabled: bool = True) -> QAction:
        action = QAction(text, self.menu)
        action.setEnabled(enabled)
        self.menu.addAction(action)
        return action

    def _source_action(self, text: str, menu: QMenu | None = None) -> QAction:
        action = QAction(text, self.source_menu)
        action.setCheckable(True)
        self._sources.addAction(action)
        (menu or self.source_menu).addAction(action)
        return action

    # -- state -> labels ---------------------------------------------------------------------
    def refresh(self) -> None:
        host = self.host
        phase = host.phase
        self.status_action.setText(status_line(host))
        label = "Stop party" if phase == Phase.ERROR and host.running else TOGGLE_LABELS[phase]
        self.toggle.setText(label)
        self.toggle.setEnabled(phase != Phase.STOPPING)
        busy = phase in (Phase.STARTING, Phase.STOPPING) or host.switching_to is not None
        self.source_menu.setEnabled(not busy)
        self.open_player.setEnabled(bool(host.url))
        playlist = phase == Phase.LIVE and host.settings.source.kind == "playlist"
        self.next_track.setEnabled(playlist and not busy)
        self.previous_track.setEnabled(playlist and not busy)
        live_audio = phase == Phase.LIVE and host.settings.source.kind in ("system", "mic")
        self.type_track.setVisible(live_audio)
        if now := host.now_playing:
            self.status_action.setText(f"{status_line(host)} · ♪ {ellipsize(now, 48)}")
        self._check_current()

    def _check_current(self) -> None:
        spec = self.host.settings.source
        self.source_menu.setTitle(f"Source: {ellipsize(spec.short_label, 32)}")
        self.open_file.setText("Open file or playlist…")
        self.open_folder.setText("Open folder…")
        self.open_url.setText("Open URL…")
        self.shuffle.blockSignals(True)
        self.shuffle.setChecked(spec.shuffle)
        self.shuffle.blockSignals(False)
        match spec.kind:
            case "system":
                self.system.setChecked(True)
            case "demo":
                self.demo.setChecked(True)
            case "file":
                self.open_file.setText(f"Open file or playlist… ({spec.short_label})")
                self.open_file.setChecked(True)
            case "playlist" if os.path.isdir(spec.location):
                self.open_folder.setText(f"Open folder… ({spec.short_label})")
                self.open_folder.setChecked(True)
            case "playlist":
                self.open_file.setText(f"Open file or playlist… ({spec.short_label})")
                self.open_file.setChecked(True)
            case "url":
                self.open_url.setText(f"Open URL… ({ellipsize(spec.location, 40)})")
                self.open_url.setChecked(True)
            case "mic":
                for action in self.mic_actions:
                    if action.data() == (spec.device or ""):
                        action.setChecked(True)
                        break
                else:  # a device that is not plugged in now: nothing matches, uncheck all
                    checked = self._sources.checkedAction()
                    if checked is not None:
                        checked.setChecked(False)

    # -- devices -----------------------------------------------------------------------------
    def refresh_devices(self, *, force: bool = False) -> None:
        """Show the newest list we have now; rescan in the background when it is old."""
        if self.devices.snapshot is not self._shown:
            self._show_devices(self.devices.snapshot)
        if not (force or self.devices.stale) or self._scanning:
            return
        if self._spawn is not None:
            self._scanning = True
            self._spawn(self._scan(force), "device-scan")

    async def _scan(self, force: bool) -> None:
        try:
            snapshot = await self.devices.refresh(force=force)
        except Exception:
            log.warning("device scan failed", exc_info=True)
            return
        finally:
            self._scanning = False
        self._show_devices(snapshot)

    def _show_devices(self, snapshot: DeviceSnapshot) -> None:
        self._shown = snapshot
        for action in self.mic_actions:
            self._sources.removeAction(action)
            self.mic_menu.removeAction(action)
            action.deleteLater()
        self.mic_actions = []
        entries = [("Default input", "")] + [
            (d.name + (" (default)" if d.is_default else ""), d.name) for d in snapshot.microphones
        ]
        for text, device in entries:
            action = self._source_action(text, self.mic_menu)
            action.setData(device)
            action.triggered.connect(lambda _=False, d=device: self._pick_mic(d))
            self.mic_actions.append(action)
        if snapshot.system_available is False:
            self.system.setText("System audio (unavailable)")
            self.system.setToolTip(snapshot.system_note)
        else:
            self.system.setText("System audio")
            self.system.setToolTip(snapshot.system_note or "What this computer is playing")
        self._check_current()

    # -- choices -----------------------------------------------------------------------------
    def _pick_system(self) -> None:
        snapshot = self.devices.snapshot
        if snapshot.system_available is False:
            self.host.notify("warning", snapshot.system_note)
            self._check_current()
            return
        self._choose(SourceSpec("system"))

    def _pick_mic(self, device: str) -> None:
        self._choose(SourceSpec("mic", device=device or None))

    def _choose(self, spec: SourceSpec) -> None:
        """Picking what already plays changes nothing (and does not restart it)."""
        if spec == self.host.settings.source:
            self._check_current()
            return
        self.source_chosen.emit(spec)

    def _pick_file(self) -> None:
        self._check_current()  # stays on the current source until a file is chosen
        self.open_file_requested.emit()

    def _pick_folder(self) -> None:
        self._check_current()
        self.open_folder_requested.emit()

    def _toggle_shuffle(self, on: bool) -> None:
        """Remembered with the source; a playing list starts over in the new order."""
        spec = replace(self.host.settings.source, shuffle=on)
        if spec.kind == "playlist":
            self.source_chosen.emit(spec)
        else:  # nothing to reorder now: kept for the next list
            self.host.update_settings(replace(self.host.settings, source=spec))

    def _pick_url(self) -> None:
        self._check_current()
        self.open_url_requested.emit()
