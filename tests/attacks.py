"""Attacks from issue 17, replayed from other loopback addresses (127.0.x.y, x >= 0, y >= 2).

The floods run in a process of their own (`python -m tests.attacks ...`, one JSON line of
results on stdout), so that the test's own listeners, in the test process, measure the
party and not the attacker's event loop. Linux routes all of 127/8 to loopback, so every
address here is a different "phone" to the party.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp


def address(i: int) -> str:
    """The i-th attacker address (never 127.0.0.1, the host itself)."""
    return f"127.0.{1 + i // 250}.{2 + i % 250}"


def absurd_hello(
    client_id: str, *, name: str = "absurd", formats: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An unencrypted client/hello like sendspin-js sends, with the formats given."""
    return {
        "type": "client/hello",
        "payload": {
            "client_id": client_id,
            "name": name,
            "version": 1,
            "supported_roles": ["player@v1", "metadata@v1"],
            "device_info": {"product_name": "Web Browser", "manufacturer": "x"},
            "player@v1_support": {
                "supported_formats": formats
                or [{"codec": "pcm", "sample_rate": 4_000_000, "channels": 10, "bit_depth": 32}],
                "buffer_capacity": 1_000_000_000,
                "supported_commands": ["volume", "mute"],
            },
        },
    }


FLOOD_WAVE = 64  # connections opened together (half the party's listen backlog)
FLOOD_WAVE_PAUSE_S = 0.05

PLAYER_STATE = {
    "type": "client/state",
    "payload": {"player": {"state": "synchronized", "volume": 100, "muted": False}},
}


class RawPlayer:
    """A minimal unencrypted player (what a browser page speaks), for hellos a real client
    would never send. It records what the server said and how much audio arrived."""

    def __init__(self, url: str, hello: dict[str, Any], local_addr: str = "127.0.0.1") -> None:
        self.url = url
        self.hello = hello
        self.local_addr = local_addr
        self.messages: list[dict[str, Any]] = []
        self.audio_frames = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def stream_formats(self) -> list[dict[str, Any]]:
        return [
            m["payload"].get("player", {}) for m in self.messages if m.get("type") == "stream/start"
        ]

    async def start(self) -> RawPlayer:
        connector = aiohttp.TCPConnector(local_addr=(self.local_addr, 0))
        self._session = aiohttp.ClientSession(connector=connector)
        ws = await self._session.ws_connect(self.url, max_msg_size=0)
        self._task = asyncio.create_task(self._read(ws))
        try:
            await ws.send_str(json.dumps(self.hello))
            await ws.send_str(json.dumps(PLAYER_STATE))
        except ConnectionError:
            pass  # hung up on while sending (an oversized hello): the reader sees the close
        return self

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                with contextlib.suppress(ValueError):
                    self.messages.append(json.loads(msg.data))
            elif msg.type is aiohttp.WSMsgType.BINARY:
                self.audio_frames += 1
            else:  # CLOSE carries the code and reason; CLOSED/ERROR: the socket is gone
                if msg.type is aiohttp.WSMsgType.CLOSE:
                    self.close_reason = str(msg.extra or "")
                break
        await ws.close()
        self.close_code = ws.close_code

    async def closed(self, timeout: float) -> bool:
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._session is not None:
            await self._session.close()


# -- floods (run in their own process) ---------------------------------------------------


async def slowloris(port: int, addr: str, count: int, until: float) -> dict[str, Any]:
    """`count` requests whose headers never end (one more line a second); how long the
    server took to hang up on each (or that it did not before `until`)."""
    t0 = time.monotonic()

    async def one() -> float | None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(addr, 0))
        except OSError:
            return None
        try:
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() < until:
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(4096), 1.0):
                        return time.monotonic() - t0  # the server hung up
                writer.write(b"X-Slow: 1\r\n")
            return None
        except OSError:
            return time.monotonic() - t0
        finally:
            writer.transport.abort()

    closed = await asyncio.gather(*(one() for _ in range(count)))
    done = [c for c in closed if c is not None]
    return {"slow_closed": len(done), "slow_last_close_s": round(max(done, default=0.0), 1)}


