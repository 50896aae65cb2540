"""The coordinator process: one source, many workers, one timeline.

It opens the source once, stamps every chunk with play_start_us on the protocol clock and
sends the same chunk and timestamp to every worker. It keeps a bounded lead (seconds for
files/URLs, well under a second for live capture), pauses the source while nobody listens,
runs the front door, and reports status to its controller over the control link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from server import clock, ipc, logs, netinfo, sources, web, winloop
from server.audio_format import CHUNK_BYTES, duration_us
from server.config import PartyConfig
from server.sources.base import Source, SourceError, SourceSpec
from server.supervisor import Supervisor
from server.tasks import TaskGroup, first_completed, sleep_or_stop

log = logging.getLogger(__name__)
START_LEAD_US = 800_000  # first chunk after a (re)start: time for a burst of phones to join
LIVE_DRIFT_US = 150_000  # re-anchor a live timeline that drifted this far from its target
STATUS_INTERVAL_S = 0.2
STALL_CHECK_S = 1.0  # a stalled read is retried so stop/idle/source changes stay responsive
SILENCE = bytes(CHUNK_BYTES)


def public_source_label(spec: SourceSpec) -> str:
    """What phones may see: never a local path or a URL's credentials."""
    if spec.kind == "file":
        return os.path.basename(spec.location) or "Music file"
    if spec.kind == "url":
        return urlsplit(spec.location).hostname or "Internet stream"
    return spec.label


