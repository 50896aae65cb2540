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
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
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
MAX_REMEMBERED = 500  # tracks whose first announcer we remember (for echo detection)


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


@dataclass(frozen=True)
class Seen:
    """One player as last read: its state, when its track last changed, and whether it only
    echoes a track another player announced first (a browser showing our own page's lock-
    screen card is an MPRIS player too: following it would feed our titles back to us)."""

    name: str
    status: str
    track: Track
    art_url: str
    changed_at: float
    echo: bool


def pick(players: list[Seen]) -> Seen | None:
    """The player to follow: not an echo; playing, else paused, else any; among those the one
    whose track changed last (the one the host just started), then by name."""
    ranked = sorted(
        (p for p in players if not p.echo),
        key=lambda p: (RANK.get(p.status, 2), -p.changed_at, p.name),
    )
    return ranked[0] if ranked else None


class MprisWatch:
    """Reports the followed player's track through `on_track` whenever it changes."""

    def __init__(self, on_track: Callable[[Track], None], bus_address: str | None = None) -> None:
        self._on_track = on_track
        self._address = bus_address
        self._changed = asyncio.Event()
        self._last: tuple[Any, ...] | None = None
        self._tracks: dict[str, tuple[str, str]] = {}  # player → (title, artist) last read
        self._changed_at: dict[str, float] = {}  # player → when its track last changed
        self._origin: dict[tuple[str, str], str] = {}  # (title, artist) → first player with it

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

    def _seen(self, name: str, props: dict[str, Any]) -> Seen:
        metadata = _plain(props.get("Metadata")) or {}
        track = track_from_metadata(metadata)
        key = (track.title, track.artist)
        if self._tracks.get(name) != key:
            self._tracks[name] = key
            self._changed_at[name] = time.monotonic()
        if len(self._origin) > MAX_REMEMBERED:
            self._origin.clear()
        origin = self._origin.setdefault(key, name)
        return Seen(
            name=name,
            status=str(_plain(props.get("PlaybackStatus")) or ""),
            track=track,
            art_url=str(_plain(metadata.get("mpris:artUrl")) or ""),
            changed_at=self._changed_at[name],
            echo=origin != name and any(key) and self._owned(origin),
        )

    def _owned(self, name: str) -> bool:
        """The first announcer is still around (else the track is simply this player's)."""
        return name in self._tracks

    def _on_message(self, message: Any) -> None:
        if message.member in ("PropertiesChanged", "NameOwnerChanged"):
            self._changed.set()

    async def _report(self, bus: MessageBus) -> None:
        async def call(**kwargs: Any) -> Any:
            reply = await asyncio.wait_for(bus.call(Message(**kwargs)), CALL_TIMEOUT_S)
            return reply.body

        names = (await call(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS,
                            member="ListNames"))[0]  # fmt: skip
        present = sorted(n for n in names if n.startswith(PREFIX))
        for gone in set(self._tracks) - set(present):  # a player that quit echoes nobody
            self._tracks.pop(gone, None)
            self._changed_at.pop(gone, None)
        players = []
        for name in present:
            try:
                props = (await call(destination=name, path=PATH,
                                    interface="org.freedesktop.DBus.Properties", member="GetAll",
                                    signature="s", body=[PLAYER]))[0]  # fmt: skip
            except Exception as exc:  # a player that hangs or errors is skipped
                log.debug("MPRIS player %s did not answer: %s", name, exc)
                continue
            players.append(self._seen(name, props))
        chosen = pick(players)
        if chosen is None:
            return
        track, art_url = chosen.track, chosen.art_url
        key = (track, art_url)
        if key == self._last:
            return  # e.g. only the position or volume changed
        self._last = key
        artwork, mime = await asyncio.to_thread(read_art, art_url) if art_url else (b"", "")
        if track.title or track.artist:
            self._on_track(replace(track, artwork=artwork, artwork_mime=mime))
