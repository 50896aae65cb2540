"""Live capture: real audio through a private PulseAudio, failures, and device selection.

The `audio` tests play known tones into a null sink and check what CaptureSource (and, end
to end, a real Sendspin listener) gets. Device choice for Windows and macOS is tested with
fake device lists at the OS boundary (PortAudio's list, pactl's output, PyAudioWPatch).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest

from server import clock
from server.audio_format import CHUNK_BYTES, SAMPLE_RATE
from server.sources import devices
from server.sources.base import SourceError, SourceSpec
from server.sources.capture import CaptureSource, Converter, WasapiLoopbackCapture
from server.sources.devices import CapturePlan, PortAudioView, PulseSource, PulseView
from server.tasks import in_daemon_thread
from tests.media import correlation, dominant_hz, mono
from tests.pulse import PulseServer, pulse_fixture, pulse_server_fixture, tone_sequence, write_wav  # noqa: F401 (fixtures)

TONES = (440.0, 880.0, 1320.0)
TONE_S = 0.3
READ_BOUND_S = 2.0  # no read() may take longer than this, whatever breaks


# -- analysis helpers ------------------------------------------------------------------------
def assert_tones(captured: np.ndarray, what: str) -> None:
    """`captured` contains the played tone sequence, in order, recognisably."""
    reference = tone_sequence(TONES, TONE_S)
    assert len(captured) > len(reference), f"{what}: only {len(captured)} frames captured"
    rms = float(np.sqrt(np.mean(captured**2)))
    assert rms > 0.01, f"{what}: silent (rms {rms:.5f})"
    score, lag = correlation(captured, reference)
    assert score > 0.9, f"{what}: does not match what was played (correlation {score:.2f})"
    n, margin = int(TONE_S * SAMPLE_RATE), 2400
    for i, freq in enumerate(TONES):
        segment = captured[lag + i * n + margin : lag + (i + 1) * n - margin]
        assert abs(dominant_hz(segment) - freq) < 15, f"{what}: tone {i} is not {freq} Hz"


@pytest.fixture
def tones_wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "tones.wav", tone_sequence(TONES, TONE_S))


class Events(list[tuple[str, str]]):
    """Collects report(level, message) calls."""

    def __call__(self, level: str, message: str) -> None:
        self.append((level, message))

    def text(self) -> str:
        return " | ".join(f"{level}: {msg}" for level, msg in self)


async def timed_read(source: CaptureSource) -> tuple[bytes, float]:
    t0 = time.monotonic()
    pcm = await asyncio.wait_for(source.read(), READ_BOUND_S + 1)
    took = time.monotonic() - t0
    assert took < READ_BOUND_S, f"read() took {took:.2f} s"
    return pcm, took


async def capture_while_playing(source: CaptureSource, player: Any, tail_s: float = 0.4) -> bytes:
    """Everything `source` yields until `player` (a paplay process) ends, plus a tail."""
    chunks = []
    deadline = time.monotonic() + 10
    while player.poll() is None:
        assert time.monotonic() < deadline, "paplay did not finish"
        chunks.append((await timed_read(source))[0])
    assert player.returncode == 0, player.stderr.read()
    end = time.monotonic() + tail_s
    while time.monotonic() < end:
        chunks.append((await timed_read(source))[0])
    return b"".join(chunks)


# -- 1. real capture -------------------------------------------------------------------------
@pytest.mark.audio
@pytest.mark.parametrize("kind", ["system", "mic"])
async def test_captures_what_the_computer_plays(pulse: PulseServer, tones_wav: Path, kind) -> None:
    # The private server's default output is the null sink and its default input the sink's
    # monitor, so "system" and the default "mic" both hear what paplay plays.
    events = Events()
    source = CaptureSource(SourceSpec(kind), events)
    await asyncio.wait_for(source.open(), 15)
    try:
        assert source.stats()["device"] == "Monitor of VirtualSink"
        pcm = await capture_while_playing(source, pulse.play(tones_wav))
        stats = source.stats()
    finally:
        await source.close()
    assert_tones(mono(pcm), kind)
    assert stats["overruns"] == 0, stats
    assert not [e for e in events if e[0] != "info"], events.text()


@pytest.mark.audio
async def test_picks_the_named_microphone_and_the_default_output(
    pulse: PulseServer, tones_wav: Path
) -> None:
    other = pulse.add_sink("othersink", "Other")
    mic = pulse.add_mic("testmic", "Test Microphone", master="othersink.monitor")
    try:
        mics = devices.list_microphones()
        assert devices.Device("Test Microphone", is_default=False) in mics, mics
        assert not any(d.name.startswith("Monitor of") for d in mics), mics
        # Only "othersink" gets sound: hearing it proves the named source was recorded,
        # not the default one (the VirtualSink monitor).
        source = CaptureSource(SourceSpec("mic", device="Test Microphone"), Events())
        await asyncio.wait_for(source.open(), 15)
        try:
            pcm = await capture_while_playing(source, pulse.play(tones_wav, "othersink"))
        finally:
            await source.close()
        assert_tones(mono(pcm), "named microphone")

        pulse.pactl("set-default-sink", "othersink")
        assert devices.system_audio_available() == (
            True,
            "Records what this computer plays (Monitor of Other).",
        )
        source = CaptureSource(SourceSpec("system"), Events())
        await asyncio.wait_for(source.open(), 15)
        try:
            assert source.stats()["device"] == "Monitor of Other"
            pcm = await capture_while_playing(source, pulse.play(tones_wav, "othersink"))
        finally:
            await source.close()
        assert_tones(mono(pcm), "system audio on the new default output")
    finally:
        pulse.unload(mic)
        pulse.unload(other)


@pytest.mark.audio
async def test_reopening_restarts_the_timeline(pulse: PulseServer) -> None:
    """close_when_idle: the coordinator closes and re-opens; nothing stale comes back."""
    source = CaptureSource(SourceSpec("system"), Events())
    for _ in range(2):
        await asyncio.wait_for(source.open(), 15)
        await timed_read(source)
        assert source.last_capture_us is not None
        assert clock.now_us() - source.last_capture_us < 1_000_000  # fresh, not a backlog
        await source.close()
        await source.close()  # idempotent
        await asyncio.sleep(1.5)  # a stale backlog would now be older than 1.5 s
    # A coordinator switching sources may still be awaiting read(): it gets silence at once.
    pcm, took = await timed_read(source)
    assert level(pcm) == 0 and took < 0.1


# -- 2. the device goes away -----------------------------------------------------------------
@pytest.mark.audio
async def test_unplugged_output_falls_back_to_the_new_default(
    pulse: PulseServer, tones_wav: Path
) -> None:
    module: int | None = pulse.add_sink("headset", "USB Headset")
    pulse.pactl("set-default-sink", "headset")
    events = Events()
    source = CaptureSource(SourceSpec("system"), events)
    try:
        await asyncio.wait_for(source.open(), 15)
        assert source.stats()["device"] == "Monitor of USB Headset"
        for _ in range(5):
            await timed_read(source)
        pulse.unload(module)  # the headset is unplugged: PulseAudio drops its monitor
        module = None
        deadline = time.monotonic() + 15
        while "Now capturing" not in events.text():
            assert time.monotonic() < deadline, f"no fallback: {events.text()}"
            await timed_read(source)  # keeps returning (silence) while it recovers
        level, message = events[-1]
        assert level == "warning"
        assert message.startswith("Stopped capturing Monitor of USB Headset (")
        assert message.endswith("Now capturing Monitor of VirtualSink.")
        assert source.stats()["device"] == "Monitor of VirtualSink"
        pcm = await capture_while_playing(source, pulse.play(tones_wav))
        assert_tones(mono(pcm), "after the fallback")
    finally:
        await source.close()
        if module is not None:
            pulse.unload(module)


@pytest.mark.audio
async def test_system_audio_follows_a_new_default_output(
    pulse: PulseServer, tones_wav: Path
) -> None:
    other = pulse.add_sink("othersink", "Other")
    events = Events()
    source = CaptureSource(SourceSpec("system"), events)
    try:
        await asyncio.wait_for(source.open(), 15)
        assert source.stats()["device"] == "Monitor of VirtualSink"
        pulse.pactl("set-default-sink", "othersink")  # the host picked other speakers
        deadline = time.monotonic() + 15
        while "Now capturing" not in events.text():
            assert time.monotonic() < deadline, f"did not follow: {events.text()}"
            await timed_read(source)
        assert events[-1] == (
            "warning",
            "Stopped capturing Monitor of VirtualSink (the sound output changed). "
            "Now capturing Monitor of Other.",
        )
        pcm = await capture_while_playing(source, pulse.play(tones_wav, "othersink"))
        assert_tones(mono(pcm), "the new output")
    finally:
        await source.close()
        pulse.unload(other)


class FakeDevice:
    """A capture device the test drives: 20 ms blocks of a constant from its own thread."""

    opened: ClassVar[list[FakeDevice]] = []

    def __init__(self, plan: CapturePlan, sink: Any, value: int) -> None:
        self.plan, self.sink, self.value = plan, sink, value
        self.latency = 0.02
        self.feeding = threading.Event()
        self.feeding.set()
        self.closed = threading.Event()
        self.overflow = False
        FakeDevice.opened.append(self)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        block = np.full(CHUNK_BYTES // 2, self.value, dtype="<i2").tobytes()
        while not self.closed.wait(0.02):
            if self.feeding.is_set():
                self.sink.block(block, self.overflow, clock.now_us())

    def close(self) -> None:
        self.closed.set()


class FakeSystem:
    """Which fake devices are plugged in; `resolve` and `open` as CaptureSource uses them."""

    def __init__(self, **plugged: int) -> None:
        self.plugged = dict(plugged)  # label -> sample value the device "records"
        self.default_mic = "Built-in Mic"
        self.broken: set[str] = set()  # listed, but opening fails

    def resolve(self, spec: SourceSpec) -> tuple[CapturePlan, str | None]:
        wanted = spec.device or (self.default_mic if spec.kind == "mic" else "Loopback")
        if wanted in self.plugged:
            return CapturePlan(label=wanted), None
        if spec.kind == "mic" and self.default_mic in self.plugged:
            return CapturePlan(label=self.default_mic), f"{wanted} is not connected"
        raise SourceError(f"{wanted} is not connected.")

    def open(self, plan: CapturePlan, sink: Any) -> FakeDevice:
        if plan.label not in self.plugged or plan.label in self.broken:
            raise OSError("Error opening InputStream: Device unavailable")
        return FakeDevice(plan, sink, self.plugged[plan.label])


def fast(source: CaptureSource) -> CaptureSource:
    source.STARTUP_S, source.STALL_S, source.RETRY_S, source.IO_TIMEOUT_S = 1.0, 0.3, 0.3, 1.0
    return source


def usb_mic(system: FakeSystem, events: Events) -> CaptureSource:
    """A fast-timing capture of "USB Mic" on the fake sound system."""
    spec = SourceSpec("mic", device="USB Mic")
    return fast(CaptureSource(spec, events, resolve=system.resolve, opener=system.open))


def level(pcm: bytes) -> int:
    return int(np.abs(np.frombuffer(pcm, dtype="<i2")).max())


async def test_stream_error_falls_back_to_the_default_microphone() -> None:
    system = FakeSystem(**{"USB Mic": 1000, "Built-in Mic": 2000})
    events = Events()
    source = usb_mic(system, events)
    await source.open()
    try:
        assert level((await timed_read(source))[0]) == 1000
        usb = FakeDevice.opened[-1]
        del system.plugged["USB Mic"]
        usb.sink.failed("the device stopped")  # what PortAudio's finished callback says
        usb.feeding.clear()
        deadline = time.monotonic() + 5
        while level((await timed_read(source))[0]) != 2000:
            assert time.monotonic() < deadline, events.text()
        assert events == [
            ("warning", "Stopped capturing USB Mic (the device stopped). Now capturing "
             "Built-in Mic."),
        ]  # fmt: skip
        assert usb.closed.wait(2), "the broken stream was not closed"
        assert source.stats()["device"] == "Built-in Mic"
    finally:
        await source.close()


async def test_stall_plays_paced_silence_then_recovers() -> None:
    system = FakeSystem(Loopback=1500)
    events = Events()
    source = fast(CaptureSource(SourceSpec("system"), events, resolve=system.resolve,
                                opener=system.open))  # fmt: skip
    await source.open()
    try:
        assert level((await timed_read(source))[0]) == 1500
        device = FakeDevice.opened[-1]
        device.feeding.clear()  # audio just stops: no error from the driver
        del system.plugged["Loopback"]
        t0 = time.monotonic()
        while "Playing silence" not in events.text():
            _, took = await timed_read(source)
            assert took < source.STALL_S + 0.3
            assert time.monotonic() - t0 < 5, events.text()
        assert events[-1] == (
            "warning",
            "Stopped capturing Loopback (no sound arrived for 0.3 s). "
            "Playing silence until it is back.",
        )
        assert source.stats()["device"] == "silence"
        t0 = time.monotonic()
        chunks = [(await timed_read(source))[0] for _ in range(25)]
        took = time.monotonic() - t0
        assert all(level(c) == 0 and len(c) == CHUNK_BYTES for c in chunks)
        assert 0.4 < took < 0.8, f"25 silent chunks (0.5 s) took {took:.2f} s: not real time"
        assert source.last_capture_us is None

        system.plugged["Loopback"] = 1600  # plugged back in
        deadline = time.monotonic() + 5
        while level((await timed_read(source))[0]) != 1600:
            assert time.monotonic() < deadline, events.text()
        assert events[-1] == ("info", "Capturing Loopback again.")
    finally:
        await source.close()
    assert all(d.closed.is_set() for d in FakeDevice.opened)


async def test_a_microphone_that_cannot_open_falls_back_at_once() -> None:
    system = FakeSystem(**{"USB Mic": 1000, "Built-in Mic": 2000})
    system.broken.add("USB Mic")
    events = Events()
    source = usb_mic(system, events)
    await source.open()
    try:
        assert level((await timed_read(source))[0]) == 2000
        assert events == [
            ("warning", "Cannot capture from USB Mic: Error opening InputStream: Device "
             "unavailable. Using Built-in Mic instead."),
        ]  # fmt: skip
    finally:
        await source.close()


async def test_close_wakes_a_pending_read() -> None:
    system = FakeSystem(Loopback=7)
    source = CaptureSource(SourceSpec("system"), Events(), resolve=system.resolve,
                           opener=system.open)  # fmt: skip
    await source.open()
    FakeDevice.opened[-1].feeding.clear()
    assert level(await source.read()) == 7  # the newest block; nothing more will come
    pending = asyncio.create_task(source.read())
    await asyncio.sleep(0.1)
    assert not pending.done()
    t0 = time.monotonic()
    await source.close()
    pcm = await asyncio.wait_for(pending, 1)
    assert level(pcm) == 0 and time.monotonic() - t0 < 0.3


async def test_system_audio_never_falls_back_to_a_microphone() -> None:
    system = FakeSystem(Loopback=1, **{"Built-in Mic": 2})
    source = fast(CaptureSource(SourceSpec("system"), Events(), resolve=system.resolve,
                                opener=system.open))  # fmt: skip
    await source.open()
    try:
        del system.plugged["Loopback"]
        FakeDevice.opened[-1].sink.failed("unplugged")
        for _ in range(40):
            assert level((await timed_read(source))[0]) in (0, 1)
        assert source.stats()["device"] == "silence"
    finally:
        await source.close()


async def test_overruns_are_counted() -> None:
    system = FakeSystem(Loopback=5)
    source = fast(CaptureSource(SourceSpec("system"), Events(), resolve=system.resolve,
                                opener=system.open))  # fmt: skip
    await source.open()
    try:
        await asyncio.sleep(0.5)  # not reading yet (the party is starting): not an overrun
        await source.read()  # only the newest block is left: a fresh timeline
        assert source.stats()["overruns"] == 0 and source._session.queue.empty()
        FakeDevice.opened[-1].overflow = True
        await asyncio.sleep(0.8)  # a coordinator that stopped reading: the backlog is capped
        stats = source.stats()
        assert stats["input_overflows"] >= 10
        assert stats["dropped_blocks"] >= 10
        assert stats["overruns"] == stats["input_overflows"] + stats["dropped_blocks"]
        backlog = 0
        while source._session and not source._session.queue.empty():
            await source.read()
            backlog += 1
        assert backlog <= round(source.BACKLOG_S / 0.02)
    finally:
        await source.close()


async def test_open_fails_clearly() -> None:
    # Nothing to record at all: the host is told why (not silence).
    source = CaptureSource(SourceSpec("system"), Events(), resolve=FakeSystem().resolve)
    with pytest.raises(SourceError, match="Loopback is not connected"):
        await source.open()

    # A device that opens but never sends a sample.
    system = FakeSystem(Loopback=1)

    def mute(plan: CapturePlan, sink: Any) -> FakeDevice:
        device = system.open(plan, sink)
        device.feeding.clear()
        return device

    source = fast(CaptureSource(SourceSpec("system"), Events(), resolve=system.resolve,
                                opener=mute))  # fmt: skip
    with pytest.raises(SourceError, match="Cannot capture from Loopback: no sound arrived"):
        await source.open()
    assert FakeDevice.opened[-1].closed.wait(2)


async def test_a_hanging_driver_cannot_hang_open() -> None:
    system = FakeSystem(Loopback=1)

    def slow(plan: CapturePlan, sink: Any) -> FakeDevice:
        time.sleep(0.6)  # e.g. a wedged sound server
        return system.open(plan, sink)

    source = fast(CaptureSource(SourceSpec("system"), Events(), resolve=system.resolve,
                                opener=slow))  # fmt: skip
    source.IO_TIMEOUT_S = 0.2
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="did not answer"):
        await source.open()
    assert time.monotonic() - t0 < 1.0
    await asyncio.sleep(0.8)
    assert FakeDevice.opened[-1].closed.is_set(), "a stream opened too late was leaked"


async def test_in_thread_hands_late_results_to_discard() -> None:
    discarded: list[str] = []
    with pytest.raises(TimeoutError):
        await in_daemon_thread(
            lambda: time.sleep(0.3) or "late", timeout=0.05, discard=discarded.append
        )
    await asyncio.sleep(0.5)
    assert discarded == ["late"]
    assert await in_daemon_thread(lambda: 42, timeout=1.0) == 42
    with pytest.raises(ZeroDivisionError):
        await in_daemon_thread(lambda: 1 / 0, timeout=1.0)


# -- 3. device selection per platform (fake lists) -------------------------------------------
def dev(index: int, name: str, inputs: int = 2, hostapi: int = 0, outputs: int = 0) -> dict:
    return {"index": index, "name": name, "hostapi": hostapi, "max_input_channels": inputs,
            "max_output_channels": outputs}  # fmt: skip


LINUX_PA = PortAudioView(
    devices=(
        dev(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)"),
        dev(1, "pulse", 32, outputs=32),
        dev(2, "default", 32, outputs=32),
    ),
    default_input=2,
)
LINUX_PULSE = PulseView(
    default_sink="alsa_output.pci.analog-stereo",
    default_source="alsa_input.pci.analog-stereo",
    sources=(
        PulseSource("alsa_output.pci.analog-stereo.monitor", "Monitor of Built-in Audio",
                    "alsa_output.pci.analog-stereo", 0),
        PulseSource("alsa_input.pci.analog-stereo", "Built-in Audio Analog Stereo", None, 1),
        PulseSource("alsa_input.usb-mic.mono", "Blue Yeti", None, 7),
    ),
)  # fmt: skip


def test_linux_system_audio_is_the_default_sinks_monitor() -> None:
    plan = devices.system_plan("linux", LINUX_PA, LINUX_PULSE)
    assert plan.label == "Monitor of Built-in Audio"
    assert plan.device == 1  # the ALSA "pulse" device
    assert ("PULSE_SOURCE", "alsa_output.pci.analog-stereo.monitor") in plan.env
    assert ("PIPEWIRE_NODE", "alsa_output.pci.analog-stereo") in plan.env
    assert (plan.pulse_source, plan.pulse_sink) == (0, "alsa_output.pci.analog-stereo")
    with pytest.raises(SourceError, match="PulseAudio or PipeWire"):
        devices.system_plan("linux", LINUX_PA, None)
    no_plugin = PortAudioView(devices=(dev(0, "HDA Intel PCH (hw:0,0)"),), default_input=0)
    with pytest.raises(SourceError, match="libasound2-plugins"):
        devices.system_plan("linux", no_plugin, LINUX_PULSE)
    with pytest.raises(SourceError, match="libportaudio2"):
        devices.system_plan("linux", PortAudioView(error=devices.NO_PORTAUDIO), LINUX_PULSE)


def test_watchdog_notices_a_moved_stream_or_a_new_default_output() -> None:
    plan = devices.system_plan("linux", LINUX_PA, LINUX_PULSE)
    ours = {"source": 0, "properties": {devices.WATCH_PROPERTY: "t1"}}
    other = {"source": 1, "properties": {devices.WATCH_PROPERTY: "t2"}}
    sink = "alsa_output.pci.analog-stereo"
    assert devices.pulse_drift(plan, "t1", [other, ours], sink) is None
    assert devices.pulse_drift(plan, "t1", [other], sink) is None  # not listed: can't tell
    # The sink was unplugged and PulseAudio moved us to the default input (the microphone).
    moved = {**ours, "source": 1}
    assert devices.pulse_drift(plan, "t1", [moved], "usb-headset") == "it was disconnected"
    # The host switched the output: follow it.
    assert devices.pulse_drift(plan, "t1", [ours], "usb-headset") == "the sound output changed"
    mic, _ = devices.mic_plan("Blue Yeti", "linux", LINUX_PA, LINUX_PULSE)
    assert (mic.pulse_source, mic.pulse_sink) == (7, None)
    assert devices.pulse_drift(mic, "t1", [{**ours, "source": 7}], "usb-headset") is None


def test_linux_microphones_come_from_the_sound_server() -> None:
    assert devices.microphones("linux", LINUX_PA, LINUX_PULSE) == [
        devices.Device("Built-in Audio Analog Stereo", is_default=True),
        devices.Device("Blue Yeti"),
    ]
    plan, note = devices.mic_plan("Blue Yeti", "linux", LINUX_PA, LINUX_PULSE)
    assert plan.label == "Blue Yeti" and plan.device == 1 and note is None
    assert ("PULSE_SOURCE", "alsa_input.usb-mic.mono") in plan.env
    plan, note = devices.mic_plan(None, "linux", LINUX_PA, LINUX_PULSE)
    assert plan.label == "Built-in Audio Analog Stereo" and plan.env == () and note is None
    plan, note = devices.mic_plan("Gone Mic", "linux", LINUX_PA, LINUX_PULSE)
    assert plan.env == () and note and "'Gone Mic' is not connected" in note
    # Plain ALSA (no sound server): PortAudio's own list.
    assert devices.microphones("linux", LINUX_PA, None)[0].name.startswith("HDA Intel")


def test_pactl_output_is_parsed() -> None:
    info = json.dumps({"default_sink_name": "vsink", "default_source_name": "fakemic"})
    sources = json.dumps([
        {"name": "vsink.monitor", "description": "Monitor of VirtualSink",
         "monitor_source": "vsink", "properties": {"device.class": "monitor"}},
        {"name": "fakemic", "description": "FakeMic", "monitor_source": "",
         "properties": {"device.class": "filter"}},
    ])  # fmt: skip
    view = devices.parse_pulse(info, sources)
    assert view == PulseView("vsink", "fakemic", (
        PulseSource("vsink.monitor", "Monitor of VirtualSink", "vsink"),
        PulseSource("fakemic", "FakeMic"),
    ))  # fmt: skip
    text = devices.parse_pulse_text(
        "Server Name: pulseaudio\nDefault Sink: vsink\nDefault Source: vsink.monitor\n",
        "1\tvsink.monitor\tmodule-null-sink.c\ts16le 2ch 48000Hz\tIDLE\n"
        "2\tfakemic\tmodule-remap-source.c\ts16le 2ch 48000Hz\tIDLE\n",
    )
    assert text.default_sink == "vsink"
    assert text.sources[0].monitor_of == "vsink" and text.sources[1].monitor_of is None


WIN_PA = PortAudioView(
    devices=(
        dev(0, "Microsoft Sound Mapper - Input"),
        dev(1, "Microphone (Realtek(R) Audio)"),
        dev(2, "Stereo Mix (Realtek(R) Audio)"),
        dev(3, "Speakers (Realtek(R) Audio)", 0, outputs=2),
        dev(4, "Microphone (Realtek(R) Audio)", hostapi=2),  # the same mic via WASAPI
        dev(5, "Stereo Mix (Realtek(R) Audio)", hostapi=2),
    ),
    default_input=1,
)


def fake_pyaudiowpatch(devices_: list[dict], default_output: int) -> SimpleNamespace:
    """The few PyAudioWPatch calls we use, over a fixed device list."""
    module = SimpleNamespace(paWASAPI=13, paInt16=8, paContinue=0, paInputOverflow=2,
                             instances=[])  # fmt: skip

    class Stream:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs, self.active, self.closed = kwargs, True, False

        def get_input_latency(self) -> float:
            return 0.03

        def is_active(self) -> bool:
            return self.active

        def stop_stream(self) -> None:
            self.active = False

        def close(self) -> None:
            self.closed = True

    class PyAudio:
        def __init__(self) -> None:
            self.stream: Stream | None = None
            self.terminated = False
            module.instances.append(self)

        def get_host_api_info_by_type(self, kind: int) -> dict:
            assert kind == module.paWASAPI
            return {"defaultOutputDevice": default_output}

        def get_device_info_by_index(self, index: int) -> dict:
            return devices_[index]

        def get_loopback_device_info_generator(self) -> Iterator[dict]:
            yield from (d for d in devices_ if d.get("isLoopbackDevice"))

        def open(self, **kwargs: Any) -> Stream:
            self.stream = Stream(**kwargs)
            return self.stream

        def terminate(self) -> None:
            self.terminated = True

    module.PyAudio = PyAudio
    return module


WASAPI_DEVICES = [
    {"index": 0, "name": "Speakers (Realtek(R) Audio)", "maxInputChannels": 0,
     "defaultSampleRate": 48000.0, "isLoopbackDevice": False},
    {"index": 1, "name": "Headphones (USB Audio)", "maxInputChannels": 0,
     "defaultSampleRate": 44100.0, "isLoopbackDevice": False},
    {"index": 2, "name": "Speakers (Realtek(R) Audio) [Loopback]", "maxInputChannels": 2,
     "defaultSampleRate": 48000.0, "isLoopbackDevice": True},
    {"index": 3, "name": "Headphones (USB Audio) [Loopback]", "maxInputChannels": 6,
     "defaultSampleRate": 44100.0, "isLoopbackDevice": True},
]  # fmt: skip


def test_windows_system_audio_is_the_default_outputs_loopback() -> None:
    view = devices.wasapi_view(fake_pyaudiowpatch(WASAPI_DEVICES, default_output=1))
    plan = devices.system_plan("win32", WIN_PA, wasapi=view)
    assert plan == CapturePlan(label="Headphones (USB Audio)", backend="wasapi", device=3,
                               channels=6, rate=44100, gaps_are_silence=True)  # fmt: skip
    # Without PyAudioWPatch: the "Stereo Mix" input, if the sound card has one.
    missing = devices.WasapiView(None, error="PyAudioWPatch is not installed")
    plan = devices.system_plan("win32", WIN_PA, wasapi=missing)
    assert plan.backend == "portaudio" and plan.device == 2
    no_mix = PortAudioView(devices=WIN_PA.devices[:2], default_input=1)
    with pytest.raises(SourceError, match="pip install PyAudioWPatch"):
        devices.system_plan("win32", no_mix, wasapi=missing)
    # The import itself is lazy: this machine has no PyAudioWPatch at all.
    assert devices.wasapi_view().error == "PyAudioWPatch is not installed"


def test_windows_lists_each_microphone_once() -> None:
    assert devices.microphones("win32", WIN_PA) == [
        devices.Device("Microsoft Sound Mapper - Input"),
        devices.Device("Microphone (Realtek(R) Audio)", is_default=True),
        devices.Device("Stereo Mix (Realtek(R) Audio)"),
    ]
    plan, note = devices.mic_plan("Microphone (Realtek(R) Audio)", "win32", WIN_PA)
    assert plan.device == 1 and note is None


def test_macos_needs_a_loopback_driver() -> None:
    mac = PortAudioView(devices=(dev(0, "MacBook Pro Microphone", 1),
                                 dev(1, "MacBook Pro Speakers", 0, outputs=2)),
                        default_input=0)  # fmt: skip
    with pytest.raises(SourceError, match="BlackHole"):
        devices.system_plan("darwin", mac)
    with_blackhole = PortAudioView(devices=(*mac.devices, dev(2, "BlackHole 2ch", 2, outputs=2)),
                                   default_input=0)  # fmt: skip
    plan = devices.system_plan("darwin", with_blackhole)
    assert plan == CapturePlan(label="BlackHole 2ch", device=2, channels=2)
    plan, _ = devices.mic_plan(None, "darwin", with_blackhole)
    assert plan.label == "MacBook Pro Microphone" and plan.channels == 1


def test_wasapi_loopback_capture_converts_and_watches() -> None:
    module = fake_pyaudiowpatch(WASAPI_DEVICES, default_output=1)
    plan = devices.system_plan("win32", WIN_PA, wasapi=devices.wasapi_view(module))
    got: list[tuple[bytes, bool]] = []
    failed = threading.Event()
    sink = SimpleNamespace(block=lambda pcm, overflow, _ts: got.append((pcm, overflow)),
                           failed=lambda _why: failed.set())  # fmt: skip
    capture = WasapiLoopbackCapture(plan, sink, module=module)
    capture.WATCH_S = 0.05
    pa = module.instances[-1]
    assert pa.stream.kwargs["input_device_index"] == 3 and pa.stream.kwargs["rate"] == 44100
    callback = pa.stream.kwargs["stream_callback"]
    block = np.full((441 * 10, 6), 1000, dtype="<i2").tobytes()  # 100 ms of 5.1 at 44.1 kHz
    for i in range(5):
        assert callback(block, 4410, {}, module.paInputOverflow if i == 0 else 0) == (None, 0)
    frames = sum(len(pcm) for pcm, _ in got) // 4
    assert abs(frames - 24_000) < 1_000  # 0.5 s at 48 kHz, minus the resampler's delay
    assert [overflow for _, overflow in got][:2] == [True, False]
    pa.stream.active = False  # the headphones were unplugged
    assert failed.wait(2)
    capture.close()
    assert pa.stream.closed and pa.terminated


def test_converter_makes_48k_stereo() -> None:
    mono_block = np.arange(960, dtype="<i2").reshape(-1, 1)
    out = np.frombuffer(Converter(48_000, 1)(mono_block), "<i2").reshape(-1, 2)
    assert (out[:, 0] == out[:, 1]).all() and (out[:, 0] == mono_block[:, 0]).all()
    stereo = np.ones((960, 2), dtype="<i2")
    assert Converter(48_000, 2)(stereo) == stereo.tobytes()


def test_tray_helpers_never_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("audio stack exploded")

    monkeypatch.setattr(devices, "portaudio_view", broken)
    assert devices.list_microphones() == []
    ok, why = devices.system_audio_available()
    assert not ok and "audio stack exploded" in why


# -- 4. end to end: system audio to a real Sendspin listener ---------------------------------
@pytest.mark.audio
async def test_party_streams_system_audio_to_a_listener(
    pulse: PulseServer, tones_wav: Path, start_party, listeners, record_property
) -> None:
    from tests.conftest import worker_url
    from tests.listener import Listener

    async with start_party(SourceSpec("system"), workers=1) as party:
        listener = await Listener(worker_url(party, 0)).connect()
        listeners.append(listener)
        await listener.wait_chunks(25)  # capture re-opened for the first listener
        played_us = clock.now_us()
        player = pulse.play(tones_wav)
        await asyncio.wait_for(asyncio.to_thread(player.wait), 10)
        lead_s = party.config.live_lead_ms / 1000
        await asyncio.sleep(lead_s + 0.5)  # until the last tone has been sent
        stats = party.status.stats

    chunks = [(ts, pcm) for ts, pcm in listener.chunks if ts >= played_us - 1_000_000]
    captured = mono(b"".join(pcm for _, pcm in chunks))
    assert_tones(captured, "at the listener")

    # When does the first loud sample play on the phone, and when did it reach the phone?
    onset_us = arrival_us = None
    for (ts, pcm), arrival in zip(listener.chunks, listener.arrivals, strict=True):
        loud = np.nonzero(np.abs(mono(pcm)) > 0.05)[0]
        if ts >= played_us - 1_000_000 and loud.size:
            onset_us = ts + int(loud[0]) * 1_000_000 // SAMPLE_RATE
            arrival_us = arrival
            break
    assert onset_us is not None and arrival_us is not None
    play_latency_ms = (onset_us - played_us) / 1000
    arrival_ms = (arrival_us - played_us) / 1000
    record_property("capture_to_phone_playback_ms", round(play_latency_ms))
    record_property("capture_to_phone_arrival_ms", round(arrival_ms))
    print(f"\nplay -> phone plays it: {play_latency_ms:.0f} ms; reaches the phone after "
          f"{arrival_ms:.0f} ms; live lead {lead_s * 1000:.0f} ms; stats {stats}")  # fmt: skip
    # Includes paplay's own start-up; the target is "under ~1 s on a LAN".
    assert arrival_ms < play_latency_ms, "audio arrived after its play time"
    assert play_latency_ms < 1000 + lead_s * 1000 - 500
    assert stats["device"] == "Monitor of VirtualSink"
    assert stats["overruns"] == 0
