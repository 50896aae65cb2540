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
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.settings import Settings, SettingsStore, new_channel
from server import netinfo
from server.channels import MAX_CHANNELS, MAX_NAME, Channel, plan
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


def track_text(track: dict[str, Any] | None) -> str:
    """The line "Title — Artist" (the source's label when there is no title); "" if unknown."""
    if not track:
        return ""
    title = track.get("title") or track.get("label") or ""
    return " — ".join(part for part in (title, track.get("artist") or "") if part)


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
        prepare_ahead: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.prepare_ahead = prepare_ahead  # keep a party warm, so Start is instant
        self._standby: PartyController | None = None
        self._standby_lock = asyncio.Lock()
        self._closing = False
        self._expected_url = ""
        self.store = store
        self.settings = settings
        self.log_dir = log_dir
        self.public_host = public_host
        self.party: PartyController | None = None
        self.status: PartyStatus | None = None  # the running party's last report
        self.error: str | None = None  # why the last party failed or ended on its own
        self.switching_to: SourceSpec | None = None
        self.changing_channels = False  # a live add/remove/rename awaits the party's answer
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
        """The address in the QR code: from the moment Start is pressed (early phones wait on
        the page and start by themselves) until the party stops. With a party PIN the link
        carries it (a #fragment: scanning just works, and no server log sees it)."""
        if self.phase not in (Phase.STARTING, Phase.LIVE):
            return ""
        if self.status and self.status.url:
            url = self.status.url
        else:
            url = self._expected_url if self.phase is Phase.STARTING else ""
        access = getattr(self.status, "access", None) or {}
        pin = access.get("pin") if access else (self.settings.pin or None)
        return url + (f"#pin={pin}" if url and pin else "")

    @property
    def roster(self) -> list[dict[str, Any]]:
        """One row per phone (server/roster.py), while the party is live."""
        if not (self.status and self.phase is Phase.LIVE):
            return []
        return list(getattr(self.status, "roster", None) or [])

    def act_on_listener(self, row: dict[str, Any], action: str) -> None:
        """mute | unmute | disconnect | block the phone of a roster row."""
        if self.party is not None and self.running:
            self.party.act_on_listener(row["worker"], row["id"], action)

    @property
    def listeners(self) -> int | None:
        """The real listener count, or None while no figure has arrived (never invented)."""
        return self.status.listeners if self.status and self.phase is Phase.LIVE else None

    @property
    def busy(self) -> bool:
        """A start, stop, source switch or channel change is under way: commands wait."""
        return (
            self.phase in (Phase.STARTING, Phase.STOPPING)
            or self.switching_to is not None
            or self.changing_channels
        )

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channel set: the settings are the one truth (a change is saved once it worked)."""
        return self.settings.channels

    def channel_status(self, index: int) -> dict[str, Any] | None:
        """What the live party reports for channel `index` (listeners, now playing), if any."""
        rows = self._live_status("channels")
        return rows[index] if rows and index < len(rows) else None

    @property
    def source_label(self) -> str:
        """What plays: the settings are the one truth (a switch is saved once it worked)."""
        if len(self.channels) == 1:
            return self.settings.source.label
        return " · ".join(f"{c.name}: {c.source.short_label}" for c in self.channels)

    @property
    def now_playing(self) -> str:
        """What the guests hear ("Title — Artist"), while the party is live; "" if unknown."""
        track = self.status.now_playing if self.status and self.phase is Phase.LIVE else None
        return track_text(track)

    def now_playing_on(self, channel: int) -> str:
        """What the guests of `channel` hear, like `now_playing`."""
        return track_text((self.channel_status(channel) or {}).get("now_playing"))

    @property
    def level(self) -> dict[str, float] | None:
        return self.status.level if self.status and self.phase is Phase.LIVE else None

    @property
    def talk(self) -> dict[str, Any] | None:
        """Talk-over as the party reports it ({on, mode, device, channel, level_db, error}),
        while live."""
        return self._live_status("talk") or None

    @property
    def channel_names(self) -> list[str]:
        """The live party's channel names, in order (one name: a party as before channels)."""
        return [str(c.get("name", "")) for c in self._live_status("channels") or []]

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
        try:
            config = self._config()
        except ConfigError as exc:
            self._fail(str(exc))
            return False
        self.error, self._stop_requested, self.status = None, False, None
        # Before the party API even loads: the QR code can show now (phones wait on the page).
        self._expected_url = netinfo.claim_address(config)[1]
        party = await self._launch(config)
        if party is None:
            self.changed.emit()
            return False
        self._tasks.spawn("watch-party", self._watch(party))
        s = self.settings
        if (s.talk_device, s.talk_channel, s.talk_mode) != (None, None, "push"):
            self._tasks.spawn("talk-config", self._send_talk_config())
        self.changed.emit()
        return True

    def _config(self) -> Any:
        """The PartyConfig the settings ask for (ConfigError if they are out of range)."""
        extra: dict[str, Any] = {"public_host": self.public_host} if self.public_host else {}
        return self.settings.party_config(self.log_dir, **extra)

    async def prepare(self) -> None:
        """Keep a party prepared with the current settings (its processes started and idle),
        so that Start only opens ports. Cheap when one is already prepared."""
        if not self.prepare_ahead:
            return
        async with self._standby_lock:
            if self._closing or self.active:
                return
            try:
                config = self._config()
            except ConfigError:
                return  # Start will say what is wrong
            standby = self._standby
            if standby is not None and standby.config == config and standby.prepared:
                return
            await self._discard_standby()
            try:
                api = await party_api()
            except Exception:
                log.warning("cannot prepare a party", exc_info=True)
                return
            self._standby = api.PartyController(config)
            await self._standby.prepare()

    async def _discard_standby(self) -> None:
        standby, self._standby = self._standby, None
        if standby is not None:
            await standby.stop()

    async def close(self) -> None:
        """The app quits: stop the party and the prepared one, and prepare no other."""
        self._closing = True
        await self.stop()
        async with self._standby_lock:
            await self._discard_standby()

    def _prepare_next(self) -> None:
        if self.prepare_ahead and not self._closing:
            self._tasks.spawn("prepare", self.prepare())

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
        standby, self._standby = self._standby, None
        if standby is not None and standby.config == config and standby.prepared:
            party = standby  # warm: its workers have imported everything already
        else:
            if standby is not None:
                self._tasks.spawn("discard", standby.stop())
            party = api.PartyController(config)
        party.add_status_listener(self._on_status)
        party.add_event_listener(self._on_event)
        self.party = party
        try:
            await party.start(list(self.settings.channels))
        except api.PartyError as exc:
            self.party = None
            if self._stop_requested:  # the host cancelled: not an error
                self.status = None
            else:
                self._fail(str(exc))
            self._prepare_next()
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
            self._prepare_next()

    def kill(self) -> None:
        """Immediate exit path: the coordinator dies now, its workers follow it."""
        for party in (self.party, self._standby):
            if party is not None:
                party.kill()

    async def choose_source(self, spec: SourceSpec, channel: int = 0) -> bool:
        """Play `spec` on `channel`: switched live when the party runs, else remembered for
        the next start.

        On failure the current source keeps playing and the host is told why.
        """
        if not 0 <= channel < len(self.channels):
            return False
        if self.phase is Phase.LIVE and self.party is not None:
            self.switching_to = spec
            if not await self._live(self.party.set_source(spec, channel)):
                return False
        channels = list(self.channels)
        channels[channel] = replace(channels[channel], source=spec)
        self.update_settings(replace(self.settings, channels=tuple(channels)))
        return True

    async def _live(self, change: Awaitable[None]) -> bool:
        """Await a change to the running party while the menu says it is under way (the
        caller set `switching_to` or `changing_channels`); on failure tell the host why, in
        the party's words, and return False."""
        self.changed.emit()
        try:
            await change
        except Exception as exc:  # PartyError: its message is for people
            self._notify("error", str(exc))
            return False
        finally:
            self.switching_to = None
            self.changing_channels = False
            self.changed.emit()
        return True

    async def set_channels(self, channels: tuple[Channel, ...]) -> bool:
        """A new channel set (added, removed, renamed): applied live when the party runs,
        kept for the next start either way. On failure nothing changes and the host is told
        why in the party's words (e.g. a source that cannot open)."""
        if not 1 <= len(channels) <= MAX_CHANNELS or self.changing_channels:
            return False
        if self.phase is Phase.LIVE and self.party is not None:
            self.changing_channels = True
            if not await self._live(self.party.set_channels(list(channels))):
                return False
        # The talk-over target follows its channel as the party's does; removed: all.
        talk, kept = self.settings.talk_channel, plan(list(self.channels), list(channels))
        talk = kept.index(talk) if talk in kept else None
        self.update_settings(replace(self.settings, channels=channels, talk_channel=talk))
        return True

    async def add_channel(self) -> bool:
        if len(self.channels) >= MAX_CHANNELS:
            return False
        return await self.set_channels((*self.channels, new_channel(self.channels)))

    async def remove_channel(self, index: int) -> bool:
        """Its guests move to the first remaining channel (the party decides); never the last."""
        if len(self.channels) < 2 or not 0 <= index < len(self.channels):
            return False
        return await self.set_channels(self.channels[:index] + self.channels[index + 1 :])

    async def rename_channel(self, index: int, name: str) -> bool:
        name = name.strip()[:MAX_NAME]
        if not name or not 0 <= index < len(self.channels) or name == self.channels[index].name:
            return False
        taken = {c.name.casefold() for i, c in enumerate(self.channels) if i != index}
        if name.casefold() in taken:  # two buttons with one name on every phone
            self._notify("warning", f"Another channel is already called {name}.")
            return False
        channels = list(self.channels)
        channels[index] = replace(channels[index], name=name)
        return await self.set_channels(tuple(channels))

    def _live_status(self, name: str) -> Any:
        """A field of the live party's status; None unless the party is live."""
        return getattr(self.status, name, None) if self.phase is Phase.LIVE else None

    async def _command(self, send: Callable[[PartyController], Awaitable[None]]) -> bool:
        """Send a command to the live party; False when it is not live or refused, and then
        the host is told why in the party's words."""
        if self.phase is not Phase.LIVE or self.party is None:
            return False
        try:
            await send(self.party)
        except Exception as exc:  # PartyError: its message is for people
            self._notify("warning", str(exc))
            return False
        return True

    async def skip(self, step: int, channel: int = 0) -> bool:
        """Next (1) or previous (-1) track of the playlist that plays."""
        return await self._command(lambda party: party.skip(step, channel))

    async def set_track(self, text: str, channel: int = 0) -> bool:
        """The host typed what plays ("Artist - Title" or just a title) for live audio."""
        artist, sep, title = text.strip().partition(" - ")
        if not sep:
            artist, title = "", text.strip()
        return await self._command(lambda party: party.set_track(title, artist, channel))

    async def set_talk(self, on: bool) -> bool:
        """The host's voice over the music, or not."""
        return await self._command(lambda party: party.set_talk(on))

    async def set_talk_config(self, device: str | None, channel: int | None, mode: str) -> bool:
        """Remember the talk-over mic, target and mode, and use them now if live."""
        self.update_settings(
            replace(self.settings, talk_device=device, talk_channel=channel, talk_mode=mode)
        )
        return await self._send_talk_config()

    async def _send_talk_config(self) -> bool:
        s = self.settings
        return await self._command(
            lambda party: party.set_talk_config(s.talk_device, s.talk_channel, s.talk_mode)
        )

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
        access = (settings.pin, settings.max_listeners)
        if access != (old.pin, old.max_listeners) and self.party is not None and self.running:
            # For phones still to come; those already listening keep their place.
            self.party.set_access(settings.pin or None, settings.max_listeners or None)
        self._prepare_next()  # a prepared party with the old settings is replaced
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
            self._prepare_next()

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
