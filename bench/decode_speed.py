"""Decode speed: how many times faster than real time the coordinator's decoder runs.

The coordinator decodes once for every listener, so this is the whole decoding cost of a
party. Test files are the demo music encoded by PyAV in common formats (no files shipped),
decoded with the coordinator's own `decode_pcm` (which also resamples to 48 kHz s16 stereo).

    python -m bench.decode_speed
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from server.audio_format import FRAME_BYTES, SAMPLE_RATE
from server.sources.decode import decode_pcm
from server.sources.demo import render


@dataclass(frozen=True)
class Format:
    name: str
    codec: str
    rate: int  # the file's sample rate; 44.1 kHz files exercise the resampler too
    suffix: str
    bit_rate: int | None = None


FORMATS = (
    Format("wav", "pcm_s16le", 48_000, ".wav"),
    Format("flac", "flac", 44_100, ".flac"),
    Format("mp3", "libmp3lame", 44_100, ".mp3", 192_000),
    Format("aac", "aac", 44_100, ".m4a", 192_000),
    Format("opus", "libopus", 48_000, ".opus", 128_000),
)


@dataclass(frozen=True)
class DecodeResult:
    fmt: Format
    size: int  # bytes on disk
    audio_s: float
    best_s: float  # fastest of the repeats (the machine is shared; the best is the least noisy)

    @property
    def x_real_time(self) -> float:
        return self.audio_s / self.best_s


def write(path: Path, fmt: Format, pcm: np.ndarray) -> None:
    """Encode int16 stereo `pcm` (frames, 2) at 48 kHz into `path`."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(fmt.codec, rate=fmt.rate, layout="stereo")
        if fmt.bit_rate:
            stream.bit_rate = fmt.bit_rate
        resampler = av.AudioResampler(
            format=stream.codec_context.format,
            layout="stereo",
            rate=fmt.rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        step = 4800
        for start in range(0, len(pcm) + 1, step):
            piece = pcm[start : start + step]
            if len(piece):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(piece).reshape(1, -1), format="s16", layout="stereo"
                )
                frame.sample_rate = SAMPLE_RATE
                resampled = resampler.resample(frame)
            else:
                resampled = resampler.resample(None)
            for out_frame in resampled:
                out.mux(stream.encode(out_frame))
        out.mux(stream.encode(None))


def time_decode(path: Path, repeats: int) -> tuple[float, float]:
    """(audio seconds, best wall seconds) for full passes of `path` through decode_pcm."""
    best = float("inf")
    audio_s = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        total = sum(len(chunk) for chunk in decode_pcm(str(path), threading.Event()))
        best = min(best, time.perf_counter() - t0)
        audio_s = total / FRAME_BYTES / SAMPLE_RATE
    return audio_s, best


def measure(repeats: int = 3, formats: tuple[Format, ...] = FORMATS) -> list[DecodeResult]:
    pcm = render()
    results = []
    with tempfile.TemporaryDirectory(prefix="partystream-bench-") as tmp:
        for fmt in formats:
            path = Path(tmp) / f"demo{fmt.suffix}"
            write(path, fmt, pcm)
            audio_s, best = time_decode(path, repeats)
            results.append(DecodeResult(fmt, path.stat().st_size, audio_s, best))
    return results


def rows(results: list[DecodeResult]) -> list[list[str]]:
    return [
        [
            r.fmt.name,
            f"{r.fmt.rate / 1000:g} kHz",
            f"{r.size / 1024:.0f}",
            f"{r.audio_s:.1f}",
            f"{r.x_real_time:.0f}x",
            f"{100 / r.x_real_time:.2f}",
        ]
        for r in results
    ]


HEADERS = ["format", "file rate", "KiB", "audio s", "x real time", "% of a core"]


if __name__ == "__main__":
    from bench.report import table

    print(table(HEADERS, rows(measure())))
