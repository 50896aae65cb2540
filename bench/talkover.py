"""What talk-over costs the coordinator: mixing the voice into one channel's chunks.

    .venv/bin/python -m bench.talkover            # ~3 s

Times `ChannelDuck` (envelope, mono voice from the mic buffer, soft limiter) on 20 ms demo
chunks in three states: not talking (the chunk passes untouched), on air (ducked, voice
mixed), and talk pressed and released every half second (the envelope always moving).
Figures are CPU time per second of audio per channel, so "3 channels on air" is three
times the on-air figure.
"""

from __future__ import annotations

import time

import numpy as np

from server import clock
from server.audio_format import CHUNK_BYTES, SAMPLE_RATE
from server.sources.demo import rendered_pcm
from server.talkover import ChannelDuck, TalkOver

CHUNK_US = CHUNK_BYTES // 4 * 1_000_000 // SAMPLE_RATE


def per_audio_second(duck: ChannelDuck, chunks: list[bytes], start_us: int) -> float:
    """CPU milliseconds spent per second of audio mixed."""
    begin = time.process_time()
    for i, chunk in enumerate(chunks):
        duck(start_us + i * CHUNK_US, chunk)
    spent = time.process_time() - begin
    return spent * 1000 / (len(chunks) * CHUNK_US / 1_000_000)


def main() -> None:
    pcm = rendered_pcm()
    chunks = [pcm[i : i + CHUNK_BYTES] for i in range(0, 20 * SAMPLE_RATE * 4, CHUNK_BYTES)]
    talk = TalkOver(500_000, lambda *_: None, lambda: None)
    now = clock.now_us()
    voice = (np.sin(np.arange(30 * SAMPLE_RATE) * 0.03) * 0.3).astype(np.float32)
    talk.mic.append(voice, now)
    far = now + 3_600_000_000  # an hour on: nobody talks then
    quiet = per_audio_second(ChannelDuck(talk), chunks, far)
    talk.switches = [(now - 25_000_000, True)]  # on air for the whole run
    on_air = per_audio_second(ChannelDuck(talk), chunks, now - 20_000_000)
    edges = [(now - 20_000_000 + i * 500_000 + 10_000, i % 2 == 0) for i in range(40)]
    talk.switches = edges  # pressed and released every half second: envelopes always moving
    switching = per_audio_second(ChannelDuck(talk), chunks, now - 20_000_000)
    print("talk-over mixing, CPU ms per second of audio, one channel:")
    print(f"  not talking          {quiet:6.2f}")
    print(f"  on air (duck+voice)  {on_air:6.2f}")
    print(f"  on/off every 0.5 s   {switching:6.2f}")


if __name__ == "__main__":
    main()
