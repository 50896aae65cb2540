"""Structured concurrency helpers used wherever a long-lived task exists.

Rules they enforce: every task is named and owned; a failure is logged, never lost; shutdown
drains with a timeout and then force-cancels, so nothing hangs on a task stuck after its
socket died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)


class TaskGroup:
    """Owns a set of named background tasks and cancels them in bounded time."""

    def __init__(
        self, name: str, on_error: Callable[[asyncio.Task[Any], BaseException], None] | None = None
    ) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_error = on_error

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start a task that logs its own failure and forgets itself when done."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s failed", task.get_name(), exc_info=exc)
            if self._on_error is not None:
                self._on_error(task, exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float) -> None:
        """Let running tasks finish (without cancelling them), for at most `timeout`."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self, timeout: float = 2.0) -> None:
        """Cancel every task and wait at most `timeout` for them to finish."""
        await drain(list(self._tasks), timeout)


async def drain(tasks: Iterable[asyncio.Task[Any]], timeout: float) -> None:
    """Cancel tasks, wait up to `timeout`, and log any that refuse to stop."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    for task in stuck:
        log.warning("task %s did not stop within %.1fs", task.get_name(), timeout)


async def first_completed(*aws: asyncio.Task[Any], drain_timeout: float = 2.0) -> asyncio.Task[Any]:
    """Wait until one task finishes, then drain the others (never a gather over lifetimes)."""
    done, rest = await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)
    await drain(rest, drain_timeout)
    return done.pop()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake at once on shutdown. Returns True if `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def in_daemon_thread[T](
    fn: Callable[[], T],
    *,
    timeout: float | None = None,
    discard: Callable[[T], None] | None = None,
    name: str = "blocking",
) -> T:
    """Run blocking `fn` in a daemon thread, waiting at most `timeout` (TimeoutError).

    Not asyncio.to_thread: its pool threads are joined at interpreter exit, so a hung driver
    call or a slow import would hold up quitting; a daemon thread is dropped instead.
    A result that comes after we gave up (or were cancelled) is handed to `discard`, so a
    stream opened too late is closed instead of leaked.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    lock = threading.Lock()
    state = {"abandoned": False, "delivered": False}

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result, error = None, None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        with lock:
            if state["abandoned"]:
                if error is None and discard is not None:
                    with contextlib.suppress(Exception):
                        discard(result)  # type: ignore[arg-type]
                return
            state["delivered"] = True
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except BaseException:
        with lock:
            delivered = state["delivered"]
            state["abandoned"] = True
        if delivered:  # the result is on its way: take it so it can be released
            with contextlib.suppress(BaseException):
                result = await asyncio.wait_for(future, 1.0)
                if discard is not None:
                    discard(result)
        raise
