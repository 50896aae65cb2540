"""The coordinator process: 1–3 channels (one source each), many workers, one clock.

`run()` is the whole life: connect to the controller and warm the workers up → on Start:
start (ports, sources, front door, workers) → serve (pump audio, answer commands, watch
workers, publish status) → shut down. Warming up first is what makes Start instant when the
controller prepared the party in advance (the workers' imports take seconds).
The parts do one job each: `Lineup` (the channels, one `Pump` each: what plays,
timestamps), `Supervisor` (workers), `FrontDoor` (the QR code's address), `StatusBoard`
(what the party reports), `Timeline`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server import ipc, netinfo
from server.channels import Channel
from server.child import child_main
from server.config import PartyConfig
from server.frontdoor import FrontDoor
from server.lineup import Lineup
from server.listeners import ListenerDesk
from server.messages import (
    Background,
    Fatal,
    ListenerAction,
    Ready,
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
    serve_link,
)
from server.nowplaying import Covers
from server.phase import Phase
from server.pump import Pump
from server.sources.base import SourceError, SourceSpec
from server.status import StatusBoard
from server.supervisor import Supervisor
from server.talkover import TalkOver
from server.tasks import TaskGroup, first_completed
from server.timeline import Timeline

log = logging.getLogger(__name__)


class StartFailed(Exception):
    """The party cannot start; the message is for the host."""


class Coordinator:
    def __init__(self, config: PartyConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.board = board = StatusBoard(config.name, config.port)
        self.lineup: Lineup | None = None  # made on Start, when the channels are known
        board.talk = self.talk = TalkOver(
            config.live_lead_ms * 1000, board.report, board.changed.set
        )
        board.supervisor = self.supervisor = Supervisor(
            count=config.workers,
            host=config.host,
            first_port=config.port + 1,  # moved in _start() if the ports are taken
            name=config.name,
            log_dir=config.log_dir,
            report=board.report,
            on_change=self._on_workers_changed,
        )
        # A (re)started worker is told the access rules and what plays; covers are served by
        # the front door too.
        self.covers = Covers()
        self.front_door = FrontDoor(board.public, self.supervisor, self._live, self.covers)
        board.desk = self.desk = ListenerDesk(
            config.pin, config.max_listeners, self.supervisor, board.changed.set
        )
        self.supervisor.greeting = lambda: [
            *self.desk.greeting(),
            *(self.lineup.greeting() if self.lineup else []),
            *(m for p in (self.lineup.pumps if self.lineup else []) for m in p.greeting()),
        ]
        self.front_door.gate = self.desk.gate.join
        self.front_door.private = lambda: {**board.full(), **self.desk.private()}
        self._stop = stop
        self._tasks = TaskGroup("coordinator")

    def _live(self) -> bool:
        return self.board.phase is Phase.LIVE

    def _on_workers_changed(self) -> None:
        if self.lineup is not None:
            self.lineup.listeners_changed()
        self.board.changed.set()

    # -- the whole life ----------------------------------------------------------------------
    async def run(self, link_port: int, token: str) -> int:
        link = self.board.link = await ipc.connect(link_port, token, role="coordinator")
        await self.supervisor.warm()
        start: asyncio.Future[Start] = asyncio.get_running_loop().create_future()
        await first_completed(
            self._tasks.spawn("warm", serve_link(link, {Start: start.set_result}, until=start)),
            self._tasks.spawn("stop", self._stop.wait()),
        )
        if not start.done():  # stopped while warm (SIGTERM, Stop, or the controller left)
            await self._shutdown()
            return 0
        try:
            channels = [Channel.from_dict(c) for c in start.result().channels]
            lineup = await self._start(channels)
        except StartFailed as exc:
            log.error("%s", exc)
            link.send(Fatal(text=str(exc)))
            await self._shutdown()
            return 2
        self.board.phase = Phase.LIVE
        link.send(Ready(status=self.board.full()))
        try:
            await first_completed(
                self._tasks.spawn("pumps", lineup.run(self.supervisor, self._stop)),
                self._tasks.spawn("control", self._control(link)),
                self._tasks.spawn("stop", self._stop.wait()),
                self._tasks.spawn("health", self.supervisor.watch(self._stop)),
                drain_timeout=0.5,
            )
            if self.supervisor.all_given_up:
                message = "No listener server could keep running; the party stopped."
                log.error(message)
                link.send(Fatal(text=message))
        finally:
            await self._shutdown()
        return 0

    async def _start(self, channels: list[Channel]) -> Lineup:
        """Ports, sources and front door first (the QR code works from here on: early phones
        wait on the page), then the warm workers open their ports."""
        cfg = self.config
        base, self.board.url, warnings = netinfo.claim_address(cfg)
        if base is None:
            raise StartFailed(f"Port {cfg.port} and the next ones are in use; choose another port.")
        for warning in warnings:
            self.board.report("warning", warning)
        self.board.port = base
        for handle in self.supervisor.workers:
            handle.port = base + 1 + handle.id
        lineup = Lineup(
            lambda: Timeline(cfg.live_lead_ms * 1000, int(cfg.buffer_s * 1_000_000)),
            self.board.report,
            self.board.changed.set,
            self.covers,
        )
        try:
            await lineup.open(channels)
        except SourceError as exc:
            raise StartFailed(str(exc)) from None
        self.board.lineup = self.lineup = lineup
        self.talk.attach(lineup.pumps)
        try:
            await self.front_door.open(cfg.host, base)
        except OSError as exc:
            raise StartFailed(f"Cannot open port {base}: {exc.strerror or exc}") from None
        self._tasks.spawn("publish", self.board.publish(self._stop))
        if await self.supervisor.start() == 0:
            raise StartFailed("No listener server could start; see the log for details.")
        return lineup

    async def _shutdown(self) -> None:
        self.board.phase = Phase.STOPPING
        self._stop.set()
        t0 = time.monotonic()
        if self.lineup is not None:
            self.supervisor.send_all(Status(status=self.board.public()))
        await self._tasks.close(1.0)
        await self.talk.close()
        if self.lineup is not None:
            await self.lineup.close()
        await self.supervisor.stop()
        await self.front_door.close()
        log.info("coordinator stopped in %.2fs", time.monotonic() - t0)
        if self.board.link is not None:
            await self.board.link.close()

    # -- commands from the controller --------------------------------------------------------
    async def _control(self, link: ipc.Link) -> None:
        assert self.lineup is not None
        lineup = self.lineup

        def on_channel(act: Callable[[Pump, Any], Any]) -> Callable[[Any], Any]:
            """A command for one channel's pump; why not, for a channel that is not there."""

            async def handler(msg: Any) -> str | None:
                pump = lineup.pump(msg.channel)
                if pump is None:
                    return "There is no such channel."
                result = act(pump, msg)
                return await result if inspect.isawaitable(result) else result

            return handler

        async def switch(pump: Pump, msg: SetSource) -> str | None:
            error = await lineup.switch(pump, SourceSpec.from_dict(msg.source))
            if error is None:
                self.board.message = None
            return error

        async def set_channels(msg: SetChannels) -> str | None:
            why = await lineup.set_channels([Channel.from_dict(c) for c in msg.channels])
            self.talk.attach(lineup.pumps)  # the talk target follows its channel
            return why

        def set_track(pump: Pump, msg: SetTrack) -> str | None:
            return pump.set_track(msg.title, msg.artist)

        why = await serve_link(
            link,
            {
                SetSource: Background(self._answer(link, on_channel(switch))),
                Skip: Background(self._answer(link, on_channel(lambda p, m: p.skip(m.step)))),
                SetTrack: self._answer(link, on_channel(set_track)),
                SetChannels: Background(self._answer(link, set_channels)),
                SetTalk: Background(self._answer(link, lambda msg: self.talk.set(msg.on))),
                SetTalkConfig: Background(
                    self._answer(
                        link,
                        lambda msg: self.talk.configure(msg.device, msg.channel, msg.mode),
                    )
                ),
                SetAccess: self.desk.set_access,
                ListenerAction: self.desk.act,
            },
            self._tasks,
        )
        log.info("controller link %s: shutting down", why)

    @staticmethod
    def _answer(link: ipc.Link, act: Callable[[Any], Any]) -> Callable[[Any], Awaitable[None]]:
        """A command's one result: None when it worked, else why (for the host)."""

        async def handler(msg: Any) -> None:
            result = act(msg)
            error = await result if inspect.isawaitable(result) else result
            if error:
                log.warning("%s failed: %s", msg.TAG, error)
            link.send(SourceResult(id=msg.id, error=error))

        return handler


def main(config: dict[str, Any], link_port: int, token: str) -> None:
    """Process entry point (spawned by PartyController, possibly long before Start)."""
    cfg = PartyConfig.from_dict(config)

    async def run(stop: asyncio.Event) -> int:
        return await Coordinator(cfg, stop).run(link_port, token)

    child_main("coordinator", cfg.log_dir, run)
