"""Simulated phones: real aiosendspin clients that tally audio instead of storing it.

Each listener joins like a phone does (ask the front door's /api/join which worker, then open
that worker's WebSocket) and keeps counters only, so memory stays flat however long it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
from aiosendspin.clock import RawMonotonicClock
from aiosendspin.models.types import AudioCodec

from server.audio_format import BIT_DEPTH, CHANNELS, SAMPLE_RATE
from tests.listener import Listener

CODECS = {"pcm": AudioCodec.PCM, "flac": AudioCodec.FLAC}
BROWSER_BUFFER_BYTES = 1024 * 1024 * 3 // 2  # what sendspin-js 3.2.1 announces by default
SLACK_US = 2_000  # timestamp rounding; a larger jump is a real discontinuity
_CLOCK = RawMonotonicClock()


def chunk_us(data: bytes, fmt: object) -> int:
    """Play time of one received chunk in microseconds.

    PCM: from its length. FLAC: one chunk is one frame of the fixed block size announced in
    the STREAMINFO codec header (bytes 10-11: maximum block size).
    """
    pcm = getattr(fmt, "pcm_format", None)
    rate = getattr(pcm, "sample_rate", SAMPLE_RATE)
    header = getattr(fmt, "codec_header", None)
    if getattr(fmt, "codec", AudioCodec.PCM) == AudioCodec.FLAC and header and len(header) >= 12:
        frames = int.from_bytes(header[10:12], "big")
    else:
        channels = getattr(pcm, "channels", CHANNELS)
        bit_depth = getattr(pcm, "bit_depth", BIT_DEPTH)
        frames = len(data) // (channels * bit_depth // 8)
    return frames * 1_000_000 // rate


@dataclass(frozen=True)
class Tally:
    """A listener's counters at one moment; the difference of two is a window."""

    audio_us: int
    late: int
    gaps: int
    restarts: int
    payload: int
    min_margin_us: int | None

    def __sub__(self, start: Tally) -> Tally:
        return Tally(
            self.audio_us - start.audio_us,
            self.late - start.late,
            self.gaps - start.gaps,
            self.restarts - start.restarts,
            self.payload - start.payload,
            self.min_margin_us,
        )


@dataclass(eq=False)
class BenchListener(Listener):
    """tests.listener.Listener with codec choice, play-time accounting and gap detection."""

    worker: int = -1
    audio_us: int = 0
    gaps: int = 0  # forward jumps in the timeline: audio that never arrived (dropped)
    restarts: int = 0  # backward jumps: the timeline restarted (audio overlaps)
    min_margin_us: int | None = None  # smallest (play time - arrival) since the last reset
    last_margin_us: int | None = None  # of the latest chunk: how far ahead the worker sends
    _next_ts: int | None = field(default=None, init=False, repr=False)

    def _on_chunk(self, ts: int, data: bytes, fmt: object = None, *_: object) -> None:
        super()._on_chunk(ts, data)
        duration = chunk_us(data, fmt)
        if self._next_ts is not None:
            jump = ts - self._next_ts
            if jump > SLACK_US:
                self.gaps += 1
            elif jump < -SLACK_US:
                self.restarts += 1
        self._next_ts = ts + duration
        self.audio_us += duration
        client = self.client
        if client is not None and client.is_time_synchronized():
            margin = client.compute_play_time(ts) - _CLOCK.now_us()
            self.last_margin_us = margin
            if self.min_margin_us is None or margin < self.min_margin_us:
                self.min_margin_us = margin

    def tally(self, *, reset_margin: bool = False) -> Tally:
        snap = Tally(
            self.audio_us, self.late, self.gaps, self.restarts, self.bytes, self.min_margin_us
        )
        if reset_margin:
            self.min_margin_us = None
        return snap

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected


async def _join(session: aiohttp.ClientSession, front_port: int) -> tuple[str, int]:
    """Where the front door sends the next phone: (WebSocket URL, worker id)."""
    async with session.get(f"http://127.0.0.1:{front_port}/api/join") as resp:
        resp.raise_for_status()
        target = await resp.json()
    return f"ws://127.0.0.1:{target['port']}{target['path']}", int(target["worker"])


async def connect_all(
    front_port: int,
    count: int,
    codec: str,
    into: list[BenchListener],
    *,
    parallel: int = 8,
    timeout: float = 15.0,
) -> int:
    """Join `count` listeners through the front door, `parallel` at a time, adding each to
    `into` before it connects (so the caller can close them all even if this is cancelled).

    Returns how many failed to join or connect; those are closed and left out of `into`.
    """
    gate = asyncio.Semaphore(parallel)
    failed = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        async with gate:
            listener: BenchListener | None = None
            try:
                url, worker = await _join(session, front_port)
                listener = BenchListener(
                    url,
                    keep_audio=False,
                    codec=CODECS[codec],
                    buffer_capacity=BROWSER_BUFFER_BYTES,
                    worker=worker,
                )
                into.append(listener)
                await listener.connect(timeout)
            except Exception:  # any failure to join is a result, not a crash of the benchmark
                failed += 1
                if listener is not None:
                    into.remove(listener)
                    await listener.close()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        await asyncio.gather(*(one(session) for _ in range(count)))
    return failed


async def close_all(listeners: list[BenchListener], timeout: float = 20.0) -> None:
    """Disconnect everyone (each close is itself bounded to 5 s)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(lst.close() for lst in listeners), return_exceptions=True), timeout
        )


async def wait_lead(listeners: list[BenchListener], lead_us: int, timeout: float) -> bool:
    """Until every listener receives audio `lead_us` ahead of its play time (the party's steady
    buffer: before that, chunks arrive faster than real time), or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((lst.last_margin_us or 0) >= lead_us for lst in listeners):
            return True
        await asyncio.sleep(0.1)
    return False
