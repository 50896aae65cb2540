"""Talk-over: the host's microphone mixed into the music, the music ducked under it.

Timing. A live source reaches phones `live_lead` after capture; a file or URL is sent up to
`buffer_s` ahead, so by the time the host speaks the phones already hold seconds of music
without the voice. Pressing talk therefore pulls the music in (`Pump.hold_lead`: a Reset, the
unplayed chunks sent again PULL_IN_US from now, the file kept at live lead while talk is on)
and the voice that reached us at c is mixed into the chunk that plays at c + `delay_us`
(live lead + MIC_GUARD_US, the same for every channel, so all channels carry it in step).
The guard covers a mic block's length and scheduling jitter: the chunk stamped now + live
lead needs mic audio that has already arrived. WARM_S after the last release the file may
run `buffer_s` ahead again, so a few presses in a row pause the music only once.

Ducking is linear in dB (DUCK_DB deep, down in ATTACK_S, up in RELEASE_S), reaching full
depth just as the voice arrives; music + voice go through a soft limiter, so they never clip.
The mic opens at the first press (0.3-3 s through a PulseAudio null sink here) and stays
open WARM_S after each release, so the next press captures at once; only audio captured
between press and release is mixed. A mic that fails is reported once by its capture source
(which looks for it again), and the music plays on with or without the voice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from server import clock
from server.audio_format import SAMPLE_RATE
from server.level_meter import LevelMeter
from server.sources.base import Report, SourceError, SourceSpec
from server.sources.capture import CaptureSource

if TYPE_CHECKING:
    from server.pump import Pump

Mode = Literal["push", "always"]
MODES: tuple[Mode, ...] = ("push", "always")
DUCK_DB = -15.0
ATTACK_S = 0.05
RELEASE_S = 0.4
MIC_GUARD_US = 100_000  # a mic block's length + jitter: the voice plays live lead + this late
LIMIT_KNEE = 0.89  # -1 dBFS: above it, peaks are bent smoothly towards full scale
KEEP_MIC_US = 1_000_000  # mic audio kept for mixing beyond the voice's delay
REANCHOR_US = 100_000  # mic audio arriving this much later than its count: samples lost
# After a release the mic stays open and the target files at live lead this long, so more
# presses in a row capture at once and pause the music only the first time.
WARM_S = 60.0
_US = 1_000_000


# -- pure signal functions (unit-tested) ------------------------------------------------
def envelope_db(start_db: float, segments: Sequence[tuple[int, float]], frames: int) -> np.ndarray:
    """Music gain in dB for `frames` frames, moving linearly from `start_db` towards each
    segment's target: (first frame, target dB), first frame 0, in order. Down at
    DUCK_DB/ATTACK_S, up at DUCK_DB/RELEASE_S, never past the target."""
    down = -DUCK_DB / (ATTACK_S * SAMPLE_RATE)
    up = -DUCK_DB / (RELEASE_S * SAMPLE_RATE)
    out = np.empty(frames, dtype=np.float32)
    current = start_db
    bounds = [first for first, _ in segments[1:]] + [frames]
    for (first, target), end in zip(segments, bounds, strict=True):
        steps = np.arange(1, end - first + 1, dtype=np.float32)
        if target < current:
            out[first:end] = np.maximum(current - down * steps, target)
        else:
            out[first:end] = np.minimum(current + up * steps, target)
        if end > first:
            current = float(out[end - 1])
    return out


def soft_limit(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) → never beyond ±1: untouched below LIMIT_KNEE, bent
    with tanh above it (a sum of music and voice may peak over full scale)."""
    mag = np.abs(x)
    over = mag > LIMIT_KNEE
    if not over.any():
        return x
    room = 1.0 - LIMIT_KNEE
    bent = LIMIT_KNEE + room * np.tanh((mag[over] - LIMIT_KNEE) / room)
    out = x.copy()
    out[over] = np.sign(x[over]) * bent
    return out


def mix(music: bytes, gain_db: np.ndarray, voice: np.ndarray) -> bytes:
    """s16 stereo music × per-frame gain, + a mono voice (float, full scale 1.0) on both
    channels, limited → s16 stereo."""
    frames = np.frombuffer(music, dtype="<i2").reshape(-1, 2).astype(np.float32) / 32768.0
    gain = np.power(10.0, gain_db / 20.0, dtype=np.float32)[:, None]
    out = soft_limit(frames * gain + voice[:, None])
    return (np.round(out * 32767.0)).astype("<i2").tobytes()


def to_mono(pcm: bytes) -> np.ndarray:
    """s16 stereo → float mono (the mean of both channels)."""
    frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).astype(np.float32)
    return frames.mean(axis=1) / 32768.0


