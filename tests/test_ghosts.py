"""The ghost watch with real TCP sockets: a slow but live reader stays, a frozen one goes."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from server.ghosts import GhostWatch

STALL_S = 1.5
CHUNK = 32 * 1024


@asynccontextmanager
async def streaming(watch: GhostWatch) -> AsyncIterator[tuple[asyncio.StreamReader, list]]:
    """A server that writes CHUNK every 50 ms (640 KB/s) to one client, under the watch."""
    transports: list[asyncio.WriteTransport] = []

    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        transports.append(transport)
        watch.track(transport)
        while not transport.is_closing():
            writer.write(b"x" * CHUNK)
            await asyncio.sleep(0.05)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=CHUNK)
    try:
        yield reader, transports
    finally:
        writer.close()
        server.close()
        for transport in transports:
            transport.abort()


async def watch_for(
    watch: GhostWatch, seconds: float, read: asyncio.StreamReader | None, transports: list
) -> None:
    """Run the watch (reading slowly if `read`) until time is up or the connection ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(t.is_closing() for t in transports):
        if read is not None:
            await read.read(8 * 1024)  # 8 KiB per 50 ms: a quarter of what is sent
        await asyncio.sleep(0.05)
        watch.check(time.monotonic())


@pytest.mark.skipif(sys.platform != "linux", reason="TCP_INFO progress is read on Linux only")
async def test_a_slow_reader_with_a_growing_backlog_is_not_a_ghost() -> None:
    watch = GhostWatch(stall_s=STALL_S)
    async with streaming(watch) as (reader, transports):
        await watch_for(watch, STALL_S * 3, reader, transports)
        assert transports and transports[0].get_write_buffer_size() > 0, "never backlogged"
        assert not transports[0].is_closing(), "a live phone on a slow link was dropped"


async def test_a_reader_that_stopped_reading_is_dropped() -> None:
    watch = GhostWatch(stall_s=STALL_S)
    async with streaming(watch) as (_, transports):
        t0 = time.monotonic()
        await watch_for(watch, STALL_S + 6, None, transports)
        # Aborted by the watch, or by the kernel (TCP_USER_TIMEOUT, set to stall_s by it).
        assert transports[0].is_closing(), "a reader that stopped reading was kept"
        assert time.monotonic() - t0 < STALL_S + 5
