"""The one lifecycle of a child process, from both sides.

Parent side, `Child`: spawn (the only start method on Windows/macOS and in a frozen app),
then stop as a cascade: ask politely (the caller sends Stop), wait, terminate, wait, kill,
reap (no zombies); the exit code and the last log lines are kept for the host. The
controller owns one (the coordinator); the supervisor one per worker.

Child side, `child_main`: what every child does around its work: Ctrl+C belongs to the
controller, logs go to the child's own file, the Windows ConnectionResetError handler is
installed, SIGTERM asks for a graceful stop, and the child exits when its parent is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

from server import logs, winloop
from server.tasks import sleep_or_stop

log = logging.getLogger(__name__)
SPAWN = multiprocessing.get_context("spawn")
TERMINATE_WAIT_S = 1.0
KILL_WAIT_S = 1.0
POLL_S = 0.05
MAX_POLL_S = 0.5


class Child:
    """One spawned process we own."""

    def __init__(
        self,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        *,
        daemon: bool,
        log_dir: str | None = None,
    ) -> None:
        self.name = name  # also the name of its log file
        self._target = target
        self._args = args
        self._daemon = daemon
        self._log_dir = log_dir
        self._process: BaseProcess | None = None
        self.exitcode: int | None = None
        self.last_lines: list[str] = []  # its log's tail when it ended on its own

    def start(self) -> None:
        self.exitcode = None
        self._process = SPAWN.Process(
            target=self._target, args=self._args, name=f"partystream-{self.name}",
            daemon=self._daemon,
        )  # fmt: skip
        self._process.start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def reap(self) -> int | None:
        """Collect a child that has exited (no zombie); its exit code, or None if running."""
        proc = self._process
        if proc is None or proc.is_alive():
            return None
        proc.join(0)
        self.exitcode = proc.exitcode
        self.last_lines = logs.tail(self._log_dir, self.name)
        return self.exitcode

    async def wait(self, timeout: float) -> bool:
        """True once the process has exited (and was reaped) within `timeout`. Polls quickly
        at first (a stop is usually quick), then slowly: a watcher that waits for hours
        must not wake the app 20 times a second."""
        deadline = time.monotonic() + timeout
        poll = POLL_S
        while self.alive and time.monotonic() < deadline:
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            poll = min(poll * 1.5, MAX_POLL_S)
        return self.reap() is not None or self._process is None

    async def stop(self, grace: float) -> None:
        """After the caller asked it to stop: wait `grace`, then terminate, then kill."""
        if self._process is None:
            return
        if not await self.wait(grace):
            log.info("%s did not stop in %.1fs; terminating", self.name, grace)
            self._process.terminate()
        if not await self.wait(TERMINATE_WAIT_S):
            self.kill()
            await self.wait(KILL_WAIT_S)

    def kill(self) -> None:
        """At once (a second Ctrl+C, or a child that ignored terminate)."""
        if self.alive:
            assert self._process is not None
            self._process.kill()


async def _watch_parent(stop: asyncio.Event) -> None:
    """Belt and braces next to the link: exit if we were re-parented (parent died)."""
    parent = os.getppid()
    while not await sleep_or_stop(stop, 1.0):
        if os.getppid() != parent:
            os._exit(1)


def child_main(
    process: str,
    log_dir: str | None,
    run: Callable[[asyncio.Event], Coroutine[Any, Any, int]],
) -> NoReturn:
    """Run `run(stop)` as this process's whole life and exit with its code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the controller's to handle
    logs.setup(process, log_dir)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        winloop.install(loop)
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        gone = asyncio.Event()
        watcher = loop.create_task(_watch_parent(gone)) if sys.platform != "win32" else None
        try:
            return await run(stop)
        finally:
            gone.set()
            if watcher is not None:
                watcher.cancel()

    sys.exit(asyncio.run(main(), loop_factory=fast_loop_factory()))


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it exists (Linux, macOS): the same asyncio API with a faster loop under
    hundreds of sockets. PARTYSTREAM_LOOP=asyncio forces the standard loop."""
    if sys.platform == "win32" or os.environ.get("PARTYSTREAM_LOOP") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
