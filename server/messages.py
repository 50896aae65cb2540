"""Every message between our processes, in one file, and the one loop that dispatches them.

controller ⇄ coordinator: Hello, Ready, Status, Event, Fatal, SetSource → SourceResult, Stop.
coordinator ⇄ worker:     Hello, Ready, Failed, Count, Pong ← Ping, Pcm, Reset, Status, Stop.

A message is a small frozen dataclass; its wire form is a JSON header {"t": tag, ...fields}
plus an optional raw payload (only `Pcm` has one: audio never goes through JSON). Decoding
checks the tag and the field names, so a peer that speaks anything else is cut off at once.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from server.ipc import Link
    from server.tasks import TaskGroup

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A frame that is not one of our messages."""


@dataclass(frozen=True)
class Message:
    TAG: ClassVar[str] = ""
    PAYLOAD: ClassVar[str | None] = None  # the one bytes field sent raw, outside the JSON


_BY_TAG: dict[str, type[Message]] = {}


def _message[M: type[Message]](cls: M) -> M:
    cls = dataclass(frozen=True)(cls)
    cls.TAG = cls.__name__.lower()
    _BY_TAG[cls.TAG] = cls
    return cls


@_message
class Hello(Message):
    """First frame on every link: proves the child was spawned by us."""

    token: str
    role: str  # "coordinator" | "worker"
    id: int = 0


@_message
class Ready(Message):
    """The child is serving (the coordinator sends its first full status with it)."""

    status: dict[str, Any] = field(default_factory=dict)


@_message
class Failed(Message):
    """A worker could not start (e.g. its port is taken); it exits right after."""

    text: str


@_message
class Status(Message):
    """Coordinator → controller: full status; coordinator → workers: the public view."""

    status: dict[str, Any]


@_message
class Event(Message):
    """Something the host should be told once (level: info | warning | error)."""

    level: str
    text: str


@_message
class Fatal(Message):
    """The party cannot go on (or could not start); the coordinator exits next."""

    text: str


@_message
class SetSource(Message):
    id: int
    source: dict[str, Any]


@_message
class SourceResult(Message):
    """The one answer to a SetSource: error is None when the new source plays."""

    id: int
    error: str | None = None


@_message
class Stop(Message):
    """Shut down gracefully (bounded by the sender's patience)."""


@_message
class Pcm(Message):
    """One chunk of 48 kHz s16 stereo to be played at `ts` (protocol clock, µs)."""

    PAYLOAD: ClassVar[str | None] = "pcm"
    ts: int
    pcm: bytes = b""


@_message
class Reset(Message):
    """A new timeline starts: drop audio queued on the old one."""


@_message
class Count(Message):
    """A worker's listeners (streaming now) and sessions (client states it holds)."""

    listeners: int
    sessions: int = 0


@_message
class Ping(Message):
    """Watchdog: a worker whose loop answers no Ping in time is stuck."""

    seq: int


@_message
class Pong(Message):
    seq: int
    rss: int = 0  # bytes; the watchdog restarts a worker that grows past its bound


def encode(msg: Message) -> tuple[bytes, bytes]:
    """(JSON header, raw payload)."""
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    payload = fields.pop(msg.PAYLOAD) if msg.PAYLOAD else b""
    header = json.dumps({"t": msg.TAG, **fields}, separators=(",", ":")).encode()
    return header, payload


def decode(header: bytes, payload: bytes) -> Message:
    """The message a frame carries; ProtocolError for anything that is not ours."""
    try:
        data = json.loads(header)
        cls = _BY_TAG[data.pop("t")]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"not a message: {header[:80]!r}") from exc
    if cls.PAYLOAD:
        data[cls.PAYLOAD] = payload
    try:
        return cls(**data)
    except TypeError as exc:
        raise ProtocolError(f"bad {cls.TAG} message: {exc}") from exc


@dataclass(frozen=True)
class Background:
    """Marks a handler that may be slow: it runs as an owned task, so the link keeps being
    read and a Stop is never stuck behind it."""

    fn: Callable[[Any], Awaitable[None]]


Handler = Callable[[Any], Awaitable[None] | None] | Background


async def serve_link(
    link: Link, handlers: Mapping[type[Message], Handler], tasks: TaskGroup | None = None
) -> str:
    """Read messages and dispatch them by type until the link closes ("closed") or a Stop
    arrives that nobody handles ("stop"). Handlers run in arrival order; async ones are
    awaited inline unless wrapped in Background."""
    from server.ipc import LinkClosed

    while True:
        try:
            msg = await link.recv()
        except LinkClosed:
            return "closed"
        handler = handlers.get(type(msg))
        if handler is None:
            if isinstance(msg, Stop):
                return "stop"
            log.debug("ignoring %s on this link", msg.TAG)
            continue
        if isinstance(handler, Background):
            assert tasks is not None, "a Background handler needs a TaskGroup"
            tasks.spawn(msg.TAG, handler.fn(msg))
            continue
        result = handler(msg)
        if inspect.isawaitable(result):
            await result
