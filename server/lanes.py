"""A worker's channels ("lanes"): which channel each player hears, routed by the library.

aiosendspin routes players itself: the stream's group takes a `channel_resolver` (player id
→ channel UUID), each commit carries one channel's chunk with its own play time, and a
player's role re-reads its channel whenever it is used. So a worker keeps its one group and
one stream for every channel, and each channel is encoded once per format, whatever the
number of phones on it.

Moving a player (a guest's tap, or its channel removed) needs no reconnect: the player is
told to drop what it buffered of the old channel (stream/clear), then rejoins through the
library's late-join path at SWITCH_LEAD_US from now, fed from the stream's cache of the new
channel (encoded audio when another phone here takes the same format, else the raw PCM the
stream keeps for every lane). Play times come from the one clock, so the guest lands in sync
with everyone already on that channel.

A new timeline on one channel (a source switch, a skip) must drop only that channel's queued
audio, but PushStream.clear() drops every channel's. So a lane has two UUIDs used in turn:
its players move to the other one (the same move as above, at once), and the library
releases the old UUID's encoders and caches as its last player leaves. A party with one
channel keeps using clear(), exactly as before channels existed.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from aiosendspin.server.push_stream import PushStream

from server import clock
from server.admission import is_listening

SWITCH_LEAD_US = 250_000  # a moved player hears its new channel this soon (send + decode)
REPLAY_MARGIN_US = 150_000  # recent audio closer to its play time than this is not replayed


class Lane:
    """One channel as this worker streams it."""

    def __init__(self, serial: int) -> None:
        self.serial = serial  # unique in this worker: lane 0 of a new worker is MAIN_CHANNEL
        self.turn = 0
        self.recent: deque[tuple[int, bytes]] = deque()  # future audio, for a fresh stream

    @property
    def uuid(self) -> UUID:
        return UUID(int=self.serial * 2 + self.turn)

    def uuids(self) -> tuple[UUID, UUID]:
        return UUID(int=self.serial * 2), UUID(int=self.serial * 2 + 1)

    def keep(self, ts: int, pcm: bytes) -> None:
        """Remember a chunk still to play, forgetting those too close to play to replay."""
        self.recent.append((ts, pcm))
        horizon = clock.now_us() + REPLAY_MARGIN_US
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()

    def replayable(self) -> list[tuple[int, bytes]]:
        horizon = clock.now_us() + REPLAY_MARGIN_US
        return [(ts, pcm) for ts, pcm in self.recent if ts >= horizon]


def _players(client: Any) -> list[Any]:
    return list(client.roles_by_family("player"))


def rejoin(stream: PushStream | None, role: Any, resume_at_us: int | None) -> None:
    """Send a player's role through the late-join path on the channel it now resolves to,
    after telling the player to drop the audio it buffered (stream/clear). A player that is
    away picks its channel up when it comes back."""
    if stream is None or stream.is_stopped or not role.has_connection():
        return
    if role.get_audio_requirements() is None:
        return
    role.on_stream_clear()
    stream.on_role_format_changed(role, resume_at_us=resume_at_us)


class Lanes:
    def __init__(self) -> None:
        self._serials = itertools.count()
        self.lanes: list[Lane] = [Lane(next(self._serials))]
        self._of: dict[str, Lane] = {}  # player id -> its lane (absent: the first)

    # -- routing ---------------------------------------------------------------------------
    def lane_of(self, player_id: str) -> Lane:
        lane = self._of.get(player_id)
        return lane if lane is not None and lane in self.lanes else self.lanes[0]

    def resolve(self, player_id: str) -> UUID:
        """The library's channel_resolver."""
        return self.lane_of(player_id).uuid

    def index_of(self, player_id: str) -> int:
        return self.lanes.index(self.lane_of(player_id))

    def at(self, index: int) -> Lane | None:
        return self.lanes[index] if 0 <= index < len(self.lanes) else None

    def forget(self, player_id: str) -> None:
        self._of.pop(player_id, None)

    def counts(self, clients: Iterable[Any]) -> list[int]:
        """Listeners on each lane."""
        out = [0] * len(self.lanes)
        for client in clients:
            if is_listening(client):
                out[self.index_of(client.client_id)] += 1
        return out

    def open_stream(self, stream: PushStream) -> None:
        """Keep raw PCM of every lane in a new stream: what a player switching in replays."""
        for lane in self.lanes:
            for uuid in lane.uuids():
                stream.enable_pcm_cache_for_channel(uuid)

    # -- changes ---------------------------------------------------------------------------
    def move(self, stream: PushStream | None, client: Any, index: int) -> None:
        """Put one player on channel `index` (which exists) from SWITCH_LEAD_US from now."""
        lane = self.lanes[index]
        if self.lane_of(client.client_id) is lane:
            return
        self._of[client.client_id] = lane
        resume_at = clock.now_us() + SWITCH_LEAD_US
        for role in _players(client):
            rejoin(stream, role, resume_at)

    def new_timeline(self, stream: PushStream | None, index: int, clients: Iterable[Any]) -> None:
        """Drop what was queued on this lane's old timeline, and only that."""
        lane = self.at(index)
        if lane is None:
            return
        lane.recent.clear()
        if stream is None or stream.is_stopped:
            return
        if len(self.lanes) == 1:
            stream.clear()
            return
        lane.turn ^= 1
        stream.disable_pcm_cache_for_channel(lane.uuid)  # a stale cache from two turns ago
        stream.enable_pcm_cache_for_channel(lane.uuid)
        for client in clients:
            if self.lane_of(client.client_id) is lane:
                for role in _players(client):
                    rejoin(stream, role, None)

    def relineup(
        self, kept: list[int | None], stream: PushStream | None, clients: list[Any]
    ) -> None:
        """The party's channels changed (see messages.Lineup); players of a lane that is not
        kept move to the first channel."""
        old = self.lanes
        for client in clients:  # those on the first lane by default stay on it
            self._of.setdefault(client.client_id, old[0])
        self.lanes = [
            old[k] if k is not None and 0 <= k < len(old) else Lane(next(self._serials))
            for k in kept
        ] or [Lane(next(self._serials))]
        if stream is not None and not stream.is_stopped:
            self.open_stream(stream)
        resume_at = clock.now_us() + SWITCH_LEAD_US
        for client in clients:
            if self._of[client.client_id] not in self.lanes:
                del self._of[client.client_id]
                for role in _players(client):
                    rejoin(stream, role, resume_at)
        for player_id, lane in list(self._of.items()):
            if lane not in self.lanes:
                del self._of[player_id]
