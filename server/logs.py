"""Logging for every process: quiet console, detailed rotating file per process.

The protocol library logs per-client non-compliance warnings for every browser (sendspin-js
predates encryption) and per-connection errors; those go to the log file, never to the
host's console. Anything a stranger can trigger at will (a malformed request, a connection
flood, running out of file descriptors) must not be able to fill the disk or the console:
expected bad input is one line without a traceback, and the same message is logged at most
`THROTTLE_BURST` times per `THROTTLE_WINDOW_S`; the rest are counted and summed up in the
next line of that kind.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
THROTTLE_WINDOW_S = 60.0
THROTTLE_BURST = 3  # identical messages logged per window; the rest are counted
THROTTLE_KEYS = 512  # distinct messages remembered (bounded: keys come from stray input)
# Errors a peer causes by sending junk or vanishing: a line, not a traceback.
_EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, EOFError)


def _expected(exc: BaseException | None) -> bool:
    """A peer's doing. aiohttp's errors count only where aiohttp is loaded already (the
    party's processes): the tray app must not import it just to start."""
    if isinstance(exc, _EXPECTED_ERRORS):
        return True
    http = sys.modules.get("aiohttp.http_exceptions")
    return http is not None and isinstance(exc, http.HttpProcessingError)


class Throttle(logging.Filter):
    """Pass each kind of message `burst` times per `window_s`.

    A kind is its call site and level, not its text: per-peer loggers and messages carry
    addresses and ids, so text would make every flooding connection a new kind.

    Suppressed records are counted; the first one let through in a later window says how
    many were dropped, so nothing disappears silently.
    """

    def __init__(self, window_s: float = THROTTLE_WINDOW_S, burst: int = THROTTLE_BURST) -> None:
        super().__init__()
        self.window_s = window_s
        self.burst = burst
        self._seen: dict[tuple[str, int, int], list[float]] = {}  # [window start, passed, held]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.pathname, record.lineno, record.levelno)
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            held = int(entry[2]) if entry else 0
            if len(self._seen) >= THROTTLE_KEYS:
                self._seen.clear()
            self._seen[key] = [now, 1, 0]
            if held:
                record.msg = f"{record.msg} [and {held} more like this in the last window]"
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


class QuietExpected(logging.Filter):
    """A traceback for a peer's junk or disconnect is noise: keep one line, at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if _expected(exc):
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _NotProtocolChatter(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level  # checked again here: QuietExpected may have lowered a record

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        # Its errors are per-connection too (e.g. "Writer failed" when a ghost is dropped),
        # and so are the HTTP server's (a malformed request from someone on the LAN).
        return (
            not record.name.startswith(("aiosendspin", "aiohttp"))
            or record.levelno >= logging.CRITICAL
        )


def default_log_dir() -> str:
    """Where every Party Stream process logs unless told otherwise ("Open logs" opens it)."""
    import platformdirs

    return platformdirs.user_log_dir("PartyStream", appauthor=False)


def tail(log_dir: str | None, process: str, lines: int = 5) -> list[str]:
    """The last lines a process logged: kept for the host when that process crashes."""
    if not log_dir:
        return []
    try:
        with open(Path(log_dir) / f"{process}.log", encoding="utf-8", errors="replace") as f:
            return [line.rstrip() for line in f.readlines()[-lines:]]
    except OSError:
        return []


def setup(process: str, log_dir: str | None, *, console_level: int = logging.WARNING) -> None:
    """Configure the root logger of this process (safe to call once per process)."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    quiet = QuietExpected()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.addFilter(quiet)
    console.addFilter(_NotProtocolChatter(console_level))
    console.addFilter(Throttle())
    console.setFormatter(logging.Formatter(f"[{process}] %(levelname)s %(message)s"))
    root.addHandler(console)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            Path(log_dir) / f"{process}.log", maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(quiet)
        handler.addFilter(Throttle())
        root.addHandler(handler)
