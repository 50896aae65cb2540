"""The headless party end to end: real coordinator, real workers, real Sendspin clients."""

from __future__ import annotations

import asyncio
import contextlib
import json

import numpy as np
import psutil

from server import frames
from server.config import PartyConfig
from server.control import PartyController
from server.netinfo import port_free
from server.phase import Phase
from server.sources.base import SourceSpec
from tests.conftest import front_url, worker_url
from tests.helpers import descendants, eventually, free_base_port, get_json
from tests.listener import Listener


def _timeline(listener: Listener) -> tuple[int, np.ndarray]:
    """(first play time in us, contiguous stereo frames) from a listener's chunks."""
    start = listener.chunks[0][0]
    frames = np.concatenate(
        [np.frombuffer(pcm, "<i2").reshape(-1, 2) for _, pcm in listener.chunks]
    )
    return start, frames


def _overlap_frames(a: Listener, b: Listener) -> int:
    start_a, start_b = a.chunks[0][0], b.chunks[0][0]
    end_a = a.chunks[-1][0] + 25_000
    end_b = b.chunks[-1][0] + 25_000
    return max(0, (min(end_a, end_b) - max(start_a, start_b)) * 48 // 1000)


async def _connect(party: PartyController, worker: int, listeners: list[Listener]) -> Listener:
    listener = await Listener(worker_url(party, worker)).connect()
    listeners.append(listener)
    return listener


async def test_workers_send_identical_timestamped_audio(start_party, listeners) -> None:
    async with start_party(workers=2) as party:
        a0 = await _connect(party, 0, listeners)
        a1 = await _connect(party, 0, listeners)
        b0 = await _connect(party, 1, listeners)
        b1 = await _connect(party, 1, listeners)
        for listener in (a0, a1, b0, b1):
            await listener.wait_chunks(40)

        # The same play time carries the same samples on both workers: one timeline.
        await eventually(lambda: _overlap_frames(a0, b0) >= 48_000, what="1 s of overlap")
        start_a, pcm_a = _timeline(a0)
        start_b, pcm_b = _timeline(b0)
        offset = round((start_b - start_a) * 48 / 1000)  # frames of b's start within a
        n = min(len(pcm_a) - offset, len(pcm_b))
        assert n >= 48_000
        mismatch = np.count_nonzero(pcm_a[offset : offset + n] != pcm_b[:n])
        assert mismatch == 0, f"{mismatch} frames differ at the same play time"
        assert any(any(pcm) for _, pcm in a0.chunks), "demo audio is silent"
        # Timestamps are in the future when they arrive (bounded lead, not zero lead).
        pairs = zip(a0.chunks, a0.arrivals, strict=True)
        lead_ms = [(ts - arrival) / 1000 for (ts, _), arrival in pairs]
        assert max(lead_ms) < 6000


async def test_status_counts_listeners_up_and_back_to_zero(start_party, listeners) -> None:
    async with start_party(workers=2) as party:
        code, status = await get_json(front_url(party, "/api/status"))
        assert code == 200 and status["listeners"] == 0 and status["state"] == "live"
        for worker in (0, 1, 1):
            await _connect(party, worker, listeners)

        async def counts() -> tuple[int, list[int]] | None:
            _, st = await get_json(front_url(party, "/api/status"))
            per_worker = [w["listeners"] for w in st["workers"]]
            return (st["listeners"], per_worker) if st["listeners"] == 3 else None

        assert await eventually(counts, what="3 listeners") == (3, [1, 2])
        await eventually(lambda: party.status.listeners == 3, what="controller count 3")
        for listener in listeners:
            await listener.close()

        async def zero() -> bool:
            return (await get_json(front_url(party, "/api/status")))[1]["listeners"] == 0

        await eventually(zero, what="count back to 0")
        await eventually(lambda: party.status.listeners == 0, what="controller count 0")


async def test_status_has_cors_and_join_picks_least_loaded(start_party, listeners) -> None:
    import urllib.request

    async with start_party(workers=2) as party:
        await _connect(party, 0, listeners)
        await eventually(lambda: party.status.listeners == 1, what="1 listener")
        with urllib.request.urlopen(front_url(party, "/api/status"), timeout=5) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        with urllib.request.urlopen(front_url(party, "/api/join"), timeout=5) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
            target = json.loads(resp.read())
        assert target == {"port": party.status.workers[1]["port"], "path": "/sendspin", "worker": 1}
        # A phone sent to worker 1 but not yet connected counts: the next one goes to 0.
        assert (await get_json(front_url(party, "/api/join")))[1]["worker"] == 0


async def test_decoding_pauses_while_nobody_listens(start_party, listeners) -> None:
    async with start_party(workers=1) as party:
        await asyncio.sleep(1.0)
        assert party.status.stats["chunks"] == 0, "decoded audio for nobody"
        listener = await _connect(party, 0, listeners)
        await listener.wait_chunks(10)
        await eventually(lambda: party.status.stats["chunks"] > 0, what="chunks flowing")
        await listener.close()
        await eventually(lambda: party.status.listeners == 0, what="listener gone")
        await asyncio.sleep(0.5)
        paused_at = party.status.stats["chunks"]
        await asyncio.sleep(1.5)
        assert party.status.stats["chunks"] == paused_at


async def test_stop_leaves_no_process_behind(start_party) -> None:
    async with start_party(workers=3):
        assert len(descendants()) >= 4  # coordinator + 3 workers
        pids = [p.pid for p in descendants()]
    assert not descendants()
    assert pids


async def test_a_prepared_party_waits_warm_then_starts_and_leaves_nothing() -> None:
    cfg = PartyConfig(port=free_base_port(3), workers=2, public_host="127.0.0.1")
    party = PartyController(cfg)
    await party.prepare()
    coordinator = psutil.Process(party.pid)

    def warm_workers() -> list[int]:
        found = []
        for child in coordinator.children():
            with contextlib.suppress(psutil.Error, IndexError):
                if "resource_tracker" not in child.cmdline()[-1]:
                    found.append(child.pid)
        return found

    # Warm: coordinator and both workers exist and have linked up, but nothing listens yet.
    await eventually(lambda: len(warm_workers()) == 2, timeout=30, what="two warm workers")
    assert party.phase is Phase.IDLE and party.prepared and not party.running
    assert all(port_free("127.0.0.1", cfg.port + i) for i in range(3)), "no port open yet"
    status = await party.start(SourceSpec("demo"))
    try:
        assert status.state == Phase.LIVE and status.url == f"http://127.0.0.1:{cfg.port}/"
        assert party.pid == coordinator.pid, "the prepared coordinator was used"
        listener = await Listener(f"ws://127.0.0.1:{cfg.port + 1}/sendspin").connect()
        await listener.wait_chunks(5)
        await listener.close()
        # PCM comes in long frames (server/frames.py): a tenth of the messages per listener.
        assert {len(pcm) for _, pcm in listener.chunks[1:-1]} == {frames.FRAME_US * 192 // 1000}
    finally:
        await party.stop()
    await eventually(lambda: not descendants(), timeout=10, what="no child processes")
    # A prepared party that never starts (settings changed, app quit) goes quietly.
    events: list[str] = []
    party.add_event_listener(lambda level, msg: events.append(msg))
    await party.prepare()
    await eventually(lambda: party.prepared, timeout=10, what="prepared again")
    await party.stop()
    await eventually(lambda: not descendants(), timeout=10, what="no child processes")
    assert party.phase is Phase.IDLE and events == []
