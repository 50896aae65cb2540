"""The pure parts of now playing and playlists: reading lists, the order, the timing."""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path

from PIL import Image

from server.messages import NowPlaying, decode, encode
from server.nowplaying import ARTWORK_MAX_PX, Schedule, Track, fit_artwork
from server.sources.base import SourceSpec
from server.sources.playlist import Order, read_entries


def test_read_entries_from_m3u_pls_and_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.mp3", "A.flac", "notes.txt", "sub/c.ogg"):
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).relative_to(tmp_path).as_posix() for p in read_entries(str(tmp_path))] == [
        "A.flac", "b.mp3", "sub/c.ogg"
    ]  # fmt: skip
    m3u = tmp_path / "list.m3u8"
    m3u.write_text(
        "\ufeff#EXTM3U\n#EXTINF:12,Someone - Song\nsub/c.ogg\n\nhttp://radio.example/live\n"
        f"{tmp_path / 'b.mp3'}\nfile://{tmp_path / 'A.flac'}\n",
        encoding="utf-8",
    )
    assert read_entries(str(m3u)) == [
        str(tmp_path / "sub/c.ogg"), str(tmp_path / "b.mp3"), str(tmp_path / "A.flac")
    ]  # fmt: skip
    pls = tmp_path / "list.pls"
    pls.write_text("[playlist]\nFile2=b.mp3\nTitle2=B\nFile1=A.flac\nNumberOfEntries=2\n")
    assert read_entries(str(pls)) == [str(tmp_path / "A.flac"), str(tmp_path / "b.mp3")]
    assert SourceSpec.parse(str(pls)).kind == "playlist"
    assert SourceSpec.parse(str(tmp_path)).kind == "playlist"
    assert SourceSpec.parse(str(tmp_path / "b.mp3")).kind == "file"
    assert SourceSpec("playlist", str(m3u)).short_label == "list.m3u8"


def test_order_in_sequence_loops_and_previous_stops_at_the_start() -> None:
    order = Order(3, shuffle=False)
    assert [order.current] + [order.step(1) for _ in range(4)] == [0, 1, 2, 0, 1]
    assert order.step(-1) == 0 and order.step(-5) == 0 and order.at_start


def test_shuffle_never_repeats_before_the_list_is_exhausted() -> None:
    for seed in range(50):
        order = Order(5, shuffle=True, rng=random.Random(seed))
        played = [order.current] + [order.step(1) for _ in range(19)]
        for start in range(0, 20, 5):
            assert sorted(played[start : start + 5]) == [0, 1, 2, 3, 4], played
        assert all(a != b for a, b in itertools.pairwise(played)), played
    # Previous goes back through what was played, in the order it was played.
    order = Order(5, shuffle=True, rng=random.Random(1))
    played = [order.current, order.step(1), order.step(1)]
    assert [order.step(-1), order.step(-1)] == played[1::-1]


def test_schedule_applies_at_play_time_and_on_a_new_timeline() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add(100, "a")
    schedule.add(200, "b")
    assert not schedule.due(99) and schedule.current is None
    assert schedule.due(150) and schedule.current == "a" and schedule.next_at() == 200
    schedule.add(300, "c")
    # Resume after idle: the source goes on where it was, so the newest one plays now.
    assert schedule.new_timeline(jump=False) and schedule.current == "c"
    schedule.add(400, "d")
    # A skip: what waited for dropped audio never plays.
    assert not schedule.new_timeline(jump=True) and schedule.current == "c"
    assert schedule.next_at() is None


def test_now_playing_message_carries_the_cover_raw_and_never_a_path() -> None:
    track = Track(title="Song", artist="Band", duration_ms=1234, label="song",
                  artwork=b"\xff\xd8\xffdata", artwork_mime="image/jpeg")  # fmt: skip
    header, payload = encode(NowPlaying.of(42, track))
    assert payload == track.artwork and b"\xff\xd8" not in header
    msg = decode(header, payload)
    assert isinstance(msg, NowPlaying) and msg.ts == 42 and msg.track() == track
    assert track.public()["artwork"] == track.artwork_key and len(track.artwork_key) == 16
    assert Track(label="System audio").one_line() == "System audio"


