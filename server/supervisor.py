"""Starts, watches and restarts the worker processes.

Startup cannot hang on a worker that died before reporting. A crash is noticed by process
liveness; a stuck worker (its loop answers no Ping for STUCK_AFTER_S) or a bloated one (RSS
past MAX_WORKER_RSS) is killed and treated the same: routing stops at once, it is reported
once and restarted on the same port with exponential backoff and a cap, so its phones rejoin
through the front door; a worker that keeps failing is given up on while the others serve.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server import ipc
from server.child import Child
from server.messages import (
    Count,
    Failed,
    Hello,
    Message,
    Ping,
    Pong,
    Ready,
    Serve,
    Stop,
    serve_link,
)
from server.sources.base import Report
from server.tasks import sleep_or_stop

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 30.0
HEALTH_INTERVAL_S = 0.25
PING_INTERVAL_S = 1.0
# A loop that cannot answer a ping this long has left its phones in silence (a busy but live
# worker answers late, not never: churn of handshakes on a loaded 2-core machine took ~6 s).
STUCK_AFTER_S = 10.0
OWN_STALL_S = 1.0  # our own loop slept this much longer than asked: pongs may be unread
# Measured: an idle worker ~60 MiB, 200 listeners ~150 MiB (bench/README.md). 1 GiB is far
# past any real party and far below what hurts the host (an attack reached 2.8 GB).
MAX_WORKER_RSS = 1024 * 1024 * 1024
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
CRASH_WINDOW_S = 60.0
MAX_CRASHES_IN_WINDOW = 5
STOP_GRACE_S = 3.0
WARM_STOP_GRACE_S = 0.3


def _run_worker(*args: Any) -> None:
    """Spawn target; only worker processes import the protocol library's server side."""
    from server import worker

    worker.main(*args)


def restart_delay(crashes: deque[float], now: float) -> float | None:
    """Record a crash at `now`; the backoff before the restart, or None to give up."""
    crashes.append(now)
    while crashes and now - crashes[0] > CRASH_WINDOW_S:
        crashes.popleft()
    if len(crashes) > MAX_CRASHES_IN_WINDOW:
        return None
    return min(BACKOFF_START_S * 2 ** (len(crashes) - 1), BACKOFF_MAX_S)


@dataclass
class WorkerHandle:
    id: int
    port: int
    child: Child | None = None
    link: ipc.Link | None = None
    ready: bool = False
    listeners: int | None = None
    sessions: int = 0  # client states the worker holds (connected + recently left)
    channels: list[int] = field(default_factory=list)  # its listeners on each channel
    joins: deque[float] = field(default_factory=deque)  # phones sent here, not yet counted
    crashes: deque[float] = field(default_factory=deque)
    last_error: str | None = None
    given_up: bool = False
    restart_at: float | None = None
    last_pong: float = 0.0
    rss: int = 0

    @property
    def alive(self) -> bool:
        return (
            self.ready
            and self.link is not None
            and not self.link.closed
            and self.child is not None
            and self.child.alive
        )

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "port": self.port,
            "listeners": self.listeners,
            "alive": self.alive,
            "sessions": self.sessions,
        }


