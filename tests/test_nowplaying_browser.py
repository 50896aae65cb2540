"""Now playing on the phone page, in headless Chromium: title, artist and cover on the page and
on the lock screen (Media Session, artwork from our own server), changing with the song the
guests hear. A native Sendspin client on the same party tells the test when each song's audio
plays, so the page's timing is checked against the audio, not against the decoder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server import clock
from server.sources.base import SourceSpec
from tests.browser.bridge import listening
from tests.conftest import worker_url
from tests.listener import Listener
from tests.media import tagged_flac
from tests.test_browser import ARTIFACTS, assert_offline_clean, chromium, shot
from tests.test_nowplaying import song_starts

pytestmark = pytest.mark.browser

PAGE_TIMING_US = 600_000  # page title vs its audio (+ the 100 ms this test polls at)


async def test_page_and_lock_screen_show_title_artist_and_cover_with_the_music(
    tmp_path: Path, start_party, listeners
) -> None:
    tagged_flac(tmp_path / "1.flac", title="Sunrise Groove", artist="DJ Alpha",
                album="Rooftop Sessions", level=1000, seconds=4.0, cover=(230, 90, 20))  # fmt: skip
    tagged_flac(tmp_path / "2.flac", title="Night Drive", artist="Beta Band",
                level=3000, seconds=4.0)  # fmt: skip  (no cover: the placeholder shows)
    async with start_party(SourceSpec("playlist", str(tmp_path)), workers=1) as party:
        native = Listener(worker_url(party, 0))
        listeners.append(await native.connect())
        async with chromium() as browser:
            url = f"http://127.0.0.1:{party.status.workers[0]['port']}/"
            await browser.call("open", page="a", url=url)
            # Before the guest taps Start, the page already says what plays (/api/status).
            await browser.wait_for(
                "a",
                lambda s: (s.get("nowPlaying") or {}).get("title")
                in ("Sunrise Groove", "Night Drive"),
                what="the title before listening",
            )
            await browser.call("tap", page="a", selector="#start")
            await browser.wait_for("a", listening, what="playback", timeout=30)

            # Watch the page's title while both songs play once.
            seen: list[tuple[int, str | None]] = []
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline:
                snap = await browser.snapshot("a")
                title = (snap.get("nowPlaying") or {}).get("title")
                if not seen or seen[-1][1] != title:
                    seen.append((clock.now_us(), title))
                if title == "Sunrise Groove" and song_starts(native, 3000):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"titles seen: {seen}")

            # Cover from our own server, on the page and on the lock screen.
            cover = await browser.call(
                "eval",
                page="a",
                expression="""(() => { const img = document.getElementById('now-cover');
                  return { src: img.src, shown: !img.hidden && img.complete
                    && img.naturalWidth > 0,
                    title: document.getElementById('now-title').textContent,
                    artist: document.getElementById('now-artist').textContent }; })()""",
            )
            assert cover["shown"] and "/api/artwork/" in cover["src"], cover
            assert cover["src"].startswith("http://127.0.0.1:"), "never from the internet"
            assert (cover["title"], cover["artist"]) == ("Sunrise Groove", "DJ Alpha")
            snap = await browser.snapshot("a")
            lock = snap["lockScreen"]
            assert lock["title"] == "Sunrise Groove" and lock["artist"] == "DJ Alpha", lock
            assert lock["artwork"] == [cover["src"]], lock
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await shot(browser, "a", "now-playing-cover")

            # Each title change on the page follows its song's audio.
            changes = {title: at for at, title in seen[1:]}
            for title, level in (("Night Drive", 3000), ("Sunrise Groove", 1000)):
                starts = song_starts(native, level)
                assert title in changes and starts, (seen, starts)
                nearest = min(starts, key=lambda s, t=title: abs(s - changes[t]))
                assert abs(changes[title] - nearest) < PAGE_TIMING_US, (title, seen, starts)

            # A song without a cover: the placeholder, and the lock screen keeps our icon.
            await browser.wait_for(
                "a",
                lambda s: (s.get("nowPlaying") or {}).get("title") == "Night Drive",
                what="the second song again",
                timeout=15,
            )
            placeholder = await browser.call(
                "eval",
                page="a",
                expression="""({ cover: document.getElementById('now').dataset.cover,
                  lock: [...navigator.mediaSession.metadata.artwork].map((a) => a.src) })""",
            )
            assert placeholder["cover"] == "no", placeholder
            assert all("/static/icons/" in src for src in placeholder["lock"]), placeholder
            await shot(browser, "a", "now-playing-placeholder")
            await assert_offline_clean(browser, ["a"])
