"""A worker's side of "now playing": each track is shown when its audio plays.

The coordinator sends a NowPlaying ahead of time, stamped with the play time of its first
chunk. We hold it until then and only then hand it to the group's Sendspin metadata and
artwork roles, so every client (our page, native players, speakers) switches title with
the music it hears. (The library could schedule it too, but sendspin-js 3.2.1 shows
metadata as soon as it arrives, and the library keeps only one scheduled change.)

Covers are also served over our own HTTP (`GET /api/artwork/<key>`, keyed by content hash)
for the page and the phone's lock screen: no internet, never a local path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiosendspin.server import SendspinGroup
from aiosendspin.server.roles.artwork.group import ArtworkGroupRole
from aiosendspin.server.roles.metadata.group import MetadataGroupRole
from aiosendspin.server.roles.metadata.state import Metadata

from server import clock
from server.messages import NowPlaying
from server.nowplaying import Covers, Schedule, Track

log = logging.getLogger(__name__)
MAX_WAIT_S = 1.0  # the apply loop re-checks at least this often


class TrackBoard:
    def __init__(self, port: int, status: Callable[[], dict[str, Any]]) -> None:
        self.schedule: Schedule[tuple[int, Track]] = Schedule()
        self._port = port
        self._status = status
        self.covers = Covers()
        self._group: SendspinGroup | None = None
        self._dirty = False
        self._wake = asyncio.Event()
        self._logged = ""

    # -- from the coordinator -------------------------------------------------------------
    def receive(self, msg: NowPlaying) -> None:
        track = msg.track()
        self.covers.add(track)  # every channel's cover is served here
        if msg.channel != 0:
            return  # the group's metadata reaches all its players: it shows the first channel
        self.schedule.add(msg.ts, (msg.ts, track))
        self._wake.set()

    def reset(self, jump: bool) -> None:
        """A new timeline (see Schedule.new_timeline)."""
        if self.schedule.new_timeline(jump):
            self._dirty = True
            self._wake.set()

    def attach(self, group: SendspinGroup | None) -> None:
        """The worker's one group (new after the last listener left): give it the track."""
        self._group = group
        if group is not None:
            self._dirty = True
            self._wake.set()

    # -- applying at the right time -------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = clock.now_us()
            if self.schedule.due(now) or self._dirty:
                self._dirty = False
                await self._apply(now)
            next_at = self.schedule.next_at()
            wait = MAX_WAIT_S if next_at is None else (next_at - clock.now_us()) / 1e6
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(wait, MAX_WAIT_S)))

    async def _apply(self, now_us: int) -> None:
        group, current = self._group, self.schedule.current
        if group is None or current is None:
            return
        started_us, track = current
        meta = group.group_role("metadata")
        if isinstance(meta, MetadataGroupRole):
            meta.set_metadata(self.metadata(track, started_us, now_us))
        art = group.group_role("artwork")
        if isinstance(art, ArtworkGroupRole):
            try:
                await art.set_album_artwork(_image(track.artwork))
            except Exception:
                log.exception("could not send the cover to the artwork role")
        if track.one_line() != self._logged:  # a loop of the same track is not news
            self._logged = track.one_line()
            log.info("now playing: %s", self._logged)

    def metadata(self, track: Track, started_us: int, now_us: int) -> Metadata:
        """For the Sendspin metadata role; the position is known only for a track whose
        start we stamped (not for a greeting sent mid-track)."""
        progress = None
        if track.duration_ms and started_us > 0:
            progress = max(0, min(track.duration_ms, (now_us - started_us) // 1000))
        return Metadata(
            title=track.display_title or None,
            artist=track.artist or None,
            album=track.album or None,
            artwork_url=self.artwork_url(track),
            track_duration=track.duration_ms,
            track_progress=progress,
            playback_speed=1000 if progress is not None else None,
        )

    def artwork_url(self, track: Track) -> str | None:
        """Absolute (native clients fetch it as it is) on the party's LAN address."""
        if not track.artwork_key:
            return None
        path = f"/api/artwork/{track.artwork_key}"
        host = urlsplit(self._status().get("url") or "").hostname
        return f"http://{host}:{self._port}{path}" if host else path


def _image(data: bytes) -> Any:
    """A Pillow image for the artwork role, or None (clears the cover)."""
    if not data:
        return None
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img
    except Exception:
        return None
