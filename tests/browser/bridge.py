"""Python side of tests/browser/driver.mjs: send a command, await its answer, with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DRIVER_DIR = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
SNAPSHOT = "window.partyStream.snapshot()"


def require_browser_tools() -> str:
    """Path of node; skip locally (fail in CI) when node, playwright or Chromium is missing."""
    node = shutil.which("node")
    missing = [
        what
        for what, present in (
            ("node", node is not None),
            (
                "playwright-core (npm ci in tests/browser)",
                (DRIVER_DIR / "node_modules" / "playwright-core").is_dir(),
            ),
            (CHROMIUM, Path(CHROMIUM).exists()),
        )
        if not present
    ]
    if missing:
        message = "browser test needs: " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


def listening(snap: dict[str, Any]) -> bool:
    """The page is connected and playing (from the page's own diagnostics)."""
    return snap["phase"] == "listening" and snap["connected"] and snap["playing"]


class BrowserDriver:
    """One headless Chromium, driven over JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._ids = itertools.count(1)
        self._stderr: list[str] = []
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name="driver-stderr")

    @classmethod
    async def start(
        cls,
        hosts: list[str],
        prefix: tuple[str, ...] = (),
        *,
        env: dict[str, str] | None = None,
        audible: bool = False,
        extra_args: list[str] | None = None,
    ) -> BrowserDriver:
        """`prefix` runs the driver under another command, e.g. `ip netns exec NS`; `env` is
        added to its environment; `audible` keeps the sound on (PULSE_SINK in `env` picks the
        PulseAudio sink: one sink per browser process)."""
        node = require_browser_tools()
        process = await asyncio.create_subprocess_exec(
            *prefix,
            node,
            str(DRIVER_DIR / "driver.mjs"),
            cwd=DRIVER_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
            env={**os.environ, **env} if env else None,
        )
        driver = cls(process)
        await driver.call(
            "launch",
            timeout=60,
            executablePath=CHROMIUM,
            hosts=hosts,
            audible=audible,
            extraArgs=extra_args or [],
        )
        return driver

    @property
    def pid(self) -> int:
        """The driver's pid; Chromium's processes are its children."""
        return self._process.pid

    async def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        async for line in self._process.stderr:
            self._stderr.append(line.decode(errors="replace").rstrip())
            del self._stderr[:-200]

    async def call(self, cmd: str, *, timeout: float = 30, **args: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        request_id = next(self._ids)
        line = json.dumps({"id": request_id, "cmd": cmd, **args}) + "\n"
        self._process.stdin.write(line.encode())
        await self._process.stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                raw = await self._process.stdout.readline()
                if not raw:
                    tail = "\n".join(self._stderr[-20:])
                    raise RuntimeError(f"browser driver exited during {cmd}:\n{tail}")
                answer = json.loads(raw)
                if answer.get("id") == request_id:
                    break
        if not answer["ok"]:
            raise RuntimeError(f"{cmd} failed: {answer['error']}")
        return answer["result"]

    async def snapshot(self, page: str) -> dict[str, Any]:
        return await self.call("eval", page=page, expression=SNAPSHOT)

    async def wait_for(
        self,
        page: str,
        check: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Poll the page's diagnostics until `check` holds; fail with the last snapshot."""
        snap: dict[str, Any] = {}
        try:
            async with asyncio.timeout(timeout):
                while True:
                    snap = await self.snapshot(page)
                    if check(snap):
                        return snap
                    await asyncio.sleep(0.25)
        except TimeoutError:
            logs = await self.call("logs", page=page)
            tail = "\n".join(logs[-25:])
            pytest.fail(f"page {page}: no {what} within {timeout}s; last state {snap}\n{tail}")

    async def sync_samples(
        self, pages: list[str], rounds: int = 8, every_s: float = 0.5
    ) -> dict[str, list[float]]:
        """Each page's reported sync error, `rounds` times; every page must keep playing.
        While the badge's estimate is unsettled (None, e.g. just after a resync) the player's
        own instantaneous reading stands in, so a resync shows as the error it is."""
        samples: dict[str, list[float]] = {page: [] for page in pages}
        for _ in range(rounds):
            for page in pages:
                snap = await self.snapshot(page)
                assert listening(snap), snap
                value = snap["syncErrorMs"]
                if value is None:
                    value = abs(snap["rawSyncErrorMs"])
                samples[page].append(value)
            await asyncio.sleep(every_s)
        return samples

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("quit", timeout=15)
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
