"""Capture latency and overruns of CaptureSource("system"), on a private PulseAudio.

CaptureSource records a null sink's monitor while clicks are played into the sink, and we
measure when read() returns the chunk with each click, two ways that bracket the truth:

- PortAudio clicks from this process: click time = callback time + PortAudio's output
  latency. Relies on the ALSA pulse plugin's latency reports (optimistic: a lower bound);
- `paplay` clicks: click time = just before starting paplay, so it includes process
  start-up (an upper bound);

plus the age of each chunk at read() from its capture timestamp (`last_capture_us`, from
PortAudio's input ADC time), overruns, and the longest wait in read() over the run.

The coordinator then adds its live lead (500 ms by default) before phones play the chunk.
Needs `pulseaudio` and `pactl` (Debian: pulseaudio pulseaudio-utils libasound2-plugins).

    python bench/capture_latency.py [--clicks 20] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server import clock
from server.audio_format import SAMPLE_RATE
from server.sources import devices
from server.sources.base import SourceSpec
from server.sources.capture import CaptureSource
from tests.pulse import SINK, PulseServer, write_wav

CLICK_FRAMES = 240  # 5 ms
THRESHOLD = 8000


class Clicker:
    """A PortAudio output into the null sink that plays a click every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        import sounddevice as sd

        self.times_us: list[int] = []  # when each click starts to play, protocol clock
        self._every = int(interval * SAMPLE_RATE)
        self._countdown = self._every
        click = np.zeros((CLICK_FRAMES, 2), dtype="<i2")
        click[:] = 20000
        self._click = click.tobytes()
        pa = devices.portaudio_view()
        route = next(d for d in pa.devices if d["name"] == "pulse")
        with devices.opening_stream((("PULSE_SINK", SINK),)):
            self._stream = sd.RawOutputStream(
                device=route["index"], samplerate=SAMPLE_RATE, channels=2, dtype="int16",
                blocksize=480, latency=0.1, callback=self._callback,
            )  # fmt: skip
            self._stream.start()
            devices.stream_count(+1)

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        buf = bytearray(frames * 4)
        if self._countdown < frames:
            at = self._countdown
            end = min(frames, at + CLICK_FRAMES)
            buf[at * 4 : end * 4] = self._click[: (end - at) * 4]
            ahead = time_info.outputBufferDacTime - time_info.currentTime
            self.times_us.append(clock.now_us() + int((ahead + at / SAMPLE_RATE) * 1e6))
            self._countdown += self._every
        self._countdown -= frames
        outdata[:] = bytes(buf)

    def close(self) -> None:
        if self._stream.closed:
            return
        self._stream.close(ignore_errors=True)
        devices.stream_count(-1)


async def paplay_clicks(source: CaptureSource, server: PulseServer, clicks: int) -> list[float]:
    """Milliseconds from starting paplay to read() returning the click."""
    click = np.zeros(SAMPLE_RATE // 5)
    click[:CLICK_FRAMES] = 0.6
    wav = write_wav(Path(tempfile.mkdtemp(prefix="click-")) / "click.wav", click)
    out = []
    for _ in range(clicks):
        for _ in range(10):  # let the previous click pass
            await source.read()
        started = clock.now_us()
        player = await asyncio.to_thread(server.play, wav)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pcm = await source.read()
            if np.abs(np.frombuffer(pcm, dtype="<i2")).max() > THRESHOLD:
                out.append((clock.now_us() - started) / 1000)
                break
        await asyncio.to_thread(player.wait, 5)
    return out


async def measure(server: PulseServer, clicks: int, interval: float) -> dict[str, Any]:
    events: list[tuple[str, str]] = []
    source = CaptureSource(SourceSpec("system"), lambda lvl, msg: events.append((lvl, msg)))
    await source.open()
    clicker = Clicker(interval)
    latencies, queued, waits = [], [], []
    found: set[int] = set()
    deadline = time.monotonic() + clicks * interval + 5
    try:
        while len(found) < clicks and time.monotonic() < deadline:
            t0 = time.monotonic()
            pcm = await source.read()
            now = clock.now_us()
            waits.append(time.monotonic() - t0)
            if source.last_capture_us is not None:
                queued.append(now - source.last_capture_us)
            samples = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)[:, 0]
            loud = np.nonzero(np.abs(samples) > THRESHOLD)[0]
            if not loud.size or not clicker.times_us:
                continue
            # The click whose start is closest before this chunk's arrival.
            onset = loud[0]
            if onset > 0 and abs(int(samples[onset - 1])) > THRESHOLD:
                continue  # the tail of a click that started in the previous chunk
            # The click played nearest before this chunk was read (a click that "arrives
            # early" shows as a negative figure: PortAudio's output latency was off).
            played = min(clicker.times_us, key=lambda t: abs(now - 10_000 - t))
            if played in found or abs(now - played) > 250_000:
                continue
            found.add(played)
            latencies.append((now - played) / 1000)
        await asyncio.to_thread(clicker.close)  # closing PortAudio blocks: not on the loop
        via_paplay = await paplay_clicks(source, server, max(3, clicks // 2))
    finally:
        clicker.close()
        stats = source.stats()
        await source.close()
    return {
        "clicks": len(latencies),
        "portaudio_click_to_read_ms": summary(latencies),
        "paplay_start_to_read_ms": summary(via_paplay),
        "chunk_age_at_read_ms": summary([q / 1000 for q in queued]),
        "longest_read_wait_ms": round(max(waits) * 1000, 1) if waits else None,
        "stats": stats,
        "events": events,
    }


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        server = PulseServer(Path(tmp))
        server.start()
        try:
            os.environ.update(server.client_env)
            result = asyncio.run(measure(server, args.clicks, args.interval))
        finally:
            server.stop()
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
