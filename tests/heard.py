"""Sync as heard: record what two players really output, sample-aligned, and compare it with
what the server meant them to play and when.

Why a recording and not the players' own reports: a player's estimate of its sync error
misses whatever it does not model (a codec's offset, its output path, a correction that has
not caught up). Here each player plays into its own mono PulseAudio sink, and the two sinks
are the left and right channels of one null sink (`module-remap-sink`), whose monitor we
record: one file, one sample clock. Or two pages of one browser play straight into that
null sink, panned left and right (`pan_js`): one output path, so what the sound server does
to it (a starved box delays streams; the remap sinks add run-varying delay to an ear,
bench/README.md) is common to both and cancels in their difference.

The server's intended timeline comes from a PCM listener (`tests.listener.Listener`) on the
same party: every chunk with the play time the server stamped on it (CLOCK_MONOTONIC_RAW,
`server.clock`). The source is band-limited noise (`noise_wav`): it never repeats, so a
short window matches one place only (the demo loop repeats every beat).

Relating the recording's clock to the protocol clock: the null sink renders audio ahead of
its nominal play time by its configured latency (its block), and the monitor hands each
block to `parec` when it is rendered. We stamp every read with CLOCK_MONOTONIC_RAW; the
earliest (read time - frames read so far / rate) is when the first sample was rendered,
plus the sink's configured latency (read with pactl while recording) is its nominal play
time: the moment a sound card behind the sink would emit it, the same accounting Chromium's
`outputLatency` sees. Uncertainty: the delivery delay of that earliest read (under 1 ms
here), any change of the block while recording (reported, `block_ms`), and the sink's
rate against ours (fitted, `rate_ppm`). Both players' errors share it; their difference
does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from tests.pulse import PulseServer, write_wav

RATE = 48_000
MIX = "heard_mix"
EARS = ("heard_left", "heard_right")  # what each player is told: PULSE_SINK=<ear>
WINDOW_S = 0.05  # one correlation window
SEARCH_MS = 600.0  # how far from its intended time a window is looked for
MIN_MATCH = 0.5  # normalised correlation below this is "not this signal" (silence, glitch)


# Lets a script reach the page's sendspin-js player as window.__player (the bundle is one
# module instance per page): for bench/sync_heard.py's traces and TIMESTAMP_CLOCK.
PLAYER_HOOK = """import("/static/vendor/sendspin.js").then(({ SendspinPlayer }) => {
  const connect = SendspinPlayer.prototype.connect;
  SendspinPlayer.prototype.connect = function (...args) {
    window.__player = this;
    return connect.apply(this, args);
  };
  return true;
})"""

# A browser whose output timestamps pass sendspin-js's checks (Chromium's here never do:
# "context slope 0.92 out of range"), so that its player runs on the "timestamp" clock.
TIMESTAMP_CLOCK = """(() => {
  const force = setInterval(() => {
    const sc = window.__player && window.__player.scheduler, cs = sc && sc.clockSource;
    if (!cs) return;
    clearInterval(force);
    cs.getTimestampDerivedTime = function (rawTimeSec, ctx) {
      const ts = ctx.getOutputTimestamp();
      if (this.activeSource !== "timestamp") this.setActive("timestamp");
      return ts.contextTime + Math.max(0, performance.now() - ts.performanceTime) / 1000;
    };
  }, 5);
  return true;
})()"""


def pan_js(side: int) -> str:
    """Page script: route the page's audio to one side (0 = left, 1 = right) of its output.
    For two pages in one browser process: one output path for both, so whatever the sound
    server does to it (a starved box delays every stream) is common to both and cancels in
    their difference, which is then the players' own doing."""
    return f"""(() => {{
  const connect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (dest, ...rest) {{
    if (!(dest instanceof AudioDestinationNode)) return connect.call(this, dest, ...rest);
    const split = this.context.createChannelSplitter(2);
    const merge = this.context.createChannelMerger(2);
    connect.call(this, split);
    connect.call(split, merge, 0, {side});
    return connect.call(merge, dest);
  }};
  return true;
}})()"""


def now_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) // 1000


