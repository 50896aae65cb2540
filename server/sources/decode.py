"""Where audio gets decoded: files and HTTP streams through PyAV (FFmpeg).

Files loop forever; a URL that drops is re-opened with exponential backoff. Both resample
to the coordinator's one PCM format. Each pass starts with the track's tags and cover (PyAV
reads both: container tags and the attached-picture stream), in order with its audio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator

import av

from server.audio_format import CHANNELS, SAMPLE_RATE
from server.nowplaying import Track, clean, fit_artwork
from server.sources.base import FeedSource, Report, SourceError, SourceSpec
from server.sources.icy import decode_icy, open_icy

log = logging.getLogger(__name__)

NETWORK_TIMEOUT = 10.0  # seconds to open a URL / wait for data before we call it dropped
URL_BACKOFF_START = 1.0
URL_BACKOFF_MAX = 30.0


def _open_container(location: str) -> av.container.InputContainer:
    return av.open(location, mode="r", timeout=(NETWORK_TIMEOUT, NETWORK_TIMEOUT))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split("; last error log")[0]


def probe(location: str) -> str:
    """Open `location` and check it has audio; returns a short description.

    Raises SourceError with a message a host can act on.
    """
    try:
        with _open_container(location) as container:
            if not container.streams.audio:
                raise SourceError(f"{location!r} has no audio track.")
            stream = container.streams.audio[0]
            # Decode one frame: a truncated or mislabelled file fails here, not mid-party.
            for _ in container.decode(stream):
                break
            else:
                raise SourceError(f"{location!r} contains no playable audio.")
            return f"{stream.codec_context.name}, {stream.rate} Hz"
    except SourceError:
        raise
    except FileNotFoundError as exc:
        raise SourceError(f"File not found: {location}") from exc
    except PermissionError as exc:
        raise SourceError(f"No permission to read {location}") from exc
    except (av.error.InvalidDataError, av.error.EOFError, UnicodeDecodeError) as exc:
        raise SourceError(f"Cannot play {location!r}: not an audio format we can read.") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"Cannot open {location!r}: {_describe(exc)}") from exc


def _cover(container: av.container.InputContainer) -> bytes:
    """The embedded cover (ID3 APIC, FLAC picture, MP4 covr...): FFmpeg shows it as a video
    stream marked attached_pic whose one packet is the image, queued first at open."""
    for stream in container.streams.video:
        if stream.disposition & av.stream.Disposition.attached_pic:
            for packet in container.demux(stream):
                return bytes(packet)
    return b""


def read_track(container: av.container.InputContainer, fallback: str) -> Track:
    """Title, artist, album, duration and cover from the container's tags."""
    tags: dict[str, str] = {}
    for source in (container.streams.audio[0].metadata, container.metadata):
        tags.update({k.lower(): v for k, v in source.items()})  # Ogg keeps tags per stream
    artwork, mime = fit_artwork(_cover(container))
    duration = container.duration  # AV_TIME_BASE (µs); None for endless streams
    return Track(
        title=clean(tags.get("title")),
        artist=clean(tags.get("artist") or tags.get("album_artist")),
        album=clean(tags.get("album")),
        duration_ms=duration // 1000 if duration and duration > 0 else None,
        label=fallback,
        artwork=artwork,
        artwork_mime=mime,
    )


def title_from_name(path: str) -> str:
    """A file's name without folder and extension: the title when its tags have none."""
    return os.path.splitext(os.path.basename(path))[0]


def decode_pcm(
    location: str, stop: threading.Event, *, label: str | None = None
) -> Iterator[bytes | Track]:
    """Decode one pass of `location` into 48 kHz s16 stereo chunks; with a `label`, the
    track's tags come first (the label is its title when the tags have none)."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
    with _open_container(location) as container:
        stream = container.streams.audio[0]
        if label is not None:
            yield read_track(container, label)
        for frame in container.decode(stream):
            if stop.is_set():
                return
            for out in resampler.resample(frame):
                yield out.to_ndarray().tobytes()
        for out in resampler.resample(None):
            yield out.to_ndarray().tobytes()
    assert CHANNELS == 2


class FileSource(FeedSource):
    """A local file, played in a loop."""

    def __init__(self, spec: SourceSpec, report: Report) -> None:
        super().__init__(spec, report)
        self._path = os.path.expanduser(spec.location)

    async def open(self) -> None:
        path = self._path
        if not await asyncio.to_thread(os.path.exists, path):
            raise SourceError(f"File not found: {self.spec.location}")
        await asyncio.to_thread(probe, path)
        self.start_feed(lambda stop: self._loop_forever(path, stop))

    def _loop_forever(self, path: str, stop: threading.Event) -> Iterator[bytes | Track]:
        while not stop.is_set():
            produced = False
            try:
                for chunk in decode_pcm(path, stop, label=title_from_name(path)):
                    produced = produced or isinstance(chunk, bytes)
                    yield chunk
            except FileNotFoundError as exc:
                raise SourceError(f"The file disappeared: {self.spec.location}") from exc
            except av.error.FFmpegError as exc:
                raise SourceError(f"Playback of {self.spec.location!r} failed: {exc}") from exc
            if not produced:
                raise SourceError(f"{self.spec.location!r} contains no playable audio.")



class UrlSource(FeedSource):
    """An HTTP(S) stream or remote file; reconnects with backoff when it drops."""

    close_when_idle = True  # a radio stream is live: don't hold the connection for nobody

    def __init__(self, spec: SourceSpec, report: Report) -> None:
        super().__init__(spec, report)
        self.reconnects = 0

    async def open(self) -> None:
        scheme = self.spec.location.split("://", 1)[0].lower()
        if scheme not in {"http", "https"}:
            raise SourceError(f"Only http:// and https:// addresses can be played, not {scheme}://")
        await asyncio.to_thread(probe, self.spec.location)
        self.start_feed(self._reconnecting)

    def _connect(self, stop: threading.Event) -> Iterator[bytes | Track]:
        """One connection: our ICY reader when the server sends titles, else FFmpeg."""
        label = self.spec.short_label
        reader = open_icy(self.spec.location, NETWORK_TIMEOUT)
        if reader is None:
            yield from decode_pcm(self.spec.location, stop, label=label)
            return
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
        try:
            yield from decode_icy(reader, stop, resampler, label)
        finally:
            reader.close()

    def _reconnecting(self, stop: threading.Event) -> Iterator[bytes | Track]:
        delay = URL_BACKOFF_START
        while not stop.is_set():
            try:
                for chunk in self._connect(stop):
                    if isinstance(chunk, bytes):
                        delay = URL_BACKOFF_START
                    yield chunk
                reason = "the stream ended"
            except (av.error.FFmpegError, OSError, EOFError) as exc:
                reason = _describe(exc)
            if stop.is_set():
                return
            self.reconnects += 1
            self.report("warning", f"Stream dropped ({reason}); reconnecting in {delay:.0f} s.")
            if stop.wait(delay):
                return
            delay = min(delay * 2, URL_BACKOFF_MAX)

    def ended(self) -> str:
        return "The stream ended."

    def stats(self) -> dict[str, int]:
        return {"reconnects": self.reconnects}
