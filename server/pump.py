"""A pump: reads one channel's source and fans every chunk out to all workers with its play
time (one pump per channel, all on the same clock; see server/lineup.py).

It owns what plays (the source, switching it, skipping a playlist's track, falling back to
silence when it breaks), what the guests are told is playing (a NowPlaying stamped with the
play time of the first chunk it belongs to), and the timeline policy's side effects (a Reset
before each new timeline, pacing files and URLs to a bounded lead). While nobody listens it
stops reading, and releases live devices. `mixer` is a hook for whatever must be mixed into
this channel's audio (the host's voice) just before it leaves.

Talk-over also needs `hold_lead()`: it keeps a file or URL at live lead while the host talks.
Phones already hold up to `buffer_s` of its future music, so holding pulls that in: a Reset
drops it on every phone and the chunks they had not played yet are sent again on a new
timeline PULL_IN_US from now (the music pauses that long, neither skips nor repeats, and from
then on carries the voice).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from server import clock, sources
from server.audio_format import duration_us
from server.ipc import frame
from server.level_meter import LevelMeter
from server.messages import Message, NowPlaying, Pcm, Reset
from server.nowplaying import Covers, Schedule, Track
from server.sources import media_session
from server.sources.base import Report, Source, SourceError, SourceSpec
from server.tasks import sleep_or_stop
from server.timeline import Timeline

log = logging.getLogger(__name__)
STALL_CHECK_S = 1.0  # a stalled read is retried so stop/idle/source changes stay responsive
IDLE_CHECK_S = 1.0
# Talk-over: music already on the phones starts again this soon; as lanes.SWITCH_LEAD_US,
# since with several channels the players rejoin through the library's late-join path.
PULL_IN_US = 300_000
Mixer = Callable[[int, bytes], bytes]
"""mixer(play time µs, pcm) -> pcm of the same length (48 kHz s16le stereo)."""


class PullIn:
    """Talk-over's pull-in (see the module docstring): a file's chunks the phones hold and
    have not played, taken back to be sent again on a new timeline PULL_IN_US from now."""

    def __init__(self) -> None:
        self.held: deque[tuple[int, bytes]] = deque()  # (play time, pcm) sent, not yet played
        self.replay: deque[bytes] = deque()  # taken back: sent again before reading on
        self.asked = False  # hold_lead() asked: take back at the next chunk
        self.pulled_from: int | None = None  # old play time of the first replayed chunk

    def clear(self) -> None:
        """A new timeline: nothing held or to replay."""
        self.held.clear()
        self.replay.clear()
        self.asked = False

    def sent(self, ts: int, pcm: bytes, now_us: int) -> None:
        self.held.append((ts, pcm))
        while self.held and self.held[0][0] < now_us:
            self.held.popleft()

    def take_back(self, timeline: Timeline, now_us: int) -> None:
        """The chunks held beyond the timeline's cap go to the replay queue, and the timeline
        restarts PULL_IN_US from now (nothing to do when the lead is within the cap)."""
        self.asked = False
        held = self.held
        while held and held[0][0] + duration_us(len(held[0][1])) // 2 <= now_us:
            held.popleft()  # played (or half played) already
        cap = timeline.cap_us
        if cap is None or not held or timeline.lead_us(now_us) <= cap + PULL_IN_US:
            return
        self.pulled_from = held[0][0]
        self.replay.extendleft(pcm for _, pcm in reversed(held))
        held.clear()
        timeline.restart(lead_us=PULL_IN_US)


class Workers(Protocol):
    """What the pump needs of the supervisor."""

    def send_all(self, msg: Message | bytes, *, droppable: bool = False) -> None: ...

    def listening(self) -> int: ...


class Pump:
    def __init__(
        self,
        spec: SourceSpec,
        timeline: Timeline,
        report: Report,
        on_change: Callable[[], None],
        index: int = 0,
    ) -> None:
        self.index = index  # the channel this pump plays (changes when one before it goes)
        self.mixer: Mixer | None = None
        self.spec = spec
        self.source: Source | None = None
        self.failed = False  # the chosen source broke; silence plays until another is picked
        self.chunks_sent = 0
        self.bytes_sent = 0  # audio decoded/captured once, whatever the number of workers
        self.level = LevelMeter()
        self.timeline = timeline
        self.listeners_changed = asyncio.Event()
        self.tracks: Schedule[Track] = Schedule()  # what phones hear now / will hear soon
        self.covers = Covers()  # served by the front door
        self._report = report
        self._on_change = on_change
        self._generation = 0  # bumped by a switch or skip: audio read before it is void
        self._announce = True  # the next chunk carries a NowPlaying even if none was made
        self._jumped_to: Track | None = None  # first track after a skip, until it is heard
        self._media: asyncio.Task[None] | None = None  # the host's media player, for system audio
        self._pull = PullIn()

    async def open(self) -> None:
        """Open the first source; SourceError tells the host why it cannot play."""
        self.source = await self.open_source(self.spec)
        self._follow_media()

    async def open_source(self, spec: SourceSpec) -> Source:
        """An opened source for `use` (SourceError: why it cannot play): a change of several
        channels opens every new source before anything changes."""
        source = sources.create(spec, self._report)
        await source.open()
        return source

    async def switch(self, spec: SourceSpec) -> str | None:
        """Play `spec` from the next chunk on; on failure keep the current source and return
        why (the caller tells the host, once)."""
        try:
            new = await self.open_source(spec)
        except SourceError as exc:
            return str(exc)
        await self.use(new)
        return None

    async def use(self, new: Source) -> None:
        """Play this opened source from the next chunk on."""
        old, self.source, self.spec = self.source, new, new.spec
        self.failed = False
        self._new_timeline()
        if old is not None:
            await old.close()
        self._follow_media()
        self._on_change()

    async def skip(self, step: int) -> str | None:
        """Next/previous track of a playlist, heard at once; why not, for other sources."""
        source = self.source
        skip = getattr(source, "skip", None)
        if skip is None or self.failed:
            return "Next and previous work when a playlist or folder plays."
        await skip(step, self._skip_from())
        self._new_timeline()
        return None

    def _skip_from(self) -> Track | None:
        """The track a next/previous counts from: the one heard, or, after a skip not heard
        yet, its target (so "next, next" moves two tracks). None: where the source's current
        feed started (a skip whose first chunk has not even been read)."""
        self.heard(clock.now_us())
        if self._announce:
            return None
        if self._jumped_to is not None:
            return self._jumped_to
        pending = self.tracks.pending()
        return self.tracks.current or (pending[0][1] if pending else None)

    def _new_timeline(self) -> None:
        self._generation += 1
        self._announce = True
        self.timeline.restart()
        self._pull.clear()

    def hold_lead(self, lead_us: int | None) -> None:
        """Talk-over: keep a file or URL at most `lead_us` ahead of playback, pulling in what
        the phones already hold (see the module docstring); None: back to `buffer_s`."""
        self.timeline.cap_us = lead_us
        self._pull.asked = lead_us is not None

    def _retime_tracks(self, workers: Workers, shift_us: int) -> None:
        """Titles waiting for pulled-in audio now wait `shift_us` more (Reset dropped them)."""
        pending = self.tracks.pending()
        self.tracks.new_timeline(jump=True)
        for ts, track in pending:
            self.tracks.add(ts + shift_us, track)
            workers.send_all(NowPlaying.of(ts + shift_us, track, self.index))

    def greeting(self) -> list[Message]:
        """What a (re)started worker needs to show the right track: the current one at once,
        then those still waiting for their audio."""
        msgs: list[Message] = []
        if self.tracks.current is not None:
            msgs.append(NowPlaying.of(0, self.tracks.current, self.index))
        msgs += [NowPlaying.of(ts, track, self.index) for ts, track in self.tracks.pending()]
        return msgs

    async def close(self) -> None:
        if self._media is not None:
            self._media.cancel()
        if self.source is not None:
            await self.source.close()

    # -- titles for live audio -------------------------------------------------------------
    def _follow_media(self) -> None:
        """System audio has no tags: follow what the host's media player says it plays."""
        if self._media is not None:
            self._media.cancel()
            self._media = None
        if self.spec.kind != "system":
            return
        watch = media_session.platform_watch(self._live_track)
        if watch is not None:
            self._media = asyncio.create_task(self._run_watch(watch), name="media-titles")

    @staticmethod
    async def _run_watch(watch: media_session.Watch) -> None:
        try:
            await watch.run()
        except Exception as exc:  # no session bus, no player API: titles stay unknown
            log.info("media-player titles unavailable: %s", exc)

    def _live_track(self, track: Track) -> None:
        """A title for live audio (from the media player, or typed by the host): it applies
        to the audio captured from now on."""
        if self.source is not None and self.source.live:
            self.source.announce(track)

    def set_track(self, title: str, artist: str) -> str | None:
        """The host typed what is playing (where the OS cannot tell us); why not, if not."""
        if self.source is None or not self.source.live:
            return "You can type what is playing for system audio or a microphone."
        self._live_track(Track(title=title.strip(), artist=artist.strip()))
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks_sent,
            "audio_s": round(duration_us(self.bytes_sent) / 1e6, 3),
            **(self.source.stats() if self.source else {}),
        }

    async def run(self, workers: Workers, stop: asyncio.Event) -> None:
        """Until `stop`: read, stamp, fan out; idle while nobody listens."""
        while not stop.is_set():
            if workers.listening() == 0:
                await self._idle(workers, stop)
                continue
            source, generation = self.source, self._generation
            assert source is not None
            if self._pull.asked:
                self._pull.take_back(self.timeline, clock.now_us())
            replayed = bool(self._pull.replay)
            if replayed:
                chunk = self._pull.replay.popleft()
            else:
                try:
                    chunk = await asyncio.wait_for(source.read(), STALL_CHECK_S)
                except TimeoutError:
                    continue  # e.g. a stream reconnecting (it reports that itself)
                except SourceError as exc:
                    if source is self.source and not stop.is_set():  # not closed by a switch
                        await self._fail(str(exc))
                    continue
                if stop.is_set():
                    break  # this channel was removed while the read was in flight
                if source is not self.source or generation != self._generation:
                    continue  # switched while this read was in flight: drop the old audio
            now = clock.now_us()
            ts, new_timeline = self.timeline.next(now, len(chunk), source.live)
            if new_timeline:
                # Workers drop audio queued on the old timeline, so phones never hear two
                # overlapping ones (a switch is heard at once).
                pulled, self._pull.pulled_from = self._pull.pulled_from, None
                jump = self._announce or pulled is not None
                workers.send_all(Reset(jump=jump, channel=self.index))
                if pulled is not None:
                    self._retime_tracks(workers, ts - pulled)
                elif self.tracks.new_timeline(jump=self._announce):
                    self._on_change()
            if not replayed:  # a replayed chunk's title was stamped when it was first read
                self._stamp_track(workers, source, ts)
            if not source.live:
                self._pull.sent(ts, chunk, now)
            if self.mixer is not None:
                chunk = self.mixer(ts, chunk)
            workers.send_all(frame(Pcm(ts=ts, pcm=chunk, channel=self.index)), droppable=True)
            self.chunks_sent += 1
            self.bytes_sent += len(chunk)
            self.level.add(chunk)
            wait_us = self.timeline.wait_us(clock.now_us(), source.live)
            if wait_us:
                await sleep_or_stop(stop, wait_us / 1_000_000)

    def _stamp_track(self, workers: Workers, source: Source, ts: int) -> None:
        """A track change the source announced (or, after a switch, at least the source's
        name) takes effect when this chunk plays."""
        track = source.take_track()
        jump, self._announce = self._announce, False
        if track is None and jump:
            track = Track()
        if track is None:
            return
        track = track.with_label(source.spec.short_label)
        if jump:
            self._jumped_to = track
        self.tracks.add(ts, track)
        self.covers.add(track)
        workers.send_all(NowPlaying.of(ts, track, self.index))

    def heard(self, now_us: int) -> bool:
        """Move the tracks whose audio now plays to `tracks.current`; True when it changed."""
        changed = self.tracks.due(now_us)
        if self._jumped_to is not None and self.tracks.current is self._jumped_to:
            self._jumped_to = None
        return changed

    async def _idle(self, workers: Workers, stop: asyncio.Event) -> None:
        """Nobody listens: stop decoding (and release live devices) until someone does."""
        self.timeline.restart()
        self._pull.held.clear()  # a replay queue stays: that music was not heard yet
        self._on_change()
        source = self.source
        closed = source is not None and source.close_when_idle
        if closed and source is not None:
            await source.close()
        while not stop.is_set() and workers.listening() == 0:
            self.listeners_changed.clear()
            await sleep_or_stop(self.listeners_changed, IDLE_CHECK_S)
        if closed and source is self.source and source is not None and not stop.is_set():
            try:
                await source.open()
            except SourceError as exc:
                await self._fail(str(exc))

    async def _fail(self, why: str) -> None:
        """The source broke: say so once and keep every phone's timeline with silence."""
        self.failed = True
        self._report("error", f"{why} Playing silence until you pick another source.")
        if self.source is not None:
            await self.source.close()
        self.source = await self.open_source(SourceSpec("silence"))
        self._announce = True
