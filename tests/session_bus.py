"""A private D-Bus session bus for tests, and a media player that speaks MPRIS on it.

The bus daemon forks away (so a party test's "no child process left" check only sees the
party) and is killed by its pid afterwards. DBUS_SESSION_BUS_ADDRESS points this process and
every process it spawns (the party's coordinator) at it, never at the machine's own bus.
"""

# No `from __future__ import annotations`: dbus-fast reads the D-Bus signatures from them.
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import PropertyAccess, ServiceInterface, dbus_property

START_TIMEOUT_S = 10.0


@pytest.fixture(name="session_bus")
def session_bus_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("the `dbus-daemon` binary is missing (apt-get install dbus-daemon)")
    out = subprocess.run(
        ["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
        capture_output=True, text=True, timeout=START_TIMEOUT_S, check=True,
    )  # fmt: skip
    address, pid = out.stdout.split()[:2]
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    try:
        yield address
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


class Player(ServiceInterface):
    """org.mpris.MediaPlayer2.Player with the two properties a now-playing reader needs."""

    def __init__(self) -> None:
        super().__init__("org.mpris.MediaPlayer2.Player")
        self.metadata: dict[str, Variant] = {}
        self.status = "Playing"

    @dbus_property(access=PropertyAccess.READ)
    def Metadata(self) -> "a{sv}":  # noqa: F722 (a D-Bus signature)
        return self.metadata

    @dbus_property(access=PropertyAccess.READ)
    def PlaybackStatus(self) -> "s":  # noqa: F821
        return self.status

    def play(self, title: str, artist: str, art_url: str = "", length_s: float = 0) -> None:
        """A new track starts: what a real player announces with PropertiesChanged."""
        self.metadata = {
            "mpris:trackid": Variant("o", f"/track/{abs(hash(title))}"),
            "xesam:title": Variant("s", title),
            "xesam:artist": Variant("as", [artist]),
        }
        if art_url:
            self.metadata["mpris:artUrl"] = Variant("s", art_url)
        if length_s:
            self.metadata["mpris:length"] = Variant("x", int(length_s * 1_000_000))
        self.emit_properties_changed({"Metadata": self.metadata, "PlaybackStatus": "Playing"})


@contextlib.asynccontextmanager
async def mpris_player(address: str, name: str = "testplayer") -> AsyncIterator[Any]:
    bus = await MessageBus(bus_address=address).connect()
    player = Player()
    bus.export("/org/mpris/MediaPlayer2", player)
    await bus.request_name(f"org.mpris.MediaPlayer2.{name}")
    try:
        yield player
    finally:
        bus.disconnect()
