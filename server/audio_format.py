"""The one PCM format that flows from coordinator to workers: 48 kHz, s16le, stereo."""

SAMPLE_RATE = 48_000
CHANNELS = 2
BIT_DEPTH = 16
FRAME_BYTES = CHANNELS * BIT_DEPTH // 8
CHUNK_FRAMES = 960  # 20 ms: small enough for live capture, large enough to be cheap.
CHUNK_BYTES = CHUNK_FRAMES * FRAME_BYTES



def duration_us(nbytes: int) -> int:
    """Play time of `nbytes` of PCM in microseconds."""
    return nbytes // FRAME_BYTES * 1_000_000 // SAMPLE_RATE
