"""One channel's menu: its source pickers, and with several channels its own track and
channel commands (rename, remove).

With one channel this is the tray's "Source" submenu exactly as before channels; with two
or three, each channel gets one, titled with its colour, name, source and listener count.
Choices go out through the PartyMenu's signals, tagged with the channel's index.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QIcon
from PySide6.QtWidgets import QMenu

from desktop import icons
from desktop.devices import DeviceSnapshot
from server.channels import Channel
from server.phase import Phase
from server.sources.base import SourceSpec

if TYPE_CHECKING:
    from desktop.menu import PartyMenu


def ellipsize(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mic_entries(snapshot: DeviceSnapshot) -> list[tuple[str, str]]:
    """(menu text, device name) for every microphone, the default input first."""
    return [("Default input", "")] + [
        (d.name + (" (default)" if d.is_default else ""), d.name) for d in snapshot.microphones
    ]


def channel_title(channel: Channel, listeners: int | None) -> str:
    """The title "Red · Demo music · 3": what plays where, and who listens (if reported)."""
    parts = [channel.name, ellipsize(channel.source.short_label, 28)]
    if listeners is not None:
        parts.append(str(listeners))
    return " · ".join(parts)


class ChannelMenu(QObject):
    def __init__(self, owner: PartyMenu, index: int) -> None:
        super().__init__(owner)
        self.owner = owner
        self.index = index
        self.menu = QMenu("Source", owner.menu)
        self.menu.setToolTipsVisible(True)

        self._sources = QActionGroup(self)
        # one source at a time, or none (a saved microphone that is unplugged right now)
        self._sources.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.system = self._source_action("System audio")
        self.mic_menu = QMenu("Microphone / line-in", self.menu)
        self.mic_menu.setToolTipsVisible(True)
        self.menu.addMenu(self.mic_menu)
        self.open_file = self._source_action("Open file or playlist…")
        self.open_folder = self._source_action("Open folder…")
        self.open_url = self._source_action("Open URL…")
        self.shuffle = QAction("Shuffle playlists and folders", self.menu)
        self.shuffle.setCheckable(True)
        self.menu.addAction(self.shuffle)
        self.menu.addSeparator()
        self.demo = self._source_action("Demo music")
        self.mic_actions: list[QAction] = []
        # With several channels each has its own track and channel commands.
        self.menu.addSeparator()
        self.previous_track = self._action("Previous track")
        self.next_track = self._action("Next track")
        self.type_track = self._action("What's playing…")
        self.menu.addSeparator()
        self.rename = self._action("Rename…")
        self.remove = self._action("Remove channel")
        self.remove.setToolTip("Its listeners move to the first channel")

        self.system.triggered.connect(self._pick_system)
        self.demo.triggered.connect(lambda: self._choose(SourceSpec("demo")))
        self.open_file.triggered.connect(self._pick_file)
        self.open_folder.triggered.connect(self._pick_folder)
        self.open_url.triggered.connect(self._pick_url)
        self.shuffle.toggled.connect(self._toggle_shuffle)
        self.previous_track.triggered.connect(lambda: owner.skip_requested.emit(-1, self.index))
        self.next_track.triggered.connect(lambda: owner.skip_requested.emit(1, self.index))
        self.type_track.triggered.connect(lambda: owner.track_requested.emit(self.index))
        self.rename.triggered.connect(lambda: owner.rename_requested.emit(self.index))
        self.remove.triggered.connect(lambda: owner.remove_requested.emit(self.index))
        self.menu.aboutToShow.connect(owner.refresh_devices)
        self._shown: DeviceSnapshot | None = None

    def _action(self, text: str) -> QAction:
        action = QAction(text, self.menu)
        self.menu.addAction(action)
        return action

    def _source_action(self, text: str, menu: QMenu | None = None) -> QAction:
        action = QAction(text, self.menu)
        action.setCheckable(True)
        self._sources.addAction(action)
        (menu or self.menu).addAction(action)
        return action

    @property
    def channel(self) -> Channel:
        return self.owner.host.channels[self.index]

    # -- state -> labels ---------------------------------------------------------------------
    def refresh(self, *, several: bool) -> None:
        host = self.owner.host
        channel = self.channel
        busy = host.busy
        self.menu.setEnabled(not busy)
        if several:
            row = host.channel_status(self.index) or {}
            self.menu.setTitle(channel_title(channel, row.get("listeners")))
            self.menu.setIcon(icons.swatch(channel.colour))
            now = host.now_playing_on(self.index)
            self.menu.menuAction().setToolTip(f"♪ {now}" if now else channel.source.label)
        else:
            self.menu.setTitle(f"Source: {ellipsize(channel.source.short_label, 32)}")
            self.menu.setIcon(QIcon())
            self.menu.menuAction().setToolTip("")
        live = host.phase == Phase.LIVE
        playlist = several and live and channel.source.kind == "playlist"
        for action in (self.previous_track, self.next_track):
            action.setVisible(playlist)
        self.type_track.setVisible(several and live and channel.source.kind in ("system", "mic"))
        self.rename.setVisible(several)
        self.remove.setVisible(several)
        self.check_current()

    def check_current(self) -> None:
        spec = self.channel.source
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

    def show_devices(self, snapshot: DeviceSnapshot) -> None:
        if snapshot is self._shown:
            return
        self._shown = snapshot
        for action in self.mic_actions:
            self._sources.removeAction(action)
            self.mic_menu.removeAction(action)
            action.deleteLater()
        self.mic_actions = []
        for text, device in mic_entries(snapshot):
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
        self.check_current()

    # -- choices -----------------------------------------------------------------------------
    def _pick_system(self) -> None:
        snapshot = self.owner.devices.snapshot
        if snapshot.system_available is False:
            self.owner.host.notify("warning", snapshot.system_note)
            self.check_current()
            return
        self._choose(SourceSpec("system"))

    def _pick_mic(self, device: str) -> None:
        self._choose(SourceSpec("mic", device=device or None))

    def _choose(self, spec: SourceSpec) -> None:
        """Picking what already plays changes nothing (and does not restart it)."""
        if spec == self.channel.source:
            self.check_current()
            return
        self.owner.source_chosen.emit(spec, self.index)

    def _pick_file(self) -> None:
        self.check_current()  # stays on the current source until a file is chosen
        self.owner.open_file_requested.emit(self.index)

    def _pick_folder(self) -> None:
        self.check_current()
        self.owner.open_folder_requested.emit(self.index)

    def _pick_url(self) -> None:
        self.check_current()
        self.owner.open_url_requested.emit(self.index)

    def _toggle_shuffle(self, on: bool) -> None:
        """Remembered with the source; a playing list starts over in the new order."""
        spec = replace(self.channel.source, shuffle=on)
        if spec.kind == "playlist":
            self.owner.source_chosen.emit(spec, self.index)
        else:  # nothing to reorder now: kept for the next list
            host = self.owner.host
            channels = list(host.channels)
            channels[self.index] = replace(channels[self.index], source=spec)
            host.update_settings(replace(host.settings, channels=tuple(channels)))
