"""A benchmark session: decode speed, then one run or a W=1 / W=2 sweep, then tables.

Every run gets a fresh party. In a sweep the runs alternate W=1, W=2 at each size, so each
ratio compares two runs made seconds apart on the same (shared) machine.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import time

import numpy as np
import psutil

from bench import decode_speed
from bench.report import table
from bench.runner import BenchParty, RoundResult, no_children_left

KIB = 1024
MIB = 1024 * 1024
HEADERS = [
    "N", "W", "held", "late", "gaps", "coord%", "workers%", "peak w%", "w%/lst", "clients%",
    "machine%", "other%", "RSS KiB/lst", "KiB/s/lst", "margin ms",
]  # fmt: skip


def _row(r: RoundResult) -> list[str]:
    cpu = r.cpu
    workers = sum(cpu.workers)
    margin = "-" if r.min_margin_ms is None else f"{r.min_margin_ms:.0f}"
    return [
        str(r.listeners),
        str(r.workers),
        f"{r.held}/{r.listeners}",
        f"{r.late}",
        f"{r.gaps + r.restarts}",
        f"{cpu.coordinator:.1f}",
        "+".join(f"{w:.0f}" for w in cpu.workers) if len(cpu.workers) > 1 else f"{workers:.1f}",
        f"{r.peak_worker_cpu:.0f}",
        f"{workers / max(1, r.listeners):.2f}",
        f"{cpu.bench:.0f}",
        f"{cpu.machine:.0f}/{cpu.cores * 100}",
        f"{cpu.other:.0f}",
        f"{r.rss_per_listener / KIB:.0f}",
        f"{r.payload_per_listener / KIB:.0f}",
        margin,
    ]


def _details(r: RoundResult) -> str:
    wire = "n/a" if r.wire_per_listener is None else f"{r.wire_per_listener / KIB:.0f} KiB/s"
    return (
        f"N={r.listeners} W={r.workers} ({r.codec}, {r.window_s:.1f} s window): joined in "
        f"{r.join_s:.1f} s, {r.failed} failed, per worker {r.per_worker}, {r.connected} "
        "still connected at the end; "
        f"short of audio {r.short}, late while joining {r.late_joining}, "
        f"timeline gaps {r.gaps} / restarts {r.restarts}, coordinator drops "
        f"{r.coordinator_drops}; worker RSS +{r.worker_rss_growth / MIB:.1f} MiB, "
        f"coordinator RSS {r.coordinator_rss / MIB:.0f} MiB; wire {wire} per listener"
    )


def _print_decode() -> None:
    print("Decode speed (the 32 s demo encoded by PyAV, decoded with decode_pcm, best of 3):")
    print(table(decode_speed.HEADERS, decode_speed.rows(decode_speed.measure())))
    print(flush=True)


def _print_results(results: list[RoundResult]) -> None:
    print(table(HEADERS, [_row(r) for r in results]))
    print()
    for r in results:
        print(_details(r))
    print(flush=True)


def _print_ratios(results: list[RoundResult], sizes: list[int]) -> None:
    by = {(r.listeners, r.workers): r for r in results}
    rows = []
    for n in sizes:
        one, two = by.get((n, 1)), by.get((n, 2))
        if one is None or two is None:
            continue
        ratio = _ratio(two.held, one.held)
        w1 = sum(one.cpu.workers) / n
        w2 = sum(two.cpu.workers) / n
        rows.append([str(n), str(one.held), str(two.held), ratio, f"{w1:.2f}", f"{w2:.2f}"])
    print("Side by side (same session): listeners held with W=1 and W=2")
    print(table(["N", "held W=1", "held W=2", "W2/W1", "worker%/lst W=1", "W=2"], rows))
    for w in (1, 2):
        full = [r for r in results if r.workers == w and r.held == r.listeners]
        most = max((r.listeners for r in full), default=0)
        print(f"W={w}: every listener held up to N={most}" if most else f"W={w}: none held all")
        if len({r.listeners for r in full}) >= 2:
            print(f"  {_marginal(full)}")
    print(flush=True)


def _ratio(two: int, one: int) -> str:
    if one:
        return f"{two / one:.2f}"
    return "inf" if two else "-"


def _marginal(runs: list[RoundResult]) -> str:
    """Least-squares line through the runs that held: the cost of one more listener, apart
    from what streaming costs a worker at all (PyAV loaded, stream buffers)."""
    n = np.array([r.listeners for r in runs], dtype=float)
    rss_slope, rss_base = np.polyfit(n, [r.worker_rss_growth / KIB for r in runs], 1)
    cpu_slope, cpu_base = np.polyfit(n, [sum(r.cpu.workers) for r in runs], 1)
    return (
        f"workers' RSS ~ {rss_base / 1024:.0f} MiB {rss_slope:+.0f} KiB per listener; "
        f"workers' CPU ~ {cpu_base:.1f}% {cpu_slope:+.2f}% of a core per listener"
    )


def _header(args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"Party Stream listener benchmark: {psutil.cpu_count()} cores, "
        f"load average {load} before start, listeners ask for {args.codec.upper()}; "
        f"CPU figures are % of one core averaged over the window.\n",
        flush=True,
    )


async def _one_run(
    workers: int, listeners: int, args: argparse.Namespace
) -> tuple[RoundResult | None, list[int]]:
    """A fresh party for one measurement (no sessions or memory left over from another run);
    returns the result and the pids of any child process that had to be killed."""
    t0 = time.monotonic()
    party = BenchParty(workers)
    result = None
    try:
        await party.start()
        started = time.monotonic() - t0
        result = await party.round(listeners, args.seconds, args.codec, args.tolerance)
        print(
            f"  N={listeners} W={workers}: held {result.held}/{listeners} "
            f"(party started in {started:.1f} s)",
            flush=True,
        )
    finally:
        await party.stop()
        left = await no_children_left()
        for pid in left:  # only our own children, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return result, left


async def run(args: argparse.Namespace) -> int:
    """The whole session; returns the exit code."""
    logging.basicConfig(level=logging.ERROR)
    _header(args)
    if not args.no_decode:
        _print_decode()
    worker_counts = [1, 2] if args.sweep else [args.workers]
    sizes = args.sizes if args.sweep else [args.listeners]
    results: list[RoundResult] = []
    left: list[int] = []
    for n, w in [(n, w) for n in sizes for w in worker_counts]:
        result, left = await _one_run(w, n, args)
        if result is not None:
            results.append(result)
        if left:
            break  # something is wrong with shutdown: measuring on would mislead
    print()
    if results:
        _print_results(results)
    if args.sweep:
        _print_ratios(results, sizes)
    print(f"shutdown: {'clean, no child process left' if not left else f'killed {left}'}")
    return 0 if not left else 1
