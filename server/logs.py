"""Logging for every process: quiet console, detailed rotating file per process.

The protocol library logs per-client non-compliance warnings for every browser (sendspin-js
predates encryption) and per-connection errors; those go to the log file, never to the
host's console.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


class _NotProtocolChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Its errors are per-connection too (e.g. "Writer failed" when a ghost is dropped).
        return not record.name.startswith("aiosendspin") or record.levelno >= logging.CRITICAL


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
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.addFilter(_NotProtocolChatter())
    console.setFormatter(logging.Formatter(f"[{process}] %(levelname)s %(message)s"))
    root.addHandler(console)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            Path(log_dir) / f"{process}.log", maxBytes=1_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
