"""Live capture as a Source: system audio ("what you hear") and microphones / line-in.

PortAudio (or, for Windows loopback, PyAudioWPatch) calls us on its own thread with small
blocks; each is converted to 48 kHz s16 stereo right there and handed to the event loop,
where a bounded queue keeps at most BACKLOG_S of audio (older blocks are dropped and
counted: stale audio is worse than a click for a live party).

`read()` never waits longer than STALL_S. A device that errors, vanishes or goes quiet is
reported and replaced: by the same kind of device if one is left (the new default output's
monitor, the default microphone — never the microphone for system audio), otherwise by
real-time silence while we retry every RETRY_S, so the party keeps its timeline.

Opening and closing streams runs in daemon threads with timeouts: a wedged sound server can
neither block the coordinator's loop nor hold up its exit (the default executor could).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np

from server import clock
from server.audio_format import CHUNK_BYTES, CHUNK_FRAMES, FRAME_BYTES, SAMPLE_RATE
from server.sources import devices
from server.sources.base import Report, Source, SourceError, SourceSpec
from server.sources.devices import CapturePlan
from server.tasks import in_daemon_thread

log = logging.getLogger(__name__)

BLOCK_FRAMES = CHUNK_FRAMES  # 20 ms per PortAudio callback: low latency, cheap fan-out
CHUNK_S = CHUNK_FRAMES / SAMPLE_RATE
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class BlockSink(Protocol):
    """Where a capture thread delivers audio; both methods are safe from any thread."""

    def block(self, pcm: bytes, overflow: bool, captured_us: int) -> None: ...

    def failed(self, reason: str) -> None: ...


class Capture(Protocol):
    """An open capture stream; `close()` may block (call it off the loop)."""

    latency: float

    def close(self) -> None: ...


class Converter:
    """Device blocks (any rate, any channel count) → 48 kHz s16 stereo bytes."""

    def __init__(self, rate: int, channels: int) -> None:
        self.channels = channels
        self._layout = _LAYOUTS.get(channels, "stereo")
        self._resampler = None
        if rate != SAMPLE_RATE or channels > 2:
            self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
        self._rate = rate

    def __call__(self, samples: np.ndarray) -> bytes:
        """`samples`: int16, shape (frames, channels)."""
        if self.channels not in _LAYOUTS:  # exotic interfaces: keep the first pair
            samples = samples[:, :2]
        if self._resampler is None:
            if samples.shape[1] == 1:
                samples = np.repeat(samples, 2, axis=1)
            return np.ascontiguousarray(samples, dtype="<i2").tobytes()
        packed = np.ascontiguousarray(samples, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=self._layout)
        frame.sample_rate = self._rate
        return b"".join(out.to_ndarray().tobytes() for out in self._resampler.resample(frame))


def _captured_us(adc_age_s: float) -> int:
    """When the block's first sample was recorded, on the protocol clock."""
    age = adc_age_s if 0.0 <= adc_age_s < 2.0 else 0.0  # some host APIs report nothing
    return clock.now_us() - int(age * 1_000_000)