class Supervisor:
    def __init__(
        self,
        *,
        count: int,
        host: str,
        first_port: int,
        name: str,
        log_dir: str | None,
        report: Report,
        on_change: Callable[[], None],
    ) -> None:
        self.workers = [WorkerHandle(i, first_port + i) for i in range(count)]
        self._host = host
        self._name = name
        self._log_dir = log_dir
        self._report = report
        self._on_change = on_change
        self._token = ipc.new_token()
        self._link_server: asyncio.Server | None = None
        self._link_port = 0
        self._settled = asyncio.Event()
        self._ping = 0
        self._serving = False
        self.greeting: Callable[[], list[Message]] = list  # sent to each worker when ready
        # More of the workers' messages, for other parts of the coordinator (server/listeners.py).
        self.extra_handlers: dict[type[Message], Callable[[WorkerHandle, Any], None]] = {}

    # -- startup ---------------------------------------------------------------------------
    async def warm(self) -> None:
        """Spawn every worker now; each imports the protocol library, links up and waits for
        `start()` (the slow part of starting a party, done before the host presses Start)."""
        if self._link_server is not None:
            return
        self._link_server, self._link_port = await ipc.listen(self._token, self._on_link)
        for handle in self.workers:
            self._spawn(handle)

    async def start(self) -> int:
        """Have every worker serve on its port; wait until each is ready or has failed
        (bounded). Returns how many serve."""
        await self.warm()
        self._serving = True
        for handle in self.workers:
            if handle.child is not None and not handle.child.alive:  # died while warm
                self._spawn(handle)
            elif handle.link is not None:
                handle.link.send(self._serve_order(handle))
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            for handle in self.workers:
                child = handle.child
                if not (handle.ready or handle.given_up) and child and not child.alive:
                    code = child.reap()
                    self._give_up(handle, handle.last_error or f"exited with code {code}")
            if all(h.ready or h.given_up for h in self.workers):
                break
            self._settled.clear()
            await sleep_or_stop(self._settled, HEALTH_INTERVAL_S)
        for handle in self.workers:
            if not handle.ready and not handle.given_up:
                self._give_up(handle, "did not start in time")
        return sum(h.alive for h in self.workers)

    def _spawn(self, handle: WorkerHandle) -> None:
        if handle.child is not None:
            handle.child.reap()  # the one we killed before the backoff: no zombie
        handle.ready = False
        handle.listeners = None
        handle.last_pong = time.monotonic()
        args = (handle.id, self._link_port, self._token, self._log_dir)
        handle.child = Child(
            f"worker-{handle.id}", _run_worker, args, daemon=True, log_dir=self._log_dir
        )
        handle.child.start()

    def _give_up(self, handle: WorkerHandle, why: str) -> None:
        handle.given_up = True
        handle.restart_at = None
        others = sum(h.alive for h in self.workers if h is not handle)
        self._report(
            "error",
            f"Listener server {handle.id + 1} (port {handle.port}) {why}; giving up on it. "
            f"{others} other server(s) keep serving.",
        )
        self._on_change()

    # -- links -----------------------------------------------------------------------------
    async def _on_link(self, link: ipc.Link, hello: Hello) -> None:
        if hello.role != "worker" or not (0 <= hello.id < len(self.workers)):
            await link.close()
            return
        handle = self.workers[hello.id]
        handle.link = link
        if self._serving:  # a restart, or a worker that linked up after start()
            link.send(self._serve_order(handle))
        elif all(h.link is not None for h in self.workers):
            log.info("all %d workers are warm", len(self.workers))

        def changed(update: Callable[[Any], None]) -> Callable[[Any], None]:
            def handler(msg: Any) -> None:
                update(msg)
                self._settled.set()
                self._on_change()

            return handler

        extra = {kind: functools.partial(fn, handle) for kind, fn in self.extra_handlers.items()}
        try:
            await serve_link(
                link,
                {
                    **extra,
                    Ready: changed(lambda _: self._ready(handle, self.greeting())),
                    Count: changed(lambda msg: self._count(handle, msg)),
                    Failed: changed(lambda msg: setattr(handle, "last_error", msg.text)),
                    Pong: lambda msg: self._pong(handle, msg),
                },
            )
        finally:
            if handle.link is link:
                handle.ready = False
                handle.listeners = None
                self._on_change()

    def _serve_order(self, handle: WorkerHandle) -> Serve:
        return Serve(host=self._host, port=handle.port, name=self._name)

    @staticmethod
    def _ready(handle: WorkerHandle, greeting: list[Message]) -> None:
        handle.ready = True
        handle.listeners = 0
        handle.last_pong = time.monotonic()
        if handle.link is not None:
            for msg in greeting:
                handle.link.send(msg)

    @staticmethod
    def _count(handle: WorkerHandle, msg: Count) -> None:
        arrived = msg.listeners - (handle.listeners or 0)
        for _ in range(min(arrived, len(handle.joins))):
            handle.joins.popleft()
        handle.listeners = msg.listeners
        handle.sessions = msg.sessions
        handle.channels = msg.channels

    @staticmethod
    def _pong(handle: WorkerHandle, msg: Pong) -> None:
        handle.last_pong = time.monotonic()
        handle.rss = msg.rss

    # -- running ---------------------------------------------------------------------------
    def live(self) -> list[WorkerHandle]:
        return [h for h in self.workers if h.alive]

    def total_listeners(self) -> int | None:
        """Sum over live workers; None until every live worker has reported a count."""
        live = self.live()
        if not live or any(h.listeners is None for h in live):
            return None
        return sum(h.listeners or 0 for h in live)

    def channel_listeners(self, count: int) -> list[int | None]:
        """Listeners on each of `count` channels; None like total_listeners (no made-up
        figure). A worker that reports no per-channel counts has all its listeners on the
        first channel."""
        if self.total_listeners() is None:
            return [None] * count
        totals = [0] * count
        for h in self.live():
            per = h.channels or [h.listeners or 0]
            for i, n in enumerate(per[:count]):
                totals[i] += n
        return list(totals)

    @property
    def all_given_up(self) -> bool:
        return all(h.given_up for h in self.workers)

    def listening(self) -> int:
        return self.total_listeners() or 0

    def send_all(self, msg: Message | bytes, *, droppable: bool = False) -> None:
        data = msg if isinstance(msg, bytes) else ipc.frame(msg)  # encoded once for all
        for handle in self.workers:
            if handle.alive and handle.link is not None:
                handle.link.send(data, droppable=droppable)

    async def watch(self, stop: asyncio.Event) -> None:
        """Health loop: notice crashed, stuck and bloated workers; restart them with backoff;
        give up on repeat offenders. Returns when no worker is left (the party is over)."""
        next_ping = 0.0
        last_tick = time.monotonic()
        while not await sleep_or_stop(stop, HEALTH_INTERVAL_S):
            now = time.monotonic()
            stalled = now - last_tick - HEALTH_INTERVAL_S
            last_tick = now
            if stalled > OWN_STALL_S:  # we were not running: do not blame the workers for it
                for handle in self.workers:
                    handle.last_pong += stalled
            if now >= next_ping:
                next_ping = now + PING_INTERVAL_S
                self._ping += 1
                self.send_all(Ping(seq=self._ping))
            if self.all_given_up:
                return
            for handle in self.workers:
                if handle.given_up or handle.child is None:
                    continue
                if handle.restart_at is not None:
                    if now >= handle.restart_at:
                        handle.restart_at = None
                        self._spawn(handle)
                    continue
                if not handle.child.alive:
                    self._failed(handle, now, "stopped unexpectedly (exit code {code})")
                elif handle.ready and now - handle.last_pong > STUCK_AFTER_S:
                    self._failed(handle, now, f"stopped responding for {STUCK_AFTER_S:.0f} s")
                elif handle.rss > MAX_WORKER_RSS:
                    self._failed(handle, now, f"grew to {handle.rss >> 20} MiB of memory")

    def _failed(self, handle: WorkerHandle, now: float, why: str) -> None:
        """Crashed, stuck or bloated: kill what is left, report once, restart with backoff."""
        assert handle.child is not None
        handle.child.kill()
        code = handle.child.reap()
        why = why.format(code=code)
        exit_note = f"exited with code {code}" if code is not None else why
        handle.ready = False
        handle.listeners = None
        handle.rss = 0
        if handle.link is not None:
            handle.link.abort()
            handle.link = None
        log.warning(
            "worker %d %s; its last log lines:\n%s",
            handle.id,
            exit_note,
            "\n".join(handle.child.last_lines) or "(none)",
        )
        delay = restart_delay(handle.crashes, now)
        if delay is None:
            self._give_up(handle, f"keeps failing ({why})")
            return
        handle.restart_at = now + delay
        self._report(
            "warning",
            f"Listener server {handle.id + 1} (port {handle.port}) {why}; restarting in "
            f"{delay:.1f} s. Its phones reconnect by themselves.",
        )
        self._on_change()

    # -- shutdown --------------------------------------------------------------------------
    async def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Ask politely, then terminate, then kill; never leave a process behind."""
        self.send_all(Stop())
        if not self._serving:
            grace = WARM_STOP_GRACE_S  # warm workers have nothing to close
        children = [h.child for h in self.workers if h.child is not None]
        await asyncio.gather(*(child.stop(grace) for child in children))
        for handle in self.workers:
            if handle.link is not None:
                await handle.link.close()
        if self._link_server is not None:
            self._link_server.close()
