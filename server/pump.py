"""The pump: reads the one source and fans every chunk out to all workers with its play time.

It owns what plays (the source, switching it, falling back to silence when it breaks) and
the timeline policy's side effects (a Reset before each new timeline, pacing files and URLs
to a bounded lead). While nobody listens it stops reading, and releases live devices.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from server import clock, sources
from server.ipc import frame
from server.level_meter import LevelMeter
from server.messages import Message, Pcm, Reset
from server.sources.base import Report, Source, SourceError, SourceSpec
from server.tasks import sleep_or_stop
from server.timeline import Timeline

log = logging.getLogger(__name__)
STALL_CHECK_S = 1.0  # a stalled read is retried so stop/idle/source changes stay responsive
IDLE_CHECK_S = 1.0


class Workers(Protocol):
    """What the pump needs of the supervisor."""

    def send_all(self, msg: Message | bytes, *, droppable: bool = False) -> None: ...

    def listening(self) -> int: ...


class Pump:
    def __init__(
        self,
        spec: SourceSpec,
        timeline: Timeline,
        report: Report,
        on_change: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.source: Source | None = None
        self.failed = False  # the chosen source broke; silence plays until another is picked
        self.chunks_sent = 0
        self.level = LevelMeter()
        self.timeline = timeline
        self.listeners_changed = asyncio.Event()
        self._report = report
        self._on_change = on_change

    async def open(self) -> None:
        """Open the first source; SourceError tells the host why it cannot play."""
        self.source = await self._open(self.spec)

    async def _open(self, spec: SourceSpec) -> Source:
        source = sources.create(spec, self._report)
        await source.open()
        return source

    async def switch(self, spec: SourceSpec) -> str | None:
        """Play `spec` from the next chunk on; on failure keep the current source and return
        why (the caller tells the host, once)."""
        try:
            new = await self._open(spec)
        except SourceError as exc:
            return str(exc)
        old, self.source, self.spec = self.source, new, spec
        self.failed = False
        self.timeline.restart()
        if old is not None:
            await old.close()
        self._on_change()
        return None

    async def close(self) -> None:
        if self.source is not None:
            await self.source.close()

    def stats(self) -> dict[str, Any]:
        return {"chunks": self.chunks_sent, **(self.source.stats() if self.source else {})}

    async def run(self, workers: Workers, stop: asyncio.Event) -> None:
        """Until `stop`: read, stamp, fan out; idle while nobody listens."""
        while not stop.is_set():
            if workers.listening() == 0:
                await self._idle(workers, stop)
                continue
            source = self.source
            assert source is not None
            try:
                chunk = await asyncio.wait_for(source.read(), STALL_CHECK_S)
            except TimeoutError:
                continue  # e.g. a stream reconnecting (it reports that itself)
            except SourceError as exc:
                if source is self.source:  # not the old source, closed by a switch
                    await self._fail(str(exc))
                continue
            if source is not self.source:
                continue  # switched while this read was in flight: drop the old audio
            now = clock.now_us()
            ts, new_timeline = self.timeline.next(now, len(chunk), source.live)
            if new_timeline:
                # Workers drop audio queued on the old timeline, so phones never hear two
                # overlapping ones (a switch is heard at once).
                workers.send_all(Reset())
            workers.send_all(frame(Pcm(ts=ts, pcm=chunk)), droppable=True)
            self.chunks_sent += 1
            self.level.add(chunk)
            wait_us = self.timeline.wait_us(clock.now_us(), source.live)
            if wait_us:
                await sleep_or_stop(stop, wait_us / 1_000_000)

    async def _idle(self, workers: Workers, stop: asyncio.Event) -> None:
        """Nobody listens: stop decoding (and release live devices) until someone does."""
        self.timeline.restart()
        self._on_change()
        source = self.source
        closed = source is not None and source.close_when_idle
        if closed and source is not None:
            await source.close()
        while not stop.is_set() and workers.listening() == 0:
            self.listeners_changed.clear()
            await sleep_or_stop(self.listeners_changed, IDLE_CHECK_S)
        if closed and source is self.source and source is not None and not stop.is_set():
            try:
                await source.open()
            except SourceError as exc:
                await self._fail(str(exc))

    async def _fail(self, why: str) -> None:
        """The source broke: say so once and keep every phone's timeline with silence."""
        self.failed = True
        self._report("error", f"{why} Playing silence until you pick another source.")
        if self.source is not None:
            await self.source.close()
        self.source = await self._open(SourceSpec("silence"))
