"""PartyHost: the GUI's one handle on the party, a thin Qt layer over PartyController.

The tray, the QR window and the fallback window only read `phase`/`status` and call the
async commands here; they never touch processes. Everything the party reports arrives as
callbacks on the GUI's asyncio loop (qasync), so nothing here blocks Qt.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.settings import Settings, SettingsStore
from server.config import ConfigError
from server.phase import Phase
from server.sources.base import SourceSpec
from server.tasks import TaskGroup, in_daemon_thread

if TYPE_CHECKING:
    from server.control import PartyController, PartyStatus

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 8.0


async def party_api() -> ModuleType:
    """`server.control`, imported off the GUI thread when the first party starts (the
    protocol library itself is only imported by the party's own processes)."""
    return await in_daemon_thread(
        lambda: importlib.import_module("server.control"), name="load-party-api"
    )


class PartyHost(QObject):
    changed = Signal()  # phase, status or settings changed: refresh every view
    notice = Signal(str, str)  # (level, message) for a tray notification / banner

    def __init__(
        self,
        store: SettingsStore,
        settings: Settings,
        log_dir: Path | None,
        *,
        public_host: str | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.log_dir = log_dir
        self.public_host = public_host
        self.party: PartyController | None = None
        self.status: PartyStatus | None = None  # the running party's last report
        self.error: str | None = None  # why the last party failed or ended on its own
        self.switching_to: SourceSpec | None = None
        self._loading = False  # importing the party API: the one phase before a controller
        self._stop_requested = False
        self._tasks = TaskGroup("host")

    # -- what views show -------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        """The one state every view follows: the controller's, while there is one."""
        if self.party is not None:
            return self.party.phase
        if self._loading:
            return Phase.STARTING
        return Phase.ERROR if self.error else Phase.IDLE

    @property
    def running(self) -> bool:
        return self.party is not None and self.party.running

    @property
    def active(self) -> bool:
        """A party is starting or running: the toggle means Stop."""
        return self._loading or self.running or self.phase is Phase.STARTING

    @property
    def name(self) -> str:
        reported = self.status.name if self.status and self.running else ""
        return reported or self.settings.name

    @property
    def url(self) -> str:
        """The address in the QR code, only while phones can actually join."""
        return self.status.url if self.status and self.phase is Phase.LIVE else ""

    @property
    def listeners(self) -> int | None:
        """The real listener count, or None while no figure has arrived (never invented)."""
        return self.status.listeners if self.status and self.phase is Phase.LIVE else None

    @property
    def source_label(self) -> str:
        """What plays: the settings are the one truth (a switch is saved once it worked)."""
        return self.settings.source.label

    @property
    def level(self) -> dict[str, float] | None:
        return self.status.level if self.status and self.phase is Phase.LIVE else None

    @property
    def problem(self) -> str | None:
        """What the host should know right now: a failed start, or a source that broke."""
        message = self.status.message if self.status else None
        if self.phase is Phase.ERROR:
            return self.error or message
        if self.phase is Phase.LIVE and self.status and self.status.source.get("failed"):
            return message
        return None

    # -- commands ----------------------------------------------------------------------------
    async def toggle(self) -> None:
        if self.phase is Phase.STOPPING:
            return
        if self.active:
            await self.stop()
        else:
            await self.start()

    async def start(self) -> bool:
        """Start with the saved settings; True once phones can join."""
        if self.active:
            return False
        extra: dict[str, Any] = {"public_host": self.public_host} if self.public_host else {}
        try:
            config = self.settings.party_config(self.log_dir, **extra)
        except ConfigError as exc:
            self._fail(str(exc))
            return False
        self.error, self._stop_requested, self.status = None, False, None
        party = await self._launch(config)
        if party is None:
            self.changed.emit()
            return False
        self._tasks.spawn("watch-party", self._watch(party))
        self.changed.emit()
        return True

    async def _launch(self, config: Any) -> PartyController | None:
        """The running party, or None (cancelled, or failed and the host was told why)."""
        began = time.monotonic()
        self._loading = True
        self.changed.emit()
        try:
            api = await party_api()
        except Exception as exc:
            log.exception("loading the party API failed")
            self._fail(f"Party Stream could not load its party server: {exc}")
            return None
        finally:
            self._loading = False
        if self._stop_requested:
            return None
        loaded = time.monotonic()
        party = api.PartyController(config)
        party.add_status_listener(self._on_status)
        party.add_event_listener(self._on_event)
        self.party = party
        try:
            await party.start(self.settings.source)
        except api.PartyError as exc:
            self.party = None
            if self._stop_requested:  # the host cancelled: not an error
                self.status = None
            else:
                self._fail(str(exc))
            return None
        log.info(
            "party live in %.1f s (party API %.1f s, coordinator and workers %.1f s)",
            time.monotonic() - began,
            loaded - began,
            time.monotonic() - loaded,
        )
        return party

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Graceful, bounded stop of the coordinator and every worker."""
        if self.phase is Phase.STOPPING or not self.active:
            return
        self._stop_requested = True
        party = self.party
        if party is None:  # still loading the API: start() gives up on its own
            self.changed.emit()
            return
        try:
            await party.stop(timeout)
        finally:
            if self.party is party:
                self.party = None
            self.error, self.status = None, None
            self.changed.emit()

    def kill(self) -> None:
        """Immediate exit path: the coordinator dies now, its workers follow it."""
        if self.party is not None:
            self.party.kill()

    async def choose_source(self, spec: SourceSpec) -> bool:
        """Play `spec`: switched live when the party runs, else remembered for the next start.

        On failure the current source keeps playing and the host is told why.
        """
        if self.phase is Phase.LIVE and self.party is not None:
            self.switching_to = spec
            self.changed.emit()
            try:
                await self.party.set_source(spec)
            except Exception as exc:  # PartyError: its message is for people
                self._notify("error", str(exc))
                return False
            finally:
                self.switching_to = None
                self.changed.emit()
        self.update_settings(replace(self.settings, source=spec))
        return True

    def update_settings(self, settings: Settings) -> None:
        """Keep and save new settings; a running party picks them up at its next start."""
        old, self.settings = self.settings, settings
        try:
            self.store.save(settings)
        except OSError as exc:
            log.warning("saving settings failed: %s", exc)
            self._notify("warning", f"Your settings could not be saved: {exc.strerror or exc}")
        restart_needed = (old.port, old.workers, old.name) != (
            settings.port,
            settings.workers,
            settings.name,
        )
        if restart_needed and self.running:
            self._notify("info", "The new settings apply the next time you start the party.")
        self.changed.emit()

    # -- what the party reports --------------------------------------------------------------
    def _on_status(self, status: PartyStatus) -> None:
        self.status = status
        self.changed.emit()

    def _on_event(self, level: str, message: str) -> None:
        self._notify(level, message)

    async def _watch(self, party: PartyController) -> None:
        """Notice a party that ended by itself (crash, fatal error) and say so."""
        with contextlib.suppress(asyncio.CancelledError):
            await party.wait_closed()
        if self.party is party and not self._stop_requested:
            self.party = None
            message = self.status.message if self.status else None
            self.error = message or "The party stopped unexpectedly."
            self.changed.emit()

    def _fail(self, message: str) -> None:
        self.error, self.status = message, None
        self._notify("error", message)
        self.changed.emit()

    def _notify(self, level: str, message: str) -> None:
        log.log(logging.ERROR if level == "error" else logging.INFO, "notice: %s", message)
        self.notice.emit(level, message)

    def notify(self, level: str, message: str) -> None:
        """A notice from the GUI itself (settings reset, bad URL typed, ...)."""
        self._notify(level, message)
