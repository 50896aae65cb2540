"""What every audio source looks like to the coordinator.

A source yields 48 kHz s16le stereo PCM (see server.audio_format) in chunks of any length.
Blocking work (decoding, network reads, PortAudio) happens in a daemon thread behind a
ThreadFeed, so the coordinator's event loop never blocks and shutdown never waits on I/O.
"""

from __future__ import annotations

import asyncio
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from server.nowplaying import Track

SourceKind = Literal["demo", "file", "playlist", "url", "system", "mic", "silence"]
PLAYLIST_EXTENSIONS = (".m3u", ".m3u8", ".pls")
Report = Callable[[str, str], None]
"""report(level, message): level is "info", "warning" or "error"; message is for people."""


class SourceError(Exception):
    """A source cannot play; the message is shown to the host as it is."""


@dataclass(frozen=True)
class SourceSpec:
    """What to play, as chosen in the tray or on the command line (JSON-safe)."""

    kind: SourceKind
    location: str = ""  # file path or URL
    device: str | None = None  # capture device name; None = the system default
    shuffle: bool = False  # playlists: random order, no repeat before every track played

    @property
    def label(self) -> str:
        match self.kind:
            case "demo":
                return "Demo music"
            case "system":
                return "System audio"
            case "mic":
                return f"Microphone: {self.device or 'default'}"
            case "silence":
                return "Silence"
            case _:
                return self.location

    @property
    def short_label(self) -> str:
        """As people say it, and all a phone may see: a file's name (never its path), a
        stream's host (never its URL's credentials), a device's name."""
        match self.kind:
            case "file" | "playlist":
                return os.path.basename(os.path.normpath(self.location)) or "Music"
            case "url":
                return urlsplit(self.location).hostname or "Internet stream"
            case "mic":
                return self.device or "Default input"
            case _:
                return self.label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        return cls(
            kind=data["kind"],
            location=data.get("location", ""),
            device=data.get("device"),
            shuffle=bool(data.get("shuffle", False)),
        )

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """Command-line form: 'demo', a URL, a folder or playlist file, or a file path."""
        if text == "demo":
            return cls("demo")
        if "://" in text:
            return cls("url", text)
        if text.lower().endswith(PLAYLIST_EXTENSIONS) or os.path.isdir(os.path.expanduser(text)):
            return cls("playlist", text)
        return cls("file", text)


class Source(ABC):
    """An open-able, closeable stream of PCM."""

    live = False
    """Captured in real time: the coordinator keeps a small lead and restarts the timeline."""
    close_when_idle = False
    """Release the device/connection while nobody listens (re-opened on the next listener)."""

    def __init__(self, spec: SourceSpec, report: Report) -> None:
        self.spec = spec
        self.report = report
        self._new_track: Track | None = None

    def announce(self, track: Track) -> None:
        """What plays from the next chunk read on (the pump stamps it with that chunk's time)."""
        self._new_track = track

    def take_track(self) -> Track | None:
        """The track announced since the last call, if any."""
        track, self._new_track = self._new_track, None
        return track

    @abstractmethod
    async def open(self) -> None:
        """Check the source can play; raise SourceError with a plain-language reason."""

    @abstractmethod
    async def read(self) -> bytes:
        """The next PCM chunk. Raises SourceError when the source cannot go on."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release devices, files and connections. Must be idempotent."""

    def stats(self) -> dict[str, Any]:
        """Counters for the status (e.g. capture overruns)."""
        return {}


class ThreadFeed:
    """Runs a blocking chunk generator in a daemon thread, bounded by `depth` chunks.

    The loop side awaits `get()`; the thread waits for a free slot, so a paused consumer
    stops the producer instead of letting memory grow. `stop()` returns at once; the thread
    ends at its next chunk boundary (a daemon thread never holds up process exit).
    """

    def __init__(
        self, produce: Callable[[threading.Event], Iterator[bytes | Track]], depth: int
    ) -> None:
        self._produce = produce
        self._slots = threading.Semaphore(depth)
        self._stop = threading.Event()
        self._queue: asyncio.Queue[bytes | Track | BaseException | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="source-feed", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | Track | BaseException | None) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _run(self) -> None:
        try:
            for chunk in self._produce(self._stop):
                while not self._slots.acquire(timeout=0.2):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
                self._put(chunk)
            self._put(None)
        except BaseException as exc:
            self._put(exc)

    async def get(self) -> bytes | Track | None:
        """Next chunk (or track change, in order with the audio), None at the end; re-raises
        what the producer raised."""
        item = await self._queue.get()
        if isinstance(item, bytes | Track):
            self._slots.release()
            return item
        if isinstance(item, BaseException):
            raise item
        return None

    def stop(self) -> None:
        """End the feed; a consumer waiting in get() is woken with the end marker."""
        self._stop.set()
        self._queue.put_nowait(None)


class FeedSource(Source):
    """A source whose chunks come from a blocking generator run in a ThreadFeed (decoders)."""

    FEED_DEPTH = 64  # decoded chunks (~1.5 s) buffered ahead of the coordinator

    def __init__(self, spec: SourceSpec, report: Report) -> None:
        super().__init__(spec, report)
        self._feed: ThreadFeed | None = None

    def start_feed(self, produce: Callable[[threading.Event], Iterator[bytes | Track]]) -> None:
        self._feed = ThreadFeed(produce, self.FEED_DEPTH)
        if not getattr(self.report, "threadsafe", False):
            # The generator runs in the feed thread and reports from there (a skipped file,
            # a dropped stream): hand each report to the loop, which owns the links.
            loop, report = asyncio.get_running_loop(), self.report

            def threadsafe(level: str, message: str) -> None:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(report, level, message)

            threadsafe.threadsafe = True  # type: ignore[attr-defined]
            self.report = threadsafe

    def ended(self) -> str:
        """Why read() failed when the generator ran out (for the host)."""
        return f"Playback of {self.spec.location!r} ended unexpectedly."

    async def read(self) -> bytes:
        while True:
            feed = self._feed
            assert feed is not None, "open() first"
            item = await feed.get()
            if self._feed is None:
                raise SourceError(self.ended())  # closed while we waited
            if feed is not self._feed:
                continue  # restarted elsewhere (a playlist skip): the old feed's tail is void
            if isinstance(item, Track):
                self.announce(item)
                continue
            if item is None:
                raise SourceError(self.ended())
            return item

    async def close(self) -> None:
        if self._feed is not None:
            self._feed.stop()
            self._feed = None
