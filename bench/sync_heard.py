"""Sync as heard: how far apart two players really sound, and how late each one is.

    python -m bench.sync_heard                       # every case, 3 runs, ~15 min
    python -m bench.sync_heard --cases opus-flac --runs 1 --seconds 15
    python -m bench.sync_heard --one-browser          # both pages in one Chromium, panned

Each run is a fresh party playing a file of band-limited noise (never repeats, so a 50 ms
window matches one place only), a private PulseAudio with two "ears" (tests/heard.py: two
mono sinks on the left and right of one recorded null sink), and two players, each playing
into its own ear: two headless Chromium processes (one sink per process), or one Chromium and
the native `sendspin daemon`. A PCM listener on the party records the server's intended
timeline. Both players start together (two taps); the recording runs `--seconds` from them.
Players, sound server and recorder are reniced (`--no-priority`: not): see bench/README.md.
With SYNC_HEARD_DUMP=DIR each run's errors, the pages' own state every 0.5 s and the
recording are kept there (.npz), for diagnosis.

Per 50 ms window (every 100 ms): each player's error against the server's intended play
time, and their difference. Reported: median / p95 / max of |A - B| after 3 s and after
5 s of audio, the time until |A - B| stays under 5 ms p95 ("conv s"), each player's own
median error after 5 s, and what each page's badge estimate said at the end.

Needs node + playwright-core (tests/browser), /usr/bin/chromium, pulseaudio + pactl + parec;
for `native`: /tmp/anchor/bin/sendspin (pip sendspin==9.0.0 in a Python 3.12 venv).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from bench.page_cost import FLAC_OFF
from server.sources.base import SourceSpec
from tests import heard
from tests.browser.bridge import BrowserDriver
from tests.conftest import running_party, worker_url
from tests.listener import Listener
from tests.pulse import PulseServer

CHROMIUM_ARGS = os.environ.get("SYNC_HEARD_CHROMIUM_ARGS", "").split()
ONE_BROWSER = False  # --one-browser: both pages in one Chromium, panned left and right
PRIORITY = True  # --no-priority: leave the players at the machine's normal priority
DUMP = Path(os.environ["SYNC_HEARD_DUMP"]) if os.environ.get("SYNC_HEARD_DUMP") else None
NATIVE = Path(os.environ.get("SENDSPIN_NATIVE", "/tmp/anchor/bin/sendspin"))
HOSTS = ["127.0.0.1", "party.test"]
# How each kind of player is made to take a codec: the host decides WebCodecs (secure) or
# the WASM decoder (plain http, a phone's case); FLAC and PCM as in bench/page_cost.py.
PLAYERS: dict[str, tuple[str, str]] = {
    "opus": ("party.test", ""),
    "opus-webcodecs": ("127.0.0.1", ""),
    "flac": ("party.test", "globalThis.__partystreamWasmOpus = false"),
    "pcm": ("party.test", f"globalThis.__partystreamWasmOpus = false; {FLAC_OFF}"),
    "opus-timestamp": ("party.test", heard.TIMESTAMP_CLOCK),
}
# case: (workers, player A, player B)
CASES: dict[str, tuple[int, str, str]] = {
    "same-worker": (1, "opus", "opus"),
    "two-workers": (2, "opus", "opus"),
    "opus-flac": (2, "opus", "flac"),
    "opus-pcm": (2, "opus", "pcm"),
    "flac-pcm": (2, "flac", "pcm"),
    "webcodecs-wasm": (2, "opus-webcodecs", "opus"),
    "timestamp-clock": (2, "opus", "opus-timestamp"),
    "native": (2, "opus", "native"),
}


# What the player itself believes, every 0.5 s (kept in the dump, for diagnosis).
TRACE = """(() => {
  const pl = window.__player;
  if (!pl || !pl.scheduler || !pl.scheduler.audioContext) return null;
  const sc = pl.scheduler, ctx = sc.audioContext, tf = sc.timeFilter;
  return {t: performance.now(), err: sc.currentSyncErrorMs, ema: sc.smoothedSyncErrorMs,
    corr: sc.currentCorrectionMethod, rate: sc.currentPlaybackRate,
    lat: (ctx.baseLatency + (ctx.outputLatency || 0)) * 1000,
    latSmooth: (sc.latencyTracker.smoothedOutputLatencyUs || 0) / 1000,
    clock: sc.clockSource.active, reject: sc.clockSource.lastRejectReason,
    ahead: sc.getScheduledAheadSec(ctx.currentTime),
    queued: sc.audioBufferQueue.length, tfErr: tf.error / 1000, tfN: tf.count,
    resyncs: sc.resyncCount,
    badge: window.partyStream.snapshot().syncErrorMs};
})()"""


@dataclass
class Run:
    case: str
    diff3: dict[str, float]
    diff5: dict[str, float]
    converge_s: float | None
    own_a: float
    own_b: float
    badge_a: float | None
    badge_b: float | None
    block_ms: tuple[float, float]
    load: float


async def page(driver: BrowserDriver, name: str, party: Any, kind: str) -> None:
    host, script = PLAYERS[kind]
    url = f"http://{host}:{party.status.port}/"
    await driver.call("open", page=name, url=url, reducedMotion="reduce")
    await driver.call("eval", page=name, expression=heard.PLAYER_HOOK)
    if script:
        await driver.call("eval", page=name, expression=f"{script}; true")


@contextlib.asynccontextmanager
async def native_player(party: Any, ear: str, workdir: Path) -> AsyncIterator[None]:
    """`sendspin daemon` playing into `ear` (PortAudio -> ALSA `pulse` -> PULSE_SINK)."""
    env = {**os.environ, "PULSE_SINK": ear}
    proc = await asyncio.create_subprocess_exec(
        str(NATIVE), "daemon", "--url", worker_url(party, 1), "--name", "native",
        "--settings-dir", str(workdir / "native"), "--disable-mpris", "--audio-device", "pulse",
        *os.environ.get("NATIVE_ARGS", "").split(),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if PRIORITY:
        heard.prioritise(proc.pid)
    try:
        yield
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def one_run(case: str, seconds: float, pulse: PulseServer, workdir: Path) -> Run:
    workers, kind_a, kind_b = CASES[case]
    source = SourceSpec("file", str(workdir / "noise.wav"))
    drivers: list[BrowserDriver] = []
    async with (
        running_party(source, workers=workers) as party,
        contextlib.AsyncExitStack() as stack,
    ):
        reference = await Listener(worker_url(party, 0)).connect()
        stack.push_async_callback(reference.close)
        await reference.wait_chunks(5)
        with heard.Ears(pulse) as ears:
            players: list[tuple[BrowserDriver, str]] = []
            try:
                for side, (kind, ear) in enumerate(zip((kind_a, kind_b), heard.EARS, strict=True)):
                    if kind == "native":
                        continue
                    if not (ONE_BROWSER and drivers):
                        sink = heard.MIX if ONE_BROWSER else ear
                        drivers.append(
                            await BrowserDriver.start(
                                HOSTS,
                                env={"PULSE_SINK": sink},
                                audible=True,
                                extra_args=CHROMIUM_ARGS,
                            )
                        )
                    name = f"p{side}"
                    await page(drivers[-1], name, party, kind)
                    if ONE_BROWSER:
                        await drivers[-1].call("eval", page=name, expression=heard.pan_js(side))
                    players.append((drivers[-1], name))
                recorder = heard.Recorder(ears).start()
                stack.callback(recorder.stop)  # idempotent: stopped below on success
                await asyncio.sleep(0.5)
                tap_us = heard.now_us()
                for d, name in players:  # one at a time: a driver answers one call at once
                    await d.call("tap", page=name, selector="#start")
                for driver in drivers:
                    if PRIORITY:
                        heard.prioritise(driver.pid)
                if kind_b == "native":
                    await stack.enter_async_context(native_player(party, heard.EARS[1], workdir))
                traces: list[list[Any]] = [[] for _ in players]
                for _ in range(int(seconds / 0.5)):
                    await asyncio.sleep(0.5)
                    for k, (d, name) in enumerate(players):
                        traces[k].append(await d.call("eval", page=name, expression=TRACE))
                badges = [await d.snapshot(name) for d, name in players]
                recording = recorder.stop()
            finally:
                for driver in drivers:
                    await driver.close()
    ref = heard.timeline(reference.chunks)
    err = [
        heard.errors(recording.samples[:, ch], recording.start_us, ref, rate_ppm=recording.rate_ppm)
        for ch in (0, 1)
    ]
    if DUMP:
        DUMP.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            DUMP / f"{case}-{int(time.time())}.npz", a=np.array(err[0]), b=np.array(err[1]),
            start=recording.start_us, tap=tap_us, ref_start=ref.start_us,
            traces=np.array(json.dumps(traces)), rate_ppm=recording.rate_ppm,
            rec=(recording.samples * 32767).astype(np.int16), ref=ref.samples.astype(np.float32),
        )  # fmt: skip
    if not err[0] or not err[1]:
        raise RuntimeError(f"{case}: a player was not heard ({len(err[0])}, {len(err[1])} windows)")
    started = max(err[0][0][0], err[1][0][0])  # both playing
    diff = heard.difference(*err)
    after = lambda series, s: [v for t, v in series if t >= started + s * 1e6]  # noqa: E731
    badge = [b.get("syncErrorMs") for b in badges] + [None]
    return Run(
        case=case,
        diff3=heard.spread(after(diff, 3)),
        diff5=heard.spread(after(diff, 5)),
        converge_s=heard.converged_after_s(diff, started),
        own_a=statistics.median(after(err[0], 5) or [float("nan")]),
        own_b=statistics.median(after(err[1], 5) or [float("nan")]),
        badge_a=badge[0],
        badge_b=badge[1] if kind_b != "native" else None,
        block_ms=recording.block_ms,
        load=os.getloadavg()[0],
    )


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def print_table(runs: list[Run]) -> None:
    head = (
        "case            A-B med3  p95 3   max3  med5  p95 5   max5  conv s  "
        "A own ms  B own ms  badge A  badge B  block ms  load"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        print(
            f"{r.case:<15} {fmt(r.diff3['median']):>7} {fmt(r.diff3['p95']):>6} "
            f"{fmt(r.diff3['max']):>6} {fmt(r.diff5['median']):>5} {fmt(r.diff5['p95']):>6} "
            f"{fmt(r.diff5['max']):>6} {fmt(r.converge_s):>7} {fmt(r.own_a):>9} "
            f"{fmt(r.own_b):>9} {fmt(r.badge_a):>8} {fmt(r.badge_b):>8} "
            f"{fmt(r.block_ms[0], 0):>4}-{fmt(r.block_ms[1], 0):<4} {r.load:5.1f}"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--no-priority", action="store_true", help="do not renice players")
    parser.add_argument(
        "--one-browser", action="store_true", help="both pages in one Chromium (one output path)"
    )
    args = parser.parse_args(argv)
    global PRIORITY, ONE_BROWSER
    PRIORITY, ONE_BROWSER = not args.no_priority, args.one_browser
    cases = args.cases.split(",")
    if "native" in cases and not NATIVE.is_file():  # noqa: ASYNC240 -- once, at start
        print(f"no {NATIVE}: skipping the native case", file=sys.stderr)
        cases.remove("native")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="sync-heard-") as tmp:
        workdir = Path(tmp)
        await asyncio.to_thread(heard.noise_wav, workdir / "noise.wav", args.seconds + 60)
        pulse = PulseServer(workdir / "pulse")
        pulse.start()
        if pulse.pid is not None:
            heard.prioritise(pulse.pid)  # the mix: a starved sound server delays every player
        try:
            with mock.patch.dict(os.environ, pulse.client_env):  # every player: this server
                for n in range(args.runs):
                    for case in cases:
                        t0 = time.monotonic()
                        try:
                            run = await one_run(case, args.seconds, pulse, workdir)
                        except Exception as exc:  # one failed run must not end the bench
                            print(f"run {n + 1} {case}: failed: {exc!r}", file=sys.stderr)
                            traceback.print_exc()
                            continue
                        runs.append(run)
                        print(f"run {n + 1} {case}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
                        print_table([run])
        finally:
            pulse.stop()
    print()
    print_table(sorted(runs, key=lambda r: list(CASES).index(r.case)))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
