"""Channels: up to three sources playing at once, each guest on one of them (pure parts).

A channel is a name, a colour and a source. The coordinator runs one pump per channel on one
clock; each worker routes every player to its channel with the protocol library's own
channel routing (see server/lanes.py). Nothing here does I/O, so it is tested alone in
tests/test_units.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from server.sources.base import SourceSpec

MAX_CHANNELS = 3
PALETTE: list[tuple[str, str]] = [("Red", "#e53935"), ("Blue", "#1e88e5"), ("Green", "#43a047")]
MAX_NAME = 40
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Channel:
    name: str
    colour: str
    source: SourceSpec

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "colour": self.colour, "source": self.source.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Channel:
        return cls(
            name=str(data["name"]),
            colour=str(data["colour"]),
            source=SourceSpec.from_dict(data["source"]),
        )


def default_channel(index: int, source: SourceSpec) -> Channel:
    name, colour = PALETTE[index % len(PALETTE)]
    return Channel(name, colour, source)


def as_channels(channels: SourceSpec | list[Channel]) -> list[Channel]:
    """A bare source is a party with one channel (the way every party was before channels)."""
    if isinstance(channels, SourceSpec):
        return [default_channel(0, channels)]
    return list(channels)


def problem(channels: list[Channel]) -> str | None:
    """Why this set of channels cannot play (for the host), or None."""
    if not 1 <= len(channels) <= MAX_CHANNELS:
        return f"A party has 1 to {MAX_CHANNELS} channels."
    for channel in channels:
        if not channel.name.strip() or len(channel.name) > MAX_NAME:
            return f"A channel needs a name of 1 to {MAX_NAME} characters."
        if not _COLOUR.match(channel.colour):
            return f"{channel.name}: the colour must look like #rrggbb."
    return None


def parse_arg(text: str, index: int) -> tuple[str, str]:
    """`--channel NAME=SOURCE` → (name, source text); a bare SOURCE gets the palette's name."""
    name, sep, source = text.partition("=")
    if not sep:
        return PALETTE[index % len(PALETTE)][0], text
    return name.strip() or PALETTE[index % len(PALETTE)][0], source.strip()


def plan(old: list[Channel], new: list[Channel]) -> list[int | None]:
    """For each new channel, the old channel it continues (its pump, its listeners), or None
    for a channel that is new. A channel continues the old one with the same name and
    source, else the same name (a new source), else the same source (renamed), else the one
    at the same place; an old channel nobody continues is removed."""
    taken: set[int] = set()
    result: list[int | None] = [None] * len(new)
    tests = (
        lambda o, n: o.name == n.name and o.source == n.source,
        lambda o, n: o.name == n.name,
        lambda o, n: o.source == n.source,
    )
    for same in tests:
        for i, channel in enumerate(new):
            if result[i] is not None:
                continue
            for k, was in enumerate(old):
                if k not in taken and same(was, channel):
                    result[i] = k
                    taken.add(k)
                    break
    for i in range(len(new)):
        if result[i] is None and i < len(old) and i not in taken:
            result[i] = i
            taken.add(i)
    return result
