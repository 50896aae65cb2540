"""The party's Opus, as the workers' encoder (aiosendspin, libopus defaults) makes it.

The Wi-Fi figures (bench/README.md) and the page's codec choice assume 20 ms packets at
libopus' default 96 kbit/s VBR (~140 kbit/s on the dense demo music). A library upgrade that
changes either changes the airtime every phone takes: this fails so someone re-measures.
"""

from __future__ import annotations

from aiosendspin.audio.codecs import OpusEncoder

from bench.phone import opus_packet_us
from server.sources.demo import render

SECONDS = 8


def test_party_opus_is_20_ms_packets_near_libopus_default_rate() -> None:
    pcm = render().tobytes()[: SECONDS * 48000 * 4]
    packets = [p for p, _ in OpusEncoder(sample_rate=48000, bit_depth=16, channels=2).process(
        pcm, 0, 0
    )]  # fmt: skip
    assert {opus_packet_us(p) for p in packets} == {20_000}
    kbit_s = sum(map(len, packets)) * 8 / 1000 / (len(packets) * 0.02)
    assert 90 <= kbit_s <= 180, f"{kbit_s:.0f} kbit/s"


def test_opus_packet_duration_from_the_toc_byte() -> None:
    assert opus_packet_us(bytes([0xFC])) == 20_000  # CELT FB 20 ms, one frame
    assert opus_packet_us(bytes([0xFD])) == 40_000  # two frames
    assert opus_packet_us(bytes([0xFB, 3])) == 60_000  # code 3: three 20 ms frames (config 31)
    assert opus_packet_us(bytes([0x08])) == 20_000  # SILK NB 20 ms
