"""Ghost listeners: phones that vanished without closing their connection.

A phone whose Wi-Fi dropped or whose browser froze keeps its TCP connection open; the
protocol library only notices at its 30 s heartbeat (plus 15 s for the pong). Audio flows to
every listener all the time, so a connection whose outgoing data stops draining is a ghost:
we abort it after `stall_s`, the library reports the disconnect and the count is right again.
On Linux, TCP_USER_TIMEOUT also lets the kernel give up on unacknowledged data.

"Draining" means progress, not an empty buffer: a live phone on a slow, crowded Wi-Fi may
keep a backlog for longer than `stall_s` while the peer acknowledges data all the time (the
Wi-Fi bench saw such phones reset). On Linux the kernel's count of acknowledged bytes
(TCP_INFO) tells them apart from ghosts; a frozen browser's kernel answers window probes,
but acknowledges no new bytes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time

from server.tasks import sleep_or_stop

log = logging.getLogger(__name__)
STALL_S = 10.0
SEND_BUFFER_BYTES = 256 * 1024  # bounded kernel buffering, so a stall shows quickly
TCPI_BYTES_ACKED = 120  # offset of tcpi_bytes_acked (u64) in Linux's struct tcp_info
TCP_INFO_LEN = 256


def acked_bytes(transport: asyncio.BaseTransport) -> int | None:
    """Bytes the peer has acknowledged on this connection (Linux), None where unknown."""
    sock = transport.get_extra_info("socket")
    tcp_info = getattr(socket, "TCP_INFO", None)
    if sock is None or tcp_info is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, TCP_INFO_LEN)
    except OSError:
        return None
    if len(info) < TCPI_BYTES_ACKED + 8:
        return None
    return struct.unpack_from("=Q", info, TCPI_BYTES_ACKED)[0]


def tune_socket(transport: asyncio.BaseTransport, stall_s: float = STALL_S) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(stall_s * 1000))
    except OSError as exc:  # not fatal: the watchdog still works
        log.debug("socket tuning failed: %s", exc)


class GhostWatch:
    """Aborts connections whose write buffer has neither drained nor shrunk through the
    peer's acknowledgements for `stall_s` seconds."""

    def __init__(self, stall_s: float = STALL_S) -> None:
        self.stall_s = stall_s
        self._since: dict[asyncio.WriteTransport, float] = {}
        self._acked: dict[asyncio.WriteTransport, int | None] = {}

    def track(self, transport: asyncio.WriteTransport) -> None:
        tune_socket(transport, self.stall_s)
        self._since[transport] = 0.0
        self._acked[transport] = acked_bytes(transport)

    def untrack(self, transport: asyncio.WriteTransport) -> None:
        self._since.pop(transport, None)
        self._acked.pop(transport, None)

    def _acknowledging(self, transport: asyncio.WriteTransport) -> bool:
        """Has the peer acknowledged new data since the last check?"""
        acked, before = acked_bytes(transport), self._acked.get(transport)
        self._acked[transport] = acked
        return acked is not None and before is not None and acked > before

    def check(self, now: float) -> None:
        for transport, since in list(self._since.items()):
            if transport.is_closing():
                self.untrack(transport)
                continue
            if self._acknowledging(transport) or transport.get_write_buffer_size() == 0:
                self._since[transport] = 0.0
            elif since == 0.0:
                self._since[transport] = now
            elif now - since > self.stall_s:
                peer = transport.get_extra_info("peername")
                log.info("dropping listener %s: nothing drained for %.0fs", peer, now - since)
                self.untrack(transport)
                transport.abort()

    async def run(self, stop: asyncio.Event) -> None:
        while not await sleep_or_stop(stop, 1.0):
            self.check(time.monotonic())
