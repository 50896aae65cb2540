"""Starts, watches and restarts the worker processes.

Lessons applied (DESIGN.md §2, §4): startup cannot hang on a worker that died before
reporting; a crash is noticed by process liveness, routing stops at once, it is reported
once, and the worker is restarted on the same port with exponential backoff and a cap;
a worker that keeps crashing is given up on while the others keep serving. Shutdown asks
politely, then terminates, then kills.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

from server import ipc, logs
from server.sources.base import Report
from server.tasks import sleep_or_stop

log = logging.getLogger(__name__)
SPAWN = multiprocessing.get_context("spawn")
STARTUP_TIMEOUT_S = 30.0
HEALTH_INTERVAL_S = 0.25
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
CRASH_WINDOW_S = 60.0
MAX_CRASHES_IN_WINDOW = 5
JOIN_GRACE_S = 10.0


def _run_worker(*args: Any) -> None:
    """Spawn target; only worker processes import the protocol library's server side."""
    from server import worker

    worker.main(*args)


@dataclass
class WorkerHandle:
    id: int
    port: int
    process: BaseProcess | None = None
    link: ipc.Link | None = None
    ready: bool = False
    listeners: int | None = None
    sessions: int = 0  # client states the worker holds (connected + recently left)
    joins: deque[float] = field(default_factory=deque)  # phones sent here, not yet counted
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)
    last_exit: int | None = None
    last_error: str | None = None
    last_lines: list[str] = field(default_factory=list)  # its log's tail when it last died
    given_up: bool = False
    restart_at: float | None = None

    @property
    def alive(self) -> bool:
        return (
            self.ready
            and self.link is not None
            and not self.link.closed
            and self.process is not None
            and self.process.is_alive()
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

    # -- startup ---------------------------------------------------------------------------
    async def start(self) -> int:
        """Spawn every worker and wait until each is ready or has failed (bounded)."""
        self._link_server, self._link_port = await ipc.listen(self._token, self._on_link)
        for handle in self.workers:
            self._spawn(handle)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            for handle in self.workers:
                self._check_startup(handle)
            if all(h.ready or h.given_up for h in self.workers):
                break
            self._settled.clear()
            await sleep_or_stop(self._settled, HEALTH_INTERVAL_S)
        for handle in self.workers:
            if not handle.ready and not handle.given_up:
                self._give_up(handle, "did not start in time")
        return sum(h.alive for h in self.workers)

    def _check_startup(self, handle: WorkerHandle) -> None:
        if handle.ready or handle.given_up or handle.process is None:
            return
        if not handle.process.is_alive():
            handle.last_exit = handle.process.exitcode
            self._give_up(handle, handle.last_error or f"exited with code {handle.last_exit}")

    def _spawn(self, handle: WorkerHandle) -> None:
        handle.ready = False
        handle.listeners = None
        handle.process = SPAWN.Process(
            target=_run_worker,
            args=(
                handle.id,
                self._host,
                handle.port,
                self._name,
                self._link_port,
                self._token,
                self._log_dir,
            ),
            name=f"partystream-worker-{handle.id}",
            daemon=True,
        )
        handle.process.start()

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
    async def _on_link(self, link: ipc.Link, hello: dict[str, Any]) -> None:
        wid = hello.get("id")
        if (
            hello.get("role") != "worker"
            or not isinstance(wid, int)
            or not (0 <= wid < len(self.workers))
        ):
            await link.close()
            return
        handle = self.workers[wid]
        handle.link = link
        try:
            while True:
                msg, _ = await link.recv()
                self._handle(handle, msg)
        except ipc.LinkClosed:
            pass
        finally:
            if handle.link is link:
                handle.ready = False
                handle.listeners = None
                self._on_change()

    def _handle(self, handle: WorkerHandle, msg: dict[str, Any]) -> None:
        match msg["t"]:
            case "ready":
                handle.ready = True
                handle.listeners = 0
            case "count":
                arrived = int(msg["n"]) - (handle.listeners or 0)
                for _ in range(min(arrived, len(handle.joins))):
                    handle.joins.popleft()
                handle.listeners = int(msg["n"])
                handle.sessions = int(msg.get("sessions", 0))
            case "error":
                handle.last_error = str(msg.get("msg"))
        self._settled.set()
        self._on_change()

    # -- running ---------------------------------------------------------------------------
    def live(self) -> list[WorkerHandle]:
        return [h for h in self.workers if h.alive]

    def total_listeners(self) -> int | None:
        """Sum over live workers; None until every live worker has reported a count."""
        live = self.live()
        if not live or any(h.listeners is None for h in live):
            return None
        return sum(h.listeners or 0 for h in live)

    def pick(self) -> WorkerHandle | None:
        """The least-loaded live worker (counting phones sent there but not yet reported)."""
        live = self.live()
        if not live:
            return None
        now = time.monotonic()
        for handle in live:  # a phone that never connected stops counting after a while
            while handle.joins and now - handle.joins[0] > JOIN_GRACE_S:
                handle.joins.popleft()
        best = min(live, key=lambda h: ((h.listeners or 0) + len(h.joins), h.id))
        best.joins.append(now)
        return best

    def send_all(
        self, msg: dict[str, Any], payload: bytes = b"", *, droppable: bool = False
    ) -> None:
        for handle in self.workers:
            if handle.alive and handle.link is not None:
                handle.link.send(msg, payload, droppable=droppable)

    async def watch(self, stop: asyncio.Event) -> None:
        """Health loop: notice crashes, restart with backoff, give up on repeat offenders."""
        while not await sleep_or_stop(stop, HEALTH_INTERVAL_S):
            now = time.monotonic()
            for handle in self.workers:
                if handle.given_up or handle.process is None:
                    continue
                if handle.restart_at is not None:
                    if now >= handle.restart_at:
                        handle.restart_at = None
                        handle.restarts += 1
                        self._spawn(handle)
                    continue
                if handle.process.is_alive():
                    continue
                self._crashed(handle, now)

    def _crashed(self, handle: WorkerHandle, now: float) -> None:
        assert handle.process is not None
        handle.last_exit = handle.process.exitcode
        handle.ready = False
        handle.listeners = None
        if handle.link is not None:
            handle.link.abort()
            handle.link = None
        handle.last_lines = logs.tail(self._log_dir, f"worker-{handle.id}")
        log.warning(
            "worker %d exited with code %s; its last log lines:\n%s",
            handle.id,
            handle.last_exit,
            "\n".join(handle.last_lines) or "(none)",
        )
        handle.crashes.append(now)
        while handle.crashes and now - handle.crashes[0] > CRASH_WINDOW_S:
            handle.crashes.popleft()
        if len(handle.crashes) > MAX_CRASHES_IN_WINDOW:
            self._give_up(handle, f"keeps crashing (last exit code {handle.last_exit})")
            return
        delay = min(BACKOFF_START_S * 2 ** (len(handle.crashes) - 1), BACKOFF_MAX_S)
        handle.restart_at = now + delay
        self._report(
            "warning",
            f"Listener server {handle.id + 1} (port {handle.port}) stopped unexpectedly "
            f"(exit code {handle.last_exit}); restarting in {delay:.1f} s. "
            "Its phones reconnect by themselves.",
        )
        self._on_change()

    # -- shutdown --------------------------------------------------------------------------
    async def stop(self, timeout: float = 3.0) -> None:
        """Ask politely, then terminate, then kill; never leave a process behind."""
        self.send_all({"t": "stop"})
        procs = [h.process for h in self.workers if h.process is not None]
        await _wait_exit(procs, timeout)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        await _wait_exit(procs, 1.0)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        await _wait_exit(procs, 1.0)
        for handle in self.workers:
            if handle.link is not None:
                await handle.link.close()
        if self._link_server is not None:
            self._link_server.close()


async def _wait_exit(procs: list[BaseProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for proc in procs:
        if not proc.is_alive() and proc.exitcode is not None:
            proc.join(0)  # reap: no zombies
