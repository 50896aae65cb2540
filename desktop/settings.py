"""The host's choices, kept in a small JSON file so they survive restarts.

A file that cannot be read never stops the app: it is set aside (so nothing is lost) and the
defaults are used, with a notice saying so. Single bad values fall back one by one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args

import platformdirs

from server.access import AccessError, clean_pin
from server.channels import MAX_CHANNELS, PALETTE, Channel, default_channel, problem
from server.config import (
    DEFAULT_PORT,
    MAX_LISTENERS,
    MAX_WORKERS,
    ConfigError,
    PartyConfig,
    default_workers,
)
from server.sources.base import SourceKind, SourceSpec

log = logging.getLogger(__name__)

APP_DIR_NAME = "PartyStream"
FILE_NAME = "settings.json"
FORMAT_VERSION = 1
MAX_NAME_LENGTH = 60
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)


@dataclass(frozen=True)
class AppPaths:
    """Where this user's settings and logs live (temporary folders in tests)."""

    config_dir: Path
    log_dir: Path

    @classmethod
    def default(cls) -> AppPaths:
        return cls(
            Path(platformdirs.user_config_dir(APP_DIR_NAME, appauthor=False)),
            Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False)),
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / FILE_NAME


def one_channel(source: SourceSpec) -> tuple[Channel, ...]:
    """The channel set of a party that plays one source (as every party did before channels)."""
    return (default_channel(0, source),)


def new_channel(channels: tuple[Channel, ...]) -> Channel:
    """The channel "Add channel" makes: the first palette colour not in use, playing the demo
    until the host picks its source."""
    used = {c.colour for c in channels} | {c.name for c in channels}
    index = next(
        (i for i, (name, colour) in enumerate(PALETTE) if not {name, colour} & used),
        len(channels) % len(PALETTE),
    )
    return default_channel(index, SourceSpec("demo"))


