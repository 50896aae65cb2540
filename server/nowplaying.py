"""What is playing: the track model every source fills in, and its timing to the audio.

A source decodes up to several seconds ahead of what the phones hear, so a title change is
stamped with the play time of the first chunk it belongs to and takes effect only then
(`Schedule`), in the coordinator's status and in every worker alike. Nothing here ever
carries a local path: a phone may see only titles, names and the cover image itself.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the tray app imports Track; it must not pay for aiohttp at launch
    from aiohttp import web

log = logging.getLogger(__name__)

ARTWORK_MAX_PX = 600  # covers are scaled down to this (phones show them at most ~300 pt wide)
ARTWORK_MAX_BYTES = 400_000  # larger images are re-encoded: each worker gets a copy
KEEP_COVERS = 8  # recent covers stay fetchable (a phone may ask for one just replaced)
ARTWORK_CACHE = {"Cache-Control": "public, max-age=86400, immutable"}  # keyed by content


@dataclass(frozen=True)
class Track:
    """What the guests hear now. Empty strings mean unknown; `label` is the fallback title
    (the source's short label: a file name, a station, "System audio")."""

    title: str = ""
    artist: str = ""
    album: str = ""
    duration_ms: int | None = None  # None: unknown or endless (a stream, live audio)
    label: str = ""
    artwork: bytes = b""
    artwork_mime: str = ""

    @property
    def artwork_key(self) -> str:
        """Content hash: the image's URL changes exactly when the image does (cache-busting)."""
        return hashlib.sha1(self.artwork).hexdigest()[:16] if self.artwork else ""

    @property
    def display_title(self) -> str:
        return self.title or self.label

    def one_line(self) -> str:
        """"Title — Artist" for a tooltip or a console line."""
        parts = [p for p in (self.display_title, self.artist) if p]
        return " — ".join(parts)

    def public(self) -> dict[str, Any]:
        """JSON-safe, without the image bytes (those are served by key)."""
        return {
            "title": self.title,
            "artist": self.artist,
            "album": self.album,
            "duration_ms": self.duration_ms,
            "label": self.label,
            "artwork": self.artwork_key or None,
        }

    def with_label(self, label: str) -> Track:
        return self if self.label else replace(self, label=label)


def clean(text: object, limit: int = 200) -> str:
    """A tag value as one tidy line (tags can hold anything, of any length)."""
    return " ".join(str(text or "").split())[:limit]


def sniff_mime(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return ""


def fit_artwork(data: bytes) -> tuple[bytes, str]:
    """(image, mime) small enough to send to every worker; (b"", "") if it is not an image.

    Big covers (a 3000 px scan is common) are scaled down once here with Pillow (installed
    with aiosendspin's server extra, which uses it for the artwork role)."""
    if not data:
        return b"", ""
    mime = sniff_mime(data)
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            if mime and len(data) <= ARTWORK_MAX_BYTES and max(img.size) <= ARTWORK_MAX_PX:
                return data, mime
            img.thumbnail((ARTWORK_MAX_PX, ARTWORK_MAX_PX))
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue(), "image/jpeg"
    except Exception as exc:  # a broken cover must never stop the music
        log.info("ignoring unreadable cover art: %s", exc)
        return b"", ""


class Schedule[T]:
    """Items that take effect at a play time (µs, protocol clock), in order.

    `due(now)` moves everything whose time has come to `current`; `flush()` is for a new
    timeline: the audio queued on the old one is dropped, so the newest item is what plays.
    """

    def __init__(self) -> None:
        self.current: T | None = None
        self._pending: deque[tuple[int, T]] = deque()

    def add(self, at_us: int, item: T) -> None:
        while self._pending and self._pending[-1][0] >= at_us:
            self._pending.pop()  # a later decision about the same moment wins
        self._pending.append((at_us, item))

    def next_at(self) -> int | None:
        return self._pending[0][0] if self._pending else None

    def due(self, now_us: int) -> bool:
        """Apply what is due; True when `current` changed."""
        changed = False
        while self._pending and self._pending[0][0] <= now_us:
            self.current = self._pending.popleft()[1]
            changed = True
        return changed

    def new_timeline(self, jump: bool) -> bool:
        """The audio queued on the old timeline is dropped. After a jump (switch, skip) what
        waited for it never plays; otherwise the source goes on where it was, so the newest
        waiting item is what plays now. True when `current` changed."""
        if not self._pending:
            return False
        latest = self._pending[-1][1]
        self._pending.clear()
        if jump:
            return False
        self.current = latest
        return True

    def pending(self) -> list[tuple[int, T]]:
        return list(self._pending)


class Covers:
    """The last few cover images by content key, served as GET /api/artwork/{key} by the
    front door and every worker (so a page asks its own origin; no internet, no paths)."""

    ROUTE = "/api/artwork/{key}"

    def __init__(self) -> None:
        self._images: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def add(self, track: Track) -> None:
        if not track.artwork:
            return
        self._images[track.artwork_key] = (track.artwork, track.artwork_mime or "image/jpeg")
        self._images.move_to_end(track.artwork_key)
        while len(self._images) > KEEP_COVERS:
            self._images.popitem(last=False)

    async def handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        image = self._images.get(request.match_info.get("key", ""))
        if image is None:
            raise web.HTTPNotFound()
        data, mime = image
        return web.Response(body=data, content_type=mime, headers=ARTWORK_CACHE)
