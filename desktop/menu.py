"""The tray menu's actions, shared by the tray, the QR window's buttons and the fallback window.

One set of QActions means every place shows the same labels and enabled states: the labels
follow PartyHost's phase in `refresh()`, and choosing a source is reported as a signal.

Channels: with one, the menu is what it always was ("Source: …"), and "Add a second
channel" waits at the end of that submenu, where the host already picks what plays, so a
host who never wants channels sees nothing new. With two or three, a "Channels" section
lists one submenu per channel (colour, name, source, listeners) and "Add channel".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu

from desktop.channel_menu import ChannelMenu, ellipsize, mic_entries
from desktop.devices import DeviceCache, DeviceSnapshot
from desktop.host import PartyHost
from server.channels import MAX_CHANNELS
from server.phase import Phase

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
        if host.changing_channels:
            return "Live · changing channels…"
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


def talk_text(talk: dict[str, Any] | None) -> str:
    """The tray item: what pressing it does, and the mic's level while on air."""
    if not talk or not talk.get("on"):
        return "Talk over music"
    level = talk.get("level_db")
    return "Talking · press to stop" + (f" ({level:.0f} dB)" if level is not None else "")


class PartyMenu(QObject):
    source_chosen = Signal(object, int)  # SourceSpec, channel index
    open_file_requested = Signal(int)  # channel index, as for the rest
    open_folder_requested = Signal(int)
    open_url_requested = Signal(int)
    skip_requested = Signal(int, int)  # step (+1 next, -1 previous), channel
    track_requested = Signal(int)
    rename_requested = Signal(int)
    remove_requested = Signal(int)
    talk_requested = Signal(bool)  # on air or not (the tray item, the QR window's button)
    talk_config_chosen = Signal(object, object, str)  # mic (None: default), channel, mode

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
        # the channel section goes here, before the track commands
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

        self.add_channel = QAction("Add channel", self.menu)
        self.add_channel.setToolTip("Guests pick a channel on their phones")
        self.channels_menu = QMenu("Channels", self.menu)  # the QR window's button, 2+ channels
        self.channels_menu.setToolTipsVisible(True)
        self.channels: list[ChannelMenu] = []  # one per channel, in order
        self._section: QAction | None = None
        self.talk_menu.aboutToShow.connect(self.refresh_devices)
        self.talk.triggered.connect(lambda: self.talk_requested.emit(self.talk.isChecked()))
        self.talk_always.triggered.connect(
            lambda: self._talk_config(mode=self.talk_always.isChecked())
        )
        self.host.changed.connect(self.refresh)
        self._scanning = False
        self._shown: DeviceSnapshot | None = None
        self.refresh()

    def _action(self, text: str, *, enabled: bool = True) -> QAction:
        action = QAction(text, self.menu)
        action.setEnabled(enabled)
        self.menu.addAction(action)
        return action

    @property
    def button_menu(self) -> QMenu:
        """What the QR window's source button opens: the source, or the channels."""
        return self.channels[0].menu if len(self.channels) == 1 else self.channels_menu

    # -- state -> labels ---------------------------------------------------------------------
    def refresh(self) -> None:
        host = self.host
        phase = host.phase
        if len(host.channels) != len(self.channels):
            self._lay_out(len(host.channels))
        several = len(self.channels) > 1
        self.status_action.setText(status_line(host))
        label = "Stop party" if phase == Phase.ERROR and host.running else TOGGLE_LABELS[phase]
        self.toggle.setText(label)
        self.toggle.setEnabled(phase != Phase.STOPPING)
        busy = host.busy
        self.open_player.setEnabled(bool(host.url))
        kind = host.settings.source.kind
        playlist = phase == Phase.LIVE and kind == "playlist"
        for action in (self.next_track, self.previous_track):
            action.setVisible(not several)  # each channel has its own
            action.setEnabled(playlist and not busy)
        live_audio = phase == Phase.LIVE and kind in ("system", "mic")
        self.type_track.setVisible(live_audio and not several)
        self.add_channel.setVisible(len(self.channels) < MAX_CHANNELS)
        self.add_channel.setEnabled(not busy)
        for channel in self.channels:
            channel.refresh(several=several)
        if (now := host.now_playing) and not several:  # several: each channel's tooltip
            self.status_action.setText(f"{status_line(host)} · ♪ {ellipsize(now, 48)}")
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

    def _lay_out(self, count: int) -> None:
        """One submenu per channel; the menu's shape changes only between one and several."""
        for channel in self.channels:
            self.menu.removeAction(channel.menu.menuAction())
            self.channels_menu.removeAction(channel.menu.menuAction())
            channel.menu.removeAction(self.add_channel)
        self.menu.removeAction(self.add_channel)
        self.channels_menu.clear()
        if self._section is not None:
            self.menu.removeAction(self._section)
            self._section.deleteLater()
            self._section = None
        while len(self.channels) > count:
            gone = self.channels.pop()
            gone.menu.deleteLater()
            gone.deleteLater()
        while len(self.channels) < count:
            channel = ChannelMenu(self, len(self.channels))
            channel.show_devices(self.devices.snapshot)
            self.channels.append(channel)
        before = self.previous_track
        if count == 1:
            self.menu.insertAction(before, self.channels[0].menu.menuAction())
            self.add_channel.setText("Add a second channel")
            self.channels[0].menu.addAction(self.add_channel)
            return
        self._section = self.menu.insertSection(before, "Channels")
        for channel in self.channels:
            self.menu.insertAction(before, channel.menu.menuAction())
            self.channels_menu.addAction(channel.menu.menuAction())
        self.add_channel.setText("Add channel")
        self.menu.insertAction(before, self.add_channel)
        self.channels_menu.addSeparator()
        self.channels_menu.addAction(self.add_channel)

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
        for channel in self.channels:
            channel.show_devices(snapshot)
        self._show_talk_mics(mic_entries(snapshot))

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
