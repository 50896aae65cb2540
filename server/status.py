"""What the party tells others: events for the host, the full status for the controller and
the public view for phones, each sent when something changed (at most every
STATUS_INTERVAL_S, so a burst of joins is one update, not hundreds)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from server import clock, ipc
from server.messages import Event, Status
from server.phase import Phase
from server.tasks import sleep_or_stop

if TYPE_CHECKING:
    from server.lineup import Lineup
    from server.listeners import ListenerDesk
    from server.supervisor import Supervisor
    from server.talkover import TalkOver

log = logging.getLogger(__name__)
STATUS_INTERVAL_S = 0.2


class StatusBoard:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.phase = Phase.STARTING
        self.message: str | None = None  # the last warning or error, for the host
        self.url = ""
        self.port = port
        self.link: ipc.Link | None = None  # to the controller
        self.lineup: Lineup | None = None
        self.supervisor: Supervisor | None = None
        self.desk: ListenerDesk | None = None  # per-listener rows and access rules
        self.talk: TalkOver | None = None  # the host's mic over the music
        self.changed = asyncio.Event()
        self._level: dict[str, float] | None = None

    def report(self, level: str, message: str) -> None:
        """An event for the host (tray notification / console line), sent once."""
        log.info("%s: %s", level, message)
        if level != "info":
            self.message = message
        if self.link is not None:
            self.link.send(Event(level=level, text=message))
        self.changed.set()

    def full(self) -> dict[str, Any]:
        """For the controller (the host's own machine)."""
        assert self.lineup is not None and self.supervisor is not None
        workers = self.supervisor.workers
        pumps = self.lineup.pumps
        spec = pumps[0].spec
        public = self.public()
        for channel, pump in zip(public["channels"], pumps, strict=True):
            channel["spec"] = pump.spec.to_dict()  # may hold a path: the host's eyes only
            channel["failed"] = pump.failed
        return {
            **public,
            "source": {"kind": spec.kind, "label": spec.label, "failed": pumps[0].failed},
            "port": self.port,
            "message": self.message,
            "level": self._level,
            "talk": self.talk.status() if self.talk is not None else None,
            "stats": {"dropped": sum(h.link.dropped for h in workers if h.link)}
            | pumps[0].stats()
            | {"channels": [p.stats() for p in pumps]},
            **(self.desk.status() if self.desk is not None else {}),
        }

    def public(self) -> dict[str, Any]:
        """What any phone on the LAN may read from /api/status: no paths, no messages."""
        assert self.lineup is not None and self.supervisor is not None
        channels = self._channels()
        return {
            "name": self.name,
            "state": self.phase.value,
            "listeners": self.supervisor.total_listeners(),
            "workers": [h.public() for h in self.supervisor.workers],
            "source": {"kind": self.lineup.pumps[0].spec.kind, "label": channels[0]["source"]},
            "now_playing": channels[0]["now_playing"],
            "channels": channels,
            "url": self.url,
            "message": None,
        }

    def _channels(self) -> list[dict[str, Any]]:
        """Each channel with its listeners and the track its guests hear now (not the one
        decoded ahead), without its image."""
        assert self.lineup is not None and self.supervisor is not None
        counts = self.supervisor.channel_listeners(len(self.lineup.pumps))
        out = []
        for i, (channel, pump) in enumerate(
            zip(self.lineup.channels, self.lineup.pumps, strict=True)
        ):
            track = pump.tracks.current
            out.append(
                {
                    "index": i,
                    "name": channel.name,
                    "colour": channel.colour,
                    "source": pump.spec.short_label,
                    "listeners": counts[i],
                    "now_playing": None if track is None else track.public(),
                }
            )
        return out

    async def publish(self, stop: asyncio.Event) -> None:
        """Until `stop`: the full status to the controller, the public one to the workers."""
        assert self.lineup is not None and self.supervisor is not None
        last_public: dict[str, Any] | None = None
        while not stop.is_set():
            now = clock.now_us()
            if any([pump.heard(now) for pump in self.lineup.pumps]):  # every one, not the first
                self.changed.set()
            for pump in self.lineup.pumps[1:]:
                pump.level.take()  # the meter shows the first channel
            level = self.lineup.pumps[0].level.take()
            if level != self._level:
                self._level = level
                self.changed.set()
            if self.talk is not None and self.talk.take_level():
                self.changed.set()
            if self.desk is not None:
                self.desk.push(self.link)  # the per-phone rows, on their own channel
            if self.changed.is_set():
                self.changed.clear()
                if self.link is not None:
                    self.link.send(Status(status=self.full()))
                public = self.public()
                if public != last_public:
                    self.supervisor.send_all(Status(status=public))
                    last_public = public
            await sleep_or_stop(stop, STATUS_INTERVAL_S)
