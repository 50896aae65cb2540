"""Peak and RMS of what the party plays, for the tray's level meter."""

from __future__ import annotations

import math

import numpy as np


class LevelMeter:
    """Peak and RMS (dBFS) over the chunks since the last `take()`."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
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
        self._reset()
        return result