class MicBuffer:
    """Mic audio on the protocol clock, stamped by arrival (as the pump stamps live sources:
    PortAudio's own ADC times were seen 0.6 s off through PulseAudio). Blocks are laid end
    to end by sample count, steadier than arrival times; audio cannot arrive before it was
    captured, so a count running ahead of a block's arrival (a backlog draining) moves
    everything earlier, and one REANCHOR_US behind it (samples lost) starts again there."""

    def __init__(self, keep_us: int = KEEP_MIC_US) -> None:
        self._keep = keep_us * SAMPLE_RATE // _US
        self.clear()

    def clear(self) -> None:
        self._origin_us: int | None = None
        self._first = 0  # frame index (from origin) of _samples[0]
        self._samples = np.zeros(0, dtype=np.float32)

    def _end_us(self) -> int:
        assert self._origin_us is not None
        return self._origin_us + (self._first + self._samples.size) * _US // SAMPLE_RATE

    def append(self, mono: np.ndarray, arrived_us: int) -> None:
        """`mono` arrived at `arrived_us`: its last sample was captured about then."""
        start_us = arrived_us - mono.size * _US // SAMPLE_RATE
        if self._origin_us is None or start_us - self._end_us() > REANCHOR_US:
            self._origin_us, self._first = start_us, 0
            self._samples = np.zeros(0, dtype=np.float32)
        elif self._end_us() > start_us:
            self._origin_us -= self._end_us() - start_us
        self._samples = np.concatenate((self._samples, mono))
        excess = self._samples.size - self._keep
        if excess > 0:
            self._samples = self._samples[excess:]
            self._first += excess

    def take(self, start_us: int, frames: int) -> np.ndarray:
        """Mono samples captured from `start_us` on; zeros where we have none."""
        out = np.zeros(frames, dtype=np.float32)
        if self._origin_us is None:
            return out
        at = round((start_us - self._origin_us) * SAMPLE_RATE / _US) - self._first
        lo, hi = max(at, 0), min(at + frames, self._samples.size)
        if hi > lo:
            out[lo - at : hi - at] = self._samples[lo:hi]
        return out


def segments(
    switches: Sequence[tuple[int, bool]], ts: int, frames: int, early_us: int = 0
) -> list[tuple[int, bool]]:
    """Talk on/off over a chunk of `frames` frames that plays at `ts`: (first frame, on) from
    frame 0, one entry per change. Switches are (play time, on) in order; `early_us` moves
    each switch to on that much earlier (the duck is down when the voice arrives)."""
    state, out = False, []
    for at_us, on in switches:
        first = (at_us - (early_us if on else 0) - ts) * SAMPLE_RATE // _US
        if first <= 0:
            state = on
        elif first < frames and on != (out[-1][1] if out else state):
            out.append((int(first), on))
    return [(0, state), *out]


def gate(parts: Sequence[tuple[int, bool]], frames: int) -> np.ndarray:
    """1.0 where talk is on, 0.0 where it is off (segments() → per frame)."""
    out = np.zeros(frames, dtype=np.float32)
    bounds = [first for first, _ in parts[1:]] + [frames]
    for (first, on), end in zip(parts, bounds, strict=True):
        out[first:end] = on
    return out


class ChannelDuck:
    """One channel's mixer (`Pump.mixer`): its own envelope, the shared switches and mic."""

    def __init__(self, talk: TalkOver) -> None:
        self._talk = talk
        self._db = 0.0

    def __call__(self, ts: int, pcm: bytes) -> bytes:
        frames = len(pcm) // 4
        talk = self._talk
        duck = segments(talk.switches, ts, frames, early_us=int(ATTACK_S * _US))
        if self._db == 0.0 and duck == [(0, False)]:
            return pcm  # not talking: the music as it is
        targets = [(first, DUCK_DB if on else 0.0) for first, on in duck]
        gain = envelope_db(self._db, targets, frames)
        self._db = float(gain[-1])
        voice = talk.mic.take(ts - talk.delay_us, frames)
        return mix(pcm, gain, voice * gate(segments(talk.switches, ts, frames), frames))


