"""HTTP routes every party port shares: the web player, /api/status, /api/join, /qr.svg.

Read-only by design: nothing a phone sends can pick a source, read a file outside the web
root or control the party (that lives on the loopback control link only). The one change a
phone can make is to its own player: which channel it hears (POST /api/channel, no body).

Cheap for everyone, whatever one guest does: status is one JSON snapshot re-encoded at most
every STATUS_MAX_AGE_S, API calls are rate-limited per address, request bodies are refused
before they are read, and connections are bounded (server/limits.py). This process also
carries audio (the coordinator's fan-out, a worker's stream), so a burst of requests must
not be able to take its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import segno
from aiohttp import hdrs, web

from server import limits
from server.origins import LocalOrigins, party_ports_and_hosts
from server.paths import web_root

StatusFn = Callable[[], dict[str, Any]]
JoinFn = Callable[[], dict[str, Any] | None]
# Admission before /api/join picks a worker: a refusal, or fields to add (a ticket).
GateFn = Callable[[web.Request], "web.Response | dict[str, Any]"]

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}
CORS = {"Access-Control-Allow-Origin": "*"}  # status only: a worker's page may read it
MAX_REQUEST_BYTES = 16 * 1024
STATUS_MAX_AGE_S = 0.5  # the page polls every few seconds; the count changes slower than that
API_RATE_PER_S = 5.0  # sustained API calls per client address (a page makes one per poll)
API_BURST = 20  # ...with this many at once (a page loading, a few phones behind one NAT)
RATE_TRACKED = 4096  # addresses remembered (bounded: a spoofing LAN could invent many)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "::1", "localhost"})
POST_PATHS = frozenset({"/api/channel"})  # a guest moving its own player (workers only)


class StatusSnapshot:
    """The status dict and its JSON, rebuilt at most every `max_age_s` seconds."""

    def __init__(self, status: StatusFn, max_age_s: float = STATUS_MAX_AGE_S) -> None:
        self._status = status
        self._max_age_s = max_age_s
        self._at = -max_age_s
        self.value: dict[str, Any] = {}
        self.body = b"{}"

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._at >= self._max_age_s:
            self._at = now
            self.value = self._status()
            self.body = json.dumps(self.value, separators=(",", ":")).encode()


class RateLimit:
    """A token bucket per client address; the host itself is not limited."""

    def __init__(self, rate_per_s: float = API_RATE_PER_S, burst: int = API_BURST) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def allow(self, address: str) -> bool:
        if address in limits.HOST_ITSELF:
            return True
        now = time.monotonic()
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if len(self._buckets) >= RATE_TRACKED and address not in self._buckets:
            self._buckets.clear()  # rare; forgetting only makes the limit kinder
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            log.info("rate-limited API calls from %s", address)
            return False
        self._buckets[address] = (tokens - 1.0, now)
        return True


def client_address(request: web.Request) -> str:
    return request.remote or "local"


@functools.lru_cache(maxsize=8)
def qr_svg(url: str) -> bytes:
    """The party URL as an SVG QR code (made here: the page must work with no internet)."""
    buf = io.BytesIO()  # a full SVG document: <img> needs the xmlns svg_inline() omits
    segno.make(url, error="m").save(
        buf, kind="svg", scale=8, border=2, dark="#000", light="#fff", xmldecl=False, nl=False
    )
    return buf.getvalue()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _closing(response: web.Response) -> web.Response:
    response.force_close()  # do not read (or linger on) what the client still sends
    return response


def _origin_ok(request: web.Request, snapshot: StatusSnapshot, origins: LocalOrigins) -> bool:
    """Whether a WebSocket upgrade comes from the party's own page (or a native client)."""
    origin = request.headers.get(hdrs.ORIGIN)
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    own_port = sock[1] if isinstance(sock, tuple) and len(sock) > 1 else None
    try:
        requested = {urlsplit(f"//{request.host}").hostname or ""}
    except ValueError:
        requested = set()

    def allowed() -> bool:
        ports, hosts = party_ports_and_hosts(snapshot.value, own_port)
        return origins.allowed(origin, ports, hosts | requested)

    snapshot.refresh()
    if allowed():
        return True
    snapshot.refresh(force=True)  # the party's ports may have only just arrived
    if allowed():
        return True
    log.info("refused a WebSocket from %s: origin %.100r", request.remote, origin)
    return False


