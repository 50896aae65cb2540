"""Now playing from live sources, with real servers started by the test: an Icecast-style
ICY radio whose StreamTitle changes mid-stream (aiohttp), and (see below) a media player
speaking MPRIS on a private D-Bus session bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from server import clock
from server.sources.base import SourceSpec
from tests.browser.bridge import listening
from tests.conftest import worker_url
from tests.helpers import eventually
from tests.listener import Listener
from tests.media import MP3_FRAME_BYTES, cover_jpeg, mp3_tone, rms_of
from tests.pulse import PulseServer, pulse_fixture, pulse_server_fixture, tone_sequence, write_wav  # noqa: F401 (fixtures)
from tests.session_bus import mpris_player, session_bus_fixture  # noqa: F401 (fixture)
from tests.test_browser import chromium, shot
from tests.test_nowplaying import close_to, cover_color

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
        self.sent: list[list[tuple[int, str]]] = []  # per connection: (clock µs, title)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        icy = request.headers.get("Icy-MetaData") == "1"
        headers = {"Content-Type": "audio/mpeg", "icy-name": "Test FM"}
        if icy:
            headers["icy-metaint"] = str(METAINT)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        blocks = [(t, data[i : i + METAINT]) for t, data in self.songs
                  for i in range(0, len(data), METAINT)]  # fmt: skip
        last_title, n, sent = None, 0, []
        self.sent.append(sent)  # the party probes with a connection of its own first
        while True:
            for title, block in blocks:
                if icy and n:  # the block before each song's audio names it
                    meta = b""
                    if title != last_title:
                        meta = f"StreamTitle='{title}';".encode()
                        sent.append((clock.now_us(), title))
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


def loud_starts(listener: Listener, loud: bool, threshold: float = LOUD) -> list[int]:
    """Play times (already past) where the audio turns loud (song B) or quiet (song A)."""
    starts, previous = [], None
    played = clock.now_us() - TITLE_TIMING_US
    for ts, pcm in listener.chunks:
        now = rms_of(pcm) > threshold
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
        playing = max(station.sent, key=len)  # the connection the party plays from
        sent = next(at for at, t in playing if t == "Artist B - Song B")
        shown = next(at for at in arrivals(client, "Song B") if at > sent)
        assert shown - sent < 2_000_000, shown - sent
        print(f"ICY title change → client: {(shown - sent) / 1000:.0f} ms")
        status = party.status.now_playing
        assert status and status["album"] == "Test FM"

        # The phone page shows the stream's title and artist (and the placeholder cover).
        async with chromium() as browser:
            await browser.call("open", page="a", url=f"http://127.0.0.1:{party.status.port}/")
            await browser.call("tap", page="a", selector="#start")
            snap = await browser.wait_for(
                "a",
                lambda s: listening(s) and (s.get("nowPlaying") or {}).get("title")
                in ("Song A", "Song B"),
                what="a radio title on the page",
                timeout=30,
            )
            assert snap["nowPlaying"]["artist"] in ("Artist A", "Artist B")
            assert snap["lockScreen"]["title"] == snap["nowPlaying"]["title"]
            await shot(browser, "a", "now-playing-radio")


# -- MPRIS: the host's media player on a private session bus, system audio through Pulse --

SILENT = 3000  # RMS between track one (~1200) and track two (~5800)
LIVE_TIMING_US = 400_000  # capture blocks (20 ms) + paplay's start + the 500 ms live lead


@pytest.mark.audio
async def test_mpris_track_changes_follow_the_system_audio(
    pulse: PulseServer, session_bus: str, tmp_path: Path, start_party, listeners
) -> None:
    quiet = write_wav(tmp_path / "one.wav", 0.1 * tone_sequence((440.0,), 6.0))
    loud = write_wav(tmp_path / "two.wav", 0.5 * tone_sequence((660.0,), 6.0))
    cover = tmp_path / "cover.jpg"
    cover.write_bytes(cover_jpeg((40, 160, 220)))
    async with (
        mpris_player(session_bus) as player,
        start_party(SourceSpec("system"), workers=1) as party,
        contextlib.AsyncExitStack() as browsers,  # closed before the party checks its children
    ):
        player.play("Track One", "Band One", art_url=cover.as_uri(), length_s=6)
        playing = pulse.play(quiet)
        try:
            client = Listener(worker_url(party, 0), metadata=True)
            listeners.append(await client.connect())
            await eventually(lambda: arrivals(client, "Track One"), what="the first title")
            await eventually(
                lambda: any(close_to(cover_color(img), (40, 160, 220))
                            for _, img in client.covers if img),
                what="the player's cover through the artwork role",
            )  # fmt: skip
            browser = await browsers.enter_async_context(chromium())
            await browser.call("open", page="a", url=f"http://127.0.0.1:{party.status.port}/")
            await browser.call("tap", page="a", selector="#start")
            await browser.wait_for(
                "a",
                lambda s: listening(s) and (s.get("nowPlaying") or {}).get("title") == "Track One",
                what="the player's title on the page",
                timeout=30,
            )
            covered = await browser.call(
                "eval", page="a", expression="document.getElementById('now').dataset.cover"
            )
            assert covered == "yes", "the player's cover, served by the party"
            await shot(browser, "a", "now-playing-mpris")

            # The player moves on: its new track is announced as its audio starts.
            playing.terminate()
            playing = pulse.play(loud)
            changed = clock.now_us()
            player.play("Track Two", "Band Two")
            await eventually(lambda: arrivals(client, "Track Two"), what="the second title")
            await browser.wait_for(
                "a",
                lambda s: (s.get("nowPlaying") or {}).get("title") == "Track Two",
                what="the new title on the page",
                timeout=10,
            )
            await eventually(lambda: loud_starts(client, True, SILENT), what="loud audio")
            start = loud_starts(client, True, SILENT)[0]
            shown = arrivals(client, "Track Two")[0]
            assert abs(shown - start) < LIVE_TIMING_US, (shown - start) / 1000
            assert shown - changed < 2_000_000, (shown - changed) / 1000
            print(f"MPRIS track change → client: {(shown - changed) / 1000:.0f} ms")
            meta = next(m for _, m in client.titles if m.get("title") == "Track Two")
            assert meta["artist"] == "Band Two" and not meta.get("artwork_url")

            # Where the OS cannot tell (macOS), the host types it; it reaches phones too.
            await party.set_track("Typed Title", "DJ Host")
            await eventually(lambda: arrivals(client, "Typed Title"), what="the typed title")
        finally:
            playing.terminate()
            playing.wait(5)
