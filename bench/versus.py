"""Server cost per listener, ours vs `sendspin serve` (the anchor), side by side in one run.

.venv/bin/python -m bench.versus                       # 50 and 200 listeners, ~6 min
.venv/bin/python -m bench.versus --sizes 50 --rounds 1 --seconds 10    # quick look
.venv/bin/python -m bench.versus --channels            # ours: 1 vs 3 channels, no anchor

Both serve the same 30 s FLAC file with 2 workers; the same probe (tests.listener, the real
aiosendspin client, encrypted, PCM, like the anchor's own numbers) connects N listeners split
evenly over the workers' ports, waits until every one receives audio, then measures a window:
CPU of the server's whole process tree (CPU-seconds / wall seconds, 100 = one core), RSS,
and per listener the audio it received (seconds of play time, whatever the framing).
Rounds alternate ours / anchor so each ratio compares runs made minutes apart at most.
With --channels the pair is ours with one channel / ours with three (the same file decoded by
three pumps, `serve --channel`), the N listeners spread evenly over the channels by
`POST /api/channel`: what channels cost at the same total listener count.
Only 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from bench.load import BenchListener, close_all
from bench.startup import REPO, end_server, make_song
from tests.helpers import free_base_port

CONNECT_PARALLEL = 8
WARMUP_S = 8.0
CHANNELS = 3


@dataclass
class Result:
    who: str
    listeners: int
    connected: int
    cpu: float  # % of one core, server tree
    rss_mib: float
    audio_s: list[float]  # per listener, over the window

    @property
    def per_listener(self) -> float:
        return self.cpu / max(1, self.listeners)


def server_argv(
    who: str, song: Path, port: int, anchor: str, logs: Path
) -> tuple[list[str], list[int]]:
    """(command, worker ports) for one server."""
    if who.startswith("ours"):
        what = [str(song)]
        if who == "ours3":
            what = [f"--channel=Ch{i}={song}" for i in range(CHANNELS)]
        argv = [str(REPO / ".venv/bin/partystream"), "serve", *what, "--workers", "2"]
        argv += ["--port", str(port), "--public-host", "127.0.0.1", "--log-dir", str(logs)]
        return argv, [port + 1, port + 2]
    return [anchor, "serve", str(song), "--workers", "2", "--port", str(port)], [port, port + 1]


def tree_cpu_s(root: psutil.Process) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of `root` and its descendants right now."""
    cpu = rss = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            cpu += sum(proc.cpu_times()[:2])
            rss += proc.memory_info().rss / 2**20
    return cpu, rss


async def connect(urls: list[str], n: int, into: list[BenchListener]) -> None:
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def one(i: int) -> None:
        async with gate:
            listener = BenchListener(urls[i % len(urls)], keep_audio=False)
            into.append(listener)
            for _ in range(3):  # the server may still be binding its ports
                with contextlib.suppress(Exception):
                    await listener.connect(10)
                    return
                await asyncio.sleep(1)

    await asyncio.gather(*(one(i) for i in range(n)))


async def spread(listeners: list[BenchListener]) -> None:
    """Listener i to channel i % CHANNELS, on the worker it is connected to."""
    async with aiohttp.ClientSession() as session:
        for i, lst in enumerate(listeners):
            if i % CHANNELS == 0 or not lst.connected:
                continue
            port = lst.url.split(":")[2].split("/")[0]
            url = f"http://127.0.0.1:{port}/api/channel?id={lst.client_id}&channel={i % CHANNELS}"
            async with session.post(url) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"channel switch refused: {resp.status}")


async def run_one(who: str, n: int, seconds: float, song: Path, anchor: str, tmp: Path) -> Result:
    port = free_base_port(3)
    argv, ports = server_argv(who, song, port, anchor, tmp / "logs")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    listeners: list[BenchListener] = []
    try:
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the workers answer
            probe = BenchListener(f"ws://127.0.0.1:{ports[-1]}/sendspin", keep_audio=False)
            try:
                await probe.connect(5)
                break
            except Exception:
                await asyncio.sleep(0.5)
            finally:
                await probe.close()
        await connect([f"ws://127.0.0.1:{p}/sendspin" for p in ports], n, listeners)
        if who == "ours3":
            await spread(listeners)
        await asyncio.sleep(WARMUP_S)
        root = psutil.Process(proc.pid)
        start_audio = [lst.audio_us for lst in listeners]
        cpu0, _ = tree_cpu_s(root)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, rss = tree_cpu_s(root)
        wall = time.monotonic() - t0
        audio = [(lst.audio_us - a) / 1e6 for lst, a in zip(listeners, start_audio, strict=True)]
        connected = sum(lst.connected for lst in listeners)
        return Result(who, n, connected, 100 * (cpu1 - cpu0) / wall, rss, audio)
    finally:
        await close_all(listeners)
        end_server(proc)


def table(results: list[Result], seconds: float) -> str:
    lines = [
        f"window {seconds:.0f} s; audio = seconds of audio a listener received in it",
        "who     N  connected  cpu%   cpu%/lst  RSS MiB  worst audio s  median audio s",
        "------  ---  ---------  -----  --------  -------  -------------  --------------",
    ]
    for r in results:
        worst, med = min(r.audio_s, default=0), statistics.median(r.audio_s or [0])
        lines.append(
            f"{r.who:6}  {r.listeners:3}  {r.connected:9}  {r.cpu:5.1f}  {r.per_listener:8.3f}"
            f"  {r.rss_mib:7.0f}  {worst:13.1f}  {med:14.1f}"
        )
    for n in sorted({r.listeners for r in results}):
        ours = [r.per_listener for r in results if r.listeners == n and r.who == "ours"]
        for other, what in (("anchor", "ours / anchor"), ("ours3", "3 channels / 1 channel")):
            them = [r.per_listener for r in results if r.listeners == n and r.who == other]
            if ours and them:
                mine, theirs = statistics.median(ours), statistics.median(them)
                ratio = mine / theirs if other == "anchor" else theirs / mine
                lines.append(f"N={n}: CPU per listener, {what} = {ratio:.2f}")
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus")
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--anchor", default="/tmp/anchor/bin/sendspin")
    parser.add_argument(
        "--channels", action="store_true", help=f"ours with 1 vs {CHANNELS} channels, no anchor"
    )
    args = parser.parse_args()
    anchor = shutil.which(args.anchor) or ""
    pair = ("ours", "ours3") if args.channels else ("ours", "anchor")
    if not anchor and not args.channels:
        print(f"no anchor at {args.anchor}: python3.12 -m venv /tmp/anchor && "
              "/tmp/anchor/bin/pip install sendspin==9.0.0")  # fmt: skip
        return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-versus-") as name:
        tmp = Path(name)
        song = make_song(tmp)
        for n in [int(s) for s in args.sizes.split(",")]:
            for _ in range(args.rounds):
                for who in pair:
                    results.append(await run_one(who, n, args.seconds, song, anchor, tmp))
                    print(table(results[-1:], args.seconds).splitlines()[-1], flush=True)
    print()
    print(table(results, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
