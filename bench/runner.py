"""One party, measured: start it, let N listeners join, watch a window, tell what held.

A listener *held* when, over the window, it stayed connected, received the window's worth of
audio less at most max(tolerance x window, 1 s) (its 5 s buffer may dip that much), had no
chunk arrive after its play time (late) and no hole or restart in its timeline (dropped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.load import BenchListener, Tally, close_all, connect_all, wait_lead
from bench.procstats import CpuWindow, PartyProcesses
from server.config import PartyConfig
from server.control import PartyController
from server.sources.base import SourceSpec
from tests.helpers import descendants, free_base_port

SETTLE_TIMEOUT_S = 15.0  # for the previous round's listeners to be counted out
WARMUP_TIMEOUT_S = 12.0  # for every listener to receive audio a full buffer ahead
LEAD_SLACK_US = 500_000
MIN_SHORTFALL_US = 1_000_000  # audio a held listener may miss in a short window


@dataclass
class Window:
    """What was measured between the start and the end of the window."""

    seconds: float
    tallies: list[Tally]  # per listener, end minus start
    connected: list[bool]  # per listener, at the end
    cpu: CpuWindow
    peak_worker_cpu: float  # the busiest worker's busiest second, % of one core
    peak_worker_rss: int
    wire_bytes: int | None
    coordinator_drops: int


@dataclass
class RoundResult:
    listeners: int
    workers: int
    codec: str
    window_s: float
    join_s: float
    connected: int  # at the end of the window
    failed: int  # could not join or connect
    per_worker: list[int]
    held: int
    short: int  # got less audio than the window (minus tolerance)
    late: int  # chunks late during the window, all listeners
    late_joining: int  # chunks late while the crowd was still joining and warming up
    gaps: int
    restarts: int
    coordinator_drops: int  # chunks the coordinator skipped for a worker that fell behind
    min_margin_ms: float | None  # closest any chunk came to being late
    cpu: CpuWindow
    peak_worker_cpu: float  # the busiest worker's busiest second, % of one core
    worker_rss_growth: int  # bytes, peak during the window against the fresh party
    coordinator_rss: int
    payload_per_listener: float  # bytes/s of audio payload received
    wire_per_listener: float | None  # bytes/s sent by the workers' sockets

    @property
    def rss_per_listener(self) -> float:
        return self.worker_rss_growth / max(1, self.listeners)


async def _until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.1)
    return False


class BenchParty:
    """A party on free loopback ports with `workers` workers playing the demo."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.config = PartyConfig(
            port=free_base_port(workers + 1), workers=workers, public_host="127.0.0.1"
        )
        self.party = PartyController(self.config)
        self.procs: PartyProcesses | None = None
        self.fresh_worker_rss = 0

    async def start(self) -> None:
        await self.party.start(SourceSpec("demo"))
        assert self.party.pid is not None
        self.procs = PartyProcesses(self.party.pid)
        await _until(lambda: self.party.status.listeners == 0, SETTLE_TIMEOUT_S)
        self.fresh_worker_rss = self.procs.worker_rss()

    async def stop(self) -> None:
        await self.party.stop()

    @property
    def worker_ports(self) -> list[int]:
        return [int(w["port"]) for w in self.party.status.workers]

    def _drops(self) -> int:
        return int(self.party.status.stats.get("dropped", 0))

    async def round(
        self, listeners: int, seconds: float, codec: str = "pcm", tolerance: float = 0.05
    ) -> RoundResult:
        """Connect `listeners`, measure `seconds`, disconnect them all again."""
        await _until(lambda: self.party.status.listeners == 0, SETTLE_TIMEOUT_S)
        crowd: list[BenchListener] = []
        try:
            t0 = time.monotonic()
            failed = await connect_all(self.config.port, listeners, codec, crowd)
            join_s = time.monotonic() - t0
            lead_us = int(self.config.buffer_s * 1_000_000) - LEAD_SLACK_US
            await wait_lead(crowd, lead_us, WARMUP_TIMEOUT_S)
            late_joining = sum(lst.late for lst in crowd)
            window = await self._measure(crowd, seconds)
        finally:
            await close_all(crowd)
        return self._result(
            listeners, codec, tolerance, crowd, failed, join_s, late_joining, window
        )

    async def _measure(self, crowd: list[BenchListener], seconds: float) -> Window:
        procs = self.procs
        assert procs is not None, "start() first"
        ports = self.worker_ports
        start = [lst.tally(reset_margin=True) for lst in crowd]
        cpu0, drops0 = procs.cpu_mark(), self._drops()
        wire0 = await asyncio.to_thread(procs.bytes_sent, ports)
        peak_rss, peak_cpu, last = procs.worker_rss(), 0.0, cpu0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            mark = procs.cpu_mark()
            peak_cpu = max(peak_cpu, *PartyProcesses.cpu_window(last, mark).workers, 0.0)
            peak_rss, last = max(peak_rss, procs.worker_rss()), mark
        cpu1 = last
        end = [lst.tally() for lst in crowd]
        wire1 = await asyncio.to_thread(procs.bytes_sent, ports)
        return Window(
            seconds=cpu1.wall - cpu0.wall,
            tallies=[e - s for s, e in zip(start, end, strict=True)],
            connected=[lst.connected for lst in crowd],
            cpu=PartyProcesses.cpu_window(cpu0, cpu1),
            peak_worker_cpu=peak_cpu,
            peak_worker_rss=peak_rss,
            wire_bytes=wire1 - wire0 if wire0 is not None and wire1 is not None else None,
            coordinator_drops=self._drops() - drops0,
        )

    def _result(
        self,
        listeners: int,
        codec: str,
        tolerance: float,
        crowd: list[BenchListener],
        failed: int,
        join_s: float,
        late_joining: int,
        window: Window,
    ) -> RoundResult:
        assert self.procs is not None
        tallies = window.tallies
        window_us = window.seconds * 1_000_000
        need_us = window_us - max(window_us * tolerance, MIN_SHORTFALL_US)
        held = short = 0
        for connected, t in zip(window.connected, tallies, strict=True):
            enough = t.audio_us >= need_us
            short += not enough
            held += connected and enough and not (t.late or t.gaps or t.restarts)
        margins = [t.min_margin_us for t in tallies if t.min_margin_us is not None]
        per_worker = [0] * self.workers
        for lst in crowd:
            if 0 <= lst.worker < self.workers:
                per_worker[lst.worker] += 1
        n = max(1, len(crowd))
        return RoundResult(
            listeners=listeners,
            workers=self.workers,
            codec=codec,
            window_s=window.seconds,
            join_s=join_s,
            connected=sum(window.connected),
            failed=failed,
            per_worker=per_worker,
            held=held,
            short=short,
            late=sum(t.late for t in tallies),
            late_joining=late_joining,
            gaps=sum(t.gaps for t in tallies),
            restarts=sum(t.restarts for t in tallies),
            coordinator_drops=window.coordinator_drops,
            min_margin_ms=min(margins) / 1000 if margins else None,
            cpu=window.cpu,
            peak_worker_cpu=window.peak_worker_cpu,
            worker_rss_growth=window.peak_worker_rss - self.fresh_worker_rss,
            coordinator_rss=self.procs.coordinator_rss(),
            payload_per_listener=sum(t.payload for t in tallies) / n / window.seconds,
            wire_per_listener=(
                window.wire_bytes / n / window.seconds if window.wire_bytes is not None else None
            ),
        )


async def no_children_left(timeout: float = 10.0) -> list[int]:
    """Pids of our child processes still alive after `timeout` (none, normally)."""
    deadline = time.monotonic() + timeout
    while (left := descendants()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return [p.pid for p in left]
