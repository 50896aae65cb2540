"""What the host's own media player says is playing, for "System audio" parties.

Captured system audio carries no tags, so we ask the OS: MPRIS on Linux (server/sources/
mpris.py), the System Media Transport Controls on Windows (server/sources/smtc.py). macOS has
no public API for this (MediaRemote is private), so there the title stays a clear "System
audio" and the host can type what is playing in the tray. A watcher that cannot start (no
session bus, no PyWinRT) is logged once and the party plays on without titles.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Protocol

from server.nowplaying import Track

log = logging.getLogger(__name__)


class Watch(Protocol):
    async def run(self) -> None: ...


def platform_watch(on_track: Callable[[Track], None], platform: str = sys.platform) -> Watch | None:
    """The watcher for this OS, or None where there is none (macOS, a missing library)."""
    try:
        if platform.startswith("linux"):
            from server.sources.mpris import MprisWatch

            return MprisWatch(on_track)
        if platform == "win32":
            from server.sources.smtc import SmtcWatch

            return SmtcWatch(on_track)
    except ImportError as exc:
        log.info("no media-player titles on this system: %s", exc)
    return None
