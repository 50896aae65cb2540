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
