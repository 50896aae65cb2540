"""Capture devices for the Source menu, looked up off the GUI thread and cached.

Asking the sound system can take a second (pactl, PortAudio), so the menu shows the last
known list at once and refreshes it in the background. The lookups never raise: a broken
audio stack shows up as "no devices" with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.sources import devices
from server.sources.devices import Device
from server.tasks import in_daemon_thread

log = logging.getLogger(__name__)

REFRESH_AFTER_S = 5.0


@dataclass(frozen=True)
class DeviceSnapshot:
    microphones: tuple[Device, ...] = ()
    system_available: bool | None = None  # None: not checked yet
    system_note: str = ""


def scan() -> DeviceSnapshot:
    """Blocking: what the sound system offers now (run it in a thread; it never raises)."""
    available, note = devices.system_audio_available()
    return DeviceSnapshot(tuple(devices.list_microphones()), available, note)


class DeviceCache:
    """The last snapshot plus a single background refresh at a time."""

    def __init__(self, scanner: Callable[[], DeviceSnapshot] = scan) -> None:
        self._scan = scanner
        self.snapshot = DeviceSnapshot()
        self._checked_at = 0.0
        self._task: asyncio.Task[DeviceSnapshot] | None = None

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._checked_at > REFRESH_AFTER_S

    async def refresh(self, *, force: bool = False) -> DeviceSnapshot:
        if not force and not self.stale:
            return self.snapshot
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                in_daemon_thread(self._scan, name="device-scan"), name="device-scan"
            )
        snapshot = await asyncio.shield(self._task)
        self.snapshot = snapshot
        self._checked_at = time.monotonic()
        return snapshot
