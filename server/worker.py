"""A worker process: one Sendspin server (one group, one stream) on its own port.

It receives timestamped PCM of every channel from the coordinator over its link and commits
it to the stream, which routes each player to its channel (server/lanes.py); every worker
gets identical timestamps, so phones on different workers play in sync.
It exits by itself when the link drops (the coordinator is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from typing import Any

from aiohttp import web
from aiosendspin.noise import Identity
from aiosendspin.server import (
    ClientAddedEvent,
    ClientConnectedEvent,
    ClientDisconnectedEvent,
    ClientRemovedEvent,
    SendspinEvent,
    SendspinGroup,
    SendspinServer,
)
from aiosendspin.server.audio import AudioFormat
from aiosendspin.server.push_stream import PushStream, StreamStoppedError

from server import frames, ipc, limits, roster
from server import web as party_web
from server.access import AccessRules, valid_id
from server.admission import PartyServer
from server.audio_format import BIT_DEPTH, CHANNELS, SAMPLE_RATE
from server.child import child_main
from server.gatekeeper import Gatekeeper
from server.ghosts import GhostWatch
from server.lanes import Lanes
from server.messages import (
    Access,
    Count,
    Failed,
    Lineup,
    ListenerAction,
    NowPlaying,
    Pcm,
    Ping,
    Pong,
    Ready,
    Reset,
    Roster,
    Serve,
    Status,
    serve_link,
)
from server.nowplaying import Covers
from server.pairing import PartyPairingStore
from server.phase import Phase
from server.tasks import TaskGroup, first_completed, sleep_or_stop
from server.web import CORS, NO_STORE, RateLimit, client_address
from server.worker_tracks import TrackBoard

log = logging.getLogger(__name__)
PCM_FORMAT = AudioFormat(sample_rate=SAMPLE_RATE, bit_depth=BIT_DEPTH, channels=CHANNELS)
COUNT_REFRESH_S = 2.0
REAP_AFTER_S = 20.0
REAP_INTERVAL_S = 2.0
SWITCHES_PER_S = 2.0  # a guest tapping channels; more is a script
SWITCH_BURST = 6
EXIT_PORT_IN_USE = 3


class Worker:
    def __init__(
        self, worker_id: int, host: str, port: int, name: str, stop: asyncio.Event
    ) -> None:
        self.worker_id = worker_id
        self.host = host
        self.port = port
        self.name = name
        self.status: dict[str, Any] = {"name": name, "state": Phase.STARTING, "listeners": None}
        self._server: PartyServer | None = None
        self._group: SendspinGroup | None = None
        self._stream: PushStream | None = None
        self._link: ipc.Link | None = None
        self._tasks = TaskGroup(f"worker{worker_id}")
        self._stop = stop
        self._count_changed = asyncio.Event()
        self.lanes = Lanes()  # which channel each player hears; recent audio of each
        self._stream_fed = False
        self._ghosts = GhostWatch()
        self._left: dict[str, float] = {}  # client id -> when it disconnected
        self._gate = Gatekeeper(self._party_listeners, self._connected)
        self._roster = roster.RosterTracker(worker_id)
        self._tracks = TrackBoard(port, lambda: self.status)  # now playing, timed to audio

    # -- listeners -------------------------------------------------------------------------
    @property
    def listeners(self) -> int:
        return self._server.listening() if self._server else 0

    def _party_listeners(self) -> int:
        """The whole party's count as the coordinator last said (ours if it is higher)."""
        total = self.status.get("listeners")
        return max(total if isinstance(total, int) else 0, self.listeners)

    def _connected(self, client_id: str) -> bool:
        client = self._server.get_client(client_id) if self._server else None
        return client is not None and client.connection is not None

    async def _act(self, msg: ListenerAction) -> None:
        if self._server is not None:
            await roster.act(self._server, msg.client_id, msg.action)
            self._roster.acted.set()

    def _on_event(self, server: SendspinServer, event: SendspinEvent) -> None:
        if isinstance(event, ClientConnectedEvent | ClientAddedEvent):
            self._left.pop(event.client_id, None)
            self._attach(event.client_id)
        if isinstance(event, ClientRemovedEvent):
            self.lanes.forget(event.client_id)
        if isinstance(event, ClientDisconnectedEvent):
            self._left[event.client_id] = time.monotonic()
        elif (
            isinstance(event, ClientDisconnectedEvent | ClientRemovedEvent) and self.listeners == 0
        ):
            self._reset_stream()
        self._count_changed.set()

    def _attach(self, client_id: str) -> None:
        """Put a (re)connected client into the one group, creating group and stream if needed."""
        assert self._server is not None
        client = self._server.get_client(client_id)
        if client is None or client.connection is None:
            return
        if self._group is None or self._stream is None or self._stream.is_stopped:
            self._reset_stream()
            self._group = client.group
            self._group.set_group_name(self.name)  # the party's, not the first client's
            self._stream = self._group.start_stream(channel_resolver=self.lanes.resolve)
            self.lanes.open_stream(self._stream)
            self._stream_fed = False
            self._tracks.attach(self._group)
        elif client.group is not self._group:
            self._tasks.spawn(f"join-{client_id[:8]}", self._group.add_client(client))

    def _reset_stream(self) -> None:
        """The library stops the stream when the last listener leaves; start fresh next time
        (joining a dead group is a known reconnect race)."""
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
        self._stream = None
        self._group = None
        self._tracks.attach(None)

    # -- audio -----------------------------------------------------------------------------
    async def _commit(self, msg: Pcm) -> None:
        """Commit a chunk to its channel; a fresh stream first gets the still-playable recent
        audio of every channel, so the first phone on an idle worker hears music at once
        instead of after the whole lead, and can switch channel at once."""
        lane = self.lanes.at(msg.channel)
        if lane is None:
            return
        lane.keep(msg.ts, msg.pcm)
        stream = self._stream
        if stream is None:
            return
        if not self._stream_fed:
            self._stream_fed = True
            backlog = [(ln, ts, pcm) for ln in self.lanes.lanes for ts, pcm in ln.replayable()]
        else:
            backlog = [(lane, msg.ts, msg.pcm)]
        try:
            for ln, ts, data in backlog:
                stream.prepare_audio(data, PCM_FORMAT, channel_id=ln.uuid)
                await stream.commit_audio(play_start_us=ts)
        except StreamStoppedError:
            self._reset_stream()

    def _reset(self, msg: Reset) -> None:
        """A new timeline on one channel: drop what was queued on its old one."""
        clients = self._server.clients if self._server else []
        self.lanes.new_timeline(self._stream, msg.channel, clients)
        if msg.channel == 0:
            self._tracks.reset(msg.jump)

    def _lineup(self, msg: Lineup) -> None:
        clients = list(self._server.clients) if self._server else []
        self.lanes.relineup(msg.kept, self._stream, clients)
        self._count_changed.set()

    def _channel_route(self) -> Any:
        """POST /api/channel?id=<player id>&channel=<n>: a guest's tap moves its own player
        (no reconnect). Only from the player's own connection address (or the host itself):
        the party's HTTP changes nothing else, and one guest cannot move another."""
        limit = RateLimit(SWITCHES_PER_S, SWITCH_BURST)

        async def handler(request: web.Request) -> web.Response:
            address = client_address(request)
            if not limit.allow(address):
                return web.Response(status=429, headers={**CORS, "Retry-After": "1"})
            client_id = valid_id(request.query.get("id"))
            client = self._server.get_client(client_id) if client_id and self._server else None
            conn = client.connection if client is not None else None
            try:
                index = int(request.query.get("channel", ""))
            except ValueError:
                index = -1
            if client is None or conn is None or self.lanes.at(index) is None:
                return web.Response(status=404, headers=CORS)
            if address not in limits.HOST_ITSELF and getattr(conn, "peer", lambda: "")() != address:
                return web.Response(status=403, headers=CORS)
            self.lanes.move(self._stream, client, index)
            self._count_changed.set()
            return web.json_response({"channel": index}, headers={**CORS, **NO_STORE})

        return handler

    def _pong(self, ping: Ping) -> None:
        """Answered from this loop, so a stuck loop shows as silence to the watchdog."""
        assert self._link is not None
        self._link.send(Pong(seq=ping.seq, rss=_rss()))

    async def _receive(self) -> None:
        assert self._link is not None
        why = await serve_link(
            self._link,
            {
                Pcm: self._commit,
                Reset: self._reset,
                Lineup: self._lineup,
                NowPlaying: self._tracks.receive,
                Status: lambda msg: setattr(self, "status", msg.status),
                Ping: self._pong,
                Access: lambda msg: setattr(self._gate, "rules", AccessRules.from_dict(msg.rules)),
                ListenerAction: self._act,
            },
        )
        log.info("coordinator link %s; exiting", why)

    async def _reap(self) -> None:
        """End the state of clients that left more than REAP_AFTER_S ago (the library keeps
        it for 180 s in case they come back; a party sees hundreds of short visits)."""
        assert self._server is not None
        while not await sleep_or_stop(self._stop, REAP_INTERVAL_S):
            now = time.monotonic()
            for client_id, left_at in list(self._left.items()):
                if now - left_at < REAP_AFTER_S:
                    continue
                del self._left[client_id]
                client = self._server.get_client(client_id)
                if client is not None and client.connection is None:
                    await self._server.remove_client(client_id)
            self._count_changed.set()

    async def _report_counts(self) -> None:
        assert self._link is not None
        last: Count | None = None
        while not self._stop.is_set():
            self._count_changed.clear()
            clients = self._server.connected_clients if self._server else []
            count = Count(
                listeners=self.listeners,
                sessions=len(self._server.clients) if self._server else 0,
                channels=self.lanes.counts(clients),
            )
            if count != last:
                self._link.send(count)
                last = count
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._count_changed.wait(), COUNT_REFRESH_S)

    async def _on_websocket(self, request: web.Request) -> web.StreamResponse:
        """The library's handler, with the connection under the ghost watch."""
        assert self._server is not None
        transport = request.transport
        if transport is not None:
            self._ghosts.track(transport)  # type: ignore[arg-type]
        try:
            return await self._server.on_client_connect(request)
        finally:
            if transport is not None:
                self._ghosts.untrack(transport)  # type: ignore[arg-type]

    # -- lifecycle -------------------------------------------------------------------------
    def _join_target(self) -> dict[str, Any]:
        return {"port": self.port, "path": SendspinServer.API_PATH, "worker": self.worker_id}

    async def run(self, link: ipc.Link) -> int:
        self._link = link
        loop = asyncio.get_running_loop()
        self._server = PartyServer(
            loop,
            Identity.generate(),
            self.name,
            pairing_store=PartyPairingStore(),
            allow_unencrypted=True,  # sendspin-js 3.2.1 predates encryption
        )
        self._server.add_event_listener(self._on_event)
        self._server.admit = self._gate.hello
        app = party_web.make_app(lambda: self.status, self._join_target, gate=self._gate.join)
        app.router.add_get(SendspinServer.API_PATH, self._on_websocket)
        app.router.add_get("/t/{ticket}" + SendspinServer.API_PATH, self._on_websocket)
        app.router.add_get(
            "/api/me", roster.report_route(self._roster, self._server, self.lanes.index_of)
        )
        app.router.add_post("/api/channel", self._channel_route())
        app.router.add_get(Covers.ROUTE, self._tracks.covers.handle)
        try:
            runner = await party_web.serve(app, self.host, self.port)
        except OSError as exc:
            self._link.send(Failed(text=f"port {self.port} is unavailable: {exc}"))
            await self._link.close()
            return EXIT_PORT_IN_USE
        self._link.send(Ready())
        counts = self._tasks.spawn("counts", self._report_counts())
        self._tasks.spawn("ghosts", self._ghosts.run(self._stop))
        self._tasks.spawn("reaper", self._reap())
        link = self._link
        self._tasks.spawn(
            "roster",
            roster.report(
                self._roster, self._server, self._left,
                lambda rows: link.send(Roster.of(rows)), self._stop,
            ),
        )  # fmt: skip
        self._tasks.spawn("tracks", self._tracks.run(self._stop))
        try:
            await first_completed(
                self._tasks.spawn("receive", self._receive()),
                counts,
                self._tasks.spawn("stop", self._stop.wait()),
            )
        finally:
            self._stop.set()
            await self._shutdown(runner)
        return 0

    async def _shutdown(self, runner: web.AppRunner) -> None:
        self._reset_stream()
        await self._tasks.close(1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.close(), 2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), 2.0)
        if self._link is not None:
            await self._link.close()


