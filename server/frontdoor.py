"""The front door (base port): the address in the QR code.

It serves the web player, the party-wide /api/status and the covers of what plays
(/api/artwork/<key>), and /api/join sends each new phone
to the least-loaded live worker. Phones sent to a worker but not yet in its count still
weigh on it for JOIN_GRACE_S, so a burst of scans spreads over the workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web as aioweb

from server import web
from server.nowplaying import Covers
from server.supervisor import Supervisor, WorkerHandle

JOIN_GRACE_S = 10.0


def pick(live: Sequence[WorkerHandle], now: float) -> WorkerHandle | None:
    """The least-loaded of `live` (ties: lowest id); the phone is counted there at once."""
    if not live:
        return None
    for handle in live:  # a phone that never connected stops counting after a while
        while handle.joins and now - handle.joins[0] > JOIN_GRACE_S:
            handle.joins.popleft()
    best = min(live, key=lambda h: ((h.listeners or 0) + len(h.joins), h.id))
    best.joins.append(now)
    return best


class FrontDoor:
    def __init__(
        self, status: Callable[[], dict[str, Any]], supervisor: Supervisor,
        accepting: Callable[[], bool], covers: Covers,
    ) -> None:  # fmt: skip
        self._covers = covers
        self._status = status
        self._supervisor = supervisor
        self._accepting = accepting
        self._runner: aioweb.AppRunner | None = None
        self.gate: web.GateFn | None = None  # the access rules (server/listeners.py)
        self.private: Callable[[], dict[str, Any]] | None = None  # /api/status on loopback

    def join(self) -> dict[str, Any] | None:
        """Where the next phone should connect, or None while no worker can take it."""
        if not self._accepting():
            return None
        handle = pick(self._supervisor.live(), time.monotonic())
        if handle is None:
            return None
        return {"port": handle.port, "path": "/sendspin", "worker": handle.id}

    async def open(self, host: str, port: int) -> None:
        """Start serving; raises OSError when the port is taken."""
        app = web.make_app(self._status, self.join, gate=self.gate, private=self.private)
        app.router.add_get(Covers.ROUTE, self._covers.handle)
        self._runner = await web.serve(app, host, port)

    async def close(self) -> None:
        if self._runner is not None:
            await web.close(self._runner)
            self._runner = None
