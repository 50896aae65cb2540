"""The party's timeline: when each chunk plays, and when a new timeline must start.

Pure policy (no I/O, no clock of its own), so it is tested alone in tests/test_units.py.
A new timeline starts on a (re)start or source switch, when the source stalled so long that
the next chunk would play too soon, and when a live source's clock drifted from ours; the
coordinator then tells every worker to drop what it queued on the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.audio_format import FRAME_BYTES, SAMPLE_RATE

START_LEAD_US = 800_000  # first chunk after a (re)start: time for a burst of phones to join
LIVE_DRIFT_US = 150_000  # re-anchor a live timeline that drifted this far from its target


@dataclass
class Timeline:
    live_lead_us: int  # capture-to-phone delay for live sources
    buffer_us: int  # how far a file/URL may be decoded ahead of playback
    cap_us: int | None = None  # talk-over: files/URLs stay this close to playback for now
    _next_us: int | None = None
    # Stamps count frames from the timeline's start, never add up rounded durations: a
    # 4096-frame chunk (FLAC, WAV) lasts 85333.33 us, and a stamp 1 us short of where the
    # protocol library's own sample count puts the chunk made it drop ~1 chunk in 4 for
    # every listener (heard as skips and constant resyncs; tests/test_sources.py).
    _start_us: int = 0
    _frames: int = 0
    _start_lead_us: int = START_LEAD_US  # the lead the current timeline started with

    def restart(self, lead_us: int | None = None) -> None:
        """The next chunk starts a new timeline (source switch, resume after idle), `lead_us`
        ahead of now instead of the usual lead (talk-over pulling the music in)."""
        self._next_us = None
        self._start_lead_us = START_LEAD_US if lead_us is None else lead_us

    def next(self, now_us: int, nbytes: int, live: bool) -> tuple[int, bool]:
        """(play time of a chunk of `nbytes` read now, whether it starts a new timeline)."""
        target = self.live_lead_us if live else self._start_lead_us
        if not live and self.cap_us is not None:  # talk-over: a new file starts at live lead
            target = min(target, self.cap_us)
        ts = self._next_us
        reset = (
            ts is None  # (re)start or a new source
            or ts < now_us + target // 2  # the source stalled
            or (live and abs(ts - now_us - target) > LIVE_DRIFT_US)  # capture clock drift
        )
        if ts is not None and reset and not live:  # a stall: the usual lead from here on
            target = self._start_lead_us = START_LEAD_US
        if reset or ts is None:
            ts = now_us + target
            self._start_us, self._frames = ts, 0
        self._frames += nbytes // FRAME_BYTES
        self._next_us = self._start_us + self._frames * 1_000_000 // SAMPLE_RATE
        return ts, reset

    def lead_us(self, now_us: int) -> int:
        """How far ahead of playback we are (0 before the first chunk)."""
        return 0 if self._next_us is None else self._next_us - now_us

    def wait_us(self, now_us: int, live: bool) -> int:
        """How long to pause before reading more: files/URLs stay at most `buffer_us` ahead;
        live sources are paced by their device, never by us."""
        if live:
            return 0
        ahead = self.buffer_us if self.cap_us is None else min(self.buffer_us, self.cap_us)
        return max(0, self.lead_us(now_us) - ahead)
