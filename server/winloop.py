"""Windows' Proactor loop reports a phone that dropped as an unhandled ConnectionResetError.

Every process (GUI, coordinator, each worker) installs this handler so that exactly that
error is silenced and everything else still reaches the default handler.
"""

import asyncio
import sys
from typing import Any


def is_connection_reset(context: dict[str, Any]) -> bool:
    """True for the WinError 10054 noise a vanished client causes, nothing else."""
    exc = context.get("exception")
    return isinstance(exc, ConnectionResetError)


def install(loop: asyncio.AbstractEventLoop, *, platform: str | None = None) -> bool:
    """Install the handler on win32 (returns whether it was installed)."""
    if (platform or sys.platform) != "win32":
        return False
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_connection_reset(context):
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return True