def noise(seconds: float, seed: int = 11) -> np.ndarray:
    """Band-limited (100 Hz-1.2 kHz) white noise, RMS ~-16 dBFS: never repeats. Low, so Opus
    keeps the waveform (not only the spectrum) and a window played 0.5 % fast (a player's
    rate correction) still matches."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < 100) | (freqs > 1200)] = 0
    signal = np.fft.irfft(spectrum, n)
    return 0.16 * signal / np.sqrt(np.mean(signal**2))


def noise_wav(path: Path, seconds: float) -> Path:
    return write_wav(path, noise(seconds))


# ---------------------------------------------------------------------------------- rig --


class Ears:
    """A stereo null sink and two mono sinks mapped onto its left and right channels."""

    def __init__(self, pulse: PulseServer) -> None:
        self.pulse = pulse
        self.modules: list[int] = []

    def __enter__(self) -> Ears:
        load = self.pulse.pactl
        self.modules.append(
            int(load("load-module", "module-null-sink", f"sink_name={MIX}", "rate=48000",
                     "channels=2", "channel_map=front-left,front-right"))
        )  # fmt: skip
        for ear, side in zip(EARS, ("front-left", "front-right"), strict=True):
            self.modules.append(
                int(load("load-module", "module-remap-sink", f"sink_name={ear}", f"master={MIX}",
                         "channels=1", "channel_map=mono", f"master_channel_map={side}",
                         "remix=no", "rate=48000"))
            )  # fmt: skip
        return self

    def __exit__(self, *_: object) -> None:
        for module in reversed(self.modules):
            with contextlib.suppress(RuntimeError):  # the server went away with it
                self.pulse.unload(module)
        self.modules.clear()

    def block_us(self) -> int | None:
        """The mix sink's configured latency: how far ahead of play time it renders."""
        text = self.pulse.pactl("list", "sinks")
        for section in text.split("Sink #")[1:]:
            if f"Name: {MIX}\n" in section:
                m = re.search(r"Latency: \d+ usec, configured (\d+) usec", section)
                return int(m.group(1)) if m else None
        return None


@dataclass
class Recording:
    """Both ears, as float samples (n, 2), and the nominal play time of sample 0."""

    samples: np.ndarray
    start_us: float
    block_ms: tuple[float, float]  # min, max configured latency of the mix while recording
    rate_ppm: float = 0.0  # the sink's clock against CLOCK_MONOTONIC_RAW (fitted)


