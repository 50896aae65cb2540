"""Stand-ins for the party API and the OS, so GUI logic is tested fast and exactly.

FakeParty has PartyController's interface (start/stop/set_source/kill/listeners) but no
processes; a test decides when it goes live, what it reports and when it fails. The real
controller is used by the tests that must prove processes come and go.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, ClassVar

from desktop.devices import DeviceSnapshot
from server.channels import Channel, default_channel
from server.phase import Phase
from server.sources.devices import Device


class FakePartyError(RuntimeError):
    pass


@dataclass
class FakeStatus:
    state: str = "idle"
    name: str = ""
    url: str = ""
    port: int = 0
    listeners: int | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    level: dict[str, float] | None = None
    now_playing: dict[str, Any] | None = None
    channels: list[dict[str, Any]] = field(default_factory=list)


def channel_rows(channels: list[Channel], counts: list[int | None] | None = None) -> list[dict]:
    """PartyStatus.channels as the real controller reports it."""
    counts = counts or [None] * len(channels)
    return [
        {"index": i, "name": c.name, "colour": c.colour, "source": c.source.short_label,
         "listeners": n, "now_playing": None}
        for i, (c, n) in enumerate(zip(channels, counts, strict=True))
    ]  # fmt: skip


class FakeParty:
    made: ClassVar[list[FakeParty]] = []
    fail_start: ClassVar[str | None] = None  # the next start raises this message
    hold_start: ClassVar[bool] = False  # the next start waits for go_live()

    def __init__(self, config: Any) -> None:
        self.config = config
        self.status = FakeStatus(name=config.name)
        self.sources: list[Any] = []  # every source started or switched to, any channel
        self.channel_sets: list[list[Channel]] = []  # at start and each set_channels
        self.switched: list[int] = []  # the channel of each set_source
        self.fail_switch: str | None = None
        self.skips: list[int] = []
        self.typed: list[tuple[str, str]] = []
        self._status_cbs: list[Any] = []
        self._event_cbs: list[Any] = []
        self._running = False
        self._live = asyncio.Event()
        self._closed = asyncio.Event()
        self._closed.set()
        self.stops = 0
        self.killed = False
        self._prepared = False
        FakeParty.made.append(self)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def phase(self) -> Phase:
        return Phase(self.status.state)

    @property
    def prepared(self) -> bool:
        return self._prepared and not self._running

    async def prepare(self) -> None:
        self._prepared = True

    def add_status_listener(self, cb: Any) -> None:
        self._status_cbs.append(cb)

    def add_event_listener(self, cb: Any) -> None:
        self._event_cbs.append(cb)

    def report(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        for cb in self._status_cbs:
            cb(self.status)

    def event(self, level: str, message: str) -> None:
        for cb in self._event_cbs:
            cb(level, message)

    async def start(self, channels: Any) -> FakeStatus:
        if not isinstance(channels, list):  # a bare SourceSpec is one channel
            channels = [default_channel(0, channels)]
        self.channel_sets.append(channels)
        spec = channels[0].source
        self.sources.append(spec)
        self._closed.clear()
        self._running = True
        self.report(state="starting")
        if FakeParty.fail_start:  # like the real one: the reason comes back once, raised
            message, FakeParty.fail_start = FakeParty.fail_start, None
            self.report(state="error", message=message)
            self._running = False
            self._closed.set()
            raise FakePartyError(message)
        if not FakeParty.hold_start:
            self._live.set()
        await self._live.wait()
        if not self._running:  # stopped while starting
            raise FakePartyError("The party stopped while starting.")
        port = self.config.port
        self.report(
            state="live",
            url=f"http://192.0.2.7:{port}/",
            port=port,
            source={"kind": spec.kind, "label": spec.label, "failed": False},
            channels=channel_rows(channels),
        )
        return self.status

    def go_live(self) -> None:
        self._live.set()

    async def set_source(self, spec: Any, channel: int = 0) -> None:
        if self.fail_switch:
            raise FakePartyError(self.fail_switch)
        self.sources.append(spec)
        self.switched.append(channel)
        channels = list(self.channel_sets[-1])
        channels[channel] = replace(channels[channel], source=spec)
        self.channel_sets.append(channels)
        changes: dict[str, Any] = {"channels": channel_rows(channels)}
        if channel == 0:
            changes["source"] = {"kind": spec.kind, "label": spec.label, "failed": False}
        self.report(**changes)

    async def set_channels(self, channels: list[Channel]) -> None:
        if self.fail_switch:
            raise FakePartyError(self.fail_switch)
        self.channel_sets.append(list(channels))
        self.report(channels=channel_rows(channels))

    async def skip(self, step: int, channel: int = 0) -> None:
        if self.channel_sets[-1][channel].source.kind != "playlist":
            raise FakePartyError("Next and previous work when a playlist or folder plays.")
        self.skips.append(step)

    async def set_track(self, title: str, artist: str = "", channel: int = 0) -> None:
        self.typed.append((title, artist))

    async def stop(self, timeout: float = 8.0) -> None:
        self.stops += 1
        self._prepared = False
        self.report(state="stopping")
        self._running = False
        self._live.set()
        await asyncio.sleep(0)
        self.report(state="idle")
        self._closed.set()

    def crash(self, message: str) -> None:
        self._running = False  # like the real one: the process is gone before it says so
        self.event("error", message)
        self.report(state="error", message=message)
        self._closed.set()

    def kill(self) -> None:
        self.killed = True
        self._running = False
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


def fake_api() -> SimpleNamespace:
    FakeParty.made = []
    FakeParty.fail_start = None
    FakeParty.hold_start = False
    return SimpleNamespace(PartyController=FakeParty, PartyError=FakePartyError)


class FakeAutostart:
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.calls: list[bool] = []

    def is_enabled(self) -> bool:
        return self.enabled

    def set_enabled(self, enabled: bool) -> None:
        self.calls.append(enabled)
        self.enabled = enabled


SNAPSHOT = DeviceSnapshot(
    microphones=(Device("Built-in Microphone", True), Device("USB Audio Mic")),
    system_available=False,
    system_note="System audio needs PulseAudio or PipeWire; neither answered.",
)


def fake_scan() -> DeviceSnapshot:
    return SNAPSHOT
