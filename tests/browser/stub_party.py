"""A stand-in party for developing the web player: front door + N Sendspin workers, one process.

It follows the HTTP contract in docs/ARCHITECTURE.md closely enough for the page, and plays a
synthetic tune stamped on aiosendspin's clock. Run it by hand with
``python -m tests.browser.stub_party`` and open the printed URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import segno
from aiohttp import web
from aiosendspin.clock import RawMonotonicClock
from aiosendspin.noise import Identity, InMemoryServerPairingStore
from aiosendspin.server import ClientAddedEvent, SendspinServer
from aiosendspin.server.audio import AudioFormat
from aiosendspin.server.group import SendspinGroup
from aiosendspin.server.push_stream import PushStream, StreamStoppedError

WEB_DIR = Path(__file__).resolve().parents[2] / "resources" / "web"
RATE = 48_000
CHUNK_MS = 40
LEAD_US = 1_000_000
FORMAT = AudioFormat(sample_rate=RATE, bit_depth=16, channels=2)
_CLOCK = RawMonotonicClock()


def tune_chunk(start_sample: int, frames: int) -> bytes:
    """A gentle arpeggio (A minor), 8 notes per 2 s, as s16le stereo."""
    t = (np.arange(frames) + start_sample) / RATE
    notes = np.array([220.0, 261.6, 329.6, 440.0, 329.6, 261.6, 196.0, 246.9])
    idx = (t * 4).astype(int) % len(notes)
    phase_in_note = (t * 4) % 1.0
    env = np.exp(-3.0 * phase_in_note)
    wave = 0.25 * env * np.sin(2 * math.pi * notes[idx] * t)
    pcm = (wave * 32767).astype("<i2")
    return np.repeat(pcm[:, None], 2, axis=1).tobytes()


@dataclass
class StubWorker:
    index: int
    server: SendspinServer
    runner: web.AppRunner | None = None
    port: int = 0
    stream: PushStream | None = None
    group: SendspinGroup | None = None
    alive: bool = True

    @property
    def listeners(self) -> int:
        return len(self.server.connected_clients)

    async def on_added(self, client_id: str) -> None:
        client = self.server.get_client(client_id)
        if client is None:
            return
        if self.group is None or self.stream is None or self.stream.is_stopped:
            self.group = client.group
            self.stream = self.group.start_stream()
        else:
            await self.group.add_client(client)


@dataclass
class StubParty:
    name: str = "Stub party"
    workers_wanted: int = 2
    state: str = "live"
    workers: list[StubWorker] = field(default_factory=list)
    front: web.AppRunner | None = None
    port: int = 0
    _feeder: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.workers_wanted):
            server = SendspinServer(
                loop, Identity.generate(), self.name,
                pairing_store=InMemoryServerPairingStore(), allow_unencrypted=True,
            )
            worker = StubWorker(i, server)
            server.add_event_listener(self._listener_for(worker))
            app = web.Application()
            app.router.add_get("/sendspin", server.on_client_connect)
            worker.runner, worker.port = await _serve(app)
            self.workers.append(worker)
        self.front, self.port = await _serve(self._front_app())
        self._feeder = asyncio.create_task(self._feed(), name="stub-feeder")

    def _listener_for(self, worker: StubWorker):  # noqa: ANN202 - aiosendspin callback
        def on_event(_server: SendspinServer, event: object) -> None:
            if isinstance(event, ClientAddedEvent):
                asyncio.get_running_loop().create_task(worker.on_added(event.client_id))
        return on_event

    def _front_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", lambda _r: web.FileResponse(WEB_DIR / "index.html"))
        app.router.add_static("/static/", WEB_DIR / "static")
        app.router.add_get("/api/join", self._join)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/qr.svg", self._qr)
        return app

    async def _join(self, _request: web.Request) -> web.Response:
        live = [w for w in self.workers if w.alive]
        if self.state != "live" or not live:
            return web.json_response({"error": "no worker is running"}, status=503)
        best = min(live, key=lambda w: w.listeners)
        return web.json_response({"port": best.port, "path": "/sendspin", "worker": best.index})

    async def _status(self, _request: web.Request) -> web.Response:
        body = {
            "name": self.name,
            "state": self.state,
            "listeners": sum(w.listeners for w in self.workers if w.alive),
            "workers": [
                {"id": w.index, "port": w.port, "listeners": w.listeners, "alive": w.alive}
                for w in self.workers
            ],
            "source": {"kind": "demo", "label": "Stub tune"},
            "url": self.url,
            "message": None,
        }
        return web.json_response(body, headers={"Access-Control-Allow-Origin": "*"})

    async def _qr(self, _request: web.Request) -> web.Response:
        svg = segno.make(self.url, error="m").svg_inline(scale=8, border=2)
        return web.Response(text=svg, content_type="image/svg+xml")

    async def _feed(self) -> None:
        frames = RATE * CHUNK_MS // 1000
        sample = 0
        next_ts = _CLOCK.now_us() + 300_000
        while True:
            while next_ts - _CLOCK.now_us() < LEAD_US:
                pcm = tune_chunk(sample, frames)
                for worker in self.workers:
                    await _commit(worker, pcm, next_ts)
                sample += frames
                next_ts += CHUNK_MS * 1000
            await asyncio.sleep(CHUNK_MS / 2000)

    async def kill_worker(self, index: int) -> None:
        """Simulate a crashed worker: its port closes and every phone on it drops."""
        worker = self.workers[index]
        worker.alive = False
        await worker.server.close()
        if worker.runner is not None:
            await worker.runner.cleanup()

    async def end(self) -> None:
        """The host stops the party: status says so, then every worker goes away."""
        self.state = "stopping"
        for worker in self.workers:
            if worker.alive:
                await self.kill_worker(worker.index)

    async def close(self) -> None:
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        for worker in self.workers:
            if worker.alive:
                await self.kill_worker(worker.index)
        if self.front is not None:
            await self.front.cleanup()


async def _commit(worker: StubWorker, pcm: bytes, ts: int) -> None:
    if not worker.alive or worker.stream is None:
        return
    try:
        worker.stream.prepare_audio(pcm, FORMAT)
        await worker.stream.commit_audio(play_start_us=ts)
    except StreamStoppedError:
        # The library stops the stream when its last listener leaves: start over next time.
        worker.stream = None


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start an app on a free loopback port (port 0: the OS picks)."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def _main() -> None:
    logging.basicConfig(level=logging.INFO)
    party = StubParty()
    await party.start()
    print(f"party at {party.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await party.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
