"""Who may join a worker's stream, and on what terms: the party's, not the client's.

aiosendspin 10.2.1 serves a client in whatever format its `client/hello` lists first that
the library *can* encode: PCM at 4 MHz, 10 channels, 32 bit included (two such clients took
a worker to 2.8 GB and stalled everyone on it). It also takes the client's name for the
group, its buffer capacity and list lengths as given, and lets a second unencrypted hello
with the same `client_id` take over a playing listener.

Why the hello text, before the library parses it: every later choice the library makes (the
format picked at connect, a `client/state` format preference, a legacy format request, the
buffer it fills) is checked against the hello's `supported_formats`. Rewriting that list to
the sane formats it contains is therefore enough for every path, and a client left with
none is refused with a clear close reason instead of being streamed to. The hook is the
library's private `SendspinConnection._ingest_client_hello(text)`, the one place both the
unencrypted (browser) and the encrypted (native) hello pass through; the version is pinned
and tests/test_attacks.py fails if the hook stops being called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSCloseCode, web
from aiosendspin.noise import HandshakeAbortedError
from aiosendspin.server import SendspinServer
from aiosendspin.server.connection import SendspinConnection

log = logging.getLogger(__name__)

# What the party serves, whatever a client offers (the source is 48 kHz s16 stereo).
SERVED_CODECS = frozenset({"opus", "flac", "pcm"})
SERVED_RATES_HZ = frozenset({44_100, 48_000})
SERVED_BIT_DEPTHS = frozenset({16, 24})
MAX_CHANNELS = 2
# Bounds on what a hello may make us keep or send to others.
MAX_HELLO_BYTES = 16 * 1024  # a browser's hello is about 700 bytes
MAX_FRAME_BYTES = 64 * 1024  # any frame from a client (the library's aiohttp default: 4 MiB)
MAX_NAME_CHARS = 64
MAX_TEXT_CHARS = 256  # device info (a browser's user agent) and every other string
MAX_ID_CHARS = 128
MAX_LIST_ITEMS = 16  # roles, formats, pairing methods... (a browser lists 5 formats)
MAX_DEPTH = 8
MIN_BUFFER_BYTES = 64 * 1024  # below this a client cannot hold one second of FLAC
MAX_BUFFER_BYTES = 32 * 1024 * 1024  # how far ahead we fill a client: ~100 s of PCM
HANDSHAKE_TIMEOUT_S = 10.0  # from the WebSocket upgrade to a complete hello
CLOSE_TIMEOUT_S = 2.0  # for the close handshake of a refused client
PLAYER_SUPPORT_KEYS = ("player@v1_support", "player_support")  # the latter: legacy wire


class Refused(ValueError):
    """A hello the party will not serve; the message is the close reason (<= 123 bytes)."""


@dataclass(frozen=True)
class Hello:
    text: str
    client_id: str | None
    dropped_formats: int


def _served(fmt: Any) -> bool:
    return (
        isinstance(fmt, dict)
        and fmt.get("codec") in SERVED_CODECS
        and fmt.get("sample_rate") in SERVED_RATES_HZ
        and fmt.get("bit_depth") in SERVED_BIT_DEPTHS
        and isinstance(fmt.get("channels"), int)
        and 1 <= fmt["channels"] <= MAX_CHANNELS
    )


def _bounded(value: Any, depth: int = 0) -> Any:
    """Strings cut to MAX_TEXT_CHARS, lists to MAX_LIST_ITEMS; too deep is refused."""
    if depth > MAX_DEPTH:
        raise Refused("hello nested too deeply")
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS]
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value[:MAX_LIST_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:MAX_TEXT_CHARS]: _bounded(v, depth + 1) for k, v in value.items()}
    return value


def check_hello(text: str) -> Hello:
    """The hello as the party admits it, or Refused (with a reason a client can show).

    Anything that is not a client/hello object goes to the library unchanged: it already
    answers a malformed or unexpected first message (and a goodbye) itself.
    """
    if len(text) > MAX_HELLO_BYTES:
        raise Refused(f"client/hello larger than {MAX_HELLO_BYTES} bytes")
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Hello(text, None, 0)
    if not isinstance(decoded, dict) or decoded.get("type") != "client/hello":
        return Hello(text, None, 0)
    payload = decoded.get("payload")
    if not isinstance(payload, dict):
        return Hello(text, None, 0)
    client_id = payload.get("client_id")
    if isinstance(client_id, str) and len(client_id) > MAX_ID_CHARS:
        raise Refused(f"client_id longer than {MAX_ID_CHARS} characters")
    payload = _bounded(payload)
    if isinstance(payload.get("name"), str):
        payload["name"] = payload["name"][:MAX_NAME_CHARS]
    dropped = 0
    for key in PLAYER_SUPPORT_KEYS:
        support = payload.get(key)
        if not isinstance(support, dict):
            continue
        offered = support.get("supported_formats")
        offered = offered if isinstance(offered, list) else []
        kept = [fmt for fmt in offered if _served(fmt)]
        if not kept:
            raise Refused(
                "no format this party serves: opus, flac or pcm; 44.1/48 kHz; 1-2 ch; 16/24 bit"
            )
        dropped += len(offered) - len(kept)
        support["supported_formats"] = kept
        capacity = support.get("buffer_capacity")
        if isinstance(capacity, int) and not isinstance(capacity, bool) and capacity > 0:
            support["buffer_capacity"] = min(max(capacity, MIN_BUFFER_BYTES), MAX_BUFFER_BYTES)
    decoded["payload"] = payload
    cid = client_id if isinstance(client_id, str) else None
    return Hello(orjson.dumps(decoded).decode(), cid, dropped)


def is_listening(client: Any) -> bool:
    """A listener is a connected client that will get the stream: an active player role with
    a format it is served in. (Not "has received audio": the coordinator decodes only while
    someone listens, so that would never start.)"""
    return client.is_connected and any(
        role.get_audio_requirements() is not None for role in client.roles_by_family("player")
    )


class PartyConnection(SendspinConnection):
    """The library's connection with the party's admission rules (see the module doc)."""

    def __init__(self, server: SendspinServer, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        if self._wsock_server is not None:  # not prepared yet: same socket, smaller frames
            self._wsock_server = web.WebSocketResponse(
                heartbeat=30, compress=False, max_msg_size=MAX_FRAME_BYTES
            )

    def peer(self) -> str:
        request = self._request
        return (request.remote if request is not None else None) or "unknown"

    async def _setup_connection(self) -> None:
        """Upgrade, first frame and Noise handshake within HANDSHAKE_TIMEOUT_S (the library
        allows 30 s per handshake frame; an idle socket costs us a descriptor meanwhile)."""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                await super()._setup_connection()
        except TimeoutError as exc:
            raise HandshakeAbortedError(f"no hello within {HANDSHAKE_TIMEOUT_S:.0f} s") from exc

    async def _send_server_hello_and_recv(self, transport: Any) -> bool:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                return await super()._send_server_hello_and_recv(transport)
        except TimeoutError as exc:
            raise HandshakeAbortedError(f"no hello within {HANDSHAKE_TIMEOUT_S:.0f} s") from exc

    async def _ingest_client_hello(self, text: str) -> bool:
        try:
            hello = check_hello(text)
            if not self.is_encrypted and hello.client_id is not None:
                self._refuse_takeover(hello.client_id)
        except Refused as exc:
            log.info("refused a client from %s: %s", self.peer(), exc)
            await self._close(str(exc))
            return False
        if hello.dropped_formats:
            log.debug("%s: %d unserved formats dropped", self.peer(), hello.dropped_formats)
        return await super()._ingest_client_hello(hello.text)

    def _refuse_takeover(self, client_id: str) -> None:
        """An unencrypted hello proves nothing about its `client_id`: it may not take over a
        connected client from another address. (The same address is a page reload; an
        encrypted client's id is its key, proven by the handshake.)"""
        client = self._server.get_client(client_id)
        current = client.connection if client is not None else None
        if (
            isinstance(current, PartyConnection)
            and current is not self
            and current.peer() != self.peer()
        ):
            raise Refused("client_id is in use by another connection")

    async def _close(self, reason: str) -> None:
        wsock = self._wsock_server
        if wsock is not None and not wsock.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    wsock.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode()[:123]),
                    CLOSE_TIMEOUT_S,
                )
        await self.disconnect(retry_connection=False)


class PartyServer(SendspinServer):
    """SendspinServer whose incoming connections follow the party's admission rules."""

    async def on_client_connect(self, request: web.Request) -> web.StreamResponse:
        """The library's own handler (10.2.1), with PartyConnection in its place."""
        conn = PartyConnection(self, request=request)
        self._pending_connections.add(conn)
        try:
            await conn.handle_client()
        finally:
            self._pending_connections.discard(conn)
        websocket = conn.websocket_connection
        assert isinstance(websocket, web.WebSocketResponse)
        return websocket

    def listening(self) -> int:
        return sum(1 for client in self.connected_clients if is_listening(client))
