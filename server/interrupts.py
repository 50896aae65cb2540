"""Ctrl+C and SIGTERM for a process that hosts a party.

First signal: graceful, bounded shutdown (and the user is told a second Ctrl+C forces it).
Second signal: exit at once. `loop.add_signal_handler` does not exist on Windows, so we fall
back to `signal.signal` there rather than silently losing Ctrl+C (an upstream bug).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable


class Interrupts:
    def __init__(self, on_graceful: Callable[[], None], on_force: Callable[[], None]) -> None:
        self._on_graceful = on_graceful
        self._on_force = on_force
        self.count = 0

    def fire(self) -> None:
        self.count += 1
        (self._on_graceful if self.count == 1 else self._on_force)()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.fire)
            except (NotImplementedError, RuntimeError):
                signal.signal(sig, lambda *_: loop.call_soon_threadsafe(self.fire))
