"""The coordinator's desk for the host's listener panel and the party's access rules.

It keeps the rules (server/access.py) and sends them to every worker (at its start and on
each change), gathers the rows each worker pushes (server/roster.py) for the host, and
carries the host's actions on one phone to its worker. The front door admits phones with
its `gate` (server/gatekeeper.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from server import limits
from server.access import KICK_COOLDOWN_S, AccessError, AccessRules, clean_pin, new_secret
from server.gatekeeper import Gatekeeper
from server.messages import Access, ListenerAction, Roster, SetAccess
from server.supervisor import Supervisor, WorkerHandle

log = logging.getLogger(__name__)
MAX_PANEL_ROWS = 2000  # the whole party's rows to the host (~600 KB, under a frame's 1 MiB)
ROSTER_PUSH_S = 0.5  # at most this often to the controller
ACTIONS = frozenset({"mute", "unmute", "disconnect", "block"})


class ListenerDesk:
    def __init__(
        self, pin: str | None, max_listeners: int | None, supervisor: Supervisor,
        changed: Callable[[], None],
    ) -> None:  # fmt: skip
        self.rules = AccessRules(pin=pin, max_listeners=max_listeners, secret=new_secret())
        self.rosters: dict[int, list[dict[str, Any]]] = {}
        self.gate = Gatekeeper(self._listeners, self._known, self.rules)
        self._supervisor = supervisor
        self._changed = changed
        self._roster_dirty = False
        self._pushed_at = 0.0
        supervisor.extra_handlers[Roster] = self._on_roster

    # -- what the host sees ----------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        live = {h.id for h in self._supervisor.live()}
        rows = [row for wid, rows in sorted(self.rosters.items()) if wid in live for row in rows]
        return rows[:MAX_PANEL_ROWS]

    def status(self) -> dict[str, Any]:
        """For the controller's status (small: the rows go as Roster messages)."""
        return {"access": {"pin": self.rules.pin, "max_listeners": self.rules.max_listeners}}

    def private(self) -> dict[str, Any]:
        """For loopback /api/status?listeners only: never sent to a phone."""
        return {**self.status(), "roster": self.rows()}

    def push(self, link: Any) -> None:
        """The rows to the controller when they changed, at most every ROSTER_PUSH_S."""
        now = time.monotonic()
        if link is None or not self._roster_dirty or now - self._pushed_at < ROSTER_PUSH_S:
            return
        self._roster_dirty = False
        self._pushed_at = now
        link.send(Roster.of(self.rows()))

    def _on_roster(self, handle: WorkerHandle, msg: Roster) -> None:
        self.rosters[handle.id] = msg.decoded()[:MAX_PANEL_ROWS]
        self._roster_dirty = True  # pushed by the status loop (push), not with every status

    def _listeners(self) -> int:
        """Listening now plus phones sent to a worker that have not arrived yet."""
        live = self._supervisor.live()
        return sum((h.listeners or 0) + len(h.joins) for h in live)

    def _known(self, client_id: str) -> bool:
        """Connected, or dropped moments ago (a reload, a worker restart): not a new guest."""
        return any(r["id"] == client_id for r in self.rows())

    # -- what the host does ----------------------------------------------------------------
    def set_access(self, msg: SetAccess) -> None:
        """New PIN / cap for phones still to come; connected ones keep their place."""
        try:
            pin = clean_pin(msg.pin)
        except AccessError as exc:  # the controller checks first; never end the link on it
            log.warning("ignored a PIN: %s", exc)
            return
        cap = msg.max_listeners if msg.max_listeners and msg.max_listeners > 0 else None
        self._update(pin=pin, max_listeners=cap)

    def act(self, msg: ListenerAction) -> None:
        if msg.action not in ACTIONS:
            return
        if msg.action == "block":
            row = next((r for r in self.rows() if r["id"] == msg.client_id), None)
            barred = {msg.client_id}
            if row and row.get("address") and row["address"] not in limits.HOST_ITSELF:
                barred.add(row["address"])  # a new tab must not be a way back in
            self._update(blocked=tuple(sorted(set(self.rules.blocked) | barred)))
        elif msg.action == "disconnect":
            now = time.time()
            kicked = {k: t for k, t in self.rules.kicked.items() if t > now}
            self._update(kicked={**kicked, msg.client_id: now + KICK_COOLDOWN_S})
        for handle in self._supervisor.live():
            if handle.id == msg.worker and handle.link is not None:
                handle.link.send(msg)

    def _update(self, **changes: Any) -> None:
        self.rules = dataclasses.replace(self.rules, **changes)
        self.gate.rules = self.rules
        self._supervisor.send_all(Access(rules=self.rules.to_dict()))
        self._changed()

    def greeting(self) -> list[Access]:
        """For each worker as it becomes ready (Supervisor.greeting): until these rules
        arrive it admits nobody."""
        return [Access(rules=self.rules.to_dict())]
