"""Bounded connections for every party port (front door and workers).

Why here and not in the library: a connection costs a file descriptor and an aiohttp handler
before any Sendspin code runs, so the bounds sit where aiohttp's server learns of a new
connection (`web.Server.connection_made`). A connection over a bound is answered with a
short `503` and closed at once: its descriptor is returned immediately, so a flood can never
push the process to its open-files limit. (At that limit asyncio's accept loop logs an error
with a traceback for every queued connection each second, and every socket the process
wants to open fails.) asyncio accepts up to `BACKLOG` connections in one go before aiohttp
sees any of them, so the budget leaves room for one such batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)
FD_RESERVE = 64  # descriptors kept for log files, links, the event loop, a restarting source
BACKLOG = 128  # listen queue, and the most connections asyncio accepts in one batch
MAX_CONNECTIONS = 1000  # per process; a worker plays to far fewer phones than this
MAX_PER_ADDRESS = 32  # one phone opens a few (page, status polls, the socket); a NAT a few more
# The host itself: a packet from the LAN cannot carry these source addresses, and a local
# program (the tray app, a benchmark) could do far worse than connect.
HOST_ITSELF = frozenset({"127.0.0.1", "::1"})
NOFILE_CEILING = 65536  # when the hard limit is "unlimited", ask for this many
KEEPALIVE_S = 15.0  # idle HTTP connection / incomplete request headers are closed after this
LINGER_S = 1.0  # how long an unread request body is drained before we hang up
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 21\r\n\r\nToo many connections\n"
)


def raise_open_files() -> int | None:
    """Raise this process's soft open-files limit to the hard one; the limit now in force.

    Desktop defaults are low (1024 on Linux, 256 on macOS) and every phone costs descriptors.
    None where there is no such limit to raise (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    want = max(soft, want) if soft != resource.RLIM_INFINITY else soft
    for target in (want, 10240):  # macOS refuses more than OPEN_MAX (10240) per process
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
            break
        except (ValueError, OSError):
            continue
    log.info("open files limit: %s (hard limit %s)", soft, hard)
    return soft


def connection_budget(open_files: int | None) -> int:
    """How many connections this process may hold: MAX_CONNECTIONS, or fewer when the
    open-files limit would not leave room for one accept batch and FD_RESERVE."""
    if open_files is None:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, open_files - FD_RESERVE - BACKLOG))


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Make asyncio's "out of descriptors" accept error one throttled line.

    asyncio then pauses accepting for a second by itself; what it also does is report the
    error with a traceback once per queued connection (143 187 lines in 48 s in the attack
    run). Every other error still reaches the previous handler.
    """
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            log.warning("cannot accept connections (%s); retrying in 1 s", context.get("exception"))
        elif previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _address(transport: asyncio.BaseTransport) -> str:
    peer: Any = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "local"


class ConnectionGate:
    """Counts open connections in total and per client address; refuses past the caps."""

    def __init__(self, total: int, per_address: int = MAX_PER_ADDRESS) -> None:
        self.total = total
        self.per_address = per_address
        self.by_address: Counter[str] = Counter()
        self.open = 0

    def admit(self, address: str) -> bool:
        per_address_full = (
            self.by_address[address] >= self.per_address and address not in HOST_ITSELF
        )
        if self.open >= self.total or per_address_full:
            log.warning(
                "refusing a connection from %s: %d open (%d from it); caps %d / %d per address",
                address, self.open, self.by_address[address], self.total, self.per_address,
            )  # fmt: skip
            return False
        self.open += 1
        self.by_address[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]

    def attach(self, server: web.Server) -> None:
        """Gate every connection `server` (aiohttp's low-level server) is handed.

        aiohttp calls `server.connection_made(handler, transport)` first thing for each new
        connection and `connection_lost` when it ends: the one place that sees them all
        (plain HTTP, WebSocket upgrades, junk) before any request is parsed.
        """
        made, lost = server.connection_made, server.connection_lost
        admitted: dict[object, str] = {}

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            address = _address(transport)
            if not self.admit(address):
                transport.write(REFUSAL)
                transport.close()  # flushes the refusal, then frees the descriptor
                return
            admitted[handler] = address

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            address = admitted.pop(handler, None)
            if address is not None:
                self.release(address)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]


def runner_options() -> dict[str, Any]:
    """aiohttp server options that bound idle and slow clients (see the constants)."""
    return {
        "keepalive_timeout": KEEPALIVE_S,
        "lingering_time": LINGER_S,
        "max_line_size": 8190,
        "max_field_size": 8190,
        "max_headers": 64,
    }
