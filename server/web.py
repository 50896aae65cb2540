"""HTTP routes every party port shares: the web player, /api/status, /api/join, /qr.svg.

Read-only by design: nothing a phone sends can pick a source, read a file outside the web
root or control the party (that lives on the loopback control link only).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
from collections.abc import Awaitable, Callable
from typing import Any

import segno
from aiohttp import web

from server.paths import web_root

StatusFn = Callable[[], dict[str, Any]]
JoinFn = Callable[[], dict[str, Any] | None]

NO_STORE = {"Cache-Control": "no-store"}
CORS = {"Access-Control-Allow-Origin": "*"}  # status only: a worker's page may read it
MAX_REQUEST_BYTES = 16 * 1024


@functools.lru_cache(maxsize=8)
def qr_svg(url: str) -> bytes:
    """The party URL as an SVG QR code (made here: the page must work with no internet)."""
    buf = io.BytesIO()  # a full SVG document: <img> needs the xmlns svg_inline() omits
    segno.make(url, error="m").save(
        buf, kind="svg", scale=8, border=2, dark="#000", light="#fff", xmldecl=False, nl=False
    )
    return buf.getvalue()


@web.middleware
async def _hardening(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def make_app(status: StatusFn, join: JoinFn) -> web.Application:
    """The player app; workers add their /sendspin WebSocket route to it."""
    root = web_root()
    app = web.Application(middlewares=[_hardening], client_max_size=MAX_REQUEST_BYTES)

    async def index(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(root / "index.html", headers=NO_STORE)

    async def api_status(_: web.Request) -> web.Response:
        return web.json_response(status(), headers={**CORS, **NO_STORE})

    async def api_join(_: web.Request) -> web.Response:
        target = join()
        if target is None:
            return web.json_response(
                {"error": "The party is starting or restarting. Trying again…"},
                status=503,
                headers=NO_STORE,
            )
        return web.json_response(target, headers=NO_STORE)

    async def qr(_: web.Request) -> web.Response:
        url = status().get("url") or ""
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
    """Start `app` on host:port; raises OSError when the port is taken."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=512).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
