"""Longer audio frames for PCM and FLAC listeners.

aiosendspin 10.2.1 cuts every listener's audio into 25 ms frames (40 messages a second per
phone), and a worker's cost per listener is mostly per message: encryption, WebSocket frame,
system call. A file or stream party runs seconds ahead, so PCM and FLAC listeners get
FRAME_US frames instead; Opus keeps the library's framing (its frame sizes are fixed by the
codec). The library is pinned, and tests/test_units.py fails if this stops taking effect.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiosendspin.models.types import AudioCodec
from aiosendspin.server.roles.player import v1

FRAME_US = 100_000
LONG_FRAMES = {AudioCodec.PCM, AudioCodec.FLAC}
_library_requirements = v1.PlayerV1Role._ensure_audio_requirements


def _ensure_audio_requirements(self: Any, *, force: bool = False) -> None:
    _library_requirements(self, force=force)
    req = self._audio_requirements
    if req is None or self._preferred_codec not in LONG_FRAMES or req.frame_duration_us == FRAME_US:
        return
    transformer = self._client.group.transformer_pool.get_or_create(
        type(req.transformer),
        channel_id=req.channel_id.int,
        sample_rate=req.sample_rate,
        bit_depth=req.bit_depth,
        channels=req.channels,
        frame_duration_us=FRAME_US,
    )
    self._audio_requirements = dataclasses.replace(
        req, transformer=transformer, frame_duration_us=FRAME_US
    )


def install() -> None:
    v1.PlayerV1Role._ensure_audio_requirements = _ensure_audio_requirements  # type: ignore[method-assign]
