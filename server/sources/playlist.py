"""Playlists: a folder or an M3U/M3U8/PLS file played in order or shuffled, with next/previous.

Reading the list and choosing the order are pure functions and a small class (`Order`),
tested alone; `PlaylistSource` decodes one track after another in its feed thread. A file
that cannot be played is skipped with a notice; a list with nothing playable stops with one
error. A skip restarts the feed at the new track: the pump starts a new timeline, so every
phone hears it within about a second.
"""

from __future__ import annotations

import asyncio
import configparser
import logging
import os
import random
import threading
from collections import deque
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import av

from server.nowplaying import Track
from server.sources.base import FeedSource, Report, SourceError, SourceSpec
from server.sources.decode import decode_pcm, probe, title_from_name

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".wav", ".wma", ".aiff", ".aif"}
    | {".mka", ".webm", ".mp4"}
)


class PlaylistError(SourceError):
    """The list itself cannot be read or names nothing."""


def _local(entry: str, base: str) -> str | None:
    """An entry as a local path (relative to the list's folder), or None for a URL."""
    entry = entry.strip()
    if entry.lower().startswith("file://"):
        return unquote(urlsplit(entry).path)
    if "://" in entry:
        return None  # streams in a playlist are not supported (yet): skipped with a notice
    return os.path.normpath(os.path.join(base, os.path.expanduser(entry)))


def read_entries(location: str) -> list[str]:
    """The tracks a folder (its audio files, sorted, subfolders included) or an M3U/M3U8/PLS
    file names, in order. URLs in a list are dropped (and logged)."""
    path = os.path.expanduser(location)
    if os.path.isdir(path):
        found = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            found += [
                os.path.join(root, f)
                for f in sorted(files, key=str.casefold)
                if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS
            ]
        return found
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise PlaylistError(f"Cannot read the playlist {os.path.basename(path)!r}: {exc}") from exc
    base = os.path.dirname(os.path.abspath(path))
    if path.lower().endswith(".pls"):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text)
            section = parser["playlist"]
        except (configparser.Error, KeyError) as exc:
            raise PlaylistError(f"{os.path.basename(path)!r} is not a PLS playlist.") from exc
        numbered = sorted(
            (int(k[4:]), v) for k, v in section.items() if k.startswith("file") and k[4:].isdigit()
        )
        raw = [v for _, v in numbered]
    else:
        raw = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    entries = []
    for item in raw:
        local = _local(item, base)
        if local is None:
            log.info("playlist entry skipped (not a local file): %s", item)
        else:
            entries.append(local)
    return entries


