"""Built-in demo music, synthesised by our own code: no files, no sound card, no network.

A 16-bar loop at 120 BPM over I–V–vi–IV in C major: a warm pad, a plucked bass, a sixteenth
arpeggio, a lead melody in the second half, and kick / snare / hi-hat. Rendered once with
numpy (about 32 s of audio in under a second) and then played in a loop. The rendering is
kept in the user's cache folder, so starting a demo party later costs a file read, not a
second of CPU at the moment the host presses Start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import numpy as np

from server.audio_format import CHUNK_BYTES, FRAME_BYTES, SAMPLE_RATE
from server.nowplaying import Track
from server.sources.base import Source

BPM = 120
BEAT = 60 / BPM
BAR = 4 * BEAT
# Chord roots (MIDI) and their triads: C, G, Am, F.
PROGRESSION = [(48, (60, 64, 67)), (43, (59, 62, 67)), (45, (57, 60, 64)), (41, (57, 60, 65))]
# Lead melody for one pass of the progression: (beat offset, MIDI note, beats).
MELODY = [
    (0, 72, 1),
    (1, 74, 1),
    (2, 76, 2),
    (4, 74, 1),
    (5, 71, 1),
    (6, 67, 2),
    (8, 69, 1),
    (9, 72, 1),
    (10, 76, 1.5),
    (11.5, 74, 0.5),
    (12, 72, 1),
    (13, 69, 1),
    (14, 72, 2),
]
TITLE = "Rooftop Loop"  # the demo's own title, so phones show a song, not a source
ARTIST = "Party Stream Demo"
SEED = 7  # fixed: the demo sounds the same every time (and its cache stays valid)


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _tone(midi: float, seconds: float, harmonics: tuple[float, ...], decay: float) -> np.ndarray:
    t = _t(seconds)
    f = _hz(midi)
    wave = sum(a * np.sin(2 * np.pi * f * (i + 1) * t) for i, a in enumerate(harmonics))
    attack = np.minimum(1.0, t / 0.005)
    return wave * attack * np.exp(-t / decay)


def _kick() -> np.ndarray:
    t = _t(0.35)
    freq = 45 + 110 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.12)


def _noise(rng: np.random.Generator, seconds: float, decay: float, smooth: int) -> np.ndarray:
    n = rng.standard_normal(int(seconds * SAMPLE_RATE))
    if smooth > 1:  # crude high-pass: noise minus its moving average
        n = n - np.convolve(n, np.ones(smooth) / smooth, mode="same")
    return n * np.exp(-_t(seconds) / decay)


def _mix(track: np.ndarray, sound: np.ndarray, at: float, gain: float) -> None:
    start = int(at * SAMPLE_RATE)
    end = min(len(track), start + len(sound))
    track[start:end] += gain * sound[: end - start]


def render() -> np.ndarray:
    """The whole loop as int16 stereo, shape (frames, 2)."""
    bars = 16
    left = np.zeros(int(bars * BAR * SAMPLE_RATE))
    right = np.zeros_like(left)
    rng = np.random.default_rng(SEED)
    kick, snare = _kick(), _noise(rng, 0.2, 0.05, 4) + 0.5 * _tone(50, 0.2, (1,), 0.05)
    hat = _noise(rng, 0.05, 0.01, 2)
    for bar in range(bars):
        root, triad = PROGRESSION[bar % 4]
        t0 = bar * BAR
        pad = sum(_tone(n, BAR, (0.5, 0.25, 0.12, 0.06), 3.0) for n in triad)
        pad *= np.minimum(1.0, _t(BAR) / 0.3)  # slow swell
        _mix(left, pad, t0, 0.10)
        _mix(right, pad, t0, 0.10)
        for eighth in range(8):
            at = t0 + eighth * BEAT / 2
            bass = _tone(root - 12 if eighth % 2 == 0 else root, BEAT / 2, (1, 0.5, 0.2), 0.18)
            _mix(left, bass, at, 0.30)
            _mix(right, bass, at, 0.30)
        for six in range(16):
            note = triad[six % 3] + 12 * (1 + (six // 3) % 2)
            arp = _tone(note, BEAT / 4, (0.6, 0.3, 0.15), 0.08)
            pan = 0.5 + 0.35 * np.sin(six / 16 * 2 * np.pi)
            _mix(left, arp, t0 + six * BEAT / 4, 0.12 * (1 - pan))
            _mix(right, arp, t0 + six * BEAT / 4, 0.12 * pan)
        for beat in range(4):
            at = t0 + beat * BEAT
            for ch in (left, right):
                _mix(ch, kick, at, 0.55)
                if beat % 2 == 1:
                    _mix(ch, snare, at, 0.16)
            _mix(left, hat, at + BEAT / 2, 0.10)
            _mix(right, hat, at + BEAT / 2, 0.07)
    for start_bar in range(8, 16, 4):  # melody over the second half
        for beat, note, beats in MELODY:
            at = start_bar * BAR + beat * BEAT
            lead = _tone(note, beats * BEAT, (0.7, 0.2, 0.1, 0.05), 0.6)
            _mix(left, lead, at, 0.16)
            _mix(right, lead, at, 0.16)
    stereo = np.stack([left, right], axis=1)
    stereo *= 0.8 / max(1e-9, float(np.max(np.abs(stereo))))
    return (stereo * 32767).astype("<i2")


RENDER_VERSION = 1  # bump when render() changes: an old cached file is then ignored


def cache_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("PartyStream", appauthor=False)) / (
        f"demo-v{RENDER_VERSION}.pcm"
    )


def rendered_pcm(cache: Path | None = None) -> bytes:
    """render() as bytes, from the cache when it holds them (a cache we cannot write is
    only slower, never an error)."""
    path = cache or cache_file()
    with contextlib.suppress(OSError):
        data = path.read_bytes()
        if data and len(data) % FRAME_BYTES == 0:
            return data
    data = render().tobytes()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
    return data


class DemoSource(Source):
    """Loops the rendered demo in 20 ms chunks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._pcm = b""
        self._pos = 0

    async def open(self) -> None:
        if not self._pcm:
            self._pcm = await asyncio.to_thread(rendered_pcm)
        self._pos = 0
        self._announce()

    def _announce(self) -> None:
        """Each pass of the loop is announced, so the phones' progress bar starts over."""
        ms = len(self._pcm) // FRAME_BYTES * 1000 // SAMPLE_RATE
        self.announce(Track(title=TITLE, artist=ARTIST, duration_ms=ms))

    async def read(self) -> bytes:
        end = self._pos + CHUNK_BYTES
        chunk = self._pcm[self._pos : end]
        if len(chunk) < CHUNK_BYTES:
            end = CHUNK_BYTES - len(chunk)
            chunk += self._pcm[:end]
            self._announce()
        self._pos = end % len(self._pcm)
        assert len(chunk) % FRAME_BYTES == 0
        return chunk
