"""PartyController: the one API the tray app and the CLI use to run a party.

It owns the coordinator process and talks to it over a loopback link, so nothing here ever
blocks an event loop (Qt's included): status arrives as messages and is handed to
listeners; commands are messages whose replies are awaited with timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from server import ipc
from server.config import PartyConfig
from server.sources.base import SourceSpec
from server.tasks import TaskGroup

log = logging.getLogger(__name__)
SPAWN = multiprocessing.get_context("spawn")
START_TIMEOUT_S = 45.0
COMMAND_TIMEOUT_S = 30.0


def _run_coordinator(*args: Any) -> None:
    """Spawn target. The import happens in the child: the GUI never pays for the protocol
    library (about 1.5 s of imports) just to name what to start."""
    from server import coordinator

    coordinator.main(*args)


class PartyError(RuntimeError):
    """The party could not start or do what was asked; the message is for people."""


@dataclass
class PartyStatus:
    """A snapshot of the party as the coordinator last reported it."""

    state: str = "idle"  # idle | starting | live | stopping | error
    name: str = ""
    url: str = ""
    port: int = 0
    listeners: int | None = None  # None: no real figure yet (never a made-up minimum)
    workers: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    level: dict[str, float] | None = None
    lead_ms: int = 0
    stats: dict[str, Any] = field(default_factory=dict)

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
        self._process: BaseProcess | None = None
        self._link: ipc.Link | None = None
        self._link_server: asyncio.Server | None = None
        self._linked = asyncio.Event()
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

    def _event(self, level: str, message: str) -> None:
        for callback in list(self._event_listeners):
            try:
                callback(level, message)
            except Exception:
                log.exception("event listener failed")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # -- commands ----------------------------------------------------------------------
    async def start(self, source: SourceSpec) -> PartyStatus:
        """Start the coordinator and its workers; returns once phones can join.

        Raises PartyError with a plain-language reason (bad source, no free port, ...)
        and leaves no process behind in that case.
        """
        if self.running:
            raise PartyError("The party is already running.")
        loop = asyncio.get_running_loop()
        self._closed.clear()
        self._ready = loop.create_future()
        self._linked.clear()
        token = ipc.new_token()
        self._link_server, link_port = await ipc.listen(token, self._on_link)
        self._set_status(PartyStatus(state="starting", name=self.config.name))
        self._process = SPAWN.Process(
            target=_run_coordinator,
            args=(self.config.to_dict(), source.to_dict(), link_port, token),
            name="partystream-coordinator",
            daemon=False,  # it has children of its own; it exits when our link drops
        )
        self._process.start()
        self._tasks.spawn("watch", self._watch_process())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except TimeoutError:
            await self.stop()
            raise PartyError("The party did not start in time; see the log for details.") from None
        except PartyError:
            await self.stop()
            raise
        return self.status

    async def set_source(self, source: SourceSpec) -> None:
        """Switch what plays; on failure the current source keeps playing."""
        if self._link is None or not self.running:
            raise PartyError("The party is not running.")
        rid = next(self._ids)
        reply: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._replies[rid] = reply
        self._link.send({"t": "set_source", "id": rid, "source": source.to_dict()})
        try:
            error = await asyncio.wait_for(reply, COMMAND_TIMEOUT_S)
        except TimeoutError:
            raise PartyError("The party did not answer in time.") from None
        finally:
            self._replies.pop(rid, None)
        if error:
            raise PartyError(error)

    async def stop(self, timeout: float = 8.0) -> None:
        """Graceful, bounded shutdown of the coordinator and all workers."""
        proc = self._process
        if proc is None:
            return
        self._set_status(PartyStatus(**{**self.status.__dict__, "state": "stopping"}))
        if self._link is not None:
            self._link.send({"t": "stop"})
        deadline = time.monotonic() + timeout
        while proc.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if proc.is_alive():
            log.warning("coordinator did not stop in %.0fs; terminating", timeout)
            proc.terminate()
            await asyncio.sleep(0.5)
        if proc.is_alive():
            proc.kill()
        await self._cleanup()

    def kill(self) -> None:
        """Immediate exit path (second Ctrl+C): workers follow within a second or two."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    async def wait_closed(self) -> None:
        """Until the coordinator has gone, for whatever reason."""
        await self._closed.wait()

    # -- plumbing ----------------------------------------------------------------------
    async def _on_link(self, link: ipc.Link, hello: dict[str, Any]) -> None:
        if hello.get("role") != "coordinator" or self._linked.is_set():
            await link.close()
            return
        self._link = link
        self._linked.set()
        try:
            while True:
                msg, _ = await link.recv()
                self._handle(msg)
        except ipc.LinkClosed:
            pass

    def _handle(self, msg: dict[str, Any]) -> None:
        match msg["t"]:
            case "status":
                self._set_status(PartyStatus.from_dict(msg["status"]))
            case "ready":
                self._set_status(PartyStatus.from_dict(msg["status"]))
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            case "event":
                self._event(str(msg["level"]), str(msg["msg"]))
            case "fatal":
                self._event("error", str(msg["msg"]))
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(PartyError(str(msg["msg"])))
                else:
                    self._set_status(
                        PartyStatus(
                            **{**self.status.__dict__, "state": "error", "message": str(msg["msg"])}
                        )
                    )
            case "source_result":
                reply = self._replies.get(msg.get("id", -1))
                if reply is not None and not reply.done():
                    reply.set_result(msg.get("error"))

    async def _watch_process(self) -> None:
        """Notice the coordinator ending (crash included) and settle every waiter."""
        proc = self._process
        assert proc is not None
        while proc.is_alive():
            await asyncio.sleep(0.2)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                PartyError(f"The party stopped while starting (exit code {proc.exitcode}).")
            )
        was_live = self.status.state == "live"
        if was_live:
            self._event("error", f"The party stopped unexpectedly (exit code {proc.exitcode}).")
        await self._cleanup(from_watch=True)

    async def _cleanup(self, *, from_watch: bool = False) -> None:
        proc, self._process = self._process, None
        if proc is not None:
            proc.join(0)
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(PartyError("The party stopped."))
        if self._link is not None:
            await self._link.close()
            self._link = None
        if self._link_server is not None:
            self._link_server.close()
            self._link_server = None
        if not from_watch:
            await self._tasks.close(1.0)
        if self.status.state != "error":
            self._set_status(PartyStatus(state="idle", name=self.config.name))
        self._closed.set()
