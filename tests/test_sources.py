"""Files and URLs as party sources: looping, reconnecting, failing without losing the party."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from server import clock
from server.control import PartyError
from server.sources.base import SourceSpec
from tests.conftest import worker_url
from tests.helpers import eventually
from tests.listener import Listener


def tone_wav(freq: float, seconds: float, rate: int = 44_100) -> bytes:
    """A stereo 16-bit WAV (not 48 kHz on purpose: the coordinator must resample)."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(mono, 2).tobytes())
    return buf.getvalue()


def dominant_hz(listener: Listener) -> float:
    pcm = np.concatenate([np.frombuffer(p, "<i2") for _, p in listener.chunks]).reshape(-1, 2)
    left = pcm[-48_000:, 0].astype(float)
    spectrum = np.abs(np.fft.rfft(left * np.hanning(len(left))))
    return float(np.argmax(spectrum) * 48_000 / len(left))


class LocalHttp:
    """A local HTTP server the test fills with routes (127.0.0.1 only)."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.hits = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def http_server() -> AsyncIterator[LocalHttp]:
    server = LocalHttp()
    yield server
    await server.close()


async def test_file_plays_resampled_and_loops(start_party, listeners, tmp_path: Path) -> None:
    song = tmp_path / "short.wav"
    song.write_bytes(tone_wav(880, 0.5))
    async with start_party(SourceSpec("file", str(song)), workers=1) as party:
        assert party.status.source["label"] == str(song)
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(100)  # 100 x 25 ms = 2.5 s > 5 loops of the file
        assert abs(dominant_hz(listener) - 880) < 5
        assert party.status.message is None


async def test_a_flac_or_wav_file_reaches_listeners_whole(start_party, listeners, tmp_path) -> None:
    """4096-frame chunks (85333.33 us each): every one arrives, end to end, no skip."""
    song = tmp_path / "long.wav"
    song.write_bytes(tone_wav(440, 3.0, rate=48_000))
    async with start_party(SourceSpec("file", str(song)), workers=1) as party:
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(20)  # 100 ms frames: 2 s
    chunks = sorted(listener.chunks)[:20]
    frames = 0
    for ts, data in chunks:
        assert abs(ts - chunks[0][0] - frames * 1_000_000 / 48_000) <= 1, "a chunk was lost"
        frames += len(data) // 4


async def test_url_plays_and_reconnects_after_a_drop(start_party, listeners, http_server) -> None:
    body = tone_wav(660, 3.0)

    async def radio(request: web.Request) -> web.StreamResponse:
        http_server.hits += 1
        if http_server.hits > 1:  # later connections: the whole file
            return web.Response(body=body, content_type="audio/wav")
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])  # first connection drops halfway
        return resp

    http_server.app.router.add_get("/radio.wav", radio)
    base = await http_server.start()
    events: list[str] = []
    async with start_party(SourceSpec("url", f"{base}/radio.wav"), workers=1) as party:
        party.add_event_listener(lambda level, msg: events.append(f"{level}: {msg}"))
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(120)
        await eventually(lambda: any("Stream dropped" in e for e in events), what="drop event")
        assert abs(dominant_hz(listener) - 660) < 5
        assert http_server.hits >= 2
        # Phones never see the full address of the stream.
        assert party.status.source["label"].startswith("http://127.0.0.1")


async def test_bad_new_source_keeps_the_old_one_playing(start_party, listeners, tmp_path) -> None:
    async with start_party(workers=1) as party:
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(10)
        with pytest.raises(PartyError, match="File not found"):
            await party.set_source(SourceSpec("file", str(tmp_path / "missing.flac")))
        garbage = tmp_path / "garbage.ogg"
        garbage.write_bytes(b"OggS" + bytes(range(256)) * 64)
        with pytest.raises(PartyError, match="Cannot"):
            await party.set_source(SourceSpec("file", str(garbage)))
        before = listener.count
        await listener.wait_chunks(before + 20)
        assert party.status.source["kind"] == "demo"


async def test_switching_source_keeps_phones_connected(start_party, listeners, tmp_path) -> None:
    song = tmp_path / "a440.wav"
    song.write_bytes(tone_wav(440, 1.0))
    async with start_party(workers=1) as party:
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(10)
        switched_at = clock.now_us()
        await party.set_source(SourceSpec("file", str(song)))
        listener.chunks.clear()
        listener.count = 0
        await listener.wait_chunks(80, timeout=10)
        # The switch is heard at once: the old source's 5 s lead is dropped, not played out,
        # so the earliest audio after the switch is the new song, due within ~1 s.
        listener.chunks.sort()
        earliest = listener.chunks[:40]
        assert earliest[0][0] - switched_at < 1_500_000
        listener.chunks = earliest
        assert abs(dominant_hz(listener) - 440) < 5


async def test_file_that_disappears_mid_party_is_reported(start_party, listeners, tmp_path) -> None:
    song = tmp_path / "vanishing.wav"
    song.write_bytes(tone_wav(550, 0.3))
    events: list[str] = []
    async with start_party(SourceSpec("file", str(song)), workers=1) as party:
        party.add_event_listener(lambda level, msg: events.append(f"{level}: {msg}"))
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(5)
        song.unlink()
        await eventually(
            lambda: any("The file disappeared" in e for e in events), what="disappeared event"
        )
        assert party.status.state == "live"
        await eventually(lambda: party.status.source.get("failed"), what="source marked failed")
        count = listener.count
        await listener.wait_chunks(count + 20)  # silence keeps the phone's timeline going
