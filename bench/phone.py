"""A simulated phone on the (emulated) Wi-Fi: speaks to a worker the way sendspin-js 3.2.1 in
a browser does, and measures what a guest would hear.

Like the browser it connects *unencrypted* (first frame `client/hello`), offers the codecs a
phone offers (Opus via WASM on plain http; FLAC + PCM before this project patched the page),
announces the browser's 1.5 MiB buffer, syncs its clock in bursts of 8 probes every 10 s and
takes the median of the 3 lowest-RTT probes (sendspin-js's selection).

Each phone has its own network namespace (its own link in the air, tests/wifi_air.py), yet all
live in this one process: its socket is created inside the namespace (a socket stays in the
namespace it was made in), everything else runs here. Hence the small WebSocket client below:
aiohttp cannot adopt a socket made elsewhere.

The namespaces share this machine's clock, so the truth is known: a chunk is *late* when it
arrives less than LATE_MARGIN_US before its play time, and the clock *sync error* is the
distance between the phone's estimate of the server clock and the server clock itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosendspin.clock import RawMonotonicClock

CLOCK = RawMonotonicClock()
LATE_MARGIN_US = 100_000  # a phone needs ~100 ms to decode, schedule and play a chunk
BROWSER_BUFFER_BYTES = 1024 * 1024 * 3 // 2  # sendspin-js 3.2.1's default (Web Audio output)
SYNC_BURST = 8
SYNC_EVERY_S = 10.0
SYNC_PROBE_TIMEOUT_S = 2.0
HOLE_SLACK_US = 2_000
CODECS: dict[str, list[dict[str, Any]]] = {
    # What the patched page offers on plain http (WASM Opus), and what it offered before.
    "opus": [{"codec": "opus", "sample_rate": 48000, "channels": 2, "bit_depth": 16}],
    "flac": [
        {"codec": c, "sample_rate": 48000, "channels": 2, "bit_depth": 16} for c in ("flac", "pcm")
    ],
}


@contextlib.contextmanager
def in_namespace(name: str | None) -> Iterator[None]:
    """This thread in network namespace `name` (None: stay) for the block."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        os.setns(target, os.CLONE_NEWNET)
        yield
    finally:
        os.setns(home, os.CLONE_NEWNET)
        os.close(target)
        os.close(home)


