"""The host's view of each phone on a worker: one row per listener, pushed when it changes.

Why pushed, not polled: the host's panel is live, and a party has hundreds of phones; a
worker sends its rows to the coordinator at most every ROSTER_MIN_INTERVAL_S and only when
something the host sees changed (kbit/s alone refreshes every ROSTER_REFRESH_S). Rows never
reach a phone: they go to the controller and to /api/status on loopback only.

A row: id, name (the page's device type, or what the guest typed), address, codec, kbps,
state (playing | connecting | reconnecting), since (wall-clock seconds), worker, muted,
offset_ms (the phone's own delay adjustment, from its calibration).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from server.access import valid_id
from server.admission import is_listening
from server.web import CORS, RateLimit, client_address

PAGE_STATES = frozenset({"playing", "buffering", "background"})
MAX_GUEST_NAME_CHARS = 40
MAX_REPORTED_SYNC_MS = 10_000
REPORT_FRESH_S = 40.0  # the page reports every 15 s and on change; older is stale
REPORTS_PER_S = 1.0  # per address, burst REPORT_BURST: a page sends one every few seconds
REPORT_BURST = 5
ROSTER_MIN_INTERVAL_S = 1.0
MAX_ROWS = 1000  # per worker: its connection cap (server/limits.py); ~300 bytes a row
MAX_AWAY_ROWS = 50  # phones that left moments ago: churn must not flood the host's panel
ROSTER_REFRESH_S = 5.0
RECONNECT_WINDOW_S = 20.0  # a phone that left this recently may be on its way back


def _codec(client: Any) -> str | None:
    for role in client.roles_by_family("player"):
        sent = getattr(role, "_last_sent_format", None)  # (codec, rate, channels, depth, hdr)
        if sent:
            return str(getattr(sent[0], "value", sent[0]))
        codec = getattr(role, "preferred_codec", None)
        if codec is not None:
            return str(getattr(codec, "value", codec))
    return None


def _offset_ms(client: Any) -> int:
    """The phone's own delay adjustment (the page's calibration; Sendspin `static_delay_ms`)."""
    for role in client.roles_by_family("player"):
        with contextlib.suppress(Exception):
            return int(role.output_delay_ms)
    return 0


def _muted(client: Any) -> bool:
    return any(bool(getattr(role, "muted", False)) for role in client.roles_by_family("player"))


class RosterTracker:
    """Rows for one worker's clients; kbit/s from the bytes each connection sent."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self._since: dict[str, float] = {}  # client id -> connected at (wall clock)
        self._sent: dict[str, tuple[int, float]] = {}  # client id -> (bytes, monotonic)
        self._kbps: dict[str, int] = {}
        self._reports: dict[str, tuple[float, dict[str, Any]]] = {}  # id -> (at, said)
        self.acted = asyncio.Event()  # set after a host action: push without waiting

    def report(self, client_id: str, query: Any) -> None:
        """What the page says about itself (state, sync error, the guest's name), bounded."""
        said: dict[str, Any] = {}
        if query.get("state") in PAGE_STATES:
            said["state"] = query["state"]
        with contextlib.suppress(TypeError, ValueError):
            sync = abs(float(query.get("sync")))
            if math.isfinite(sync):
                said["sync_ms"] = min(sync, MAX_REPORTED_SYNC_MS)
        name = " ".join(str(query.get("name", "")).split())[:MAX_GUEST_NAME_CHARS]
        if name.isprintable() and name:
            said["name"] = name
        self._reports[client_id] = (time.monotonic(), said)

    def _said(self, client_id: str, now: float) -> dict[str, Any]:
        at, said = self._reports.get(client_id, (0.0, {}))
        return said if now - at <= REPORT_FRESH_S else {}

    def rows(self, clients: list[Any], left: dict[str, float]) -> list[dict[str, Any]]:
        now, wall = time.monotonic(), time.time()
        rows: list[dict[str, Any]] = []
        seen = set()
        away = 0
        for client in clients:
            if len(rows) >= MAX_ROWS:
                break
            cid = client.client_id
            conn = client.connection
            if conn is None:
                left_at = left.get(cid)
                if left_at is None or now - left_at > RECONNECT_WINDOW_S or away >= MAX_AWAY_ROWS:
                    continue
                away += 1
                state = "reconnecting"
            else:
                state = "playing" if is_listening(client) else "connecting"
                self._measure(cid, getattr(conn, "bytes_sent", 0), now)
            said = self._said(cid, now)
            if conn is not None and state == "playing":
                state = said.get("state", state)  # buffering / background: only the page knows
            seen.add(cid)
            rows.append(
                {
                    "id": cid,
                    "name": said.get("name") or client.name,
                    "sync_ms": said.get("sync_ms"),
                    "address": conn.peer() if conn is not None and hasattr(conn, "peer") else "",
                    "codec": _codec(client),
                    "kbps": self._kbps.get(cid) if conn is not None else None,
                    "state": state,
                    "since": self._since.setdefault(cid, wall),
                    "worker": self.worker_id,
                    "muted": _muted(client),
                    "offset_ms": _offset_ms(client),
                }
            )
        for gone in set(self._since) - seen:
            self._since.pop(gone, None)
            self._sent.pop(gone, None)
            self._kbps.pop(gone, None)
            self._reports.pop(gone, None)
        return rows

    def _measure(self, cid: str, sent: int, now: float) -> None:
        before = self._sent.get(cid)
        if before is None or sent < before[0]:
            self._sent[cid] = (sent, now)
            return
        elapsed = now - before[1]
        if elapsed >= ROSTER_MIN_INTERVAL_S:
            self._kbps[cid] = round((sent - before[0]) * 8 / 1000 / elapsed)
            self._sent[cid] = (sent, now)


