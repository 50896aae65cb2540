"""Windows: what the host's media player is playing, from the System Media Transport Controls
(the media overlay Windows shows for Spotify, browsers, the Media Player app...), read with
PyWinRT's `Windows.Media.Control` projection (a Windows-only dependency, imported only here).

We poll the current session once a second: simple, and the events PyWinRT raises arrive on
other threads anyway. The OS boundary (the session manager and the thumbnail stream) is
passed in, so the logic is tested with fakes on any platform.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.nowplaying import Track, clean, fit_artwork

log = logging.getLogger(__name__)

POLL_S = 1.0
THUMBNAIL_MAX_BYTES = 5_000_000


async def request_manager() -> Any:
    """The OS's session manager (raises ImportError where PyWinRT is not installed)."""
    from winrt.windows.media.control import (
        GlobalSystemMediaTransportControlsSessionManager as Manager,
    )

    return await Manager.request_async()


async def read_thumbnail(reference: Any) -> bytes:
    """The cover image behind a WinRT IRandomAccessStreamReference."""
    from winrt.windows.storage.streams import Buffer, InputStreamOptions

    stream = await reference.open_read_async()
    size = min(int(stream.size), THUMBNAIL_MAX_BYTES)
    buffer = Buffer(size)
    await stream.read_async(buffer, size, InputStreamOptions.READ_AHEAD)
    return bytes(buffer)


async def current_track(
    manager: Any, thumbnail: Callable[[Any], Awaitable[bytes]] = read_thumbnail
) -> Track | None:
    """The current session's track (None when nothing plays or it tells nothing)."""
    session = manager.get_current_session()
    if session is None:
        return None
    props = await session.try_get_media_properties_async()
    title, artist = clean(props.title), clean(props.artist or props.album_artist)
    if not (title or artist):
        return None
    artwork, mime = b"", ""
    if props.thumbnail is not None:
        try:
            artwork, mime = fit_artwork(await thumbnail(props.thumbnail))
        except Exception as exc:  # a cover that cannot be read is no reason to stop
            log.debug("SMTC thumbnail unreadable: %s", exc)
    return Track(title=title, artist=artist, album=clean(props.album_title),
                 artwork=artwork, artwork_mime=mime)  # fmt: skip


class SmtcWatch:
    """Reports the current media session's track through `on_track` whenever it changes."""

    def __init__(
        self,
        on_track: Callable[[Track], None],
        manager: Callable[[], Awaitable[Any]] = request_manager,
        thumbnail: Callable[[Any], Awaitable[bytes]] = read_thumbnail,
        poll_s: float = POLL_S,
    ) -> None:
        self._on_track = on_track
        self._manager = manager
        self._thumbnail = thumbnail
        self._poll_s = poll_s

    async def run(self) -> None:
        manager = await self._manager()
        last: tuple[str, str, str] | None = None
        while True:
            try:
                track = await current_track(manager, self._thumbnail)
            except Exception as exc:  # the session went away mid-call: try again next time
                log.debug("SMTC read failed: %s", exc)
                track = None
            key = (track.title, track.artist, track.album) if track else None
            if track is not None and key != last:
                self._on_track(track)
            last = key
            await asyncio.sleep(self._poll_s)
