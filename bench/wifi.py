"""A party on an emulated Wi-Fi: K browser-like phones behind each profile, Opus vs FLAC.

    python -m bench.wifi                                  # good/busy/bad, Opus and FLAC
    python -m bench.wifi --profiles busy --listeners busy=50 --seconds 30

The party runs here; every phone (bench/phone.py) has a network namespace and a link of its
own behind one emulated access point (tests/netns.py, tests/wifi_air.py), so delay, jitter,
loss, stalls and the shared airtime hit each phone's TCP connection the way a crowded Wi-Fi
would. Needs root, iproute2 and ethtool. Everything heavy is imported inside main() (spawn
re-imports this module in the party's processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_LISTENERS = {"good": 50, "busy": 50, "bad": 20}
JOIN_BATCH = 5  # phones joining at once; a QR code brings them in a trickle, not all at once
WARMUP_TIMEOUT_S = 20.0
LEAD_SLACK_US = 500_000  # warm when every phone holds the party's lead less this
SETTLE_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Round:
    profile: str
    codec: str
    listeners: int
    window_s: float
    joined: int
    held: int
    gaps: int
    late: int
    holes: int
    disconnects: int
    wire_kbit: float  # per listener, down, Ethernet frames as the air delivered them
    payload_kbit: float  # per listener, audio messages as the phone received them
    sync_p50_ms: float | None
    sync_max_ms: float | None
    min_margin_ms: float | None
    count_seen: int | None  # the party's listener count at the end of the window
    codecs: str
    air_drops: int  # frames the air dropped (loss, full AP queue, cut links)
    air_cpu: float  # the emulated air's own CPU, % of one core: near 100 = it is the limit

    @property
    def gaps_per_lmin(self) -> float:
        return self.gaps / max(1, self.listeners) / (self.window_s / 60)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.wifi", description=__doc__)
    parser.add_argument("--profiles", default="good,busy,bad", help="good,busy,bad")
    parser.add_argument("--codecs", default="opus,flac", help="opus,flac (side by side)")
    parser.add_argument(
        "--listeners", default="", help="per profile, e.g. busy=50,bad=20 (default good=50,"
        " busy=50, bad=20)"
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=30.0, help="window per round (30)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--seed", type=int, default=1, help="the air's random seed (1)")
    parser.add_argument(
        "--buffer-s", type=float, default=5.0,
        help="the party's lead, seconds (5; live capture runs with 0.5)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.profiles = [p for p in args.profiles.split(",") if p]
    args.codecs = [c for c in args.codecs.split(",") if c]
    counts = dict(DEFAULT_LISTENERS)
    for item in filter(None, args.listeners.split(",")):
        name, _, n = item.partition("=")
        counts[name] = int(n)
    args.counts = counts
    bad = [p for p in args.profiles if p not in DEFAULT_LISTENERS]
    if bad or not set(args.codecs) <= {"opus", "flac"}:
        parser.error(f"unknown profile or codec: {bad or args.codecs}")
    if not 5 <= args.seconds <= 600:
        parser.error("--seconds must be between 5 and 600")
    return args


async def _until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.2)
    return False


async def run_round(
    party: Any, net: Any, profile: str, codec: str, k: int, seconds: float
) -> Round:
    """K phones join, warm up, are measured for `seconds`, and leave."""
    from bench.phone import Phone

    stop = asyncio.Event()
    phones = [
        Phone(guest.name, net.host_ip, party.config.port, codec, name=f"{codec}{i}")
        for i, guest in enumerate(net.guests[:k])
    ]
    tasks: list[asyncio.Task[None]] = []
    try:
        for i in range(0, k, JOIN_BATCH):
            tasks += [asyncio.create_task(p.run(stop)) for p in phones[i : i + JOIN_BATCH]]
            await asyncio.sleep(0.5)
        await _until(
            lambda: (
                all(
                    p.last_margin_us is not None
                    and p.last_margin_us > party.config.buffer_s * 1e6 - LEAD_SLACK_US
                    for p in phones
                    if p.connected
                )
                and sum(p.connected for p in phones) == k
            ),
            WARMUP_TIMEOUT_S,
        )
        start = [p.tally() for p in phones]
        for p in phones:
            p.min_margin_us = None
        syncs0 = [len(p.sync_errors_us) for p in phones]
        air0 = await asyncio.to_thread(net.stats)
        cpu0 = _cpu_s(net.air.pid)
        await asyncio.sleep(seconds)
        end = [p.tally() for p in phones]
        air1 = await asyncio.to_thread(net.stats)
        air_cpu = (_cpu_s(net.air.pid) - cpu0) / seconds * 100
        count_seen = party.status.listeners
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), STOP_TIMEOUT_S)
    window = end[0]["monotonic"] - start[0]["monotonic"]
    need_us = window * 1e6 - max(1e6, 0.05 * window * 1e6)
    held = 0
    for s, e in zip(start, end, strict=True):
        held += (
            s["connected"]
            and e["connected"]
            and e["disconnects"] == s["disconnects"]
            and e["gaps"] == s["gaps"]
            and e["audio_us"] - s["audio_us"] >= need_us
        )
    syncs = [err for p, n in zip(phones, syncs0, strict=True) for err in p.sync_errors_us[n:]]
    margins = [p.min_margin_us for p in phones if p.min_margin_us is not None]
    down = [
        g1["bytes_down"] - g0["bytes_down"]
        for g0, g1 in zip(air0["guests"][:k], air1["guests"][:k], strict=True)
    ]
    diff = lambda key: sum(e[key] - s[key] for s, e in zip(start, end, strict=True))  # noqa: E731
    return Round(
        profile=profile,
        codec=codec,
        listeners=k,
        window_s=window,
        joined=sum(s["connected"] for s in start),
        held=held,
        gaps=diff("gaps"),
        late=diff("late"),
        holes=diff("holes"),
        disconnects=diff("disconnects"),
        wire_kbit=sum(down) * 8 / 1000 / k / window,
        payload_kbit=diff("payload") * 8 / 1000 / k / window,
        sync_p50_ms=statistics.median(syncs) / 1000 if syncs else None,
        sync_max_ms=max(syncs) / 1000 if syncs else None,
        min_margin_ms=min(margins) / 1000 if margins else None,
        count_seen=count_seen,
        codecs="/".join(sorted({str(e["codec"]) for e in end})),
        air_drops=sum(
            g1["dropped"] - g0["dropped"]
            for g0, g1 in zip(air0["guests"][:k], air1["guests"][:k], strict=True)
        ),
        air_cpu=air_cpu,
    )


def _cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rounds: list[Round]) -> str:
    from bench.report import table as render

    headers = [
        "profile", "codec", "N", "held", "gaps/lst-min", "late", "holes", "drops",
        "kbit/s wire", "kbit/s audio", "sync p50 ms", "sync max ms", "margin ms",
        "count", "air cpu%",
    ]  # fmt: skip
    rows = [
        [
            r.profile, r.codec, str(r.listeners), f"{r.held}/{r.listeners}",
            f"{r.gaps_per_lmin:.2f}", str(r.late), str(r.holes), str(r.disconnects),
            f"{r.wire_kbit:.0f}", f"{r.payload_kbit:.0f}", _fmt(r.sync_p50_ms),
            _fmt(r.sync_max_ms), _fmt(r.min_margin_ms, 0), str(r.count_seen),
            f"{r.air_cpu:.0f}",
        ]
        for r in rounds
    ]  # fmt: skip
    return render(headers, rows)


async def run(args: argparse.Namespace) -> int:
    from bench.session import no_children_left
    from server.config import PartyConfig
    from server.control import PartyController
    from server.sources.base import SourceSpec
    from tests import netns
    from tests.helpers import free_base_port

    if why := netns.wifi_available():
        print(f"cannot emulate Wi-Fi here: {why}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Party Stream Wi-Fi benchmark: {os.cpu_count()} cores, load {load}; "
        f"{args.workers} workers, {args.buffer_s:g} s lead, {args.seconds:.0f} s per round\n",
        flush=True,
    )
    config = PartyConfig(
        port=free_base_port(args.workers + 1), workers=args.workers, buffer_s=args.buffer_s
    )
    party = PartyController(config)
    rounds: list[Round] = []
    await party.start(SourceSpec("demo"))
    try:
        for name in args.profiles:
            profile, k = netns.PROFILES[name], args.counts[name]
            with netns.wifi(profile, guests=k, seed=args.seed) as net:
                for codec in args.codecs:
                    await _until(lambda: party.status.listeners == 0, SETTLE_TIMEOUT_S)
                    r = await run_round(party, net, name, codec, k, args.seconds)
                    rounds.append(r)
                    print(
                        f"  {name} {codec}: held {r.held}/{k}, gaps {r.gaps}, late {r.late}, "
                        f"{r.wire_kbit:.0f} kbit/s per listener on the air, codec {r.codecs}, "
                        f"air drops {r.air_drops}, air CPU {r.air_cpu:.0f}%",
                        flush=True,
                    )
    finally:
        await party.stop()
        for pid in await no_children_left():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    print()
    print(table(rounds))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
