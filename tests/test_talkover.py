"""Talk-over end to end: espeak-ng speech into a null sink (the host's mic) while the demo
plays; a real Sendspin client's audio, rebuilt as a player would play it, shows the music
ducked, the voice within the live budget, the music back after release — and a mic that is
unplugged never stops the music.

The client's audio is measured against the demo's own rendering: each window is matched to
its place in the loop (which also shows the pulled-in music neither skipped nor repeated)
and its gain is the least-squares fit; what is left over is the voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from server import clock
from server.audio_format import SAMPLE_RATE
from server.channels import default_channel
from server.pump import PULL_IN_US
from server.sources.base import SourceSpec
from server.sources.demo import rendered_pcm
from server.talkover import DUCK_DB, MIC_GUARD_US, RELEASE_S
from tests.conftest import worker_url
from tests.helpers import eventually
from tests.listener import Listener
from tests.media import correlation, mono
from tests.pulse import PulseServer, pulse_fixture, pulse_server_fixture, write_wav  # noqa: F401 (fixtures)

pytestmark = pytest.mark.audio

LIVE_LEAD_MS = 500
MIC = "Talk Mic"
US = 1_000_000
PHRASE = 8 * SAMPLE_RATE  # the demo's four chords take 8 s; its first two phrases are alike


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A spoken sentence as a 48 kHz WAV, and its samples (the reference to find it by)."""
    folder = tmp_path_factory.mktemp("speech")
    raw = folder / "raw.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw), "Last song! The bar is open."], check=True, timeout=30
    )
    with av.open(str(raw)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = [
            out.to_ndarray().ravel()
            for frame in container.decode(audio=0)
            for out in resampler.resample(frame)
        ]
    samples = np.concatenate(parts) * 0.7
    return write_wav(folder / "speech.wav", samples), samples


@pytest.fixture
def mic(pulse: PulseServer):
    """A microphone "Talk Mic" that hears what is played into the sink "micsink"."""
    sink = pulse.add_sink("micsink", "Mic Sink")
    source = pulse.add_mic("talkmic", MIC, master="micsink.monitor")
    yield source
    for module in (source, sink):
        with contextlib.suppress(RuntimeError):  # the test unplugged it
            pulse.unload(module)


class DemoMatch:
    """Where a stretch of client audio sits in the demo loop, and at what gain."""

    def __init__(self) -> None:
        loop = mono(rendered_pcm())
        self.loop = loop
        self.twice = np.concatenate((loop, loop))

    def fit(self, x: np.ndarray) -> tuple[int, float, np.ndarray]:
        """(loop position, gain, what is left when the music is taken out)."""
        probe = x[: SAMPLE_RATE * 3 // 2]
        _, lag = correlation(self.twice, probe)
        ref = self.twice[lag : lag + len(x)]
        gain = float(np.dot(x, ref) / np.dot(ref, ref))
        return lag, gain, x - gain * ref


async def post(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(url) as response:
        return response.status


def db(gain: float) -> float:
    return 20 * np.log10(max(abs(gain), 1e-6))


async def test_voice_over_ducked_music_within_the_live_budget(
    start_party, listeners, mic, pulse: PulseServer, speech
) -> None:
    wav, voice = speech
    demo = DemoMatch()
    async with start_party(workers=1, live_lead_ms=LIVE_LEAD_MS) as party:
        client = Listener(worker_url(party, 0))
        listeners.append(await client.connect())
        await client.wait_chunks(100)
        await asyncio.sleep(1.5)
        await party.set_talk_config(MIC, None, "push")
        pressed = clock.now_us()
        await party.set_talk(True)
        opened = clock.now_us()
        print(f"talk pressed → mic open: {(opened - pressed) / 1000:.0f} ms")
        await eventually(lambda: party.status.talk["level_db"] is not None, what="mic level")
        await asyncio.sleep(0.5)
        spoke = clock.now_us()
        player = pulse.play(wav, "micsink")
        await asyncio.to_thread(player.wait, 20)
        await asyncio.sleep(0.3)
        released = clock.now_us()
        await party.set_talk(False)
        await eventually(lambda: party.status.talk["on"] is False, what="talk off")
        await asyncio.sleep(2.2)
        clears, again = len(client.clears), clock.now_us()
        await party.set_talk(True)  # soon again: the mic is warm, the music not paused again
        print(f"second press → on air: {(clock.now_us() - again) / 1000:.0f} ms")
        await asyncio.sleep(0.5)
        await party.set_talk(False)
        assert len(client.clears) == clears

    start, audio = client.heard(pressed - 2 * US)

    def window(a_us: int, b_us: int) -> np.ndarray:
        return audio[(a_us - start) * SAMPLE_RATE // US : (b_us - start) * SAMPLE_RATE // US]

    # Before: the music at full level.
    pos_before, gain_before, _ = demo.fit(window(pressed - 1_800_000, pressed - 300_000))
    assert abs(db(gain_before)) < 1.0, gain_before
    # The press: one clear, then the music phones held comes again, a moment later.
    gap_from = max(at for at, _ in client.clears if at >= pressed)
    resumed = min(
        ts for (ts, _), got in zip(client.chunks, client.arrivals, strict=True) if got > gap_from
    )
    gap_ms = (resumed - gap_from) / 1000
    print(f"music paused {gap_ms:.0f} ms when talk was pressed (pull-in {PULL_IN_US // 1000} ms)")
    assert 0 < gap_ms < PULL_IN_US / 1000 + 100
    # ... where it stopped: neither skipped nor repeated (within a chunk and the clear's trip).
    pos_after, _, _ = demo.fit(window(resumed, resumed + 1_500_000))
    played_before = (gap_from - (pressed - 1_800_000)) * SAMPLE_RATE // US
    moved = (pos_after - pos_before - played_before) % PHRASE  # the demo repeats each phrase
    drift_ms = (moved if moved < PHRASE // 2 else moved - PHRASE) * 1000 / SAMPLE_RATE
    print(f"music position after the pull-in: {drift_ms:+.0f} ms")
    assert abs(drift_ms) < 60, drift_ms
    # Ducked while talk is on, before a word is said.
    delay_us = LIVE_LEAD_MS * 1000 + MIC_GUARD_US
    _, gain_ducked, _ = demo.fit(window(opened + delay_us + 100_000, spoke + delay_us))
    assert abs(db(gain_ducked) - DUCK_DB) < 1.5, db(gain_ducked)
    # The voice, over the ducked music, within the live budget of the sink.
    _, gain_talk, rest = demo.fit(window(spoke, released + delay_us))
    assert abs(db(gain_talk) - DUCK_DB) < 1.5, db(gain_talk)
    score, lag = correlation(rest, voice)
    heard_us = lag * US // SAMPLE_RATE  # the window starts when paplay was started
    print(f"voice: sink → client timeline {heard_us / 1000:.0f} ms (match {score:.2f})")
    assert score > 0.5, score  # the music alone matches 0.05
    assert LIVE_LEAD_MS * 1000 <= heard_us < delay_us + 150_000, heard_us
    # Released: the music back at full level once the release is over.
    back = released + delay_us + int(RELEASE_S * US) + 100_000
    _, gain_back, _ = demo.fit(window(back, back + 1_000_000))
    assert abs(db(gain_back)) < 1.0, db(gain_back)


async def test_an_unplugged_mic_never_stops_the_music(
    start_party, listeners, mic, pulse: PulseServer
) -> None:
    events: list[str] = []
    async with start_party(workers=1, live_lead_ms=LIVE_LEAD_MS, events=events) as party:
        client = Listener(worker_url(party, 0))
        listeners.append(await client.connect())
        await client.wait_chunks(50)
        await party.set_talk_config(MIC, None, "push")
        await party.set_talk(True)
        await eventually(lambda: party.status.talk["level_db"] is not None, what="mic level")
        pulse.unload(mic)  # the USB mic is pulled out
        unplugged = clock.now_us()
        await eventually(lambda: party.status.talk["error"], what="the mic's error")
        await asyncio.sleep(2.0)
        told = [e for e in events if "Talk-over microphone" in e and not e.startswith("info")]
        assert len(told) == 1, events
        assert party.status.talk["on"] is True and party.status.state == "live"
        _, audio = client.heard(unplugged)
        later = audio[SAMPLE_RATE : 2 * SAMPLE_RATE]  # a second after the unplug
        assert len(later) == SAMPLE_RATE and np.sqrt(np.mean(later**2)) > 0.01
        await party.set_talk(False)


async def test_talk_on_one_channel_leaves_the_other_alone(
    start_party, listeners, mic, pulse: PulseServer, speech
) -> None:
    wav, voice = speech
    demo = DemoMatch()
    channels = [default_channel(i, SourceSpec("demo")) for i in (0, 1)]
    async with start_party(channels, workers=1, live_lead_ms=LIVE_LEAD_MS) as party:
        url = worker_url(party, 0)
        stay, moved = Listener(url), Listener(url)
        for client in (stay, moved):
            listeners.append(await client.connect())
        code = await post(
            f"http://127.0.0.1:{party.status.workers[0]['port']}/api/channel"
            f"?id={moved.client_id}&channel=1"
        )
        assert code == 200
        await asyncio.sleep(1.0)
        await party.set_talk_config(MIC, 1, "push")
        pressed = clock.now_us()
        await party.set_talk(True)
        spoke = clock.now_us()
        print(f"talk pressed → mic open: {(spoke - pressed) / 1000:.0f} ms")
        player = pulse.play(wav, "micsink")
        await asyncio.to_thread(player.wait, 20)
        await party.set_talk(False)
        assert party.status.talk["channel"] == 1

        # The target follows its channel when the set changes; a removed target: all.
        await asyncio.sleep(1.0)  # after the span measured below: Red's guest moves
        blue, green = channels[1], default_channel(2, SourceSpec("demo"))
        for new, target in (([blue], 0), ([green, blue], 1), ([green], None)):
            await party.set_channels(new)
            await eventually(
                lambda t=target: party.status.talk["channel"] == t, what=f"talk on {target}"
            )

    delay_us = LIVE_LEAD_MS * 1000 + MIC_GUARD_US
    span = (spoke + delay_us, spoke + delay_us + len(voice) * US // SAMPLE_RATE)
    gains = {}
    for name, client in (("other channel", stay), ("talk channel", moved)):
        _, audio = client.heard(span[0])
        audio = audio[: (span[1] - span[0]) * SAMPLE_RATE // US]
        _, _, rest = demo.fit(audio)
        score, _ = correlation(rest, voice[: len(rest) // 2])
        # The music's level: the median of half-second fits, so that one chunk lost on a
        # loaded machine does not read as a duck.
        half = SAMPLE_RATE // 2
        levels = [db(demo.fit(audio[k : k + half])[1]) for k in range(0, len(audio) - half, half)]
        gains[name] = (round(float(np.median(levels)), 1), round(score, 2))
    print(f"talk on channel 2 only: (music dB, voice match) {gains}")
    assert abs(gains["other channel"][0]) < 1.0 and gains["other channel"][1] < 0.3, gains
    assert abs(gains["talk channel"][0] - DUCK_DB) < 1.5 and gains["talk channel"][1] > 0.6
