"""Fault hooks for tests, off unless the environment turns them on.

With PARTYSTREAM_DEBUG_HOOKS=1 in a worker's environment (children inherit the controller's),
SIGUSR1 blocks the worker's event loop for PARTYSTREAM_DEBUG_BLOCK_S seconds (default 30):
a stuck worker, the case the supervisor's watchdog must catch, without patching any code.
A signal, not a message on the link: a stuck loop could not read one, and the link's
vocabulary stays the party's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

log = logging.getLogger(__name__)
ENABLE_ENV = "PARTYSTREAM_DEBUG_HOOKS"
BLOCK_ENV = "PARTYSTREAM_DEBUG_BLOCK_S"
DEFAULT_BLOCK_S = 30.0


def install(loop: asyncio.AbstractEventLoop) -> bool:
    """Install the hooks when enabled (and the platform has SIGUSR1); whether they are."""
    if os.environ.get(ENABLE_ENV) != "1" or not hasattr(signal, "SIGUSR1"):
        return False
    block_s = float(os.environ.get(BLOCK_ENV, DEFAULT_BLOCK_S))

    def block() -> None:
        log.warning("debug hook: blocking the event loop for %.1f s", block_s)
        time.sleep(block_s)  # deliberately blocking: that is the fault being simulated

    loop.add_signal_handler(signal.SIGUSR1, block)
    return True