class Order:
    """Which track plays: in list order, or shuffled so no track repeats before every track
    has played (and the next round never starts with the one that just ended)."""

    def __init__(self, count: int, shuffle: bool, rng: random.Random | None = None) -> None:
        assert count > 0
        self.count = count
        self.shuffle = shuffle
        self._rng = rng or random.Random()
        self._rounds: list[list[int]] = [self._round(None)]
        self._pos = 0  # index into the concatenated rounds

    def _round(self, last: int | None) -> list[int]:
        order = list(range(self.count))
        if self.shuffle:
            self._rng.shuffle(order)
            if last is not None and self.count > 1 and order[0] == last:
                order[0], order[-1] = order[-1], order[0]
        return order

    def _at(self, pos: int) -> int:
        while pos >= len(self._rounds) * self.count:
            self._rounds.append(self._round(self._rounds[-1][-1]))
        return self._rounds[pos // self.count][pos % self.count]

    @property
    def current(self) -> int:
        return self._at(self._pos)

    @property
    def at_start(self) -> bool:
        return self._pos == 0

    @property
    def position(self) -> int:
        """Where we are in the endless sequence of rounds (0 = the first track played)."""
        return self._pos

    def step(self, step: int, start: int | None = None) -> int:
        """Move by `step` tracks from `start` (default: here); previous stops at the very
        first track. Returns the new current track."""
        self._pos = max(0, (self._pos if start is None else start) + step)
        return self.current


class PlaylistSource(FeedSource):
    """Plays the tracks of a folder or playlist file one after another, looping at the end."""

    def __init__(self, spec: SourceSpec, report: Report) -> None:
        super().__init__(spec, report)
        self.entries: list[str] = []
        self.order: Order | None = None
        self._lock = threading.Lock()  # the feed thread and skip() both move the order
        self._direction = 1  # after "previous", broken files are skipped backwards too
        self._told: set[str] = set()  # files already reported as skipped (once each, not per loop)
        self._decoded: deque[tuple[Track, int]] = deque(maxlen=64)  # track → order position
        self._generation = 0  # of the feed allowed to move the order
        self._feed_start = 0  # where the current feed started (its thread moves the order on)

    async def open(self) -> None:
        entries = await asyncio.to_thread(read_entries, self.spec.location)
        if not entries:
            raise PlaylistError(f"{self.spec.short_label!r} has no music files we can play.")
        if self.order is None or self.entries != entries:
            self.entries = entries
            self.order = Order(len(entries), self.spec.shuffle)
        with self._lock:
            self._generation += 1
        self._start()

    def _start(self) -> None:
        assert self.order is not None
        generation, self._feed_start = self._generation, self.order.position
        self.start_feed(lambda stop: self._play(stop, generation))

    async def skip(self, step: int, heard: Track | None) -> None:
        """Next (1) or previous (-1) from the track the guests hear (`heard`: the feed has
        decoded seconds ahead, maybe into the next tracks; None, or a track no longer known:
        from where the current feed started, i.e. where the last skip landed). The feed
        restarts there."""
        assert self.order is not None
        with self._lock:
            self._generation += 1  # the old feed thread may not move the order any more
            start = self._position_of(heard)
            self.order.step(step, self._feed_start if start is None else start)
            self._direction = 1 if step > 0 else -1
        await asyncio.to_thread(self._settle)
        old = self._feed
        self._start()  # read() drops whatever the old feed still had queued
        if old is not None:
            old.stop()

    def _settle(self) -> None:
        """Move past files that cannot play now, so the position is the track that will be
        heard: a quick "next, next" then counts from it."""
        assert self.order is not None
        for _ in range(len(self.entries)):
            path = self.entries[self.order.current]
            try:
                probe(path)
                return
            except SourceError as exc:
                self._tell(path, exc)
            if self.order.at_start:
                self._direction = 1
            self.order.step(self._direction)

    def _tell(self, path: str, exc: Exception) -> None:
        """A file that cannot play, reported once (not on every pass of the loop)."""
        if path not in self._told:
            self._told.add(path)
            why = str(exc).replace(repr(path), "it")
            self.report("warning", f"Skipped {os.path.basename(path)!r}: {why}")

    def _position_of(self, heard: Track | None) -> int | None:
        for track, position in reversed(self._decoded):
            if track is heard:
                return position
        return None

    def _play(self, stop: threading.Event, generation: int) -> Iterator[bytes | Track]:
        """From the current track on, forever; unreadable files are skipped with a notice."""
        assert self.order is not None
        failures = 0
        while not stop.is_set():
            with self._lock:
                if generation != self._generation:
                    return
                index, position = self.order.current, self.order.position
            path = self.entries[index]
            produced = False
            try:
                probe(path)  # a broken file fails here, before any of its audio
                for item in decode_pcm(path, stop, label=title_from_name(path)):
                    if isinstance(item, Track):
                        self._decoded.append((item, position))
                    produced = produced or isinstance(item, bytes)
                    yield item
            except (SourceError, av.error.FFmpegError, OSError) as exc:
                self._tell(path, exc)
            if stop.is_set():
                return
            failures = 0 if produced else failures + 1
            if failures >= len(self.entries):
                raise SourceError(f"Nothing in {self.spec.short_label!r} can be played.")
            with self._lock:
                if generation != self._generation:
                    return
                if produced or self.order.at_start:
                    self._direction = 1
                self.order.step(self._direction)

    def ended(self) -> str:
        return f"Playback of {self.spec.short_label!r} ended unexpectedly."
