"""Shared test plumbing: free ports, party startup, process accounting, polling."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import psutil

from server.netinfo import port_free


def free_base_port(count: int) -> int:
    """A base port with `count` consecutive free ports (never a fixed port)."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        if all(port_free("0.0.0.0", p) for p in range(base, base + count)):
            return base
    raise RuntimeError("no free port block")


def http_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def get_json(url: str) -> tuple[int, Any]:
    return await asyncio.to_thread(http_json, url)


async def eventually(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll `check` (sync or async) until it returns a truthy value or time runs out."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or check} (last: {last!r})")


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Live (non-zombie) descendants of `pid` (default: this process)."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for p in procs:
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                p.cmdline()
            ):
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def pids_alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out
