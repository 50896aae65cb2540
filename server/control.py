"""PartyController: the one API the tray app and the CLI use to run a party.

It owns the coordinator process and talks to it over a loopback link, so nothing here ever
blocks an event loop (Qt's included). `prepare()` spawns the coordinator and its workers
ahead of time (they import the protocol library, link up and wait, using no CPU), so that
`start()` only has to open ports: the tray app prepares at launch and after each party.

Each outcome arrives once, on one channel: status snapshots go to status listeners, things
the host should be told go to event listeners, and a command's result is what the command
returns or raises (never also an event).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from server import ipc, netinfo
from server.access import clean_pin
from server.channels import Channel, as_channels, problem
from server.child import Child
from server.config import PartyConfig
from server.messages import (
    Event,
    Fatal,
    Hello,
    ListenerAction,
    Message,
    Ready,
    Roster,
    SetAccess,
    SetChannels,
    SetSource,
    SetTalk,
    SetTalkConfig,
    SetTrack,
    Skip,
    SourceResult,
    Start,
    Status,
    Stop,
    serve_link,
)
from server.phase import Phase
from server.sources.base import SourceSpec
from server.tasks import TaskGroup

log = logging.getLogger(__name__)
START_TIMEOUT_S = 45.0
COMMAND_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 8.0
PREPARED_STOP_S = 1.5  # time for a warm coordinator to stop its warm workers


def _run_coordinator(*args: Any) -> None:
    """Spawn target. The import happens in the child: the GUI never pays for the protocol
    library (about 1.5 s of imports) just to name what to start."""
    from server import coordinator

    coordinator.main(*args)


TALK_OFF: dict[str, Any] = {
    "on": False, "mode": "push", "device": None, "channel": None, "level_db": None, "error": None,
}  # fmt: skip


class PartyError(RuntimeError):
    """The party could not start or do what was asked; the message is for people."""


@dataclass
class PartyStatus:
    """A snapshot of the party as the coordinator last reported it."""

    state: str = Phase.IDLE
    name: str = ""
    url: str = ""
    port: int = 0
    listeners: int | None = None  # None: no real figure yet (never a made-up minimum)
    workers: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    now_playing: dict[str, Any] | None = None  # the track heard now (title, artist, ...)
    # One per channel, in order: index, name, colour, source (short label), listeners,
    # now_playing (and for the host: spec, failed).
    channels: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    level: dict[str, float] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    roster: list[dict[str, Any]] = field(default_factory=list)  # one row per phone
    access: dict[str, Any] = field(default_factory=dict)  # {"pin", "max_listeners"}
    talk: dict[str, Any] = field(default_factory=lambda: dict(TALK_OFF))  # see set_talk()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartyStatus:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


StatusListener = Callable[[PartyStatus], None]
EventListener = Callable[[str, str], None]  # (level, message)


class PartyController:
    def __init__(self, config: PartyConfig) -> None:
        self.config = config
        self.status = PartyStatus(name=config.name)
        self._status_listeners: list[StatusListener] = []
        self._event_listeners: list[EventListener] = []
        self._child: Child | None = None
        self._start_with: list[Channel] | None = None  # sent once the coordinator links up
        self._link: ipc.Link | None = None
        self._link_server: asyncio.Server | None = None
        self._ready: asyncio.Future[None] | None = None
        self._replies: dict[int, asyncio.Future[str | None]] = {}
        self._ids = itertools.count(1)
        self._tasks = TaskGroup("controller")
        self._closed = asyncio.Event()
        self._closed.set()

    # -- observers ---------------------------------------------------------------------
    def add_status_listener(self, callback: StatusListener) -> Callable[[], None]:
        self._status_listeners.append(callback)
        return lambda: self._status_listeners.remove(callback)

    def add_event_listener(self, callback: EventListener) -> Callable[[], None]:
        self._event_listeners.append(callback)
        return lambda: self._event_listeners.remove(callback)

    def _set_status(self, status: PartyStatus) -> None:
        self.status = status
        for callback in list(self._status_listeners):
            try:
                callback(status)
            except Exception:
                log.exception("status listener failed")

    def _set_phase(self, phase: Phase, message: str | None = None) -> None:
        self._set_status(replace(self.status, state=phase, message=message or self.status.message))

    def _event(self, level: str, message: str) -> None:
        for callback in list(self._event_listeners):
            try:
                callback(level, message)
            except Exception:
                log.exception("event listener failed")

    @property
    def phase(self) -> Phase:
        return Phase(self.status.state)

    @property
    def running(self) -> bool:
        """A party (not just a prepared one) has processes."""
        return self._child is not None and self._child.alive and self.phase is not Phase.IDLE

    @property
    def prepared(self) -> bool:
        return self._child is not None and self._child.alive and self.phase is Phase.IDLE

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    # -- commands ----------------------------------------------------------------------
    async def prepare(self) -> None:
        """Spawn the coordinator and warm its workers up now, so that start() is instant."""
        if self._child is None:
            await self._spawn()

    async def _spawn(self) -> None:
        self._closed.clear()
        token = ipc.new_token()
        self._link_server, link_port = await ipc.listen(token, self._on_link)
        self._child = Child(
            "coordinator",
            _run_coordinator,
            (self.config.to_dict(), link_port, token),
            daemon=False,  # it has children of its own; it exits when our link drops
            log_dir=self.config.log_dir,
        )
        self._child.start()
        self._tasks.spawn("watch", self._watch(self._child))

    async def start(self, channels: SourceSpec | list[Channel]) -> PartyStatus:
        """Start the party with 1–3 channels (a bare source: one channel, as parties always
        were), from a prepared coordinator if there is one; returns once phones can join. The
        QR code's address is in the status from the first moment.

        Raises PartyError with a plain-language reason (bad source, no free port, ...)
        and leaves no process behind in that case.
        """
        if self.running:
            raise PartyError("The party is already running.")
        lineup = as_channels(channels)
        why = problem(lineup)
        if why:
            raise PartyError(why)
        if self._child is not None and not self._child.alive:  # a prepared one that died
            await self._cleanup(Phase.IDLE)
        self._ready = asyncio.get_running_loop().create_future()
        self._set_status(
            PartyStatus(
                state=Phase.STARTING,
                name=self.config.name,
                url=netinfo.claim_address(self.config)[1],
            )
        )
        self._start_with = lineup
        if self._child is None:
            await self._spawn()
        elif self._link is not None:
            self._send_start()
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except (TimeoutError, PartyError) as exc:
            why = str(exc) or "The party did not start in time; see the log for details."
            await self.stop()
            self._set_phase(Phase.ERROR, why)
            raise PartyError(why) from None
        return self.status

    def _send_start(self) -> None:
        if self._link is not None and self._start_with is not None:
            self._link.send(Start(channels=[c.to_dict() for c in self._start_with]))
            self._start_with = None

    async def set_source(self, source: SourceSpec, channel: int = 0) -> None:
        """Switch what a channel plays; on failure it keeps playing (PartyError)."""
        await self._command(
            lambda rid: SetSource(id=rid, source=source.to_dict(), channel=channel)
        )

    async def set_channels(self, channels: list[Channel]) -> None:
        """The party's channels from now on (add, remove, rename, recolour, change a source),
        live; phones on a removed channel move to the first. On failure (e.g. a source that
        cannot open) nothing changes and PartyError says why."""
        why = problem(channels)
        if why:
            raise PartyError(why)
        dicts = [c.to_dict() for c in channels]
        await self._command(lambda rid: SetChannels(id=rid, channels=dicts))

    async def skip(self, step: int, channel: int = 0) -> None:
        """Next (1) or previous (-1) track of a channel's playlist (PartyError if none)."""
        await self._command(lambda rid: Skip(id=rid, step=step, channel=channel))

    async def set_track(self, title: str, artist: str = "", channel: int = 0) -> None:
        """Tell a channel's guests what plays, for live audio the OS cannot name (PartyError
        if the source has tags of its own)."""
        await self._command(
            lambda rid: SetTrack(id=rid, title=title, artist=artist, channel=channel)
        )

    async def set_talk(self, on: bool) -> None:
        """The host's mic over the music (ducked) or not; PartyError if the mic cannot open.
        `status.talk`: {on, mode, device, channel, level_db (mic RMS dBFS), error}."""
        await self._command(lambda rid: SetTalk(id=rid, on=on))

    async def set_talk_config(
        self, device: str | None, channel: int | None, mode: str = "push"
    ) -> None:
        """Which mic (None: default), which channel (None: all), "push" or "always" (on
        until switched back to "push")."""
        await self._command(
            lambda rid: SetTalkConfig(id=rid, device=device, channel=channel, mode=mode)
        )

    async def _command(self, make: Callable[[int], Message]) -> None:
        """Send a command and wait for its one SourceResult."""
        if self._link is None or not self.running:
            raise PartyError("The party is not running.")
        rid = next(self._ids)
        reply: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        self._link.send(make(rid))
        try:
            error = await asyncio.wait_for(reply, COMMAND_TIMEOUT_S)
        except TimeoutError:
            raise PartyError("The party did not answer in time.") from None
        finally:
            self._replies.pop(rid, None)
        if error:
            raise PartyError(error)

    def set_access(self, pin: str | None, max_listeners: int | None) -> None:
        """PIN and listener cap for phones still to come (raises AccessError on a bad PIN)."""
        clean = clean_pin(pin)
        self.config = replace(self.config, pin=clean, max_listeners=max_listeners)
        if self._link is not None and self.running:
            self._link.send(SetAccess(pin=clean, max_listeners=max_listeners))

    def act_on_listener(self, worker: int, client_id: str, action: str) -> None:
        """mute | unmute | disconnect | block one phone (a row of `status.roster`)."""
        if self._link is not None and self.running:
            self._link.send(ListenerAction(worker=worker, client_id=client_id, action=action))

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Graceful, bounded shutdown of the coordinator and all workers."""
        child = self._child
        if child is None:
            return
        if self.phase is Phase.IDLE:  # a prepared coordinator goes quietly and quickly
            timeout = PREPARED_STOP_S
        else:
            self._set_phase(Phase.STOPPING)
        if self._link is not None:
            self._link.send(Stop())
        await child.stop(timeout)
        await self._cleanup(Phase.IDLE)

    def kill(self) -> None:
        """Immediate exit path (second Ctrl+C): workers follow within a second or two."""
        if self._child is not None:
            self._child.kill()

    async def wait_closed(self) -> None:
        """Until the coordinator has gone, for whatever reason."""
        await self._closed.wait()

    # -- plumbing ----------------------------------------------------------------------
    async def _on_link(self, link: ipc.Link, hello: Hello) -> None:
        if hello.role != "coordinator" or self._link is not None:
            await link.close()
            return
        self._link = link
        self._send_start()
        await serve_link(
            link,
            {
                Status: self._on_status,
                Ready: self._on_ready,
                Event: lambda msg: self._event(msg.level, msg.text),
                Fatal: self._on_fatal,
                SourceResult: self._on_result,
                Roster: lambda msg: self._set_status(replace(self.status, roster=msg.decoded())),
            },
        )

    def _on_status(self, msg: Status) -> None:
        """A new status; the rows arrive apart (Roster), so keep the last ones."""
        self._set_status(replace(PartyStatus.from_dict(msg.status), roster=self.status.roster))

    def _on_ready(self, msg: Ready) -> None:
        self._set_status(PartyStatus.from_dict(msg.status))
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _on_fatal(self, msg: Fatal) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(PartyError(msg.text))  # start() raises it: told once
        else:
            self._event("error", msg.text)
            self._set_phase(Phase.ERROR, msg.text)

    def _on_result(self, msg: SourceResult) -> None:
        reply = self._replies.get(msg.id)
        if reply is not None and not reply.done():
            reply.set_result(msg.error)

    async def _watch(self, child: Child) -> None:
        """Notice the coordinator ending (crash included) and settle every waiter."""
        await child.wait(float("inf"))
        if self._child is not child:
            return
        if self._ready is not None and not self._ready.done() and self.phase is Phase.STARTING:
            self._ready.set_exception(
                PartyError(f"The party stopped while starting (exit code {child.exitcode}).")
            )
            return  # start() cleans up
        if self.phase is Phase.IDLE:
            log.warning("the prepared coordinator ended (exit code %s)", child.exitcode)
        if self.phase is Phase.LIVE:
            why = f"The party stopped unexpectedly (exit code {child.exitcode})."
            self._event("error", why)
            self._set_phase(Phase.ERROR, why)
        await self._cleanup(self.phase if self.phase is Phase.ERROR else Phase.IDLE)

    async def _cleanup(self, phase: Phase) -> None:
        if self._child is None:
            return
        self._child.reap()
        self._child = None
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(PartyError("The party stopped."))
        if self._link is not None:
            await self._link.close()
            self._link = None
        if self._link_server is not None:
            self._link_server.close()
            self._link_server = None
        if phase is Phase.ERROR:
            self._set_phase(Phase.ERROR)
        else:
            self._set_status(PartyStatus(state=Phase.IDLE, name=self.config.name))
        self._closed.set()
        await self._tasks.close(1.0)  # the watcher; last, as it may be the caller
