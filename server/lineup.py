"""The party's channels while it is live: one pump per channel, each run as an owned task.

Every pump decodes (or captures) its source once for all workers and stamps its chunks on
the one clock, so a phone switching channel lands in sync with everyone already there.
Idle policy: all pumps stop reading while nobody at the party listens; while anyone does,
every channel keeps decoding, even one nobody is on, because that is what makes a switch
instant (each worker holds a few seconds of every channel to replay to a newcomer) and a
channel's cost is its decode, paid once whatever the number of phones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from server.channels import Channel, plan, problem
from server.messages import Lineup as LineupMsg
from server.nowplaying import Covers
from server.pump import Pump, Workers
from server.sources.base import Report, Source, SourceError, SourceSpec
from server.tasks import TaskGroup
from server.timeline import Timeline

log = logging.getLogger(__name__)


class Lineup:
    def __init__(
        self,
        timeline: Callable[[], Timeline],
        report: Report,
        on_change: Callable[[], None],
        covers: Covers,
    ) -> None:
        self.channels: list[Channel] = []
        self.pumps: list[Pump] = []
        self._timeline = timeline
        self._report = report
        self._on_change = on_change
        self._covers = covers
        self._tasks = TaskGroup("pumps")
        self._stops: dict[Pump, asyncio.Event] = {}
        self._workers: Workers | None = None

    def _pump(self, spec: SourceSpec, index: int) -> Pump:
        pump = Pump(spec, self._timeline(), self._report, self._on_change, index)
        pump.covers = self._covers
        return pump

    async def open(self, channels: list[Channel]) -> None:
        """Open every channel's source; SourceError (naming the channel when there are
        several) if one cannot play."""
        why = problem(channels)
        if why:
            raise SourceError(why)
        pumps = [self._pump(c.source, i) for i, c in enumerate(channels)]
        try:
            for pump, channel in zip(pumps, channels, strict=True):
                try:
                    await pump.open()
                except SourceError as exc:
                    raise SourceError(self._named(channel, exc, len(channels))) from None
        except SourceError:
            for pump in pumps:
                await pump.close()
            raise
        self.channels, self.pumps = list(channels), pumps

    @staticmethod
    def _named(channel: Channel, exc: Exception, count: int) -> str:
        return f"{channel.name}: {exc}" if count > 1 else str(exc)

    def greeting(self) -> list[LineupMsg]:
        return [LineupMsg(kept=list(range(len(self.pumps))))] if len(self.pumps) > 1 else []

    def listeners_changed(self) -> None:
        for pump in self.pumps:
            pump.listeners_changed.set()

    def pump(self, index: int) -> Pump | None:
        return self.pumps[index] if 0 <= index < len(self.pumps) else None

    async def switch(self, pump: Pump, spec: SourceSpec) -> str | None:
        """A new source for one channel (see Pump.switch); the channel remembers it."""
        error = await pump.switch(spec)
        if error is None and pump in self.pumps:
            i = self.pumps.index(pump)
            self.channels[i] = replace(self.channels[i], source=spec)
        return error

    # -- running ---------------------------------------------------------------------------
    async def run(self, workers: Workers, stop: asyncio.Event) -> None:
        """Start every pump and wait for `stop` (pumps added later start at once). The pumps
        are halted once, by close(): halting here too ran into the coordinator's drain bound
        and logged a stuck task at every shutdown."""
        self._workers = workers
        for pump in self.pumps:
            self._start(pump)
        await stop.wait()

    async def _halt(self) -> None:
        """Every pump stops reading (bounded), before any source is closed."""
        for event in self._stops.values():
            event.set()
        await self._tasks.wait(0.5)
        await self._tasks.close(0.5)

    def _start(self, pump: Pump) -> None:
        assert self._workers is not None
        stop = self._stops[pump] = asyncio.Event()
        self._tasks.spawn(f"pump-{id(pump):x}", pump.run(self._workers, stop))

    async def close(self) -> None:
        await self._halt()
        for pump in self.pumps:
            await pump.close()

    # -- changes while live ----------------------------------------------------------------
    async def set_channels(self, new: list[Channel]) -> str | None:
        """Add, remove, rename, recolour or re-source channels; None when done, else why
        nothing changed (every new source is opened before anything changes)."""
        why = problem(new)
        if why:
            return why
        kept = plan(self.channels, new)
        opened: dict[int, Source] = {}
        helper = self._pump(SourceSpec("silence"), 0)  # only opens sources
        for i, channel in enumerate(new):
            k = kept[i]
            if k is not None and self.channels[k].source == channel.source:
                continue
            try:
                opened[i] = await helper.open_source(channel.source)
            except SourceError as exc:
                for source in opened.values():
                    await source.close()
                return self._named(channel, exc, len(new))
        old = self.pumps
        pumps = [
            old[k] if k is not None else self._pump(c.source, i)
            for i, (k, c) in enumerate(zip(kept, new, strict=True))
        ]
        for i, pump in enumerate(pumps):
            pump.index = i
        if self._workers is not None:  # before any chunk with the new indexes
            self._workers.send_all(LineupMsg(kept=kept))
        self.channels, self.pumps = list(new), pumps
        for i, source in opened.items():
            await pumps[i].use(source)
        for pump in old:
            if pump not in pumps:
                await self._retire(pump)
        if self._workers is not None:
            for pump in pumps:
                if pump not in self._stops:
                    self._start(pump)
        self._on_change()
        return None

    async def _retire(self, pump: Pump) -> None:
        stop = self._stops.pop(pump, None)
        if stop is not None:
            stop.set()
        await pump.close()
