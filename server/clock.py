"""Timestamps on the protocol's own clock.

aiosendspin schedules playback on CLOCK_MONOTONIC_RAW; time.monotonic() is slewed by NTP and
drifts away from it, so every play_start_us in this project comes from here.
"""

from aiosendspin.clock import RawMonotonicClock

_CLOCK = RawMonotonicClock()


def now_us() -> int:
    """Current time in microseconds on the clock the Sendspin server uses."""
    return _CLOCK.now_us()