class PortAudioCapture:
    """A sounddevice input stream (microphones everywhere, Linux monitors, macOS loopback).

    On PulseAudio the stream is tagged and watched: the server silently moves a stream whose
    device vanished to the default input, which the watchdog turns into a failure.
    """

    WATCH_S = 1.0

    def __init__(self, plan: CapturePlan, sink: BlockSink) -> None:
        import sounddevice as sd

        self._sink = sink
        self._plan = plan
        self._closing = threading.Event()
        self._convert = Converter(SAMPLE_RATE, plan.channels)
        env = plan.env
        self._token = uuid.uuid4().hex if plan.pulse_source is not None else None
        if self._token:
            tag = f"{devices.WATCH_PROPERTY}={self._token}"
            props = " ".join(filter(None, (os.environ.get("PULSE_PROP"), tag)))
            env = (*env, ("PULSE_PROP", props))
        with devices.opening_stream(env):
            # Raw: sounddevice's numpy wrapper sets .shape, deprecated since NumPy 2.5.
            stream = sd.RawInputStream(
                device=plan.device,
                samplerate=SAMPLE_RATE,
                channels=plan.channels,
                dtype="int16",
                blocksize=BLOCK_FRAMES,
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
            try:
                stream.start()
            except BaseException:
                stream.close(ignore_errors=True)
                raise
            devices.stream_count(+1)
        self._stream = stream
        self.latency = float(stream.latency)
        if self._token:
            threading.Thread(target=self._watch, name="capture-watch", daemon=True).start()

    def _watch(self) -> None:
        assert self._token is not None
        while not self._closing.wait(self.WATCH_S):
            reason = devices.pulse_drift_now(self._plan, self._token)
            if reason and not self._closing.is_set():
                self._sink.failed(reason)
                return

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        try:
            captured = _captured_us(time.currentTime - time.inputBufferAdcTime)
            samples = np.frombuffer(indata, dtype="<i2").reshape(frames, -1)
            self._sink.block(self._convert(samples), bool(status.input_overflow), captured)
        except Exception:  # the audio thread must survive anything; the stall check notices
            log.exception("capture callback failed")

    def _finished(self) -> None:
        if not self._closing.is_set():
            self._sink.failed("the device stopped")

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            with devices.opening_stream(()):
                self._stream.abort(ignore_errors=True)
                self._stream.close(ignore_errors=True)
        finally:
            devices.stream_count(-1)


class WasapiLoopbackCapture:
    """Windows "what you hear": PyAudioWPatch exposes each output's loopback as an input.

    WASAPI delivers nothing while nothing plays, so silence is not a failure here; a
    watchdog thread reports a stream that stopped (output device unplugged) instead.
    """

    WATCH_S = 1.0

    def __init__(self, plan: CapturePlan, sink: BlockSink, module: Any = None) -> None:
        pa_mod = module or importlib.import_module("pyaudiowpatch")
        self._sink = sink
        self._channels = plan.channels
        self._overflow_flag = int(pa_mod.paInputOverflow)
        self._continue = pa_mod.paContinue
        self._convert = Converter(plan.rate, plan.channels)
        self._closing = threading.Event()
        self._pa = pa_mod.PyAudio()
        try:
            self._stream = self._pa.open(
                format=pa_mod.paInt16,
                channels=plan.channels,
                rate=plan.rate,
                input=True,
                input_device_index=plan.device,
                frames_per_buffer=max(1, plan.rate // 50),
                stream_callback=self._callback,
            )
        except BaseException:
            self._pa.terminate()
            raise
        self.latency = float(self._stream.get_input_latency())
        threading.Thread(target=self._watch, name="wasapi-watch", daemon=True).start()

    def _callback(self, in_data: bytes, frames: int, time_info: dict, status: int) -> tuple:
        try:
            samples = np.frombuffer(in_data, dtype="<i2").reshape(-1, self._channels)
            age = time_info.get("current_time", 0.0) - time_info.get("input_buffer_adc_time", 0.0)
            pcm = self._convert(samples)
            if pcm:
                self._sink.block(pcm, bool(status & self._overflow_flag), _captured_us(age))
        except Exception:
            log.exception("loopback callback failed")
        return None, self._continue

    def _watch(self) -> None:
        while not self._closing.wait(self.WATCH_S):
            try:
                active = self._stream.is_active()
            except Exception:
                active = False
            if not active and not self._closing.is_set():
                self._sink.failed("the output device stopped")
                return

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        try:
            with contextlib.suppress(Exception):
                self._stream.stop_stream()
            with contextlib.suppress(Exception):
                self._stream.close()
        finally:
            self._pa.terminate()


def open_capture(plan: CapturePlan, sink: BlockSink) -> Capture:
    """Open the stream `plan` describes (blocking); raises on any driver error."""
    if plan.backend == "wasapi":
        return WasapiLoopbackCapture(plan, sink)
    return PortAudioCapture(plan, sink)


def _close_quietly(capture: Capture) -> None:
    with contextlib.suppress(Exception):
        capture.close()


def _release(session: _Session) -> None:
    """Close a session without waiting (from code that cannot await)."""
    session.closed = True
    if session.capture is not None:
        threading.Thread(target=_close_quietly, args=(session.capture,), daemon=True).start()


@dataclass
class _Counts:
    overflows: int = 0  # the driver lost input (PortAudio/WASAPI overflow flag)
    dropped: int = 0  # blocks we threw away because the coordinator fell behind


class _Session:
    """One open device: the thread-safe sink its capture feeds, and its loop-side queue."""

    def __init__(self, plan: CapturePlan, counts: _Counts, max_blocks: int) -> None:
        self.plan = plan
        self.capture: Capture | None = None
        self.queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self.first = asyncio.Event()  # first audio, or a failure
        self.failure: str | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._counts = counts
        self._max = max_blocks
        self.reading = False  # the coordinator reads: from now on a drop is an overrun

    def block(self, pcm: bytes, overflow: bool, captured_us: int) -> None:
        self._call(self._on_block, pcm, overflow, captured_us)

    def failed(self, reason: str) -> None:
        self._call(self._on_failed, reason)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed: the party is over
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_block(self, pcm: bytes, overflow: bool, captured_us: int) -> None:
        if self.closed or not pcm:
            return
        self._counts.overflows += overflow
        while self.queue.qsize() >= self._max:
            self.queue.get_nowait()
            self._counts.dropped += self.reading
        self.queue.put_nowait((pcm, captured_us))
        self.first.set()

    def _on_failed(self, reason: str) -> None:
        if not self.closed and self.failure is None:
            self.failure = reason
            self.first.set()
            self.queue.put_nowait(None)  # wake a waiting read()


class CaptureSource(Source):
    """System audio or a microphone, live (see the module docstring for the fallbacks)."""

    live = True
    close_when_idle = True

    STARTUP_S = 3.0  # first audio after opening (a PulseAudio null sink can take 2 s)
    STALL_S = 1.0  # no audio for this long while capturing: the device is gone
    GAP_S = 0.1  # loopbacks that fall silent: fill in silence after this
    RETRY_S = 5.0  # while on silence, look for the device again this often
    IO_TIMEOUT_S = 5.0  # opening/closing a stream, asking the sound server
    BACKLOG_S = 0.3  # the most audio we hold for a coordinator that fell behind

    def __init__(
        self,
        spec: SourceSpec,
        report: Report,
        *,
        resolve: Callable[[SourceSpec], tuple[CapturePlan, str | None]] = devices.resolve,
        opener: Callable[[CapturePlan, BlockSink], Capture] = open_capture,
    ) -> None:
        super().__init__(spec, report)
        self._resolve = resolve
        self._opener = opener
        self._session: _Session | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._counts = _Counts()
        self._silence_due: float | None = None
        self._closed = True
        self.last_capture_us: int | None = None
        """Capture time (protocol clock) of the chunk read() returned last; None for silence."""

    # -- Source API ----------------------------------------------------------------------
    async def open(self) -> None:
        await self.close()
        self._closed = False
        self._silence_due = None
        plan, note = await self._plan(self.spec)
        if note:
            self.report("warning", note)
        self._session, why = await self._start(plan)
        if self._session is not None:
            return
        failures = [f"Cannot capture from {plan.label}: {why}."]
        for candidate in await self._alternatives(plan):
            self._session, why = await self._start(candidate)
            if self._session is not None:
                self.report("warning", f"{failures[0]} Using {candidate.label} instead.")
                return
            failures.append(f"Cannot capture from {candidate.label}: {why}.")
        self._closed = True
        raise SourceError(" ".join(failures))

    async def read(self) -> bytes:
        """The next chunk, within STALL_S whatever happens.

        After close() it is paced silence, not an error: the coordinator may still be
        awaiting this source while it switches to another one.
        """
        while True:
            session = self._session
            if session is None or self._closed:
                return await self._silence()
            if session.failure:
                self._fail(session, session.failure)
                continue
            gaps = session.plan.gaps_are_silence
            timeout = self.GAP_S if gaps else self.STALL_S
            try:
                item = await asyncio.wait_for(session.queue.get(), timeout)
            except TimeoutError:
                if session is not self._session:
                    continue
                if gaps:
                    session.reading = True
                    self.last_capture_us = None
                    return bytes(round(timeout * SAMPLE_RATE) * FRAME_BYTES)
                self._fail(session, f"no sound arrived for {self.STALL_S:g} s")
                continue
            if item is None or session is not self._session:
                continue
            if not session.reading:  # a fresh timeline starts now: skip what queued up
                session.reading = True
                while not session.queue.empty():
                    item = session.queue.get_nowait() or item
            pcm, self.last_capture_us = item
            self._silence_due = None
            return pcm

    async def close(self) -> None:
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._recovery, self.IO_TIMEOUT_S)
            self._recovery = None
        if self._session is not None:
            session, self._session = self._session, None
            await self._stop(session)

    def stats(self) -> dict[str, Any]:
        session = self._session
        return {
            "device": session.plan.label if session else "silence",
            "overruns": self._counts.overflows + self._counts.dropped,
            "input_overflows": self._counts.overflows,
            "dropped_blocks": self._counts.dropped,
            "capture_latency_ms": round(session.capture.latency * 1000)
            if session and session.capture
            else None,
        }

    # -- devices ---------------------------------------------------------------------------
    async def _plan(self, spec: SourceSpec) -> tuple[CapturePlan, str | None]:
        try:
            return await in_daemon_thread(
                lambda: self._resolve(spec), timeout=self.IO_TIMEOUT_S, name="capture-io"
            )
        except TimeoutError as exc:
            raise SourceError("The sound system did not answer in time.") from exc

    async def _alternatives(self, failed: CapturePlan) -> list[CapturePlan]:
        """Other devices of the same kind: system audio never falls back to a microphone."""
        specs = [self.spec]
        if self.spec.kind == "mic" and self.spec.device:
            specs.append(SourceSpec("mic"))
        plans: list[CapturePlan] = []
        for spec in specs:
            try:
                plan, _ = await self._plan(spec)
            except SourceError:
                continue
            if plan != failed and plan not in plans:
                plans.append(plan)
        return plans

    async def _start(self, plan: CapturePlan) -> tuple[_Session | None, str]:
        """Open `plan` and wait for its first audio; (None, why) when it fails."""
        max_blocks = max(2, round(self.BACKLOG_S / CHUNK_S))
        session = _Session(plan, self._counts, max_blocks)
        try:
            session.capture = await in_daemon_thread(
                lambda: self._opener(plan, session),
                timeout=self.IO_TIMEOUT_S,
                discard=_close_quietly,
                name="capture-io",
            )
        except TimeoutError:
            return None, "the sound system did not answer"
        except Exception as exc:
            return None, str(exc).strip() or type(exc).__name__
        if plan.gaps_are_silence:  # a loopback is quiet until something plays
            return session, ""
        try:
            await asyncio.wait_for(session.first.wait(), self.STARTUP_S)
        except TimeoutError:
            pass
        except BaseException:  # cancelled (the source is closing): don't leak the stream
            _release(session)
            raise
        if session.failure or not session.first.is_set():
            await self._stop(session)
            return None, session.failure or "no sound arrived"
        return session, ""

    async def _stop(self, session: _Session) -> None:
        session.closed = True
        session.queue.put_nowait(None)  # wake a read() waiting on it
        if session.capture is not None:
            with contextlib.suppress(Exception):
                await in_daemon_thread(
                    session.capture.close, timeout=self.IO_TIMEOUT_S, name="capture-io"
                )

    # -- failures ----------------------------------------------------------------------------
    def _fail(self, session: _Session, reason: str) -> None:
        """Drop a broken device and look for a replacement while read() plays silence."""
        if session is not self._session or self._closed:
            return
        self._session = None
        log.warning("capture from %s failed: %s", session.plan.label, reason)
        self._recovery = asyncio.create_task(
            self._recover(session, reason), name="capture-recovery"
        )

    async def _recover(self, failed: _Session, reason: str) -> None:
        await self._stop(failed)
        lost = f"Stopped capturing {failed.plan.label} ({reason})."
        for plan in await self._alternatives(failed.plan):
            session, _ = await self._start(plan)
            if session is not None:
                self._install(session)
                self.report("warning", f"{lost} Now capturing {plan.label}.")
                return
        self.report("warning", f"{lost} Playing silence until it is back.")
        while not self._closed:
            await asyncio.sleep(self.RETRY_S)
            try:
                plan, _ = await self._plan(self.spec)
            except SourceError:
                continue
            session, _ = await self._start(plan)
            if session is not None:
                self._install(session)
                self.report("info", f"Capturing {plan.label} again.")
                return

    def _install(self, session: _Session) -> None:
        if self._closed:
            _release(session)
        else:
            self._session = session

    async def _silence(self) -> bytes:
        """One chunk of silence, paced in real time (the coordinator doesn't pace live)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._silence_due
        if due is None or due < now - 0.2:
            due = now
        elif due > now:
            await asyncio.sleep(due - now)
        self._silence_due = due + CHUNK_S
        self.last_capture_us = None
        return bytes(CHUNK_BYTES)
