"""Everything the host sees, wired to one PartyHost: tray (or a window), menu, dialogs, quit.

With a system tray the app lives in the tray and the QR window comes and goes; without one
the QR window is the app (same controls) and closing it quits. Quitting always stops the
party first (bounded), so no coordinator or worker outlives the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from desktop import dialogs
from desktop.autostart import Autostart, AutostartError
from desktop.devices import DeviceCache
from desktop.host import PartyHost
from desktop.listeners_panel import ListenersPanel
from desktop.menu import PartyMenu
from desktop.qr_window import QrWindow
from desktop.settings import AppPaths, Settings
from desktop.settings_dialog import SettingsDialog
from desktop.tray import Tray
from server.sources.base import SourceSpec
from server.tasks import TaskGroup

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FORCED = 0, 130
TRAY_WAIT_S = 60.0  # how long a late panel may take to offer its tray after login
TRAY_POLL_MS = 1000
FIRST_RUN_HINT = (
    "Party Stream lives in the system tray. Click its icon for the QR code; "
    "right-click for the menu."
)


class Shell(QObject):
    def __init__(
        self,
        host: PartyHost,
        paths: AppPaths,
        *,
        autostart: Autostart,
        devices: DeviceCache | None = None,
        use_tray: bool | None = None,
        tray_available: Callable[[], bool] = QSystemTrayIcon.isSystemTrayAvailable,
        exit_app: Callable[[int], None],
        force_exit: Callable[[], None] | None = None,
        open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__()
        self.host = host
        self.paths = paths
        self.autostart = autostart
        self.devices = devices or DeviceCache()
        self._exit_app = exit_app
        self._force_exit = force_exit
        self._open_url = open_url
        self.quitting = False
        self.dialog: QWidget | None = None  # the last dialog opened (tests drive it)
        self._tasks = TaskGroup("gui", on_error=self._failed)

        self.menu = PartyMenu(host, self.devices, self, spawn=self.spawn)
        tray_ok = tray_available() if use_tray is None else use_tray
        self.window = QrWindow(host, self.menu, standalone=not tray_ok)
        self.listeners = ListenersPanel(host)
        self.tray: Tray | None = None
        if tray_ok:
            self._make_tray()
        # At login the app may start before the panel: keep looking for a tray for a while.
        self._tray_available = tray_available
        self._tray_watch = QTimer(self, interval=TRAY_POLL_MS)
        self._tray_watch.timeout.connect(self._look_for_tray)
        self._tray_deadline = 0.0
        self._tray_auto = use_tray is None

        m = self.menu
        m.toggle.triggered.connect(self.toggle)
        m.source_chosen.connect(self.choose_source)
        m.open_file_requested.connect(self.ask_file)
        m.open_url_requested.connect(self.ask_url)
        m.open_folder_requested.connect(self.ask_folder)
        m.next_track.triggered.connect(lambda: self.spawn(host.skip(1), "next-track"))
        m.previous_track.triggered.connect(lambda: self.spawn(host.skip(-1), "previous-track"))
        m.type_track.triggered.connect(lambda: self.ask_track(0))
        m.skip_requested.connect(lambda step, i: self.spawn(host.skip(step, i), "skip"))
        m.track_requested.connect(self.ask_track)
        m.add_channel.triggered.connect(lambda: self.spawn(host.add_channel(), "add-channel"))
        m.rename_requested.connect(self.ask_channel_name)
        m.remove_requested.connect(lambda i: self.spawn(host.remove_channel(i), "remove-channel"))
        m.talk_requested.connect(lambda on: self.spawn(host.set_talk(on), "talk"))
        m.talk_config_chosen.connect(
            lambda device, channel, mode: self.spawn(
                host.set_talk_config(device, channel, mode), "talk-config"
            )
        )
        m.show_qr.triggered.connect(self.window.present)
        m.show_listeners.triggered.connect(self.listeners.present)
        m.open_player.triggered.connect(self.open_player)
        m.open_settings.triggered.connect(self.open_settings)
        m.open_logs.triggered.connect(self.open_logs)
        m.about.triggered.connect(self.show_about)
        m.quit.triggered.connect(self.request_quit)
        host.notice.connect(self.show_notice)
        self.window.quit_requested.connect(self.request_quit)

    def _make_tray(self) -> None:
        self.tray = Tray(self.host, self.menu, self)
        self.tray.show_requested.connect(self.window.present)

    def _look_for_tray(self) -> None:
        """A tray that appeared after launch: move into it; the window stops being the app."""
        if self.tray is None and self._tray_available():
            self._make_tray()
            assert self.tray is not None
            self.tray.show()
            self.window.standalone = False
            log.info("a system tray appeared; moved into it")
        if self.tray is not None or time.monotonic() > self._tray_deadline:
            self._tray_watch.stop()

    # -- life cycle ------------------------------------------------------------------------
    def start_up(self, *, first_run: bool = False, notice: str | None = None) -> None:
        """Show the tray (or the window) and do what the settings ask for at launch."""
        self._sync_autostart()
        if self.tray is not None:
            self.tray.show()
            if first_run:
                self.window.present()
                self.notify("info", FIRST_RUN_HINT)
        else:
            self.window.present()
            if self._tray_auto:
                self._tray_deadline = time.monotonic() + TRAY_WAIT_S
                self._tray_watch.start()
        if notice:
            self.notify("warning", notice)
        self.menu.refresh_devices(force=True)
        if self.host.settings.start_on_launch:
            self.toggle()
        else:
            self.spawn(self.host.prepare(), "prepare")  # so that Start is instant

    def request_quit(self) -> None:
        """Quit (menu, window close, first Ctrl+C/SIGTERM); asked twice, quit at once."""
        if self.quitting:
            self.force_quit()
            return
        self.quitting = True
        self.menu.quit.setText("Quit now")
        self.spawn(self._quit(), "quit")

    async def _quit(self) -> None:
        try:
            await self.host.close()
        finally:
            self.window.hide()
            self.listeners.hide()
            if self.tray is not None:
                self.tray.hide()
            self._exit_app(EXIT_OK)

    def force_quit(self) -> None:
        """Second Ctrl+C: the coordinator is killed (its workers follow) and we exit now."""
        log.warning("forced quit")
        self.host.kill()
        if self._force_exit is not None:
            self._force_exit()
        else:
            self._exit_app(EXIT_FORCED)

    # -- commands ------------------------------------------------------------------------------
    def toggle(self) -> None:
        if not self.host.active:
            self.window.present()  # the host sees "Starting…", then the QR code
        self.spawn(self.host.toggle(), "toggle")

    def choose_source(self, spec: SourceSpec, channel: int = 0) -> None:
        self.spawn(self.host.choose_source(spec, channel), "choose-source")

    def _source(self, channel: int) -> SourceSpec:
        channels = self.host.channels
        return channels[channel].source if channel < len(channels) else SourceSpec("demo")

    def ask_file(self, channel: int = 0) -> None:
        current = self._source(channel)
        start = str(Path(current.location).parent) if current.kind == "file" else ""
        self.dialog = dialogs.open_file(
            self._parent(), start, lambda path: self._file_chosen(path, channel)
        )

    def _file_chosen(self, path: str, channel: int) -> None:
        if path:  # a music file, or an M3U/M3U8/PLS playlist
            spec = SourceSpec.parse(path)
            self.choose_source(replace(spec, shuffle=self._source(channel).shuffle), channel)

    def ask_track(self, channel: int = 0) -> None:
        self.dialog = dialogs.type_track(
            self._parent(),
            self.host.now_playing_on(channel) if channel else self.host.now_playing,
            lambda text: self._track_typed(text, channel),
        )

    def _track_typed(self, text: str, channel: int) -> None:
        if text.strip():
            self.spawn(self.host.set_track(text, channel), "set-track")

    def ask_folder(self, channel: int = 0) -> None:
        current = self._source(channel)
        start = current.location if current.kind == "playlist" else ""
        self.dialog = dialogs.open_folder(
            self._parent(), start, lambda path: self._folder_chosen(path, channel)
        )

    def _folder_chosen(self, path: str, channel: int) -> None:
        if path:
            shuffle = self._source(channel).shuffle
            self.choose_source(SourceSpec("playlist", path, shuffle=shuffle), channel)

    def ask_url(self, channel: int = 0) -> None:
        current = self._source(channel)
        self.dialog = dialogs.open_url(
            self._parent(),
            current.location if current.kind == "url" else "",
            lambda text: self._url_chosen(text, channel),
        )

    def _url_chosen(self, text: str, channel: int) -> None:
        text = text.strip()
        if not text:
            return
        if problem := dialogs.check_url(text):
            self.notify("warning", problem)
            return
        self.choose_source(SourceSpec("url", text), channel)

    def ask_channel_name(self, channel: int) -> None:
        if channel >= len(self.host.channels):
            return
        self.dialog = dialogs.rename_channel(
            self._parent(),
            self.host.channels[channel].name,
            lambda name: self.spawn(self.host.rename_channel(channel, name), "rename-channel"),
        )

    def open_player(self) -> None:
        if self.host.url:
            self._open_url(QUrl(self.host.url))

    def open_logs(self) -> None:
        try:
            self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify("warning", f"The log folder cannot be created: {exc.strerror}")
            return
        self._open_url(QUrl.fromLocalFile(str(self.paths.log_dir)))

    def open_settings(self) -> None:
        if isinstance(self.dialog, SettingsDialog) and self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
            return
        settings = self.host.settings
        dialog = SettingsDialog(settings, running=self.host.active, parent=self._parent())
        dialog.saved.connect(self.apply_settings)
        dialog.open()
        self.dialog = dialog

    def apply_settings(self, settings: Settings) -> None:
        if settings.start_at_login != self.autostart.is_enabled():
            try:
                self.autostart.set_enabled(settings.start_at_login)
            except AutostartError as exc:
                self.notify("warning", str(exc))
                settings = replace(settings, start_at_login=not settings.start_at_login)
        self.host.update_settings(settings)

    def show_about(self) -> None:
        note = f"Settings: {self.paths.config_dir}\nLogs: {self.paths.log_dir}"
        self.dialog = dialogs.about(self._parent(), note)

    def notify(self, level: str, message: str) -> None:
        """A notice from the GUI itself; it joins the party's own in one stream."""
        self.host.notify(level, message)

    def show_notice(self, level: str, message: str) -> None:
        """In the window when it is open, as a tray notification when not (errors: both)."""
        shown = self.window.isVisible() or self.tray is None
        if shown:
            self.window.show_notice(level, message)
        if self.tray is not None and (not shown or level == "error"):
            self.tray.notify(level, message)

    # -- helpers -------------------------------------------------------------------------------
    def _parent(self) -> QWidget | None:
        return self.window if self.window.isVisible() else None

    def _sync_autostart(self) -> None:
        """The login item may have been removed by hand: the OS is the truth."""
        try:
            enabled = self.autostart.is_enabled()
        except OSError:
            return
        if enabled != self.host.settings.start_at_login:
            self.host.update_settings(replace(self.host.settings, start_at_login=enabled))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a command on the loop; keep a reference and report what it raises."""
        return self._tasks.spawn(name, coro)

    def _failed(self, _task: asyncio.Task[Any], exc: BaseException) -> None:
        self.notify("error", f"Something went wrong: {exc}")

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for commands still running (tests, and the end of main)."""
        await self._tasks.wait(timeout)