class TalkOver:
    """Owns the talk-over state and the mic: switching on/off, config, status, the level."""

    def __init__(self, live_lead_us: int, report: Report, on_change: Callable[[], None]) -> None:
        self.delay_us = live_lead_us + MIC_GUARD_US
        self.live_lead_us = live_lead_us
        self.mode: Mode = "push"
        self.device: str | None = None
        self.channel: int | None = None  # None: every channel
        self.on = False
        self.error: str | None = None
        self.mic = MicBuffer(self.delay_us + KEEP_MIC_US)
        self.level = LevelMeter()
        self.switches: list[tuple[int, bool]] = []  # (play time the voice starts/ends, on)
        self._pumps: list[Pump] = []
        self._report = report
        self._on_change = on_change
        self._source: CaptureSource | None = None
        self._reader: asyncio.Task[None] | None = None
        self._warm: asyncio.TimerHandle | None = None  # ends the WARM_S after a release
        self._level_db: float | None = None
        self._closing: asyncio.Task[None] | None = None  # a cooled-down mic being closed
        self._lock = asyncio.Lock()

    def attach(self, pumps: Sequence[Pump]) -> None:
        """The party's channels (in order); the target ones get a mixer. The target follows
        its channel when the set changes; a removed target means every channel, so the
        host's voice is never talking to nobody."""
        if self.channel is not None and self.channel < len(self._pumps):
            target = self._pumps[self.channel]
            self.channel = next((i for i, p in enumerate(pumps) if p is target), None)
        self._pumps = list(pumps)
        for index, pump in enumerate(self._pumps):
            targeted = self.channel is None or self.channel == index
            if not targeted:
                pump.mixer = None
                pump.hold_lead(None)
            elif not isinstance(pump.mixer, ChannelDuck):
                pump.mixer = ChannelDuck(self)
        if self.on or self._warm is not None:
            self._hold(self.live_lead_us)

    def _targets(self) -> list[Pump]:
        return [p for i, p in enumerate(self._pumps) if self.channel in (None, i)]

    def _hold(self, lead_us: int | None) -> None:
        for pump in self._targets():
            pump.hold_lead(lead_us)

    # -- commands (each returns None, or why not for the host) -----------------------------
    async def set(self, on: bool) -> str | None:
        async with self._lock:  # a second press while the mic opens waits for the first
            return await self._set(on)

    async def _set(self, on: bool) -> str | None:
        if on == self.on:
            return None
        if not on:
            await self._release()
            return None
        if self.channel is not None and self.channel >= len(self._pumps):
            return f"There is no channel {self.channel + 1} to talk on."
        if self._warm is not None:
            self._warm.cancel()
            self._warm = None
        self._hold(self.live_lead_us)  # pull the music in now, while the mic opens
        if self._source is None:
            why = await self._open()
            if why is not None:
                self._hold(None)
                return why
        self.on = True
        self._switch(clock.now_us() + self.delay_us, True)
        self._on_change()
        return None

    async def _open(self) -> str | None:
        source = CaptureSource(SourceSpec("mic", device=self.device), self._mic_report)
        try:
            await source.open()
        except SourceError as exc:
            self.error = str(exc)
            self._on_change()
            return f"The microphone cannot be used: {exc}"
        self.error = None
        self.mic.clear()
        self._source = source
        self._reader = asyncio.create_task(self._read(source), name="talk-mic")
        return None

    async def configure(self, device: str | None, channel: int | None, mode: str) -> str | None:
        """New mic, target or mode. "always" turns talk on; going back to "push" turns it
        off; a new mic or target while talking reopens with it."""
        async with self._lock:
            return await self._configure(device, channel, mode)

    async def _configure(self, device: str | None, channel: int | None, mode: str) -> str | None:
        if mode not in MODES:
            return f"Unknown talk mode {mode!r}."
        if channel is not None and not 0 <= channel < max(len(self._pumps), 1):
            return f"There is no channel {channel + 1} to talk on."
        moved = (device, channel) != (self.device, self.channel)
        keep_on = self.on and not (mode == "push" and self.mode == "always")
        if self.on and (moved or not keep_on):
            await self._release()
        if device != self.device:
            await self._close_mic()  # the warm one is the old mic
        self.device, self.channel, self.mode = device, channel, mode  # type: ignore[assignment]
        self.attach(self._pumps)
        self._on_change()
        if mode == "always" or keep_on:
            return await self._set(True)
        return None

    async def _release(self) -> None:
        """Off: the voice already captured still plays, then the music comes back."""
        self.on = False
        self._switch(clock.now_us() + self.delay_us, False)
        self._warm = asyncio.get_running_loop().call_later(WARM_S, self._cool_down)
        self._on_change()

    def _cool_down(self) -> None:
        """Nobody pressed talk again for WARM_S: let the mic go, and the files run ahead."""
        self._warm = None
        if not self.on:
            self._hold(None)
            self._closing = asyncio.create_task(self._close_mic(), name="talk-mic-close")

    def _switch(self, at_us: int, on: bool) -> None:
        horizon = clock.now_us() - 10 * _US  # old switches no chunk will ask about again
        self.switches = [s for s in self.switches if s[0] >= horizon and s[0] < at_us]
        self.switches.append((at_us, on))

    # -- the mic ---------------------------------------------------------------------------
    def _mic_report(self, level: str, message: str) -> None:
        """The capture source tells each failure once; the host sees it as the mic's."""
        self.error = None if level == "info" else message  # info: the mic is back
        self._report(level, f"Talk-over microphone: {message}")
        self._on_change()

    async def _read(self, source: CaptureSource) -> None:
        """Mic audio into the buffer, stamped with its arrival, until the mic closes."""
        while True:
            pcm = await source.read()
            if source.last_capture_us is None:
                continue  # the mic is gone: silence while the source looks for it
            self.mic.append(to_mono(pcm), clock.now_us())
            self.level.add(pcm)

    async def _close_mic(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        source, self._source = self._source, None
        if source is not None:
            await source.close()

    async def close(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
            self._warm = None
        self.on = False
        if self._closing is not None:
            await asyncio.gather(self._closing, return_exceptions=True)
        await self._close_mic()

    # -- status ----------------------------------------------------------------------------
    def take_level(self) -> bool:
        """Refresh the mic level for the status; True when it changed."""
        level = self.level.take()
        level_db = None if level is None or not self.on else level["rms_db"]
        changed = level_db != self._level_db
        self._level_db = level_db
        return changed

    def status(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "mode": self.mode,
            "device": self.device,
            "channel": self.channel,
            "level_db": self._level_db,
            "error": self.error,
        }