@dataclass
class Recorder:
    """`parec` on the mix's monitor; every read stamped on the protocol's clock."""

    ears: Ears
    _proc: subprocess.Popen[bytes] | None = None
    _data: list[bytes] = field(default_factory=list)
    _first_us: float = float("inf")  # min over reads of (read time - frames so far / rate)
    _blocks: list[int] = field(default_factory=list)
    _stamps: list[tuple[int, int]] = field(default_factory=list)  # (read time us, frames)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Recorder:
        self._proc = subprocess.Popen(
            ["parec", f"--device={MIX}.monitor", "--raw", "--format=s16le", "--rate=48000",
             "--channels=2", "--latency-msec=5"],
            env={**os.environ, **self.ears.pulse.client_env},
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        prioritise(self._proc.pid)  # a starved recorder loses samples: every time shifts
        for target, name in ((self._read, "heard-read"), (self._watch, "heard-block")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        frames = 0
        while chunk := os.read(fd, 1 << 16):
            stamp = now_us()
            self._data.append(chunk)
            frames += len(chunk) // 4
            self._first_us = min(self._first_us, stamp - frames * 1e6 / RATE)
            self._stamps.append((stamp, frames))

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            try:
                block = self.ears.block_us()
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
            if block:
                self._blocks.append(block)

    def stop(self) -> Recording:
        """Stop (again: a no-op but for the result) and return what was recorded."""
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        for thread in self._threads:
            thread.join(5)
        raw = b"".join(self._data)
        pcm = np.frombuffer(raw[: len(raw) // 4 * 4], "<i2").reshape(-1, 2) / 32768.0
        blocks = self._blocks or [self.ears.block_us() or 0]
        block = float(np.median(blocks))
        stamps = np.array(self._stamps, float)
        rate_ppm = 0.0
        if len(stamps) > 100:  # the sink's sample clock against ours (lower envelope)
            t, f = stamps[:, 0], stamps[:, 1]
            slope = np.polyfit(f, t - f * 1e6 / RATE, 1)[0]
            rate_ppm = -slope * RATE  # >0: the sink plays more than RATE frames per second
        return Recording(
            pcm, self._first_us + block, (min(blocks) / 1e3, max(blocks) / 1e3), rate_ppm
        )


# ----------------------------------------------------------------------------- analysis --


@dataclass
class Timeline:
    """What the server meant to be heard: mono samples from `start_us` on (gaps are zeros)."""

    start_us: int
    samples: np.ndarray


def timeline(chunks: list[tuple[int, bytes]]) -> Timeline:
    """From a PCM listener's (play time us, s16le stereo) chunks, end to end: the stamps of
    consecutive chunks are rounded to 1 us, so placing each by its own stamp would shift
    some by a sample. Raises if the chunks are not one continuous timeline."""
    chunks = sorted(chunks)
    start = chunks[0][0]
    parts, frames = [], 0
    for ts, data in chunks:
        expected = start + frames * 1e6 / RATE
        if abs(ts - expected) > 1000:
            raise ValueError(f"the reference jumps by {(ts - expected) / 1000:.1f} ms")
        left = np.frombuffer(data, "<i2")[0::2] / 32768.0
        parts.append(left)
        frames += len(left)
    return Timeline(start, np.concatenate(parts))


def _locate(window: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """Best (fractional index, normalised correlation) of `window` inside `region`."""
    n, m = len(window), len(region)
    size = 1 << int(np.ceil(np.log2(n + m)))
    corr = np.fft.irfft(np.fft.rfft(region, size) * np.conj(np.fft.rfft(window, size)), size)
    corr = corr[: m - n + 1]
    energy = np.cumsum(np.concatenate([[0.0], region**2]))
    norms = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-12)) * np.linalg.norm(window)
    score = corr / norms
    k = int(np.argmax(score))
    frac = 0.0
    if 0 < k < len(corr) - 1:  # parabolic interpolation of the raw peak
        a, b, c = corr[k - 1], corr[k], corr[k + 1]
        denom = a - 2 * b + c
        frac = 0.5 * (a - c) / denom if denom else 0.0
    return k + frac, float(score[k])


def errors(
    channel: np.ndarray, start_us: float, ref: Timeline, step_s: float = 0.1, rate_ppm: float = 0
) -> list[tuple[float, float]]:
    """(nominal time us, error ms) per window that holds the signal: how late (positive) the
    player output what the server meant to be heard at that moment. `rate_ppm`: the sink's
    clock against ours (Recording.rate_ppm; ~+280 ppm here, 4 ms in 15 s)."""
    w, s = int(WINDOW_S * RATE), int(SEARCH_MS * RATE / 1000)
    out: list[tuple[float, float]] = []
    for i in range(0, len(channel) - w, int(step_s * RATE)):
        seg = channel[i : i + w]
        if np.sqrt(np.mean(seg**2)) < 0.003:  # silence: not started, or a dropout
            continue
        t_us = start_us + i * 1e6 / (RATE * (1 + rate_ppm * 1e-6))
        j0 = round((t_us - ref.start_us) * RATE / 1e6)
        lo, hi = max(0, j0 - s), min(len(ref.samples), j0 + s + w)
        if hi - lo < w + 2:
            continue
        k, score = _locate(seg, ref.samples[lo:hi])
        if score >= MIN_MATCH:
            out.append((t_us, (j0 - (lo + k)) * 1000 / RATE))
    return out


def difference(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """(time us, a - b ms) where both players were matched in the same window."""
    theirs = dict(b)
    return [(t, e - theirs[t]) for t, e in a if t in theirs]


def per_second(errors: list[tuple[float, float]], start_us: float) -> list[float]:
    """The median error of each whole second from `start_us` (a compact trace to print)."""
    seconds: dict[int, list[float]] = {}
    for t, err in errors:
        if t >= start_us:
            seconds.setdefault(int((t - start_us) / 1e6), []).append(err)
    return [round(float(np.median(v)), 1) for _, v in sorted(seconds.items())]


def spread(values: list[float]) -> dict[str, float]:
    """median / p95 / max of the magnitudes."""
    mags = np.abs(np.asarray(values, float))
    if not len(mags):
        return {"median": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {
        "median": float(np.median(mags)),
        "p95": float(np.percentile(mags, 95)),
        "max": float(mags.max()),
    }


def converged_after_s(
    series: list[tuple[float, float]], start_us: float, bound_ms: float = 5.0, hold_s: float = 2.0
) -> float | None:
    """Seconds from `start_us` to the first window from which on the p95 of |value| stays
    under `bound_ms` (over at least `hold_s` of windows); None if it never does."""
    times = np.array([t for t, _ in series])
    mags = np.abs(np.array([v for _, v in series]))
    for k in range(len(series)):
        if (times[-1] - times[k]) / 1e6 < hold_s:
            return None
        if np.percentile(mags[k:], 95) < bound_ms:
            return max(0.0, (times[k] - start_us) / 1e6)
    return None


def prioritise(pid: int, niceness: int = -10) -> None:
    """Raise a player's process tree above the machine's other work (root only; else a
    no-op). A phone gives its browser the CPU it needs; a shared 2-core test box does not,
    and a starved audio thread (the AudioContext clock falling behind) is not what these
    measurements are about. Only our own processes, started for the measurement."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            proc.nice(niceness)


def audio_renderers() -> set[int]:
    """Chromium renderer processes that play audio (they run an "AudioOutputDevice" thread):
    tapping a page adds its own, which is how a test finds one page's process to hold up."""
    pids = set()
    for proc in psutil.process_iter(["cmdline"]):
        if "--type=renderer" not in (proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(OSError):
            names = (p.read_text() for p in Path(f"/proc/{proc.pid}/task").glob("*/comm"))
            if any(name.startswith("AudioOutputDevi") for name in names):
                pids.add(proc.pid)
    return pids


@contextlib.contextmanager
def held_up(pid: int) -> Iterator[None]:
    """Stop a process and let it go on afterwards, as a busy phone's OS does to a page."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
