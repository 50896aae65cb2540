"""CPU and memory of the party's processes, from psutil.

CPU is measured as CPU-seconds consumed over the window divided by its wall time (100% =
one core busy), which catches every short burst that sampling a percentage would miss.
The machine-wide figure shows how much of the box other programs took meanwhile.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from dataclasses import dataclass, field

import psutil


def _cpu_s(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return times.user + times.system


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


@dataclass
class CpuMark:
    """Cumulative CPU seconds at one moment; two marks make a window."""

    wall: float
    coordinator: float
    workers: dict[int, float]
    bench: float
    machine: float


@dataclass
class CpuWindow:
    """Average CPU over a window in percent of one core."""

    coordinator: float
    workers: list[float]
    bench: float
    machine: float
    cores: int = field(default_factory=lambda: psutil.cpu_count() or 1)

    @property
    def other(self) -> float:
        """What programs outside this benchmark used (the machine is shared)."""
        return max(0.0, self.machine - self.coordinator - sum(self.workers) - self.bench)


class PartyProcesses:
    """The coordinator (`pid`), its worker children and this process."""

    def __init__(self, pid: int) -> None:
        self.coordinator = psutil.Process(pid)
        self.me = psutil.Process()

    def workers(self) -> list[psutil.Process]:
        try:
            children = self.coordinator.children()
        except psutil.NoSuchProcess:
            return []
        out = []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                if "resource_tracker" not in " ".join(child.cmdline()):
                    out.append(child)
        return out

    def cpu_mark(self) -> CpuMark:
        workers = {p.pid: s for p in self.workers() if (s := _cpu_s(p)) is not None}
        return CpuMark(
            wall=time.monotonic(),
            coordinator=_cpu_s(self.coordinator) or 0.0,
            workers=workers,
            bench=_cpu_s(self.me) or 0.0,
            machine=_machine_busy_s(),
        )

    @staticmethod
    def cpu_window(start: CpuMark, end: CpuMark) -> CpuWindow:
        """Average CPU between two marks; a worker that restarted in between is left out."""
        wall = max(1e-6, end.wall - start.wall)

        def pct(a: float, b: float) -> float:
            return 100.0 * (b - a) / wall

        both = [p for p in end.workers if p in start.workers]
        return CpuWindow(
            coordinator=pct(start.coordinator, end.coordinator),
            workers=[pct(start.workers[p], end.workers[p]) for p in both],
            bench=pct(start.bench, end.bench),
            machine=pct(start.machine, end.machine),
        )

    def worker_rss(self) -> int:
        """Bytes resident in all workers together."""
        total = 0
        for proc in self.workers():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        return total

    def coordinator_rss(self) -> int:
        try:
            return self.coordinator.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0

    @staticmethod
    def bytes_sent(ports: list[int]) -> int | None:
        """TCP payload bytes sent so far on established connections from these local ports
        (Linux `ss`): the listeners' wire traffic, WebSocket framing and encryption included.
        None where `ss` is missing."""
        if not ports:
            return 0
        ports_expr = " or ".join(f"sport = :{p}" for p in ports)
        try:
            out = subprocess.run(
                ["ss", "-tinH", "state", "established", f"( {ports_expr} )"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return sum(int(m) for m in re.findall(r"\bbytes_sent:(\d+)", out))
