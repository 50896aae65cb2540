"""A real Sendspin listener (the aiosendspin client) for tests and benchmarks.

It connects encrypted and unpaired, like a native Sendspin speaker would, asks for PCM and
records every chunk's server timestamp, so tests can compare what different workers sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from aiosendspin.client import SendspinClient
from aiosendspin.clock import RawMonotonicClock
from aiosendspin.models.player import ClientHelloPlayerSupport, SupportedAudioFormat
from aiosendspin.models.types import AudioCodec, Roles
from aiosendspin.noise import Identity, InMemoryClientPairingStore

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
        client = SendspinClient(
            Identity.generate(),
            "test-listener",
            [Roles.PLAYER],
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
        self.client = client
        await asyncio.wait_for(client.connect(self.url), timeout)
        return self

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
