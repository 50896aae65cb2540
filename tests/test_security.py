"""The party is open to the LAN by design; nothing on it may control the party or read
files, and junk from one client must not disturb the others."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from server import ipc
from server.messages import SetSource
from server.phase import Phase
from server.sources.base import SourceSpec
from tests.conftest import front_url, worker_url
from tests.helpers import eventually, get_json
from tests.listener import Listener


async def raw_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are (no client-side path normalisation) and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1 << 20), timeout)
    finally:
        writer.close()


async def poke(session: aiohttp.ClientSession, url: str, payload: bytes | str) -> None:
    """Send one junk frame; the server must close or answer, never hang (and may hang up
    while an oversized frame is still arriving)."""
    try:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
            else:
                await ws.send_str(payload)
            await asyncio.wait_for(ws.receive(), 10)
    except (ConnectionError, aiohttp.ClientError):
        pass


def status_code(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0


TRAVERSALS = [
    "/static/../pyproject.toml",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..%2f..%2fpyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static/....//....//pyproject.toml",
    "/%2e%2e/%2e%2e/pyproject.toml",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/..\\..\\pyproject.toml",
]


async def test_static_files_cannot_escape_the_web_root(start_party, listeners) -> None:
    async with start_party(workers=1) as party:
        steady = await Listener(worker_url(party, 0), keep_audio=False).connect()
        listeners.append(steady)
        for port in (party.status.port, party.status.workers[0]["port"]):
            for path in TRAVERSALS:
                answer = await raw_http(
                    port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                assert status_code(answer) in (400, 403, 404), (path, answer[:200])
                assert b"[project]" not in answer and b"root:" not in answer
        await steady.wait_chunks(20)


CONTROL_ATTEMPTS = [
    "POST /api/status",
    "PUT /",
    "DELETE /api/join",
    "BREW /",
    "POST /api/source",
    "GET /api/source?url=/etc/passwd",
    "GET /api/stop",
    "POST /sendspin",
]


async def test_nothing_on_the_lan_can_control_the_party(start_party) -> None:
    async with start_party(workers=1) as party:
        for port in (party.status.port, party.status.workers[0]["port"]):
            for request_line in CONTROL_ATTEMPTS:
                answer = await raw_http(
                    port,
                    f"{request_line} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n".encode(),
                )
                assert status_code(answer) in (400, 404, 405, 501), (request_line, answer[:200])
        await asyncio.sleep(0.3)
        assert party.status.state == "live"
        assert party.status.source["kind"] == "demo"


async def test_control_links_listen_on_loopback_only_and_want_the_token(start_party) -> None:
    async with start_party(workers=2) as party:
        public = {party.status.port, *(w["port"] for w in party.status.workers)}
        pids = [party.pid, *(p.pid for p in psutil.Process(party.pid).children())]
        pids.append(os.getpid())
        for pid in pids:
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == "LISTEN" and conn.laddr.port not in public:
                    assert conn.laddr.ip == "127.0.0.1", conn
        # A stranger on the controller's own link port gets nothing and changes nothing.
        link_port = party._link_server.sockets[0].getsockname()[1]
        stranger = await ipc.connect(link_port, "wrong-token", role="coordinator")
        stranger.send(SetSource(id=1, source=SourceSpec("demo").to_dict()))
        with pytest.raises(ipc.LinkClosed):
            await asyncio.wait_for(stranger.recv(), 5)
        assert party.running and party.phase is Phase.LIVE


async def test_garbage_on_the_websocket_does_not_hurt_others(
    start_party, listeners, tmp_path: Path
) -> None:
    async with start_party(workers=1, log_dir=str(tmp_path)) as party:
        steady = await Listener(worker_url(party, 0)).connect()
        listeners.append(steady)
        await steady.wait_chunks(10)
        junk: list[bytes | str] = [os.urandom(4096), b"\x00" * 10, "{not json", '{"type": 42}']
        junk.append("x" * (8 * 1024 * 1024))  # oversized frame
        async with aiohttp.ClientSession() as session:
            for payload in junk:
                await poke(session, worker_url(party, 0), payload)
        # Raw non-HTTP bytes and an oversized header.
        port = party.status.workers[0]["port"]
        assert status_code(await raw_http(port, os.urandom(2048))) in (0, 400)
        huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
        assert status_code(await raw_http(port, huge)) in (0, 400, 413, 431)
        before = steady.count
        await steady.wait_chunks(before + 40)
        await eventually(lambda: party.status.listeners == 1, what="only the real listener")
        code_ok = await raw_http(
            front_url(party) and party.status.port,
            b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        assert status_code(code_ok) == 200
    # Expected bad input is a quiet line in the log, never a traceback.
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))  # noqa: ASYNC240
    assert "Traceback" not in logs, logs[-3000:]


async def test_request_bodies_are_refused_before_they_are_read(start_party) -> None:
    async with start_party(workers=1) as party:
        for port in (party.status.port, party.status.workers[0]["port"]):
            for request_line, code in (("POST /api/status", 405), ("GET /api/status", 413)):
                t0 = time.monotonic()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(
                        f"{request_line} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
                        "\r\n".encode()
                        + b"x" * 1000
                    )
                    # The whole answer, then the server hangs up (no waiting for 50 MB).
                    answer = await asyncio.wait_for(reader.read(), 5)
                finally:
                    writer.close()
                assert status_code(answer) == code, answer[:200]
                assert time.monotonic() - t0 < 3


async def test_websocket_origin_must_be_the_partys_page(start_party) -> None:
    async with start_party(workers=1) as party:
        front, worker = party.status.port, party.status.workers[0]["port"]
        url = worker_url(party, 0)

        # The worker learns the front door's port from the coordinator's first status.
        async def worker_knows_the_front_door() -> bool:
            _, status = await get_json(f"http://127.0.0.1:{worker}/api/status")
            return bool(status.get("url"))

        await eventually(worker_knows_the_front_door, what="the worker's first status")
        ours = [None, f"http://127.0.0.1:{front}", f"http://127.0.0.1:{worker}",
                f"http://localhost:{front}"]  # fmt: skip
        theirs = ["http://evil.example", f"http://evil.example:{front}", "http://127.0.0.1:9",
                  "null", f"file://127.0.0.1:{front}"]  # fmt: skip
        # A name this machine goes by that we cannot know (the router's DNS): the page was
        # loaded from it, and the socket goes to it too.
        async with aiohttp.ClientSession() as session:
            headers = {"Origin": f"http://party.lan:{front}", "Host": f"party.lan:{worker}"}
            ws = await session.ws_connect(url, headers=headers)
            await ws.close()
        async with aiohttp.ClientSession() as session:
            for origin in ours:
                headers = {"Origin": origin} if origin else {}
                try:
                    ws = await session.ws_connect(url, headers=headers)
                except aiohttp.WSServerHandshakeError as exc:
                    raise AssertionError(f"refused the party's own origin {origin}") from exc
                await ws.close()
            for origin in theirs:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url, headers={"Origin": origin})
                assert refused.value.status == 403, origin
