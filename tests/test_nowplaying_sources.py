"""Now playing from live sources, with real servers started by the test: an Icecast-style
ICY radio whose StreamTitle changes mid-stream (aiohttp), and (see below) a media player
speaking MPRIS on a private D-Bus session bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from server import clock
from server.sources.base import SourceSpec
from tests.conftest import worker_url
from tests.helpers import eventually
from tests.listener import Listener
from tests.media import MP3_FRAME_BYTES, mp3_tone, rms_of

TITLE_TIMING_US = 300_000
METAINT = 8 * MP3_FRAME_BYTES  # a metadata block every 8 MP3 frames (192 ms of audio)
SONG_FRAMES = 8 * 16  # each "song" is 3.07 s, a whole number of metadata intervals
BURST_BLOCKS = 3  # like Icecast's burst-on-connect, but small: the stream is live
SONGS = [("Artist A - Song A", 440, 2000), ("Artist B - Song B", 660, 8000)]
LOUD = 4000  # RMS between song A (~1400) and song B (~5700)


class IcyRadio:
    """A live ICY server: loops the songs in real time, the StreamTitle of each song in the
    metadata block just before its first byte, and notes when it sent each title."""

    def __init__(self) -> None:
        self.songs = [(title, mp3_tone(freq, amp, SONG_FRAMES)) for title, freq, amp in SONGS]
        self.sent: list[tuple[int, str]] = []  # (protocol clock µs, title)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        icy = request.headers.get("Icy-MetaData") == "1"
        headers = {"Content-Type": "audio/mpeg", "icy-name": "Test FM"}
        if icy:
            headers["icy-metaint"] = str(METAINT)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        blocks = [(t, data[i : i + METAINT]) for t, data in self.songs
                  for i in range(0, len(data), METAINT)]  # fmt: skip
        last_title, n = None, 0
        while True:
            for title, block in blocks:
                if icy and n:  # the block before each song's audio names it
                    meta = b""
                    if title != last_title:
                        meta = f"StreamTitle='{title}';".encode()
                        self.sent.append((clock.now_us(), title))
                        last_title = title
                    size = -(-len(meta) // 16)
                    await response.write(bytes([size]) + meta.ljust(size * 16, b"\0"))
                await response.write(block)
                n += 1
                if n > BURST_BLOCKS:
                    await asyncio.sleep(METAINT / MP3_FRAME_BYTES * 0.024)


@pytest.fixture
async def radio() -> AsyncIterator[tuple[IcyRadio, str]]:
    station = IcyRadio()
    app = web.Application()
    app.router.add_get("/live.mp3", station.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield station, f"http://127.0.0.1:{port}/live.mp3"
    await runner.cleanup()


def loud_starts(listener: Listener, loud: bool) -> list[int]:
    """Play times (already past) where the audio turns loud (song B) or quiet (song A)."""
    starts, previous = [], None
    played = clock.now_us() - TITLE_TIMING_US
    for ts, pcm in listener.chunks:
        now = rms_of(pcm) > LOUD
        if previous is not None and previous != now and now == loud and ts < played:
            starts.append(ts)
        previous = now
    return starts


def arrivals(listener: Listener, title: str) -> list[int]:
    return [at for at, meta in listener.titles if meta.get("title") == title]


async def test_icy_stream_titles_follow_the_audio(radio, start_party, listeners) -> None:
    station, url = radio
    async with start_party(SourceSpec("url", url), workers=1) as party:
        client = Listener(worker_url(party, 0), metadata=True)
        listeners.append(await client.connect())
        await eventually(
            lambda: loud_starts(client, True) and loud_starts(client, False),
            timeout=20,
            what="song B, then song A again",
        )
        for title, loud in (("Song B", True), ("Song A", False)):
            for start in loud_starts(client, loud):
                near = [at for at in arrivals(client, title) if abs(at - start) < 1_000_000]
                assert near, (title, client.shown())
                assert abs(near[0] - start) < TITLE_TIMING_US, (title, near[0] - start)
        meta = next(m for _, m in client.titles if m.get("title") == "Song B")
        assert (meta["artist"], meta["album"]) == ("Artist B", "Test FM")
        # From the station's title change to the client showing it: the stream's own burst
        # plus our start lead, under 2 s.
        sent = next(at for at, t in station.sent if t == "Artist B - Song B")
        shown = next(at for at in arrivals(client, "Song B") if at > sent)
        assert shown - sent < 2_000_000, shown - sent
        print(f"ICY title change → client: {(shown - sent) / 1000:.0f} ms")
        status = party.status.now_playing
        assert status and status["album"] == "Test FM"