def visible(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the host sees change at once (kbit/s waits for the slow refresh)."""
    return [(r["id"], r["name"], r["codec"], r["state"], r["muted"], r["offset_ms"]) for r in rows]


async def act(server: Any, client_id: str, action: str) -> bool:
    """The host's action on one phone of this worker; False when it is not here."""
    client = server.get_client(client_id)
    if client is None:
        return False
    if action in ("mute", "unmute"):
        for role in client.roles_by_family("player"):
            role.set_mute(action == "mute")  # a Sendspin player command: the phone obeys
        return True
    conn = client.connection
    if conn is not None:  # "disconnect" / "block": the rules already bar its return
        close = getattr(conn, "_close", None)
        if close is not None:
            await close("The host disconnected you.")
        else:
            await conn.disconnect(retry_connection=False)
    with contextlib.suppress(Exception):
        await server.remove_client(client_id)
    return True


def report_route(tracker: RosterTracker, server: Any, channel_of: Callable[[str], int]) -> Any:
    """GET /api/me?id=&state=&sync=&name= on a worker: a page telling the host how it is.

    Why a GET to the worker, not a Sendspin message: the protocol's client/state has no room
    for a page's own state or sync error (and the hello's name is fixed per connection); the
    party's HTTP refuses bodies. The worker holds the phone's connection, so it accepts a
    report only for a player id connected *from the same address*; it is rate-limited per
    address and every value is bounded. The page sends one on change and every 15 s. The
    answer, `{"channel": n}`, tells the page which channel it is on.
    """
    limit = RateLimit(REPORTS_PER_S, REPORT_BURST)

    async def handler(request: web.Request) -> web.Response:
        address = client_address(request)
        if not limit.allow(address):
            return web.Response(status=429, headers={"Retry-After": "1"})
        client_id = valid_id(request.query.get("id"))
        client = server.get_client(client_id) if client_id else None
        conn = client.connection if client is not None else None
        if client_id is None or conn is None or getattr(conn, "peer", lambda: "")() != address:
            return web.Response(status=404)
        tracker.report(client_id, request.query)
        return web.json_response(
            {"channel": channel_of(client_id)}, headers={**CORS, "Cache-Control": "no-store"}
        )

    return handler


async def _either(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def report(
    tracker: RosterTracker, server: Any, left: dict[str, float], send: Any, stop: asyncio.Event
) -> None:
    """Push rows when what the host sees changed (at most every ROSTER_MIN_INTERVAL_S), and
    every ROSTER_REFRESH_S for kbit/s."""
    last: list[tuple[Any, ...]] | None = None
    sent_at = 0.0
    while not stop.is_set():
        await _either(stop, tracker.acted, ROSTER_MIN_INTERVAL_S)  # acted: show it now
        tracker.acted.clear()
        rows = tracker.rows(server.clients, left)
        now = time.monotonic()
        if visible(rows) != last or (rows and now - sent_at >= ROSTER_REFRESH_S):
            send(rows)
            last, sent_at = visible(rows), now
