"""Channels end to end: three sources at once, real workers, real Sendspin clients.

Red plays the demo (its rendering is known sample for sample), Blue a file of one constant
level, Green what a private PulseAudio null sink plays (known tones). Each client must get
exactly its channel's audio, a switch must land within 0.5 s in sync with a client already
on the new channel, and each channel must be decoded (or captured) once for the whole party.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from server import clock
from server.channels import Channel, default_channel
from server.control import PartyController, PartyError
from server.sources.base import SourceSpec
from server.sources.demo import rendered_pcm
from tests.conftest import running_party, worker_url
from tests.helpers import eventually
from tests.listener import Listener
from tests.media import correlation, dominant_hz, mono, tagged_flac
from tests.pulse import PulseServer, pulse_fixture, pulse_server_fixture, tone_sequence, write_wav  # noqa: F401 (fixtures)

TONES = (440.0, 880.0, 1320.0)
TONE_S = 0.3
BLUE_LEVEL = 3000
SWITCH_BOUND_US = 500_000
FRAME_100_MS = 48_000 // 10 * 4  # server/frames.py for PCM listeners, bytes


async def post_channel(
    party: PartyController, worker: int, player: str, channel: int, local: str = "127.0.0.1"
) -> int:
    port = party.status.workers[worker]["port"]
    url = f"http://127.0.0.1:{port}/api/channel?id={player}&channel={channel}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local, 0))) as s,
        s.post(url) as resp,
    ):
        return resp.status


async def me(party: PartyController, worker: int, player: str) -> dict:
    port = party.status.workers[worker]["port"]
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/api/me?id={player}") as r,
    ):
        return await r.json()


def counts(party: PartyController) -> list[int | None]:
    return [c["listeners"] for c in party.status.channels]


def samples(chunks: list[tuple[int, bytes]]) -> np.ndarray:
    return np.frombuffer(b"".join(pcm for _, pcm in chunks), "<i2")


def is_demo(pcm: bytes, demo: bytes) -> bool:
    """This chunk is a stretch of the demo rendering, sample for sample (4-byte aligned)."""
    at = demo.find(pcm[:4096])
    while at != -1 and at % 4:
        at = demo.find(pcm[:4096], at + 1)
    return at != -1


def after(chunks: list[tuple[int, bytes]], ts: int) -> list[tuple[int, bytes]]:
    return [(t, pcm) for t, pcm in chunks if t >= ts]


async def connect(party: PartyController, worker: int, made: list[Listener]) -> Listener:
    listener = await Listener(worker_url(party, worker)).connect()
    made.append(listener)
    await listener.wait_chunks(5)
    return listener


@pytest.mark.audio
@pytest.mark.parametrize("workers", [1, 2])
async def test_three_channels_each_heard_alone_switched_in_sync_decoded_once(
    pulse: PulseServer, tmp_path: Path, listeners: list[Listener], workers: int
) -> None:
    tones = tone_sequence(TONES, TONE_S)
    player = pulse.play(write_wav(tmp_path / "tones.wav", np.tile(tones, 40)))  # 36 s
    blue_file = tagged_flac(tmp_path / "blue.flac", title="Blue", level=BLUE_LEVEL, seconds=60)
    channels = [
        default_channel(0, SourceSpec("demo")),
        default_channel(1, SourceSpec("file", str(blue_file))),
        default_channel(2, SourceSpec("system")),
    ]
    demo = rendered_pcm()
    last = workers - 1
    async with running_party(channels, workers=workers) as party:
        try:
            assert [c["name"] for c in party.status.channels] == ["Red", "Blue", "Green"]
            red = await connect(party, 0, listeners)
            green = await connect(party, 0, listeners)
            blue = await connect(party, last, listeners)
            await eventually(lambda: counts(party) == [3, 0, 0], what="everyone on Red")

            assert await post_channel(party, last, blue.client_id, 1) == 200
            assert await post_channel(party, 0, green.client_id, 2) == 200
            moved_at = clock.now_us()
            await eventually(lambda: counts(party) == [1, 1, 1], what="one on each channel")
            assert (await me(party, 0, green.client_id))["channel"] == 2

            # Each pump decodes its source once for the party: its audio grows like time.
            stats0, t0 = party.status.stats["channels"], time.monotonic()
            await asyncio.sleep(3.0)
            stats1, t1 = party.status.stats["channels"], time.monotonic()
            for i, (a, b) in enumerate(zip(stats0, stats1, strict=True)):
                rate = (b["audio_s"] - a["audio_s"]) / (t1 - t0)
                assert 0.7 < rate < 1.4, f"channel {i}: {rate:.2f} s of audio per second"

            # Each client gets its own channel's audio and nothing else.
            settled = moved_at + SWITCH_BOUND_US
            red_audio = after(red.played(), settled)
            assert len(red_audio) > 20
            assert sum(is_demo(pcm, demo) for _, pcm in red_audio) >= 0.9 * len(red_audio)
            # Blue is not the library's main channel: its frames are still 100 ms long.
            assert {len(pcm) for _, pcm in after(blue.played(), settled)} == {FRAME_100_MS}
            blue_audio = samples(after(blue.played(), settled))
            assert blue_audio.size > 48_000 * 2 and np.all(blue_audio == BLUE_LEVEL)
            green_audio = after(green.played(), settled)
            assert not any(is_demo(pcm, demo) for _, pcm in green_audio)
            score, _ = correlation(mono(b"".join(p for _, p in green_audio)), tones)
            assert score > 0.8, f"Green is not the null sink's tones ({score:.2f})"
            pitches = [dominant_hz(mono(pcm)) for _, pcm in green_audio]
            tonal = sum(any(abs(hz - f) < 15 for f in TONES) for hz in pitches)
            assert tonal >= 0.8 * len(pitches), f"Green's pitches: {pitches}"

            # Green switches to Red: told to drop what it buffered, then Red within 0.5 s,
            # the very samples Red's client plays at the same moment.
            clears = len(green.clears)
            asked = clock.now_us()
            assert await post_channel(party, 0, green.client_id, 0) == 200
            await eventually(lambda: len(after(green.played(), asked + 2_000_000)) > 5)
            assert len(green.clears) == clears + 1
            red_at = dict(red.played())
            switched = after(green.played(), asked)
            first = next(ts for ts, pcm in switched if red_at.get(ts) == pcm)
            assert first - asked <= SWITCH_BOUND_US, f"heard after {(first - asked) / 1000} ms"
            heard = after(switched, first)
            assert len(heard) > 15
            assert all(red_at.get(ts) == pcm for ts, pcm in heard), "not in sync with Red"
            await eventually(lambda: counts(party) == [2, 1, 0], what="Green's client on Red")
        finally:  # before the party ends: it must leave no child process
            player.kill()
            player.wait(5)


async def test_channels_change_live_and_only_a_guest_moves_itself(
    tmp_path: Path, listeners: list[Listener]
) -> None:
    loud = tagged_flac(tmp_path / "loud.flac", title="Loud", level=5000, seconds=60)
    quiet = tagged_flac(tmp_path / "quiet.flac", title="Quiet", level=BLUE_LEVEL, seconds=60)
    red = default_channel(0, SourceSpec("demo"))
    blue = default_channel(1, SourceSpec("file", str(quiet)))
    async with running_party([red, blue], workers=1) as party:
        x = await connect(party, 0, listeners)
        y = await connect(party, 0, listeners)

        # Only the player's own address (or the host) moves it; unknown ids and channels 404.
        assert await post_channel(party, 0, x.client_id, 1, local="127.0.3.9") == 403
        assert await post_channel(party, 0, "nobody", 1) == 404
        assert await post_channel(party, 0, x.client_id, 2) == 404
        assert await post_channel(party, 0, x.client_id, 1) == 200
        await eventually(lambda: counts(party) == [1, 1], what="x on Blue")

        # A new source on Blue restarts Blue's timeline only: y (on Red) is not disturbed.
        y_clears = len(y.clears)
        asked = clock.now_us()
        await party.set_source(SourceSpec("file", str(loud)), channel=1)
        await eventually(
            lambda: any(np.all(samples([c]) == 5000) for c in after(x.played(), asked)),
            what="x hears Blue's new source",
        )
        assert len(y.clears) == y_clears
        await eventually(lambda: party.status.channels[1]["source"] == "loud.flac")

        # A change that cannot play changes nothing.
        broken = Channel("Green", "#43a047", SourceSpec("file", str(tmp_path / "missing.flac")))
        with pytest.raises(PartyError, match="Green"):
            await party.set_channels([red, blue, broken])
        assert len(party.status.channels) == 2

        # Renamed and recoloured, Red keeps its guests; Blue removed: x moves to the first.
        dance = Channel("Dance", "#ff00ff", red.source)
        x_clears = len(x.clears)
        await party.set_channels([dance])
        await eventually(lambda: counts(party) == [2], what="everyone on Dance")
        assert party.status.channels[0]["name"] == "Dance"
        assert party.status.channels[0]["colour"] == "#ff00ff"
        assert party.status.channels[0]["source"] == "Demo music"
        assert (await me(party, 0, x.client_id))["channel"] == 0
        assert len(x.clears) == x_clears + 1
        assert await post_channel(party, 0, x.client_id, 1) == 404