@dataclass(frozen=True)
class Settings:
    channels: tuple[Channel, ...] = field(default_factory=lambda: one_channel(SourceSpec("demo")))
    port: int = DEFAULT_PORT
    workers: int = field(default_factory=default_workers)
    name: str = "Party Stream"
    start_on_launch: bool = False
    start_at_login: bool = False
    pin: str = ""  # phones need it to join; "" = an open party
    max_listeners: int = 0  # 0 = no cap
    talk_device: str | None = None  # the talk-over mic; None = the default input
    talk_channel: int | None = None  # the channel the voice goes to; None = all
    talk_mode: str = "push"  # "push" (press to talk) or "always"

    @property
    def source(self) -> SourceSpec:
        """The first channel's source: all that a one-channel party plays."""
        return self.channels[0].source

    def party_config(self, log_dir: Path | str | None, **extra: Any) -> PartyConfig:
        """The PartyConfig for the next start (raises ConfigError when out of range)."""
        return PartyConfig(
            name=self.name,
            port=self.port,
            workers=self.workers,
            log_dir=str(log_dir) if log_dir else None,
            pin=self.pin or None,
            max_listeners=self.max_listeners or None,
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": FORMAT_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = [c.to_dict() for c in value] if f.name == "channels" else value
        return data


def _source(value: Any) -> SourceSpec:
    if not isinstance(value, dict) or value.get("kind") not in SOURCE_KINDS:
        raise ValueError("unknown source")
    location, device = value.get("location", ""), value.get("device")
    if not isinstance(location, str) or not (device is None or isinstance(device, str)):
        raise ValueError("bad source")
    if value["kind"] in ("file", "playlist", "url") and not location:
        raise ValueError("source without a location")
    return SourceSpec(value["kind"], location, device, shuffle=value.get("shuffle") is True)


def _channel(value: Any) -> Channel:
    """One saved channel, by the party's own rules (name, #rrggbb colour) and ours (source)."""
    if not isinstance(value, dict):
        raise ValueError("not a channel")
    name, colour = value.get("name"), value.get("colour")
    if not isinstance(name, str) or not isinstance(colour, str):
        raise ValueError("not a channel")
    channel = Channel(name.strip(), colour.lower(), _source(value.get("source")))
    if why := problem([channel]):
        raise ValueError(why)
    return channel


def _channels(value: Any) -> tuple[tuple[Channel, ...], list[str]]:
    """The valid channels (at most MAX_CHANNELS) and the ones set aside, as the host counts."""
    if not isinstance(value, list):
        return (), ["channels"]
    kept: list[Channel] = []
    rejected: list[str] = []
    for number, entry in enumerate(value, 1):
        try:
            channel = _channel(entry)
        except ValueError:
            rejected.append(f"channel {number}")
            continue
        if len(kept) == MAX_CHANNELS:
            rejected.append(f"channel {number} (at most {MAX_CHANNELS})")
        else:
            kept.append(channel)
    if not kept and not rejected:
        rejected.append("channels")
    return tuple(kept), rejected


def _int_in(low: int, high: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError("out of range")
        return value

    return check


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("empty name")
    return value.strip()[:MAX_NAME_LENGTH]


def _pin(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a PIN")
    try:
        return clean_pin(value) or ""
    except AccessError as exc:
        raise ValueError(str(exc)) from None


def _device(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("not a device name")
    return value or None


def _talk_channel(value: Any) -> int | None:
    return None if value is None else _int_in(0, MAX_CHANNELS - 1)(value)


def _talk_mode(value: Any) -> str:
    if value not in ("push", "always"):
        raise ValueError("unknown talk mode")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not a flag")
    return value


_CHECKS = {
    "port": _int_in(1024, 65535 - MAX_WORKERS),
    "workers": _int_in(1, MAX_WORKERS),
    "name": _name,
    "start_on_launch": _flag,
    "start_at_login": _flag,
    "pin": _pin,
    "max_listeners": _int_in(0, MAX_LISTENERS),
    "talk_device": _device,
    "talk_channel": _talk_channel,
    "talk_mode": _talk_mode,
}


def from_json(data: Any) -> tuple[Settings, list[str]]:
    """Settings from parsed JSON, and the names of fields that had to fall back."""
    if not isinstance(data, dict):
        raise ValueError("settings must be an object")
    values: dict[str, Any] = {}
    rejected: list[str] = []
    for key, check in _CHECKS.items():
        if key not in data:
            continue
        try:
            values[key] = check(data[key])
        except ValueError:
            rejected.append(key)
    if "channels" in data:
        channels, bad = _channels(data["channels"])
        rejected += bad
        if channels:
            values["channels"] = channels
    elif "source" in data:  # a file from before channels: its source is the one channel
        try:
            values["channels"] = one_channel(_source(data["source"]))
        except ValueError:
            rejected.append("source")
    settings = Settings(**values)
    try:
        settings.party_config(None)
    except ConfigError:  # e.g. a port too high for this many workers
        rejected.append("port")
        settings = replace(settings, port=DEFAULT_PORT)
    return settings, rejected


class SettingsStore:
    """Loads and atomically saves Settings at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> tuple[Settings, str | None]:
        """The saved settings (defaults when there are none) and a notice for the host."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Settings(), None
        except OSError as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return Settings(), f"Your settings could not be read ({exc.strerror}); using defaults."
        try:
            settings, rejected = from_json(json.loads(text))
        except ValueError:  # JSONDecodeError included
            kept = self._set_aside()
            log.warning("corrupt settings file %s (kept as %s)", self.path, kept)
            where = f" The old file was kept as {kept.name}." if kept else ""
            return Settings(), f"Your settings file was damaged, so defaults are used.{where}"
        if rejected:
            log.warning("settings reset to defaults: %s", ", ".join(rejected))
            return settings, "Some settings were invalid and were reset: " + ", ".join(
                r.replace("_", " ") for r in rejected
            ) + "."
        return settings, None

    def save(self, settings: Settings) -> None:
        """Write to a temporary file first so a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(settings.to_json(), out, indent=2)
                out.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _set_aside(self) -> Path | None:
        target = self.path.with_name("settings.damaged.json")
        try:
            os.replace(self.path, target)
        except OSError:
            return None
        return target
