"""Silence: keeps the timeline (and every phone) alive after a source failed."""

from __future__ import annotations

from server.audio_format import CHUNK_BYTES
from server.sources.base import Source

SILENCE = bytes(CHUNK_BYTES)


class SilenceSource(Source):
    """Endless 20 ms chunks of silence; the coordinator paces them like any buffered source."""

    async def open(self) -> None:
        """Nothing to open."""

    async def read(self) -> bytes:
        return SILENCE
