"""Message links between our own processes over loopback TCP.

Why sockets and not multiprocessing queues: asyncio streams never block the event loop,
work the same on Windows/macOS/Linux, and a closed socket is the parent-death signal
(a child whose link drops knows its parent is gone, even after `kill -9`). Every link starts
with a Hello carrying a random token, so nothing else on the machine or the LAN can drive it.

Frame: 4-byte header length, 4-byte payload length, JSON header, raw payload
(what goes in them: server/messages.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import struct
from collections.abc import Awaitable, Callable

from server.messages import Hello, Message, ProtocolError, decode, encode

_PREFIX = struct.Struct(">II")
MAX_HEADER = 64 * 1024
MAX_PAYLOAD = 1024 * 1024
HELLO_TIMEOUT = 5.0
MAX_PENDING_HELLOS = 16  # our own children link up a few at a time


class LinkClosed(ConnectionError):
    """The peer went away (or sent something that is not our protocol)."""


def new_token() -> str:
    """A secret a spawned child presents when it connects back."""
    return secrets.token_urlsafe(24)


def frame(msg: Message) -> bytes:
    """The bytes of one message on the wire (encode once, send to many)."""
    header, payload = encode(msg)
    return _PREFIX.pack(len(header), len(payload)) + header + payload


class Link:
    """One framed, bidirectional message channel."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_buffer: int = 8 * 1024 * 1024,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_buffer = max_buffer
        self.dropped = 0

    @property
    def backlog(self) -> int:
        """Bytes written but not yet taken by the peer."""
        transport = self._writer.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    @property
    def closed(self) -> bool:
        return self._writer.transport.is_closing()

    def send(self, msg: Message | bytes, *, droppable: bool = False) -> bool:
        """Queue a message (or a ready `frame`) without blocking. A droppable one is skipped
        (and counted) when the peer is too far behind, so one stuck child never stalls the
        others."""
        if self.closed:
            return False
        if droppable and self.backlog > self._max_buffer:
            self.dropped += 1
            return False
        self._writer.write(msg if isinstance(msg, bytes) else frame(msg))
        return True

    async def recv(self) -> Message:
        """Next message; raises LinkClosed on EOF or on anything malformed."""
        try:
            hlen, plen = _PREFIX.unpack(await self._reader.readexactly(_PREFIX.size))
            if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
                raise LinkClosed(f"oversized frame ({hlen}+{plen} bytes)")
            header = await self._reader.readexactly(hlen)
            payload = await self._reader.readexactly(plen) if plen else b""
            return decode(header, payload)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise LinkClosed(str(exc) or "link closed") from exc
        except ProtocolError as exc:
            raise LinkClosed(f"malformed frame: {exc}") from exc

    def abort(self) -> None:
        """Close now, without waiting (the peer is already gone)."""
        self._writer.transport.abort()

    async def close(self) -> None:
        if not self.closed:
            self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)


async def listen(
    token: str, on_link: Callable[[Link, Hello], Awaitable[None]]
) -> tuple[asyncio.Server, int]:
    """Accept links on 127.0.0.1 (ephemeral port); only Hellos with `token` get through, and
    at most MAX_PENDING_HELLOS connections may be waiting to say one (a local program that
    floods the port cannot hold our descriptors)."""
    pending = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pending
        link = Link(reader, writer)
        if pending >= MAX_PENDING_HELLOS:
            link.abort()
            return
        pending += 1
        try:
            hello = await asyncio.wait_for(link.recv(), HELLO_TIMEOUT)
        except (LinkClosed, TimeoutError):
            await link.close()
            return
        finally:
            pending -= 1
        if not isinstance(hello, Hello) or not hmac.compare_digest(str(hello.token), token):
            await link.close()
            return
        await on_link(link, hello)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def connect(port: int, token: str, role: str, id: int = 0) -> Link:
    """Connect back to a parent that listens on `port`."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), HELLO_TIMEOUT
    )
    link = Link(reader, writer)
    link.send(Hello(token=token, role=role, id=id))
    return link
