"""Party settings shared by the CLI, the tray and the coordinator process."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from server.access import AccessError, clean_pin

DEFAULT_PORT = 8927
MAX_LISTENERS = 10_000  # a cap above what any worker set can carry is no cap
MAX_WORKERS = 16  # each worker is a process; past this a LAN party gains nothing


class ConfigError(ValueError):
    """A setting is out of range; the message says which and what is allowed."""


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass(frozen=True)
class PartyConfig:
    name: str = "Party Stream"
    port: int = DEFAULT_PORT  # the front door; workers use the next ports
    workers: int = 2
    host: str = "0.0.0.0"
    public_host: str | None = None  # address in the QR code; None = detected LAN address
    live_lead_ms: int = 500  # capture-to-phone delay for live sources
    buffer_s: float = 5.0  # how far file/URL decoding may run ahead of playback
    log_dir: str | None = None
    pin: str | None = None  # phones need it to join (server/access.py); None: open party
    max_listeners: int | None = None  # None: no cap

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(
                f"--workers must be between 1 and {MAX_WORKERS} (got {self.workers})."
            )
        if not 1024 <= self.port <= 65535 - self.workers:
            raise ConfigError(
                f"--port must be between 1024 and {65535 - self.workers} (got {self.port})."
            )
        if not 100 <= self.live_lead_ms <= 5000:
            raise ConfigError(f"Live delay must be 100–5000 ms (got {self.live_lead_ms}).")
        if not 1.0 <= self.buffer_s <= 30.0:
            raise ConfigError(f"Buffer must be 1–30 s (got {self.buffer_s}).")
        if not self.name.strip():
            raise ConfigError("The party needs a name.")
        if self.max_listeners is not None and not 1 <= self.max_listeners <= MAX_LISTENERS:
            raise ConfigError(
                f"--max-listeners must be 1–{MAX_LISTENERS} (got {self.max_listeners})."
            )
        try:
            object.__setattr__(self, "pin", clean_pin(self.pin))
        except AccessError as exc:
            raise ConfigError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartyConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