class LevelMeter:
    """Peak and RMS (dBFS) over the chunks since the last read; for the tray's meter."""

    def __init__(self) -> None:
        self._peak = 0.0
        self._sumsq = 0.0
        self._n = 0

    def add(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if samples.size:
            self._peak = max(self._peak, float(np.max(np.abs(samples))))
            self._sumsq += float(np.dot(samples, samples))
            self._n += samples.size

    def take(self) -> dict[str, float] | None:
        if not self._n:
            return None
        rms = math.sqrt(self._sumsq / self._n)
        result = {
            "peak_db": round(20 * math.log10(max(self._peak, 1e-5)), 1),
            "rms_db": round(20 * math.log10(max(rms, 1e-5)), 1),
        }
        self.__init__()
        return result


class Coordinator:
    def __init__(self, config: PartyConfig, spec: SourceSpec) -> None:
        self.config = config
        self.spec = spec
        self.state = "starting"
        self.message: str | None = None
        self.url = ""
        self.port = config.port
        self.source: Source | None = None
        self.source_failed = False
        self.chunks_sent = 0
        self.level = LevelMeter()
        self._last_level: dict[str, float] | None = None
        self._link: ipc.Link | None = None
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._listeners_changed = asyncio.Event()
        self._tasks = TaskGroup("coordinator")
        self._supervisor: Supervisor | None = None
        self._lead_us = 0
        self._restart_timeline = True

    # -- status ----------------------------------------------------------------------------
    def report(self, level: str, message: str) -> None:
        """An event for the host (tray notification / console line, shown by the controller)."""
        log.info("%s: %s", level, message)
        if level != "info":
            self.message = message
        if self._link is not None:
            self._link.send({"t": "event", "level": level, "msg": message})
        self._changed.set()

    def _on_workers_changed(self) -> None:
        self._listeners_changed.set()
        self._changed.set()

    def status(self) -> dict[str, Any]:
        """Full status for the controller (the host's own machine)."""
        sup = self._supervisor
        return {
            "name": self.config.name,
            "state": self.state,
            "listeners": sup.total_listeners() if sup else None,
            "workers": [h.public() for h in sup.workers] if sup else [],
            "source": {
                "kind": self.spec.kind,
                "label": self.spec.label,
                "failed": self.source_failed,
            },
            "url": self.url,
            "port": self.port,
            "message": self.message,
            "level": self._last_level,
            "lead_ms": round(self._lead_us / 1000),
            "stats": {
                "chunks": self.chunks_sent,
                "dropped": sum(h.link.dropped for h in sup.workers if h.link) if sup else 0,
                **(self.source.stats() if self.source else {}),
            },
        }

    def public_status(self) -> dict[str, Any]:
        """What any phone on the LAN may read from /api/status."""
        full = self.status()
        return {
            "name": full["name"],
            "state": full["state"],
            "listeners": full["listeners"],
            "workers": full["workers"],
            "source": {"kind": self.spec.kind, "label": public_source_label(self.spec)},
            "url": full["url"],
            "message": None,
        }

    def join(self) -> dict[str, Any] | None:
        if self._supervisor is None or self.state != "live":
            return None
        handle = self._supervisor.pick()
        if handle is None:
            return None
        return {"port": handle.port, "path": "/sendspin", "worker": handle.id}

    async def _publish(self) -> None:
        """Send status to the controller (throttled) and the public view to workers."""
        last_public: dict[str, Any] | None = None
        while not self._stop.is_set():
            level = self.level.take()
            if level != self._last_level:
                self._last_level = level
                self._changed.set()
            if self._changed.is_set():
                self._changed.clear()
                if self._link is not None:
                    self._link.send({"t": "status", "status": self.status()})
                public = self.public_status()
                if public != last_public and self._supervisor is not None:
                    self._supervisor.send_all({"t": "status", "status": public})
                    last_public = public
            await sleep_or_stop(self._stop, STATUS_INTERVAL_S)

    # -- source ----------------------------------------------------------------------------
    async def _open(self, spec: SourceSpec) -> Source:
        source = sources.create(spec, self.report)
        await source.open()
        return source

    async def set_source(self, spec: SourceSpec) -> str | None:
        """Switch sources without dropping phones; on failure keep the current one."""
        try:
            new = await self._open(spec)
        except SourceError as exc:
            self.report("error", str(exc))
            return str(exc)
        old, self.source, self.spec = self.source, new, spec
        self.source_failed = False
        self.message = None
        self._lead_us = 0
        self._restart_timeline = True
        if old is not None:
            await old.close()
        self.report("info", f"Now playing: {spec.label}")
        return None

    def _listeners(self) -> int:
        return self._supervisor.total_listeners() or 0 if self._supervisor else 0

    async def _pump(self) -> None:
        """Read the source and fan chunks out with timestamps, keeping the lead bounded."""
        assert self._supervisor is not None
        next_ts: int | None = None
        while not self._stop.is_set():
            if self._listeners() == 0:
                await self._idle()
                next_ts = None
                continue
            if self._restart_timeline:
                self._restart_timeline = False
                next_ts = None
            source = self.source
            try:
                assert source is not None
                chunk = await asyncio.wait_for(source.read(), STALL_CHECK_S)
            except TimeoutError:
                continue  # e.g. a stream reconnecting (it reports that itself)
            except SourceError as exc:
                if source is not self.source:
                    continue  # the old source, closed by a switch: not a failure
                self.source_failed = True
                self.report("error", f"{exc} Playing silence until you pick another source.")
                await self._swap_to_silence()
                continue
            if source is not self.source:
                continue  # switched while this read was in flight: drop the old audio
            now = clock.now_us()
            live = bool(source and source.live)
            target = self.config.live_lead_ms * 1000 if live else START_LEAD_US
            if (
                next_ts is None  # (re)start or a new source
                or next_ts < now + target // 2  # the source stalled
                or (live and abs(next_ts - now - target) > LIVE_DRIFT_US)  # capture clock drift
            ):
                # A new timeline: workers drop audio already queued on the old one, so
                # phones never get two overlapping timelines (a switch is heard at once).
                self._supervisor.send_all({"t": "reset"})
                next_ts = now + target
            self._supervisor.send_all({"t": "pcm", "ts": next_ts}, chunk, droppable=True)
            self.chunks_sent += 1
            self.level.add(chunk)
            next_ts += duration_us(chunk)
            self._lead_us = next_ts - now
            if not live:
                ahead = next_ts - clock.now_us() - int(self.config.buffer_s * 1_000_000)
                if ahead > 0:
                    await sleep_or_stop(self._stop, ahead / 1_000_000)

    async def _idle(self) -> None:
        """Nobody listens: stop decoding (and release live devices) until someone does."""
        self._lead_us = 0
        self._changed.set()
        if self.source is not None and self.source.close_when_idle:
            await self.source.close()
            closed = True
        else:
            closed = False
        while not self._stop.is_set() and self._listeners() == 0:
            self._listeners_changed.clear()
            await sleep_or_stop(self._listeners_changed, 1.0)
        if closed and self.source is not None and not self._stop.is_set():
            try:
                await self.source.open()
            except SourceError as exc:
                self.source_failed = True
                self.report("error", f"{exc} Playing silence until you pick another source.")
                await self._swap_to_silence()

    async def _swap_to_silence(self) -> None:
        if self.source is not None:
            await self.source.close()
        self.source = SilenceSource(self.spec, self.report)
        await self.source.open()

    # -- control link ----------------------------------------------------------------------
    async def _control(self) -> None:
        assert self._link is not None
        while True:
            try:
                msg, _ = await self._link.recv()
            except ipc.LinkClosed:
                log.info("controller link closed: shutting down")
                return
            match msg["t"]:
                case "set_source":
                    spec = SourceSpec.from_dict(msg["source"])
                    error = await self.set_source(spec)
                    self._link.send({"t": "source_result", "id": msg.get("id"), "error": error})
                case "stop":
                    return

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, link_port: int, token: str) -> int:
        loop = asyncio.get_running_loop()
        winloop.install(loop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._link = await ipc.connect(link_port, token, role="coordinator")
        runner = None
        try:
            runner = await self._start()
            if runner is None:
                return 2
            self.state = "live"
            self._changed.set()
            self._link.send({"t": "ready", "status": self.status()})
            pump = self._tasks.spawn("pump", self._pump())
            control = self._tasks.spawn("control", self._control())
            stopped = self._tasks.spawn("stop", self._stop.wait())
            assert self._supervisor is not None
            health = self._tasks.spawn("health", self._supervisor.watch(self._stop))
            gone = self._tasks.spawn("all-workers-gone", self._watch_workers())
            await first_completed(control, stopped, pump, health, gone, drain_timeout=0.5)
            return 0
        finally:
            await self._shutdown(runner)

    async def _watch_workers(self) -> None:
        """The party ends only when no worker can run any more."""
        assert self._supervisor is not None
        while not await sleep_or_stop(self._stop, 0.5):
            if all(h.given_up for h in self._supervisor.workers):
                self._fatal("No listener server could keep running; the party stopped.")
                return

    def _fatal(self, message: str) -> None:
        log.error(message)
        if self._link is not None:
            self._link.send({"t": "fatal", "msg": message})

    async def _start(self) -> Any:
        cfg = self.config
        base = netinfo.free_port_block(cfg.host, cfg.port, cfg.workers + 1)
        if base is None:
            self._fatal(f"Port {cfg.port} and the next ones are in use; choose another port.")
            return None
        if base != cfg.port:
            self.report(
                "warning",
                f"Port {cfg.port} is in use by another program; using port {base} instead.",
            )
        self.port = base
        host, lan_warning = (cfg.public_host, None) if cfg.public_host else netinfo.lan_address()
        if lan_warning:
            self.report("warning", lan_warning)
        self.url = f"http://{host}:{base}/"
        try:
            self.source = await self._open(self.spec)
        except SourceError as exc:
            self._fatal(str(exc))
            return None
        self._supervisor = Supervisor(
            count=cfg.workers,
            host=cfg.host,
            first_port=base + 1,
            name=cfg.name,
            log_dir=cfg.log_dir,
            report=self.report,
            on_change=self._on_workers_changed,
        )
        self._tasks.spawn("publish", self._publish())
        ready = await self._supervisor.start()
        if ready == 0:
            self._fatal("No listener server could start; see the log for details.")
            return None
        try:
            return await web.serve(web.make_app(self.public_status, self.join), cfg.host, base)
        except OSError as exc:
            self._fatal(f"Cannot open port {base}: {exc.strerror or exc}")
            return None

    async def _shutdown(self, runner: Any) -> None:
        self.state = "stopping"
        self._stop.set()
        t0 = time.monotonic()
        if self._supervisor is not None:
            self._supervisor.send_all({"t": "status", "status": self.public_status()})
        await self._tasks.close(1.0)
        if self.source is not None:
            await self.source.close()
        if self._supervisor is not None:
            await self._supervisor.stop()
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), 2.0)
        log.info("coordinator stopped in %.2fs", time.monotonic() - t0)
        if self._link is not None:
            self._link.send({"t": "stopped"})
            await self._link.close()


class SilenceSource(Source):
    """Keeps the timeline (and every phone) alive after a source failed."""

    async def open(self) -> None:
        """Nothing to open: the pump paces silence like any buffered source."""

    async def read(self) -> bytes:
        return SILENCE


def main(config: dict[str, Any], spec: dict[str, Any], link_port: int, token: str) -> None:
    """Process entry point (spawned by PartyController)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C belongs to the controller
    cfg = PartyConfig.from_dict(config)
    logs.setup("coordinator", cfg.log_dir)
    sys.exit(asyncio.run(Coordinator(cfg, SourceSpec.from_dict(spec)).run(link_port, token)))