async def open_stream(
    namespace: str | None, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with in_namespace(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=4 * 1024 * 1024)


async def http_get_json(namespace: str | None, host: str, port: int, path: str) -> Any:
    reader, writer = await open_stream(namespace, host, port, 10.0)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        raw = await asyncio.wait_for(reader.read(), 10.0)
    finally:
        writer.close()
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


class WebSocket:
    """Just enough RFC 6455 for a client: masked text out, text/binary/ping in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(
        cls, namespace: str | None, host: str, port: int, path: str, timeout: float = 15.0
    ) -> WebSocket:
        reader, writer = await open_stream(namespace, host, port, timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            writer.close()
            raise ConnectionError(f"no WebSocket upgrade: {head[:80]!r}")
        return cls(reader, writer)

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + body)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(0x1, json.dumps(message).encode())

    async def receive(self) -> tuple[int, bytes]:
        """The next text (1) or binary (2) message; answers pings on the way."""
        while True:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                raise ConnectionError("closed by the server")
            elif opcode in (0x1, 0x2):
                return opcode, payload

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._send(0x8, struct.pack("!H", 1000))
        self.writer.close()


def opus_packet_us(packet: bytes) -> int:
    """Duration of one Opus packet from its TOC byte (RFC 6716, 3.1)."""
    if not packet:
        return 0
    config, code = packet[0] >> 3, packet[0] & 0x3
    if config < 12:
        frame_us = (10_000, 20_000, 40_000, 60_000)[config & 3]
    elif config < 16:
        frame_us = (10_000, 20_000)[config & 1]
    else:
        frame_us = (2_500, 5_000, 10_000, 20_000)[config & 3]
    frames = {0: 1, 1: 2, 2: 2}.get(code) or (packet[1] & 0x3F if len(packet) > 1 else 1)
    return frame_us * frames


@dataclass
class Phone:
    """One guest's player; counters only, so memory stays flat however long it runs."""

    namespace: str | None
    host: str
    front_port: int
    codec: str
    name: str = "phone"
    connected: bool = False
    disconnects: int = 0
    chunks: int = 0
    payload: int = 0
    audio_us: int = 0
    late: int = 0
    holes: int = 0
    gaps: int = 0  # audible gaps: runs of late or missing audio
    min_margin_us: int | None = None
    last_margin_us: int | None = None
    sync_errors_us: list[int] = field(default_factory=list)  # one per finished burst
    codec_played: str | None = None
    _in_gap: bool = False
    _next_ts: int | None = None
    _frame_us: int = 0
    _format: dict[str, Any] = field(default_factory=dict)
    _probes: list[tuple[int, int]] = field(default_factory=list)  # (rtt, offset)
    _pending: asyncio.Future[tuple[int, int]] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Join through the front door, then play until `stop` (or the link dies)."""
        ws: WebSocket | None = None
        try:
            target = await http_get_json(self.namespace, self.host, self.front_port, "/api/join")
            ws = await WebSocket.connect(self.namespace, self.host, target["port"], target["path"])
            self._hello(ws)
            self.connected = True
            tasks = [
                asyncio.create_task(self._receive(ws), name=f"{self.name}-rx"),
                asyncio.create_task(self._sync(ws, stop), name=f"{self.name}-sync"),
                asyncio.create_task(stop.wait(), name=f"{self.name}-stop"),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            # The first to end (usually the receiver: link gone, or reset by the server).
            await asyncio.gather(*tasks, return_exceptions=True)
            if not stop.is_set():
                self.disconnects += 1
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            self.disconnects += 1
        finally:
            self.connected = False
            if ws is not None:
                ws.close()

    def _hello(self, ws: WebSocket) -> None:
        ws.send_json(
            {
                "type": "client/hello",
                "payload": {
                    "client_id": f"bench-{self.name}-{os.urandom(3).hex()}",
                    "name": self.name,
                    "version": 1,
                    "supported_roles": ["player@v1", "controller@v1", "metadata@v1"],
                    "device_info": {"product_name": "Web Browser", "manufacturer": "bench"},
                    "player@v1_support": {
                        "supported_formats": CODECS[self.codec],
                        "buffer_capacity": BROWSER_BUFFER_BYTES,
                        "supported_commands": ["volume", "mute"],
                    },
                },
            }
        )

    def _state(self, ws: WebSocket) -> None:
        player = {
            "state": "synchronized", "volume": 100, "muted": False, "static_delay_ms": 0,
            "required_lead_time_ms": 250, "min_buffer_ms": 250,
            "supported_commands": ["set_static_delay"],
        }  # fmt: skip
        ws.send_json({"type": "client/state", "payload": {"player": player}})

    async def _receive(self, ws: WebSocket) -> None:
        while True:
            kind, data = await ws.receive()
            if kind == 0x2:
                self._on_chunk(data)
                continue
            message = json.loads(data)
            match message.get("type"):
                case "server/hello":
                    self._state(ws)
                case "server/time":
                    self._on_time(message["payload"])
                case "stream/start":
                    self._format = message["payload"].get("player") or {}
                    self.codec_played = self._format.get("codec")
                    self._frame_us = self._flac_block_us()
                    self._next_ts = None
                case "stream/clear":
                    self._next_ts = None

    def _flac_block_us(self) -> int:
        header = self._format.get("codec_header")
        if self.codec_played != "flac" or not header:
            return 0
        raw = base64.b64decode(header)
        return int.from_bytes(raw[10:12], "big") * 1_000_000 // self._format["sample_rate"]

    def _chunk_us(self, data: bytes) -> int:
        codec = self.codec_played
        if codec == "opus":
            return opus_packet_us(data)
        if codec == "flac":
            return self._frame_us
        channels = self._format.get("channels", 2)
        depth = self._format.get("bit_depth", 16)
        return (
            len(data)
            // (channels * depth // 8)
            * 1_000_000
            // self._format.get("sample_rate", 48000)
        )

    def _on_chunk(self, message: bytes) -> None:
        if len(message) < 9 or message[0] != 4:
            return
        now = CLOCK.now_us()
        (ts,) = struct.unpack_from("!q", message, 1)
        data = message[9:]
        duration = self._chunk_us(data)
        margin = ts - now
        late = margin < LATE_MARGIN_US
        hole = self._next_ts is not None and ts > self._next_ts + HOLE_SLACK_US
        self.chunks += 1
        self.payload += len(message)
        self.audio_us += duration
        self.late += late
        self.holes += hole
        if (late or hole) and not self._in_gap:
            self.gaps += 1
        self._in_gap = late
        self.last_margin_us = margin
        self.min_margin_us = (
            margin if self.min_margin_us is None else min(self.min_margin_us, margin)
        )
        self._next_ts = ts + duration

    # -- clock sync, like sendspin-js: bursts of 8 sequential probes every 10 s --------------
    def _on_time(self, payload: dict[str, int]) -> None:
        now = CLOCK.now_us()
        t1, t2, t3 = (
            payload["client_transmitted"],
            payload["server_received"],
            payload["server_transmitted"],
        )
        rtt = (now - t1) - (t3 - t2)
        offset = ((t2 - t1) + (t3 - now)) // 2  # server clock - our clock
        if self._pending is not None and not self._pending.done():
            self._pending.set_result((rtt, offset))

    async def _sync(self, ws: WebSocket, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            probes: list[tuple[int, int]] = []
            for _ in range(SYNC_BURST):
                self._pending = loop.create_future()
                ws.send_json(
                    {"type": "client/time", "payload": {"client_transmitted": CLOCK.now_us()}}
                )
                try:
                    probes.append(await asyncio.wait_for(self._pending, SYNC_PROBE_TIMEOUT_S))
                except TimeoutError:
                    probes = []  # sendspin-js aborts the burst on a lost probe
                    break
            if probes:
                best = sorted(sorted(probes)[:3], key=lambda p: p[1])
                estimate = best[len(best) // 2][1]
                self.sync_errors_us.append(abs(estimate))  # the true offset is 0 here
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SYNC_EVERY_S)

    def tally(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "disconnects": self.disconnects,
            "chunks": self.chunks,
            "payload": self.payload,
            "audio_us": self.audio_us,
            "late": self.late,
            "holes": self.holes,
            "gaps": self.gaps,
            "syncs": len(self.sync_errors_us),
            "codec": self.codec_played,
            "monotonic": time.monotonic(),
        }
