"""Every message between our processes, in one file, and the one loop that dispatches them.

controller ⇄ coordinator: Hello, Start → Ready | Fatal, Status, Event,
                          SetSource | Skip | SetTrack | SetChannels | SetTalk
                          | SetTalkConfig → SourceResult, Stop,
                          SetAccess, ListenerAction; Roster (the host's per-phone rows).
coordinator ⇄ worker:     Hello, Serve → Ready | Failed, Count, Ping → Pong, Pcm, Reset,
                          NowPlaying, Lineup, Status, Stop; Roster ← Access, ListenerAction.
Children start warm: they import everything and link up, then wait for Start / Serve, so a
party prepared in advance goes live in well under a second.

A message is a small frozen dataclass; its wire form is a JSON header {"t": tag, ...fields}
plus an optional raw payload (only `Pcm` has one: audio never goes through JSON). Decoding
checks the tag and the field names, so a peer that speaks anything else is cut off at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from server.ipc import Link
    from server.nowplaying import Track
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
class Start(Message):
    """Controller → a warm coordinator: go live with these channels (server/channels.py
    Channel dicts; one for a party as it always was)."""

    channels: list[dict[str, Any]]


@_message
class Serve(Message):
    """Coordinator → a warm worker: open your port and serve phones."""

    host: str
    port: int
    name: str


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
    channel: int = 0


@_message
class SetChannels(Message):
    """The whole new set of channels (add, remove, rename, recolour, re-source); answered by
    a SourceResult. Listeners of a removed channel move to the first one."""

    id: int
    channels: list[dict[str, Any]]


@_message
class SourceResult(Message):
    """The one answer to a SetSource: error is None when the new source plays."""

    id: int
    error: str | None = None


@_message
class Skip(Message):
    """Next (step 1) or previous (step -1) track of a playlist; answered by a SourceResult."""

    id: int
    step: int
    channel: int = 0


@_message
class SetTrack(Message):
    """What the host typed is playing (live audio whose player the OS cannot tell us)."""

    id: int
    title: str
    artist: str = ""
    channel: int = 0


@_message
class SetTalk(Message):
    """Talk-over on (the host's mic mixed in, the music ducked) or off."""

    id: int
    on: bool


@_message
class SetTalkConfig(Message):
    """Which mic (None: the default), which channel (None: all), "push" or "always"."""

    id: int
    device: str | None = None
    channel: int | None = None
    mode: str = "push"


@_message
class Stop(Message):
    """Shut down gracefully (bounded by the sender's patience)."""


@_message
class Pcm(Message):
    """One chunk of 48 kHz s16 stereo to be played at `ts` (protocol clock, µs)."""

    PAYLOAD: ClassVar[str | None] = "pcm"
    ts: int
    pcm: bytes = b""
    channel: int = 0


@_message
class Reset(Message):
    """A new timeline starts: drop audio queued on the old one. `jump`: the audio goes
    elsewhere (switch, skip), so tracks waiting for the dropped audio never play; otherwise
    (resume after idle) the source goes on where it was and the newest of them plays now."""

    jump: bool = False
    channel: int = 0


@_message
class NowPlaying(Message):
    """The track heard from play time `ts` on (µs, protocol clock; 0 = at once). The cover
    image travels raw, like PCM."""

    PAYLOAD: ClassVar[str | None] = "artwork"
    ts: int
    channel: int = 0
    title: str = ""
    artist: str = ""
    album: str = ""
    duration_ms: int | None = None
    label: str = ""
    artwork_mime: str = ""
    artwork: bytes = b""

    @classmethod
    def of(cls, ts: int, track: Track, channel: int = 0) -> NowPlaying:
        return cls(ts=ts, channel=channel, **dataclasses.asdict(track))

    def track(self) -> Track:
        from server.nowplaying import Track

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.pop("ts")
        fields.pop("channel")
        return Track(**fields)


@_message
class Count(Message):
    """A worker's listeners (streaming now), sessions (client states it holds) and its
    listeners on each channel."""

    listeners: int
    sessions: int = 0
    channels: list[int] = field(default_factory=list)


@_message
class Lineup(Message):
    """Coordinator → workers: the party's channels now, as the index each had before (None:
    a new channel). Listeners of an old channel that is not kept move to channel 0. Also in
    every worker's greeting (then each index is its own)."""

    kept: list[int | None]


@_message
class Ping(Message):
    """Watchdog: a worker whose loop answers no Ping in time is stuck."""

    seq: int


@_message
class Pong(Message):
    seq: int
    rss: int = 0  # bytes; the watchdog restarts a worker that grows past its bound


@_message
class SetAccess(Message):
    """Controller → coordinator: the party's PIN and listener cap (None: none). Listeners
    already connected are not affected."""

    pin: str | None = None
    max_listeners: int | None = None


@_message
class Access(Message):
    """Coordinator → workers: the access rules (server/access.py AccessRules as a dict)."""

    rules: dict[str, Any]


@_message
class ListenerAction(Message):
    """The host acts on one phone: "mute" | "unmute" | "disconnect" | "block"."""

    worker: int
    client_id: str
    action: str


@_message
class Roster(Message):
    """One row per phone (server/roster.py), sent when it changed: worker → coordinator, and
    the whole party's coordinator → controller. The rows travel as the raw payload (JSON): a
    busy party's rows outgrow the 64 KiB header a frame may have."""

    PAYLOAD: ClassVar[str | None] = "rows"
    rows: bytes = b"[]"

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> Roster:
        return cls(rows=json.dumps(rows, separators=(",", ":")).encode())

    def decoded(self) -> list[dict[str, Any]]:
        try:
            rows = json.loads(self.rows)
        except ValueError:
            return []
        return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


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
    link: Link,
    handlers: Mapping[type[Message], Handler],
    tasks: TaskGroup | None = None,
    *,
    until: asyncio.Future[Any] | None = None,
) -> str:
    """Read messages and dispatch them by type until the link closes ("closed"), a Stop
    arrives that nobody handles ("stop") or a handler settled `until` ("done"). Handlers run
    in arrival order; async ones are awaited inline unless wrapped in Background."""
    from server.ipc import LinkClosed

    while until is None or not until.done():
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
    return "done"
