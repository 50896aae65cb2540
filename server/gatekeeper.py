"""The access rules (server/access.py) at our two doors: /api/join and a worker's hello.

One `Gatekeeper` per process holds the rules the coordinator last sent. The front door
checks PIN, cap and blocklist and answers with a ticket; a worker admits a hello that
carries a valid ticket for its player id, and otherwise re-checks what a direct WebSocket
could skip (blocklist, PIN, cap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from server.access import (
    REASONS,
    AccessRules,
    PinGuard,
    issue_ticket,
    join_verdict,
    ticket_ok,
    valid_id,
)

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}


STARTING = "The party is starting. Trying again…"


class Gatekeeper:
    def __init__(
        self,
        listeners: Callable[[], int],
        known: Callable[[str], bool],
        rules: AccessRules | None = None,
    ) -> None:
        """`listeners`: the party's listeners (pending joins included); `known`: whether a
        player id is connected already (it keeps its place whatever the settings become).
        Until `rules` arrive (a worker, before the coordinator's Access) nobody is admitted:
        a restarted worker must not be an open door for its first milliseconds."""
        self.rules = rules
        self.guard = PinGuard()
        self._listeners = listeners
        self._known = known

    def join(self, request: web.Request) -> web.Response | dict[str, Any]:
        """/api/join?id=<player id>&pin=<PIN>: a refusal, or the ticket to connect with."""
        if self.rules is None:
            return web.json_response({"error": STARTING}, status=503, headers=NO_STORE)
        client_id = valid_id(request.query.get("id"))
        address = request.remote or "unknown"
        reason = join_verdict(
            self.rules,
            self.guard,
            address=address,
            client_id=client_id,
            pin=request.query.get("pin"),
            listeners=self._listeners(),
            known=client_id is not None and self._known(client_id),
        )
        if reason is None and self.rules.pin and client_id is None:
            reason = "pin"  # a ticket needs the id it is bound to
        if reason is not None:
            log.info("join refused for %s: %s", address, reason)
            headers = dict(NO_STORE)
            status = 403
            if reason == "throttled":
                status = 429
                headers["Retry-After"] = str(int(self.guard.retry_after(address)) + 1)
            return web.json_response(
                {"error": REASONS[reason], "reason": reason}, status=status, headers=headers
            )
        if client_id is None:
            return {}
        return {"ticket": issue_ticket(self.rules.secret, client_id)}

    def hello(self, request: web.Request | None, client_id: str | None, known: bool) -> str | None:
        """Why a worker refuses this hello (the close reason), or None to admit it."""
        if self.rules is None:
            return STARTING
        address = (request.remote if request is not None else None) or "unknown"
        barred = self.rules.barred(client_id, address)
        if barred:
            return REASONS[barred]
        ticket = request.match_info.get("ticket") if request is not None else None
        if known or ticket_ok(self.rules.secret, ticket, client_id):
            return None  # admitted by /api/join just now, or already one of ours
        if self.rules.pin:
            return REASONS["pin"]
        if self.rules.full(self._listeners()):
            return REASONS["full"]
        return None