def test_big_covers_are_scaled_down_and_junk_is_ignored() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (10, 20, 30)).save(buf, "PNG")
    data, mime = fit_artwork(buf.getvalue())
    assert mime == "image/jpeg"
    with Image.open(io.BytesIO(data)) as img:
        assert max(img.size) == ARTWORK_MAX_PX
    assert fit_artwork(b"not an image") == (b"", "")
    small = io.BytesIO()
    Image.new("RGB", (50, 50)).save(small, "PNG")
    assert fit_artwork(small.getvalue()) == (small.getvalue(), "image/png")


# -- system audio: the OS's idea of what plays (fakes only at the OS boundary) -------------


def test_mpris_metadata_becomes_a_track_and_the_playing_player_wins(tmp_path: Path) -> None:
    from dbus_fast import Variant

    from server.sources.mpris import Seen, pick, read_art, track_from_metadata

    meta = {
        "xesam:title": Variant("s", "  Song\n Title "),
        "xesam:artist": Variant("as", ["A", "B"]),
        "xesam:album": Variant("s", "LP"),
        "mpris:length": Variant("x", 215_000_000),
    }
    assert track_from_metadata(meta) == Track(
        title="Song Title", artist="A, B", album="LP", duration_ms=215_000
    )
    assert track_from_metadata({}).duration_ms is None
    def seen(name: str, status: str, changed_at: float, echo: bool = False) -> Seen:
        return Seen(name, status, Track(title=name), "", changed_at, echo)

    paused, playing = seen("a", "Paused", 9), seen("b", "Playing", 1)
    assert pick([paused, playing]) is playing and pick([]) is None
    # Two players playing: the one whose track changed last (the host just started it) ...
    newer = seen("c", "Playing", 5)
    assert pick([playing, newer]) is newer
    # ... unless it only echoes another player's track (a browser showing our own page).
    assert pick([playing, seen("d", "Playing", 7, echo=True)]) is playing
    cover = tmp_path / "c over.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(cover)
    assert read_art(cover.as_uri())[1] == "image/png"
    assert read_art("https://example.org/cover.png") == (b"", "")  # never fetched for guests
    assert read_art((tmp_path / "gone.png").as_uri()) == (b"", "")


class FakeProps:
    def __init__(self, title: str, artist: str = "", thumbnail: object = None) -> None:
        self.title, self.artist, self.album_artist = title, artist, ""
        self.album_title, self.thumbnail = "Album", thumbnail


class FakeSession:
    def __init__(self, props: FakeProps) -> None:
        self.props = props

    async def try_get_media_properties_async(self) -> FakeProps:
        return self.props


class FakeManager:
    """GlobalSystemMediaTransportControlsSessionManager as PyWinRT projects it."""

    def __init__(self) -> None:
        self.session: FakeSession | None = None

    def get_current_session(self) -> FakeSession | None:
        return self.session


async def test_smtc_reports_each_new_track_with_its_thumbnail() -> None:
    import asyncio

    from server.sources.smtc import SmtcWatch

    buf = io.BytesIO()
    Image.new("RGB", (30, 30), (200, 0, 0)).save(buf, "PNG")
    manager = FakeManager()
    seen: list[Track] = []

    async def get_manager() -> FakeManager:
        return manager

    async def thumbnail(reference: object) -> bytes:
        assert reference == "stream-ref"
        return buf.getvalue()

    watch = SmtcWatch(seen.append, get_manager, thumbnail, poll_s=0.01)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(0.05)
        assert seen == [], "no session: nothing made up"
        manager.session = FakeSession(FakeProps("One", "Band", thumbnail="stream-ref"))
        await asyncio.sleep(0.05)
        manager.session = FakeSession(FakeProps("Two", "Band"))
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert [(t.title, t.artist, t.album) for t in seen] == [
        ("One", "Band", "Album"), ("Two", "Band", "Album")
    ]  # fmt: skip
    assert seen[0].artwork_mime == "image/png" and not seen[1].artwork


def test_each_os_gets_its_watcher_and_macos_none() -> None:
    from server.sources.media_session import platform_watch
    from server.sources.mpris import MprisWatch
    from server.sources.smtc import SmtcWatch

    assert isinstance(platform_watch(print, "linux"), MprisWatch)
    assert isinstance(platform_watch(print, "win32"), SmtcWatch)  # PyWinRT loads lazily
    assert platform_watch(print, "darwin") is None  # the host types it in the tray
