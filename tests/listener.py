"""A real Sendspin listener (the aiosendspin client) for tests and benchmarks.

It connects encrypted and unpaired, like a native Sendspin speaker would, asks for PCM and
records every chunk's server timestamp, so tests can compare what different workers sent.
With `metadata=True` it also takes the metadata and artwork roles and records each title it
is shown (with its local arrival time) and each cover image, as any Sendspin display would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
from aiosendspin.client import SendspinClient
from aiosendspin.clock import RawMonotonicClock
from aiosendspin.models.artwork import ArtworkChannel
from aiosendspin.models.player import ClientHelloPlayerSupport, SupportedAudioFormat
from aiosendspin.models.types import ArtworkSource, AudioCodec, PictureFormat, Roles
from aiosendspin.noise import Identity, InMemoryClientPairingStore

from server.audio_format import SAMPLE_RATE, duration_us

_CLOCK = RawMonotonicClock()


@dataclass
class Listener:
    url: str
    keep_audio: bool = True
    codec: AudioCodec = AudioCodec.PCM
    buffer_capacity: int = 32_000_000  # bytes of audio the client says it can hold
    chunks: list[tuple[int, bytes]] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)  # local receive time (us), same clock
    count: int = 0
    bytes: int = 0
    late: int = 0  # chunks that arrived after their play time
    client: SendspinClient | None = None
    metadata: bool = False
    titles: list[tuple[int, dict]] = field(default_factory=list)  # (arrival us, metadata)
    covers: list[tuple[int, bytes]] = field(default_factory=list)  # (arrival us, image)
    clears: list[int] = field(default_factory=list)  # arrival (us) of each stream/clear

    def _on_metadata(self, payload: object) -> None:
        meta = getattr(payload, "metadata", None)
        if meta is not None:
            self.titles.append((_CLOCK.now_us(), meta.to_dict()))

    def _on_artwork(self, _channel: int, data: bytes) -> None:
        self.covers.append((_CLOCK.now_us(), bytes(data)))

    def shown(self) -> list[str | None]:
        """Each distinct title shown, in order."""
        out: list[str | None] = []
        for _, meta in self.titles:
            if not out or out[-1] != meta.get("title"):
                out.append(meta.get("title"))
        return out

    def _on_chunk(self, ts: int, data: bytes, *_: object) -> None:
        now = _CLOCK.now_us()
        self.count += 1
        self.bytes += len(data)
        client = self.client
        if (
            client is not None
            and client.is_time_synchronized()
            and (client.compute_play_time(ts) < now)
        ):
            self.late += 1
        if self.keep_audio:
            self.chunks.append((ts, bytes(data)))
            self.arrivals.append(now)

    async def connect(self, timeout: float = 15.0) -> Listener:
        roles = [Roles.PLAYER, Roles.METADATA, Roles.ARTWORK] if self.metadata else [Roles.PLAYER]
        art = ArtworkChannel(ArtworkSource.ALBUM, PictureFormat.PNG, width=64, height=64)
        client = SendspinClient(
            Identity.generate(),
            "test-listener",
            roles,
            artwork_channels=[art] if self.metadata else None,
            pairing_store=InMemoryClientPairingStore(),
            player_support=ClientHelloPlayerSupport(
                supported_formats=[
                    SupportedAudioFormat(
                        codec=self.codec, channels=2, sample_rate=48000, bit_depth=16
                    )
                ],
                buffer_capacity=self.buffer_capacity,
            ),
        )
        await client.set_unpaired_access(enabled=True)
        client.add_audio_chunk_listener(self._on_chunk)
        client.add_stream_clear_listener(lambda _roles: self.clears.append(_CLOCK.now_us()))
        if self.metadata:
            client.add_metadata_listener(self._on_metadata)
            client.add_artwork_listener(self._on_artwork)
        self.client = client
        await asyncio.wait_for(client.connect(self.url), timeout)
        return self

    def played(self, since_us: int) -> tuple[int, np.ndarray]:
        """(play time of sample 0, mono float audio) as a player would have played it from
        `since_us` on: audio that a stream/clear dropped before its play time is left out
        (a player stops at the clear), silence fills the gaps."""
        kept: list[tuple[int, bytes]] = []
        for (ts, data), arrived in zip(self.chunks, self.arrivals, strict=True):
            cut = next((c for c in self.clears if c > arrived), None)
            if cut is not None and ts + duration_us(len(data)) > cut:  # played up to the clear
                data = data[: max(0, (cut - ts) * SAMPLE_RATE // 1_000_000) * 4]
            if ts >= since_us and data:
                kept.append((ts, data))
        if not kept:
            return since_us, np.zeros(0, np.float32)
        end = max(ts + duration_us(len(data)) for ts, data in kept)
        out = np.zeros((end - since_us) * SAMPLE_RATE // 1_000_000 + 1, np.float32)
        for ts, data in kept:
            samples = np.frombuffer(data, "<i2").reshape(-1, 2).mean(axis=1) / 32768.0
            at = (ts - since_us) * SAMPLE_RATE // 1_000_000
            out[at : at + len(samples)] = samples[: len(out) - at]
        return since_us, out

    async def wait_chunks(self, n: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.url}: got {self.count} of {n} chunks")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(), 5.0)
            self.client = None