@functools.cache
def _this_process() -> Any:
    import psutil

    return psutil.Process()


def _rss() -> int:
    with contextlib.suppress(Exception):
        return int(_this_process().memory_info().rss)
    return 0


def _install_debug_hooks() -> None:
    """Tests only (PARTYSTREAM_DEBUG_HOOKS=1): SIGUSR1 blocks this worker's loop for good,
    the way a stuck library call would, so the watchdog can be shown to work."""
    if os.environ.get("PARTYSTREAM_DEBUG_HOOKS") == "1" and hasattr(signal, "SIGUSR1"):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, time.sleep, 3600)


def main(worker_id: int, link_port: int, token: str, log_dir: str | None) -> None:
    """Process entry point (spawned by the coordinator's supervisor, often before the party
    starts: the protocol library is imported here, off the critical path of Start)."""

    async def run(stop: asyncio.Event) -> int:
        _install_debug_hooks()
        frames.install()
        link = await ipc.connect(link_port, token, role="worker", id=worker_id)
        serve: asyncio.Future[Serve] = asyncio.get_running_loop().create_future()
        if await serve_link(link, {Serve: serve.set_result}, until=serve) != "done":
            await link.close()  # stopped while warm: the party never started
            return 0
        order = serve.result()
        return await Worker(worker_id, order.host, order.port, order.name, stop).run(link)

    child_main(f"worker-{worker_id}", log_dir, run)
