"""The pure parts, alone: messages and framing, the timeline, the front door's pick, backoff."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import numpy as np
import pytest

from server import clock, ipc
from server import pump as pump_module
from server.audio_format import CHUNK_BYTES, CHUNK_FRAMES, SAMPLE_RATE
from server.channels import MAX_CHANNELS, Channel, default_channel, parse_arg, plan, problem
from server.frontdoor import JOIN_GRACE_S, pick
from server.messages import (
    Background,
    Count,
    Hello,
    Lineup,
    NowPlaying,
    Pcm,
    ProtocolError,
    Reset,
    SetChannels,
    SetSource,
    Stop,
    decode,
    encode,
    serve_link,
)
from server.pump import PULL_IN_US, Pump
from server.sources.base import Source, SourceSpec
from server.sources.demo import rendered_pcm
from server.supervisor import (
    BACKOFF_MAX_S,
    BACKOFF_START_S,
    CRASH_WINDOW_S,
    MAX_CRASHES_IN_WINDOW,
    WorkerHandle,
    restart_delay,
)
from server.talkover import (
    ATTACK_S,
    DUCK_DB,
    RELEASE_S,
    MicBuffer,
    envelope_db,
    gate,
    mix,
    segments,
    to_mono,
)
from server.tasks import TaskGroup
from server.timeline import LIVE_DRIFT_US, START_LEAD_US, Timeline
from tests.helpers import eventually

CHUNK_US = CHUNK_FRAMES * 1_000_000 // SAMPLE_RATE


# -- messages ------------------------------------------------------------------------------
def test_every_message_survives_the_wire() -> None:
    for msg in (
        Hello(token="t", role="worker", id=3),
        SetSource(id=7, source={"kind": "file", "location": "/x é.flac"}, channel=2),
        SetChannels(id=8, channels=[default_channel(1, SourceSpec("demo")).to_dict()]),
        Pcm(ts=123_456_789, pcm=b"\x00\x01" * 960, channel=1),
        NowPlaying(ts=5, title="Song", channel=2, artwork=b"\x89PNG"),
        Count(listeners=4, sessions=6, channels=[1, 0, 3]),
        Lineup(kept=[2, None, 0]),
        Stop(),
    ):
        header, payload = encode(msg)
        assert decode(header, payload) == msg


def test_audio_travels_outside_the_json() -> None:
    header, payload = encode(Pcm(ts=1, pcm=b"\xff" * 8))
    assert payload == b"\xff" * 8 and b"\\u" not in header and len(header) < 40


@pytest.mark.parametrize(
    "header",
    [b"not json", b"[]", b'{"t": "nope"}', b'{"no": "tag"}', b'{"t": "count", "bogus": 1}'],
)
def test_anything_else_is_a_protocol_error(header: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(header, b"")


async def _link_pair() -> tuple[ipc.Link, ipc.Link, asyncio.Server]:
    """A connected (child, parent) pair; the parent side is read by the test itself."""
    accepted: asyncio.Future[ipc.Link] = asyncio.get_running_loop().create_future()

    async def on_link(link: ipc.Link, hello: Hello) -> None:
        accepted.set_result(link)

    token = ipc.new_token()
    server, port = await ipc.listen(token, on_link)
    client = await ipc.connect(port, token, role="worker")
    return client, await asyncio.wait_for(accepted, 5), server


async def test_serve_link_dispatches_in_order_and_stop_is_not_stuck_behind_slow_work() -> None:
    client, peer, server = await _link_pair()
    seen: list[str] = []
    slow_started = asyncio.Event()

    async def slow(_: SetSource) -> None:
        slow_started.set()
        await asyncio.sleep(30)

    tasks = TaskGroup("test")
    handlers = {
        Pcm: lambda msg: seen.append(f"pcm{msg.ts}"),
        Reset: lambda _: seen.append("reset"),
        SetSource: Background(slow),
    }
    for msg in (Pcm(ts=1), Reset(), Pcm(ts=2), SetSource(id=1, source={}), Stop()):
        client.send(msg)
    why = await asyncio.wait_for(serve_link(peer, handlers, tasks), 5)
    assert why == "stop" and seen == ["pcm1", "reset", "pcm2"]
    await asyncio.wait_for(slow_started.wait(), 5)  # it runs, as an owned task
    assert len(tasks) == 1
    await tasks.close(1.0)
    await client.close()
    assert await asyncio.wait_for(serve_link(peer, handlers), 5) == "closed"
    server.close()


async def test_a_link_without_the_token_is_refused() -> None:
    token = ipc.new_token()
    linked: list[Hello] = []

    async def on_link(link: ipc.Link, hello: Hello) -> None:
        linked.append(hello)

    server, port = await ipc.listen(token, on_link)
    intruder = await ipc.connect(port, "wrong", role="worker")
    with pytest.raises(ipc.LinkClosed):
        await asyncio.wait_for(intruder.recv(), 5)
    assert linked == []
    server.close()


# -- timeline ------------------------------------------------------------------------------
def test_file_timeline_starts_with_the_join_lead_and_runs_on_without_resets() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    now = 10_000_000
    ts, reset = tl.next(now, CHUNK_BYTES, live=False)
    assert reset and ts == now + START_LEAD_US
    for i in range(1, 100):  # decoding faster than real time: no new timeline
        ts2, reset = tl.next(now + i * 100, CHUNK_BYTES, live=False)
        assert not reset and ts2 == ts + i * CHUNK_US
    assert tl.lead_us(now) == START_LEAD_US + 100 * CHUNK_US
    assert tl.wait_us(now, live=False) == 0  # still under the buffer
    assert tl.wait_us(now - 5_000_000, live=False) > 0  # past it: pause reading


def test_file_timeline_stamps_count_frames_not_rounded_durations() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    start, _ = tl.next(0, 4096 * 4, live=False)  # FLAC/WAV decode: 85333.33 us a chunk
    for k in range(1, 300):
        ts, reset = tl.next(k, 4096 * 4, live=False)
        assert not reset and ts == start + k * 4096 * 1_000_000 // 48_000


def test_a_stall_starts_a_new_timeline() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    ts, _ = tl.next(0, CHUNK_BYTES, live=False)
    later = ts + 1_000_000  # the source said nothing until after the next chunk was due
    ts2, reset = tl.next(later, CHUNK_BYTES, live=False)
    assert reset and ts2 == later + START_LEAD_US


def test_live_timeline_keeps_its_lead_and_reanchors_on_drift() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    ts, reset = tl.next(0, CHUNK_BYTES, live=True)
    assert reset and ts == 500_000 and tl.wait_us(0, live=True) == 0
    ts, reset = tl.next(CHUNK_US, CHUNK_BYTES, live=True)
    assert not reset and ts == 500_000 + CHUNK_US
    # The capture clock ran fast: chunks pile up ahead of the target by more than the bound.
    ts, reset = tl.next(CHUNK_US * 2 - LIVE_DRIFT_US - 1, CHUNK_BYTES, live=True)
    assert reset and ts == CHUNK_US * 2 - LIVE_DRIFT_US - 1 + 500_000


def test_restart_begins_a_new_timeline() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    tl.next(0, CHUNK_BYTES, live=False)
    tl.restart()
    assert tl.lead_us(0) == 0
    assert tl.next(1000, CHUNK_BYTES, live=False) == (1000 + START_LEAD_US, True)


# -- the front door's pick -----------------------------------------------------------------
def _handle(wid: int, listeners: int) -> WorkerHandle:
    return WorkerHandle(wid, 9000 + wid, listeners=listeners)


def test_pick_spreads_a_burst_and_forgets_phones_that_never_came() -> None:
    a, b = _handle(0, 3), _handle(1, 1)
    chosen = [pick([a, b], now=100.0).id for _ in range(4)]  # type: ignore[union-attr]
    assert chosen == [1, 1, 0, 1]  # b fills up to a, then they alternate (ties: lowest id)
    assert pick([], now=100.0) is None
    later = pick([a, b], now=100.0 + JOIN_GRACE_S + 1)  # the pending joins expired
    assert later is b and len(a.joins) == 0 and len(b.joins) == 1


# -- backoff -------------------------------------------------------------------------------
def test_restart_backoff_doubles_to_a_cap_then_gives_up_within_the_window() -> None:
    crashes: deque[float] = deque()
    delays = [restart_delay(crashes, now=float(i)) for i in range(MAX_CRASHES_IN_WINDOW)]
    assert delays[0] == BACKOFF_START_S
    assert all(d is not None and d <= BACKOFF_MAX_S for d in delays)
    assert delays == sorted(delays)  # type: ignore[type-var]
    assert restart_delay(crashes, now=float(MAX_CRASHES_IN_WINDOW)) is None
    # Crashes older than the window are forgotten: a worker that crashed long ago starts over.
    assert restart_delay(crashes, now=1000.0 + CRASH_WINDOW_S) == BACKOFF_START_S


# -- the demo's cache ----------------------------------------------------------------------
def test_the_demo_rendering_is_cached_and_the_cache_is_what_plays(tmp_path) -> None:
    cache = tmp_path / "cache" / "demo.pcm"
    first = rendered_pcm(cache)
    assert cache.read_bytes() == first and len(first) == 16 * 4 * 48_000 // 2 * 4  # 16 bars
    cache.write_bytes(b"\x01\x00" * 4)
    assert rendered_pcm(cache) == b"\x01\x00" * 4
    cache.write_bytes(b"\x01")  # damaged (not whole frames): rendered again
    assert rendered_pcm(cache) == first


async def test_a_flood_of_silent_connections_cannot_hold_the_link_port() -> None:
    token = ipc.new_token()
    linked: list[Hello] = []

    async def on_link(link: ipc.Link, hello: Hello) -> None:
        linked.append(hello)

    server, port = await ipc.listen(token, on_link)
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
    await asyncio.sleep(0.2)

    async def closed_at_once(reader: asyncio.StreamReader) -> bool:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(reader.read(1), 0.5) == b""
        return False

    closed = await asyncio.gather(*(closed_at_once(reader) for reader, _ in silent))
    assert sum(closed) == 40 - ipc.MAX_PENDING_HELLOS  # those past the cap
    for _, writer in silent:
        writer.close()
    await asyncio.sleep(0.1)
    child = await ipc.connect(port, token, role="worker")  # our own child still links up
    await eventually(lambda: linked, timeout=5, what="the real child linked")
    await child.close()
    server.close()


# -- talk-over -----------------------------------------------------------------------------
def test_duck_envelope_goes_down_in_the_attack_and_back_in_the_release() -> None:
    attack, release = int(ATTACK_S * SAMPLE_RATE), int(RELEASE_S * SAMPLE_RATE)
    down = envelope_db(0.0, [(0, DUCK_DB)], attack + 100)
    assert down[0] < 0 and abs(down[attack - 1] - DUCK_DB) < 1e-3 and down[-1] == DUCK_DB
    assert (np.diff(down) <= 0).all() and down[attack // 2] == pytest.approx(DUCK_DB / 2, abs=0.01)
    up = envelope_db(DUCK_DB, [(0, DUCK_DB), (100, 0.0)], release + 200)
    assert (up[:100] == DUCK_DB).all() and (np.diff(up) >= 0).all()
    assert up[99 + release // 2] == pytest.approx(DUCK_DB / 2, abs=0.01) and up[-1] == 0.0


def test_talk_segments_follow_the_switches_and_duck_an_attack_early() -> None:
    ms = SAMPLE_RATE // 1000
    switches = [(1_000_000, True), (2_000_000, False)]
    assert segments(switches, 0, 960) == [(0, False)]
    assert segments(switches, 990_000, 960) == [(0, False), (10 * ms, True)]
    assert segments(switches, 990_000, 960, early_us=50_000) == [(0, True)]
    assert segments(switches, 1_990_000, 960, early_us=50_000) == [(0, True), (10 * ms, False)]
    assert segments(switches, 2_500_000, 960) == [(0, False)]
    assert gate([(0, False), (480, True)], 960).sum() == 480


def test_music_plus_voice_is_limited_never_clipped() -> None:
    n = 4800
    music = (np.sin(np.arange(n) * 0.05) * 32000).astype("<i2")
    stereo = np.repeat(music[:, None], 2, axis=1).tobytes()
    out = np.frombuffer(mix(stereo, np.zeros(n, np.float32), np.full(n, 0.9, np.float32)), "<i2")
    assert out.max() <= 32767 and out.min() >= -32768
    assert len(np.unique(out[out > 32000])) > 10  # bent smoothly, not flattened at full scale
    quiet = np.repeat((np.arange(n) % 100).astype("<i2")[:, None], 2, axis=1).tobytes()
    assert mix(quiet, np.zeros(n, np.float32), np.zeros(n, np.float32)) == quiet  # untouched
    ducked = np.frombuffer(
        mix(stereo, np.full(n, DUCK_DB, np.float32), np.zeros(n, np.float32)), "<i2"
    )
    assert np.abs(ducked).max() == pytest.approx(32000 * 10 ** (DUCK_DB / 20), rel=0.01)


def test_mic_buffer_lays_blocks_end_to_end_by_arrival_and_restarts_after_a_loss() -> None:
    buf = MicBuffer()
    block = np.arange(960, dtype=np.float32)  # 20 ms
    buf.append(block, 1_020_000)  # captured 1.000–1.020 s
    buf.append(block + 960, 1_043_000)  # 3 ms of jitter: laid end to end anyway
    got = buf.take(1_000_000 + 10_000, 960)  # from 10 ms in
    assert (got == np.arange(480, 1440, dtype=np.float32)).all()
    assert (buf.take(0, 10) == 0).all()  # before anything was captured: silence
    buf.append(block + 1920, 1_050_000)  # a backlog draining: it all moved 10 ms earlier
    assert (buf.take(1_000_000, 960) == block + 480).all()
    buf.append(block, 5_020_000)  # samples lost: a new start
    assert (buf.take(5_000_000, 960) == block).all()
    assert to_mono(np.array([[100, 300]], "<i2").tobytes())[0] == pytest.approx(200 / 32768)


def test_timeline_pulled_in_starts_close_and_stays_under_the_cap() -> None:
    tl = Timeline(live_lead_us=500_000, buffer_us=5_000_000)
    tl.restart(lead_us=200_000)
    tl.cap_us = 500_000
    ts, reset = tl.next(0, CHUNK_BYTES, live=False)
    assert reset and ts == 200_000
    for i in range(1, 30):  # the burst that refills the lead is not taken for a stall
        assert not tl.next(i, CHUNK_BYTES, live=False)[1]
    assert tl.wait_us(0, live=False) == tl.lead_us(0) - 500_000 > 0
    tl.restart()  # e.g. a new source while the host talks: it starts at the cap, not 0.8 s
    assert tl.next(0, CHUNK_BYTES, live=False) == (500_000, True)
    tl.cap_us = None
    assert tl.wait_us(0, live=False) == 0


class _Workers:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send_all(self, msg: object, *, droppable: bool = False) -> None:
        self.sent.append(msg)

    def listening(self) -> int:
        return 1


class _Numbered(Source):
    """Chunk i is filled with i: which chunks a phone gets, in which order, is visible."""

    def __init__(self) -> None:
        super().__init__(SourceSpec("demo"), lambda *_: None)
        self.i = 0

    async def open(self) -> None:
        pass

    async def read(self) -> bytes:
        self.i += 1
        await asyncio.sleep(0)
        return np.full(CHUNK_BYTES // 2, self.i, "<i2").tobytes()


async def test_holding_the_lead_replays_unplayed_music_without_skip_or_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pump_module, "frame", lambda msg: msg)  # keep the message, not bytes
    pump = Pump(SourceSpec("demo"), Timeline(500_000, 2_000_000), lambda *_: None, lambda: None)
    pump.source = _Numbered()
    workers, stop = _Workers(), asyncio.Event()
    task = asyncio.create_task(pump.run(workers, stop))
    await eventually(lambda: pump.timeline.lead_us(clock.now_us()) > 1_500_000)
    pump.hold_lead(500_000)
    held_at = clock.now_us()
    await eventually(lambda: sum(isinstance(m, Reset) for m in workers.sent) == 2)
    await asyncio.sleep(0.3)
    stop.set()
    await task
    resets = [i for i, m in enumerate(workers.sent) if isinstance(m, Reset)]
    before = [m for m in workers.sent[resets[0] + 1 : resets[1]] if isinstance(m, Pcm)]
    after = [m for m in workers.sent[resets[1] + 1 :] if isinstance(m, Pcm)]
    played = [m.pcm[0] for m in before if m.ts + CHUNK_US // 2 <= held_at]
    numbers = played + [m.pcm[0] for m in after]
    assert numbers == list(range(1, len(numbers) + 1))  # nothing skipped, nothing twice
    assert after[0].ts - held_at == pytest.approx(PULL_IN_US, abs=60_000)
    lead = after[-1].ts - clock.now_us()
    assert lead < 500_000 + 100_000  # held at live lead, not 2 s


# -- channels ------------------------------------------------------------------------------
DEMO, SYSTEM = SourceSpec("demo"), SourceSpec("system")
SONG = SourceSpec("file", "/music/song.flac")


def test_a_channel_survives_its_dict_and_the_palette_names_the_defaults() -> None:
    red = default_channel(0, SONG)
    assert (red.name, red.colour) == ("Red", "#e53935")
    assert Channel.from_dict(red.to_dict()) == red
    assert [default_channel(i, DEMO).name for i in range(MAX_CHANNELS)] == [
        "Red",
        "Blue",
        "Green",
    ]


def test_a_set_of_channels_says_why_it_cannot_play() -> None:
    red = default_channel(0, DEMO)
    assert problem([red]) is None and problem([red] * MAX_CHANNELS) is None
    assert "1 to 3" in (problem([]) or "") and "1 to 3" in (problem([red] * 4) or "")
    assert "name" in (problem([Channel(" ", "#000000", DEMO)]) or "")
    assert "#rrggbb" in (problem([Channel("Red", "red", DEMO)]) or "")


def test_a_channel_option_is_name_equals_source() -> None:
    assert parse_arg("Anna's list=/music/a b.m3u", 0) == ("Anna's list", "/music/a b.m3u")
    assert parse_arg("demo", 1) == ("Blue", "demo")  # no name: the palette's
    assert parse_arg("=system", 2) == ("Green", "system")


def test_a_new_set_of_channels_continues_the_old_ones_it_can() -> None:
    red, blue, green = (default_channel(i, s) for i, s in enumerate((DEMO, SONG, SYSTEM)))
    assert plan([red, blue, green], [red, blue, green]) == [0, 1, 2]
    assert plan([red, blue, green], [red, green]) == [0, 2]  # Blue removed
    assert plan([red, blue], [blue, red]) == [1, 0]  # reordered
    assert plan([red], [red, blue]) == [0, None]  # Blue added
    renamed = Channel("Dance", "#ff00ff", DEMO)
    assert plan([red, blue], [renamed, blue]) == [0, 1]  # same source: Red renamed
    resourced = Channel("Blue", blue.colour, SYSTEM)
    assert plan([red, blue], [red, resourced]) == [0, 1]  # same name: a new source
    other = Channel("Other", "#000000", SourceSpec("url", "http://radio/"))
    assert plan([red, blue], [red, other]) == [0, 1]  # nothing alike: the same place
    assert plan([red, blue, green], [other]) == [0]