async def idle_flood(port: int, per_address: int, addresses: int, hold_s: float,
                     close_within_s: float, slow: int = 0) -> dict[str, Any]:  # fmt: skip
    """Open `per_address` idle TCP connections from each of `addresses` addresses (and `slow`
    slowloris requests from one more); hold them `hold_s`; then wait up to `close_within_s`
    for the server to hang up on the rest."""
    outcome: Counter[str] = Counter()
    closed_after: list[float] = []
    t0 = time.monotonic()
    slow_task = asyncio.create_task(slowloris(port, address(addresses), slow, t0 + close_within_s))
    readers: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []

    async def one(addr: str) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(addr, 0)), 10
            )
        except (OSError, TimeoutError):
            outcome["connect_failed"] += 1
            return
        readers.append(reader)
        writers.append(writer)

    # In waves: all at once would overflow the kernel's accept queue, and connections the
    # kernel drops (or answers with a SYN cookie) never reach the party at all.
    targets = [address(a) for _ in range(per_address) for a in range(addresses)]
    for start in range(0, len(targets), FLOOD_WAVE):
        await asyncio.gather(*(one(addr) for addr in targets[start : start + FLOOD_WAVE]))
        await asyncio.sleep(FLOOD_WAVE_PAUSE_S)
    outcome["connected"] = len(readers)

    async def watch(reader: asyncio.StreamReader) -> None:
        try:
            data = await reader.read(4096)
        except OSError:
            data = b""
        if data.startswith(b"HTTP/1.1 503"):
            outcome["refused_503"] += 1
        else:
            outcome["closed_by_server"] += 1
            closed_after.append(time.monotonic() - t0)

    watchers = [asyncio.create_task(watch(r)) for r in readers]
    await asyncio.sleep(hold_s)
    outcome["open_after_hold"] = sum(1 for w in watchers if not w.done())
    await asyncio.wait(watchers, timeout=max(0.1, close_within_s - (time.monotonic() - t0)))
    outcome["still_open"] = sum(1 for w in watchers if not w.done())
    for w in watchers:
        w.cancel()
    for writer in writers:
        writer.transport.abort()
    return {
        **outcome,
        "last_close_s": round(max(closed_after, default=0.0), 1),
        **await slow_task,
    }


async def status_burst(url: str, total: int, addresses: int) -> dict[str, Any]:
    """`total` concurrent GETs of `url`, spread over `addresses` client addresses."""
    codes: Counter[str] = Counter()
    t0 = time.monotonic()
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=(address(a), 0)),
            timeout=aiohttp.ClientTimeout(total=20),
        )
        for a in range(addresses)
    ]

    async def one(i: int) -> None:
        try:
            async with sessions[i % addresses].get(url) as resp:
                await resp.read()
                codes[str(resp.status)] += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            codes[type(exc).__name__] += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.monotonic() - t0
    for session in sessions:
        await session.close()
    return {**codes, "elapsed_s": round(elapsed, 2)}


def main() -> None:
    import resource  # POSIX only, like the attacks' 127/8 source addresses

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs many
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="attack", required=True)
    flood = sub.add_parser("idle-flood")
    flood.add_argument("port", type=int)
    flood.add_argument("--per-address", type=int, default=28)
    flood.add_argument("--addresses", type=int, default=40)
    flood.add_argument("--hold-s", type=float, default=5.0)
    flood.add_argument("--close-within-s", type=float, default=30.0)
    flood.add_argument("--slowloris", type=int, default=0)
    burst = sub.add_parser("status-burst")
    burst.add_argument("url")
    burst.add_argument("--total", type=int, default=1000)
    burst.add_argument("--addresses", type=int, default=10)
    args = parser.parse_args()
    if args.attack == "idle-flood":
        coro = idle_flood(
            args.port, args.per_address, args.addresses, args.hold_s, args.close_within_s,
            args.slowloris,
        )  # fmt: skip
    else:
        coro = status_burst(args.url, args.total, args.addresses)
    print(json.dumps(asyncio.run(coro)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
