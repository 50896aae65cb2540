"""Linux: what the host's media player is playing, from MPRIS on the session D-Bus.

Every MPRIS player (Spotify, VLC, Rhythmbox, browsers, mpv with its plugin) owns a bus name
`org.mpris.MediaPlayer2.<name>` and announces changes with PropertiesChanged. We listen to
those (and to players coming and going) with dbus-fast, an asyncio D-Bus library, and on
any change report the track of the player that is playing (else paused, else any).

Cover art: a local `file://` artUrl is read and sent as bytes (phones never see the path);
remote artUrls are skipped, so nothing is fetched from the internet on a guest's behalf.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from dbus_fast import BusType, Message
from dbus_fast.aio import MessageBus

from server.nowplaying import Track, clean, fit_artwork

log = logging.getLogger(__name__)

PREFIX = "org.mpris.MediaPlayer2."
PATH = "/org/mpris/MediaPlayer2"
PLAYER = "org.mpris.MediaPlayer2.Player"
DBUS = "org.freedesktop.DBus"
ART_MAX_BYTES = 5_000_000  # a cover file larger than this is not a cover
CALL_TIMEOUT_S = 2.0  # a hung player must not hold the others up
RANK = {"Playing": 0, "Paused": 1}


def _plain(value: Any) -> Any:
    """dbus-fast Variants → plain values."""
    return getattr(value, "value", value)


def read_art(url: str) -> tuple[bytes, str]:
    """A local cover file as (image, mime); nothing for remote or unreadable ones."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return b"", ""
    path = unquote(parts.path)
    try:
        if os.path.getsize(path) > ART_MAX_BYTES:
            return b"", ""
        with open(path, "rb") as fh:
            return fit_artwork(fh.read())
    except OSError:
        return b"", ""


def track_from_metadata(metadata: dict[str, Any]) -> Track:
    """The MPRIS Metadata map (xesam:/mpris: keys) as a Track, without the cover."""
    meta = {k: _plain(v) for k, v in metadata.items()}
    artists = meta.get("xesam:artist") or []
    if isinstance(artists, str):
        artists = [artists]
    length_us = meta.get("mpris:length")
    known = isinstance(length_us, int) and length_us > 0
    return Track(
        title=clean(meta.get("xesam:title")),
        artist=clean(", ".join(str(a) for a in artists)),
        album=clean(meta.get("xesam:album")),
        duration_ms=int(length_us) // 1000 if known else None,
    )


def pick(players: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The properties of the player to follow: playing, else paused, else the first."""
    if not players:
        return None
    ranked = sorted(players, key=lambda p: (RANK.get(_plain(p[1].get("PlaybackStatus")), 2), p[0]))
    return ranked[0][1]


class MprisWatch:
    """Reports the followed player's track through `on_track` whenever it changes."""

    def __init__(self, on_track: Callable[[Track], None], bus_address: str | None = None) -> None:
        self._on_track = on_track
        self._address = bus_address
        self._changed = asyncio.Event()
        self._last: tuple[Any, ...] | None = None

    async def run(self) -> None:
        bus = MessageBus(bus_address=self._address, bus_type=BusType.SESSION)
        await bus.connect()
        try:
            for rule in (
                f"type='signal',interface='org.freedesktop.DBus.Properties',path='{PATH}'",
                f"type='signal',interface='{DBUS}',member='NameOwnerChanged',arg0namespace='"
                f"{PREFIX.rstrip('.')}'",
            ):
                await bus.call(Message(destination=DBUS, path="/org/freedesktop/DBus",
                                       interface=DBUS, member="AddMatch", signature="s",
                                       body=[rule]))  # fmt: skip
            bus.add_message_handler(self._on_message)
            self._changed.set()
            while True:
                await self._changed.wait()
                self._changed.clear()
                await self._report(bus)
        finally:
            bus.disconnect()

    def _on_message(self, message: Any) -> None:
        if message.member in ("PropertiesChanged", "NameOwnerChanged"):
            self._changed.set()

    async def _report(self, bus: MessageBus) -> None:
        async def call(**kwargs: Any) -> Any:
            reply = await asyncio.wait_for(bus.call(Message(**kwargs)), CALL_TIMEOUT_S)
            return reply.body

        names = (await call(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS,
                            member="ListNames"))[0]  # fmt: skip
        players = []
        for name in sorted(n for n in names if n.startswith(PREFIX)):
            try:
                props = (await call(destination=name, path=PATH,
                                    interface="org.freedesktop.DBus.Properties", member="GetAll",
                                    signature="s", body=[PLAYER]))[0]  # fmt: skip
            except Exception as exc:  # a player that hangs or errors is skipped
                log.debug("MPRIS player %s did not answer: %s", name, exc)
                continue
            players.append((name, props))
        props = pick(players)
        if props is None:
            return
        metadata = _plain(props.get("Metadata")) or {}
        track = track_from_metadata(metadata)
        art_url = str(_plain(metadata.get("mpris:artUrl")) or "")
        key = (track, art_url)
        if key == self._last:
            return  # e.g. only the position or volume changed
        self._last = key
        artwork, mime = await asyncio.to_thread(read_art, art_url) if art_url else (b"", "")
        if track.title or track.artist:
            self._on_track(replace(track, artwork=artwork, artwork_mime=mime))
