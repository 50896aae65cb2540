"""Blocking work (imports, sound-device scans) off the GUI thread, never delaying Quit.

asyncio.to_thread's pool threads are joined when the interpreter exits, so a slow import
or a hanging `pactl` would hold up quitting. A daemon thread per job is dropped instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any


async def in_thread[T](fn: Callable[..., T], *args: Any, name: str = "background") -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:
            outcome: tuple[Any, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # RuntimeError: the loop closed meanwhile, so nobody waits for this any more.
        with contextlib.suppress(RuntimeError):
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await future
