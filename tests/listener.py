"""A real Sendspin listener (the aiosendspin client) for tests and benchmarks.

It connects encrypted and unpaired, like a native Sendspin speaker would, asks for PCM and
records every chunk's server timestamp, so tests can compare what different workers sent.
With `metadata=True` it also takes the metadata and artwork roles and records each title it
is shown (with its local arrival time) and each cover image, as any Sendspin display would.
Each stream/clear is recorded too, so `played()` is what a player would really play.
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
    clears: list[tuple[int, int]] = field(default_factory=list)  # (arrival us, chunks before)

    @property
    def client_id(self) -> str:
        """The player id the server knows this listener by."""
        assert self.client is not None
        return self.client.identity.peer_id

    def _on_clear(self, roles: list[str] | None) -> None:
        if roles is None or "player" in roles:
            self.clears.append((_CLOCK.now_us(), len(self.chunks)))

    def played(self) -> list[tuple[int, bytes]]:
        """The chunks a player plays: a stream/clear drops those received before it that
        had not started playing yet (the protocol's rule)."""
        dropped: set[int] = set()
        for at, before in self.clears:
            dropped.update(i for i in range(before) if self.chunks[i][0] >= at)
        return [chunk for i, chunk in enumerate(self.chunks) if i not in dropped]

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
        client.add_stream_clear_listener(self._on_clear)
        if self.metadata:
            client.add_metadata_listener(self._on_metadata)
            client.add_artwork_listener(self._on_artwork)
        self.client = client
        await asyncio.wait_for(client.connect(self.url), timeout)
        return self

    def heard(self, since_us: int) -> tuple[int, np.ndarray]:
        """(since_us, mono float audio from then on) of what `played()` gives, each chunk at
        its play time, silence in the gaps."""
        kept = [(ts, data) for ts, data in self.played() if ts >= since_us]
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
