"""Music files made in the test: tagged, with an embedded cover, written by PyAV itself.

Each file is a constant level (`level`, in s16 units) so a test can tell from the samples a
listener received which file is playing, and when it started to play.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from PIL import Image

RATE = 48_000
FRAME = 1024


def cover_jpeg(color: tuple[int, int, int], size: int = 96) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def tagged_flac(
    path: Path,
    *,
    title: str | None,
    artist: str | None = None,
    album: str | None = None,
    level: int = 1000,
    seconds: float = 2.0,
    cover: tuple[int, int, int] | None = None,
) -> Path:
    """A FLAC file with tags and (optionally) an attached-picture cover stream."""
    with av.open(str(path), "w") as out:
        tags = {"title": title, "artist": artist, "album": album}
        out.metadata.update({k: v for k, v in tags.items() if v})
        audio = out.add_stream("flac", rate=RATE, layout="stereo")
        picture = None
        if cover is not None:
            picture = out.add_stream("mjpeg")
            picture.width = picture.height = 96
            picture.pix_fmt = "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic
        block = np.full((1, FRAME * 2), level, dtype="<i2")
        for i in range(int(RATE * seconds) // FRAME):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="stereo")
            frame.rate, frame.pts = RATE, i * FRAME
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
        if picture is not None and cover is not None:
            packet = av.Packet(cover_jpeg(cover))
            packet.stream, packet.pts, packet.dts = picture, 0, 0
            out.mux(packet)
    return path


def level_of(pcm: bytes) -> int:
    """The (constant) level of a chunk of s16 stereo."""
    samples = np.frombuffer(pcm, "<i2")
    return int(np.median(samples)) if samples.size else 0


MP3_FRAME_SAMPLES = 1152
MP3_FRAME_BYTES = 384  # at 48 kHz / 128 kbit/s CBR every MP3 frame is this long


def mp3_tone(freq: float, amplitude: int, frames: int) -> bytes:
    """Raw CBR MP3 frames (no tags, no container) of a sine: what a radio server sends."""
    ctx = av.CodecContext.create("libmp3lame", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = RATE, "stereo", "fltp", 128_000
    ctx.open()
    t = np.arange(frames * MP3_FRAME_SAMPLES) / RATE
    wave = (amplitude / 32768 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    out = b""
    for i in range(0, len(wave), MP3_FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            np.stack([wave[i : i + MP3_FRAME_SAMPLES]] * 2), format="fltp", layout="stereo"
        )
        frame.sample_rate, frame.pts = RATE, i
        out += b"".join(bytes(p) for p in ctx.encode(frame))
    out += b"".join(bytes(p) for p in ctx.encode(None))
    return out[: frames * MP3_FRAME_BYTES]  # whole frames only: segments line up exactly


def rms_of(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def mono(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 2).mean(axis=1) / 32768.0


def correlation(captured: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """(best normalised cross-correlation, lag of `reference` inside `captured`)."""
    n = len(captured) + len(reference)
    spectrum = np.fft.rfft(captured, n) * np.conj(np.fft.rfft(reference, n))
    raw = np.fft.irfft(spectrum, n)[: len(captured) - len(reference) + 1]
    energy = np.concatenate([[0.0], np.cumsum(captured**2)])
    window = energy[len(reference) :] - energy[: len(energy) - len(reference)]
    score = raw / (np.sqrt(np.maximum(window, 1e-12)) * np.linalg.norm(reference))
    lag = int(np.argmax(score))
    return float(score[lag]), lag


def dominant_hz(segment: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment))))
    return float(np.argmax(spectrum) * RATE / len(segment))