def _from_host_itself(request: web.Request) -> bool:
    """Loopback, addressed by a loopback name: a DNS-rebound page's Host is its own name."""
    try:
        host = urlsplit(f"//{request.host}").hostname or ""
    except ValueError:
        return False
    return client_address(request) in limits.HOST_ITSELF and host in LOOPBACK_NAMES


def _hardening(snapshot: StatusSnapshot, origins: LocalOrigins) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:  # nothing here takes a body: refuse before reading it
            code = 405 if request.method not in {"GET", "HEAD", "OPTIONS"} else 413
            return _closing(web.Response(status=code, text="No request bodies here.\n"))
        if request.method not in {"GET", "HEAD", "OPTIONS"} and not (
            request.method == "POST" and request.path in POST_PATHS
        ):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket" and not _origin_ok(
            request, snapshot, origins
        ):
            return _closing(web.Response(status=403, text="Not from this party's page.\n"))
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return middleware


def make_app(
    status: StatusFn, join: JoinFn, *, gate: GateFn | None = None, private: StatusFn | None = None
) -> web.Application:
    """The player app; workers add their /sendspin WebSocket route to it. `gate` admits a
    phone before /api/join (server/gatekeeper.py); `private` is /api/status?listeners for the
    host itself (loopback only: the per-listener view never reaches a phone)."""
    root = web_root()
    snapshot = StatusSnapshot(status)
    rate = RateLimit()
    app = web.Application(
        middlewares=[_hardening(snapshot, LocalOrigins())], client_max_size=MAX_REQUEST_BYTES
    )

    def too_many() -> web.Response:
        return web.json_response(
            {"error": "Too many requests; try again in a moment."},
            status=429,
            headers={**CORS, **NO_STORE, "Retry-After": "1"},
        )

    async def index(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "index.html", headers=NO_STORE)

    async def api_status(request: web.Request) -> web.Response:
        if not rate.allow(client_address(request)):
            return too_many()
        if private is not None and "listeners" in request.query and _from_host_itself(request):
            body = json.dumps(private(), separators=(",", ":")).encode()  # no CORS: not for pages
            return web.Response(body=body, content_type="application/json", headers=NO_STORE)
        snapshot.refresh()
        return web.Response(
            body=snapshot.body, content_type="application/json", headers={**CORS, **NO_STORE}
        )

    async def api_join(request: web.Request) -> web.Response:
        if not rate.allow(client_address(request)):
            return too_many()
        admitted = gate(request) if gate is not None else {}
        if isinstance(admitted, web.Response):
            return admitted
        target = join()
        if target is None:
            return web.json_response(
                {"error": "The party is starting or restarting. Trying again…"},
                status=503,
                headers=NO_STORE,
            )
        return web.json_response({**target, **admitted}, headers=NO_STORE)

    async def qr(_: web.Request) -> web.Response:
        snapshot.refresh()
        url = snapshot.value.get("url") or ""
        return web.Response(body=qr_svg(url), content_type="image/svg+xml", headers=NO_STORE)

    app.router.add_get("/", index)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/join", api_join)
    app.router.add_get("/qr.svg", qr)
    if (root / "static").is_dir():
        # aiohttp's static route normalises the path and refuses anything outside `static/`.
        app.router.add_static("/static/", root / "static", follow_symlinks=False)
    return app


async def close(runner: web.AppRunner, timeout: float = 2.0) -> None:
    """Stop serving, bounded: a stuck connection never holds up shutdown."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(runner.cleanup(), timeout)


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start `app` on host:port with bounded connections; raises OSError when the port is
    taken. Every party process serves exactly one app, so this is also where the process
    raises its open-files limit and sizes its connection budget from it."""
    budget = limits.connection_budget(limits.raise_open_files())
    limits.quiet_accept_errors(asyncio.get_running_loop())
    runner = web.AppRunner(
        app, access_log=None, handler_cancellation=True, **limits.runner_options()
    )
    await runner.setup()
    assert runner.server is not None
    limits.ConnectionGate(budget).attach(runner.server)
    log.info(
        "port %d: at most %d connections, %d per address; idle/header timeout %.0f s",
        port, budget, limits.MAX_PER_ADDRESS, limits.KEEPALIVE_S,
    )  # fmt: skip
    try:
        await web.TCPSite(runner, host, port, backlog=limits.BACKLOG).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
