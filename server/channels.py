"""Channels: up to three sources a party plays at once, each with a name and a colour.

Placeholder of the shared contract for the desktop branch (the `channels` branch owns it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.sources.base import SourceSpec

MAX_CHANNELS = 3
PALETTE: list[tuple[str, str]] = [("Red", "#e53935"), ("Blue", "#1e88e5"), ("Green", "#43a047")]


@dataclass(frozen=True)
class Channel:
    name: str
    colour: str
    source: SourceSpec

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "colour": self.colour, "source": self.source.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Channel:
        return cls(data["name"], data["colour"], SourceSpec.from_dict(data["source"]))


def default_channel(index: int, source: SourceSpec) -> Channel:
    name, colour = PALETTE[index]
    return Channel(name, colour, source)
