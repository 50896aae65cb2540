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


def talk_text(talk: dict[str, Any] | None) -> str:
    """The tray item: what pressing it does, and the mic's level while on air."""
    if not talk or not talk.get("on"):
        return "Talk over music"
    level = talk.get("level_db")
    return "Talking · press to stop" + (f" ({level:.0f} dB)" if level is not None else "")


class PartyMenu(QObject):
    source_chosen = Signal(object)  # SourceSpec
    talk_requested = Signal(bool)  # on air or not (the tray item, the QR window's button)
    talk_config_chosen = Signal(object, object, str)  # mic (None: default), channel, mode
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
        # A menu item cannot be held: press once to talk, again to stop.
        self.talk = self._action("Talk over music")
        self.talk.setCheckable(True)
        self.talk.setToolTip("Your microphone over the music, which is turned down meanwhile")
        self.talk_menu = QMenu("Talk settings", self.menu)
        self.talk_menu.setToolTipsVisible(True)
        self.menu.addMenu(self.talk_menu)
        self.talk_always = QAction("Always on", self.talk_menu)
        self.talk_always.setCheckable(True)
        self.talk_always.setToolTip("The microphone stays on air until you untick this")
        self.talk_menu.addAction(self.talk_always)
        self.talk_menu.addSeparator()
        self._talk_mics = QActionGroup(self)
        self._talk_targets = QActionGroup(self)
        self.talk_mic_actions: list[QAction] = []
        self.talk_target_actions: list[QAction] = []
        self.talk_menu.addSection("Microphone")
        self.talk_target_section = self.talk_menu.addSection("Talk on")
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
        self.talk_menu.aboutToShow.connect(self.refresh_devices)
        self.talk.triggered.connect(lambda: self.talk_requested.emit(self.talk.isChecked()))
        self.talk_always.triggered.connect(
            lambda: self._talk_config(mode=self.talk_always.isChecked())
        )
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
        self._refresh_talk()

    # -- talk-over ---------------------------------------------------------------------------
    def _refresh_talk(self) -> None:
        host, talk = self.host, self.host.talk
        self.talk.setEnabled(host.phase == Phase.LIVE)
        self.talk.setChecked(bool(talk and talk.get("on")))
        self.talk.setText(talk_text(talk))
        self.talk_always.setChecked(host.settings.talk_mode == "always")
        for action in self.talk_mic_actions:
            action.setChecked(action.data() == (host.settings.talk_device or ""))
        names = host.channel_names
        if [a.text() for a in self.talk_target_actions[1:]] != names:
            self._show_targets(names)
        for action in self.talk_target_actions:
            action.setChecked(action.data() == host.settings.talk_channel)

    def _show_targets(self, names: list[str]) -> None:
        """ "All channels" and one entry per channel; none with a single channel."""
        for action in self.talk_target_actions:
            self._talk_targets.removeAction(action)
            self.talk_menu.removeAction(action)
            action.deleteLater()
        self.talk_target_actions = []
        self.talk_target_section.setVisible(len(names) > 1)
        if len(names) <= 1:
            return
        for index, text in [(None, "All channels"), *enumerate(names)]:
            action = QAction(text, self.talk_menu)
            action.setCheckable(True)
            action.setData(index)
            action.triggered.connect(lambda _=False, i=index: self._talk_config(channel=i))
            self._talk_targets.addAction(action)
            self.talk_menu.addAction(action)
            self.talk_target_actions.append(action)

    def _talk_config(self, **change: Any) -> None:
        """One of mic / channel / mode changed: the others stay as they are."""
        s = self.host.settings
        mode = s.talk_mode
        if "mode" in change:
            mode = "always" if change["mode"] else "push"
        device = change.get("device", s.talk_device)
        channel = change.get("channel", s.talk_channel)
        self.talk_config_chosen.emit(device, channel, mode)

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
        self._show_talk_mics(entries)
        if snapshot.system_available is False:
            self.system.setText("System audio (unavailable)")
            self.system.setToolTip(snapshot.system_note)
        else:
            self.system.setText("System audio")
            self.system.setToolTip(snapshot.system_note or "What this computer is playing")
        self._check_current()

    def _show_talk_mics(self, entries: list[tuple[str, str]]) -> None:
        """The same microphones as the Source menu, for talk-over."""
        for action in self.talk_mic_actions:
            self._talk_mics.removeAction(action)
            self.talk_menu.removeAction(action)
            action.deleteLater()
        self.talk_mic_actions = []
        for text, device in entries:
            action = QAction(text, self.talk_menu)
            action.setCheckable(True)
            action.setData(device)
            action.triggered.connect(lambda _=False, d=device: self._talk_config(device=d or None))
            self._talk_mics.addAction(action)
            self.talk_menu.insertAction(self.talk_target_section, action)
            self.talk_mic_actions.append(action)
        self._refresh_talk()

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
