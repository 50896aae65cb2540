"""Internet radio titles: Icecast/SHOUTcast ICY metadata, timed to the audio it belongs to.

FFmpeg's http protocol understands ICY, but PyAV reads a container's tags once, at open, so
a StreamTitle that changes while the stream plays never reaches us through it. We read the
HTTP stream ourselves instead (asking for `Icy-MetaData: 1`), strip the metadata blocks out
of the audio and hand PyAV the clean bytes as a file. Each title change is remembered with
its byte offset in that clean stream; the decoder announces it just before the first packet
at or past that offset, so the change is stamped with the play time of its own audio.

A server that does not speak ICY (no `icy-metaint`) is left to FFmpeg as before.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.request
from collections import deque
from collections.abc import Iterator
from http.client import HTTPResponse

import av

from server.nowplaying import Track, clean

log = logging.getLogger(__name__)

USER_AGENT = "PartyStream/1 (+ICY)"
MAX_METAINT = 1 << 20  # bytes; real servers use 8–64 KiB
# A live stream trickles in real time: FFmpeg's default analysis (up to 5 s of it) would
# hold the first audio back and add that much to every title's and song's delay.
PROBE_OPTIONS = {"analyzeduration": "300000", "probesize": "32768"}
_TITLE = re.compile(r"StreamTitle='(.*?)';", re.S)


def parse_title(block: bytes) -> str | None:
    """The StreamTitle of one metadata block, or None when it has none."""
    text = block.rstrip(b"\0").decode("utf-8", "replace")
    match = _TITLE.search(text)
    return clean(match.group(1)) if match else None


def track_of(stream_title: str, station: str) -> Track:
    """'Artist - Title' is the convention; anything else is all title. The station is the
    album line and the fallback title."""
    artist, sep, title = stream_title.partition(" - ")
    if not sep:
        artist, title = "", stream_title
    return Track(title=title.strip(), artist=artist.strip(), album=station, label=station)


class IcyReader:
    """A read-only, non-seekable file over an ICY response: audio bytes out, titles kept."""

    def __init__(self, response: HTTPResponse, metaint: int, station: str) -> None:
        self._response = response
        self._metaint = metaint
        self._left = metaint  # audio bytes before the next metadata block
        self.station = station
        self.offset = 0  # clean audio bytes handed out so far
        self.changes: deque[tuple[int, Track]] = deque()  # (offset, track) not announced yet
        self._title: str | None = None

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        if self._left == 0:
            self._read_metadata()
        want = self._left if size < 0 else min(size, self._left)
        data = self._response.read1(want)  # whatever has arrived: a live stream trickles
        self._left -= len(data)
        self.offset += len(data)
        return data

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = self._response.read(n - len(data))
            if not more:
                raise EOFError("the stream ended inside a metadata block")
            data += more
        return data

    def _read_metadata(self) -> None:
        self._left = self._metaint
        length = self._exactly(1)[0] * 16
        if not length:
            return  # unchanged
        title = parse_title(self._exactly(length))
        if title is not None and title != self._title:
            self._title = title
            self.changes.append((self.offset, track_of(title, self.station)))

    def close(self) -> None:
        self._response.close()


def open_icy(url: str, timeout: float) -> IcyReader | None:
    """Connect asking for ICY metadata; None (connection closed) when the server sends none."""
    request = urllib.request.Request(url, headers={"Icy-MetaData": "1", "User-Agent": USER_AGENT})
    response = urllib.request.urlopen(request, timeout=timeout)
    try:
        metaint = int(response.headers.get("icy-metaint") or 0)
    except ValueError:
        metaint = 0
    if not 0 < metaint <= MAX_METAINT:
        response.close()
        return None
    station = clean(response.headers.get("icy-name") or "")
    return IcyReader(response, metaint, station)


def decode_icy(
    reader: IcyReader, stop: threading.Event, resampler: av.AudioResampler, label: str
) -> Iterator[bytes | Track]:
    """Decode one connection: the station first, then audio with each title change placed
    before the first packet of the audio it belongs to."""
    with av.open(reader, mode="r", options=PROBE_OPTIONS) as container:
        stream = container.streams.audio[0]
        yield Track(album=reader.station, label=reader.station or label)
        for packet in container.demux(stream):
            if stop.is_set():
                return
            # pos is the packet's offset in the clean stream (-1 if the demuxer does not
            # know it: then the newest change applies now).
            position = packet.pos if packet.pos is not None and packet.pos >= 0 else reader.offset
            while reader.changes and reader.changes[0][0] <= position:
                yield reader.changes.popleft()[1]
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    yield out.to_ndarray().tobytes()
