"""The channel picker on the phone page, in headless Chromium against a real party.

One channel: the page is exactly as before (no picker, the party's own colours). Two and three
channels: one big coloured button per channel with its listener count and what it plays; a
pick before Listen holds; a tap moves the player on its open connection (no reconnect, no
phase change) and the page takes the channel's colour and title and plays its audio; the
server reports the player on the new channel; a reload, a worker restart and the host's
changes to the set keep each page on the right channel.
Each channel plays its own tagged file, a tone of its own level: the titles and the audio the
page schedules say which channel a page is on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from server.channels import Channel, default_channel
from server.sources.base import SourceSpec
from tests.browser.bridge import BrowserDriver, listening
from tests.conftest import front_url
from tests.helpers import eventually, get_json
from tests.media import tagged_flac
from tests.test_browser import _pid_listening_on, assert_offline_clean, chromium, shot

pytestmark = pytest.mark.browser

TITLES = ["Red Song", "Blue Song", "Green Song"]
COLOURS = ["#e53935", "#1e88e5", "#43a047"]
LEVELS = [2000, 6000, 16000]  # each channel's tone amplitude: the page's audio tells them apart
SWITCH_BOUND_S = 5.0  # tap to the server's answer on the page; typically well under 0.1 s
HEARD_BOUND_S = 1.5  # tap to the new channel at full level; typically 0.35-0.6 s
# The old channel stops at the tap's answer, the new one starts SWITCH_LEAD_US (0.25-0.3 s)
# later: a short hole, like the click of a channel switch, never both channels at once.
ECHO_BOUND_S = 0.05
HOLE_BOUND_S = 0.8
# Every buffer the player schedules (sendspin-js plays through AudioBufferSourceNode): when it
# plays on the AudioContext's clock, how long, its level, and when it was cut (a stream/clear
# stops what is queued); and the context's time of each click.
RECORD_AUDIO = """(() => {
  window.starts = [];
  const start = AudioBufferSourceNode.prototype.start;
  const stop = AudioBufferSourceNode.prototype.stop;
  AudioBufferSourceNode.prototype.start = function (when, ...rest) {
    const data = this.buffer.getChannelData(0);
    let sum = 0;
    for (let i = 0; i < data.length; i += 1) sum += data[i] * data[i];
    window.audio = this.context;
    this.entry = { when, at: this.context.currentTime, rms: Math.sqrt(sum / data.length),
      end: when + this.buffer.duration / this.playbackRate.value };
    starts.push(this.entry);
    if (starts.length > 3000) starts.shift();
    return start.call(this, when, ...rest);
  };
  AudioBufferSourceNode.prototype.stop = function (when) {
    const cut = Math.max(when || 0, this.context.currentTime);
    if (this.entry) this.entry.end = Math.min(this.entry.end, cut);
    return stop.call(this, when);
  };
  document.addEventListener("click", () => { window.clickedAt = window.audio?.currentTime; }, true);
  return true;
})()"""
AUDIO_LOG = "({ starts: window.starts, clickedAt: window.clickedAt })"
PLAYER_ID = "sessionStorage.getItem('partystream-player-id')"  # listener.js tabPlayerId()
# The page's phase every 50 ms from before the tap until the test has seen the switch through.
RECORD_PHASES = """window.phases = [];
  window.recorder = setInterval(() => phases.push(partyStream.snapshot().phase), 50)"""
STOP_RECORDING = "clearInterval(window.recorder), window.phases"
PAGE_STATE = """(() => ({
  hasChannels: document.documentElement.classList.contains('has-channels'),
  accent: getComputedStyle(document.documentElement).getPropertyValue('--accent').trim(),
  theme: document.querySelector('meta[name=theme-color]').content,
  lights: document.querySelectorAll('.channel-light').length,
  announced: document.getElementById('channel-announce').textContent,
}))()"""


def channels(tmp_path: Path, count: int) -> list[Channel]:
    """`count` channels, each a looping file whose title names the channel."""
    made = []
    for i in range(count):
        path = tagged_flac(
            tmp_path / f"{i}.flac", title=TITLES[i], artist="DJ", level=LEVELS[i], seconds=20,
            tone_hz=440.0,
        )  # fmt: skip
        made.append(default_channel(i, SourceSpec("file", str(path))))
    return made


async def open_page(browser: BrowserDriver, party: Any, page: str) -> None:
    await browser.call("open", page=page, url=front_url(party, "/"), reducedMotion="reduce")
    await browser.call("eval", page=page, expression=RECORD_AUDIO)


def picker(snap: dict[str, Any]) -> dict[str, Any]:
    return snap["channels"]


async def server_counts(party: Any) -> list[int | None]:
    code, body = await get_json(front_url(party, "/api/status"))
    assert code == 200, body
    return [c["listeners"] for c in body.get("channels", [])]


async def server_channel(player_id: str, port: int) -> int | None:
    """Which channel the worker has this player on (`/api/me`, asked from its own address)."""
    code, body = await get_json(f"http://127.0.0.1:{port}/api/me?id={player_id}")
    return body.get("channel") if code == 200 and isinstance(body, dict) else None


async def test_one_channel_shows_no_picker(start_party) -> None:
    async with start_party(workers=1) as party, chromium() as browser:
        await open_page(browser, party, "a")
        await browser.wait_for("a", lambda s: s["listenersShown"] == 0, what="the party's status")
        await browser.call("tap", page="a", selector="#start")
        snap = await browser.wait_for(
            "a", lambda s: listening(s) and s["listenersShown"] == 1, what="playback, count 1"
        )
        assert picker(snap) == {
            "shown": False, "current": None, "chosen": None, "confirmed": None,
            "switchMs": None, "colour": None, "buttons": [],
        }  # fmt: skip
        page = await browser.call("eval", page="a", expression=PAGE_STATE)
        assert page == {
            "hasChannels": False, "accent": "#a855f7", "theme": "#0c0a14", "lights": 0,
            "announced": "",
        }, page  # fmt: skip
        await shot(browser, "a", "channels-1")
        await assert_offline_clean(browser, ["a"])


async def test_two_then_three_channels_pick_switch_and_stay_on_the_channel(
    tmp_path: Path, start_party
) -> None:
    three = channels(tmp_path, 3)
    async with start_party(three[:2], workers=1) as party, chromium() as browser:
        # Before listening: a button per channel, nobody on either, the first one current.
        await open_page(browser, party, "a")
        await open_page(browser, party, "b")
        snap = await browser.wait_for(
            "a",
            lambda s: (
                [(b["name"], b["count"]) for b in picker(s)["buttons"]] == [("Red", 0), ("Blue", 0)]
            ),
            what="two buttons with counts of 0",
        )
        assert [b["pressed"] for b in picker(snap)["buttons"]] == [True, False]
        assert picker(snap)["colour"] == COLOURS[0]

        # Guest a picks Blue *before* tapping Listen; guest b just listens (Red).
        await browser.call("tap", page="a", selector=".channel[data-index='1']")
        await browser.call("tap", page="a", selector="#start")
        await browser.call("tap", page="b", selector="#start")
        await browser.wait_for(
            "a", lambda s: listening(s) and picker(s)["confirmed"] == 1, what="a on Blue"
        )
        await browser.wait_for("b", listening, what="b playing")
        assert await eventually(lambda: _is(server_counts(party), [1, 1]), what="counts 1/1")
        snap = await browser.wait_for(
            "a",
            lambda s: (
                [(b["count"], b["now"]) for b in picker(s)["buttons"]]
                == [(1, f"{TITLES[0]} — DJ"), (1, f"{TITLES[1]} — DJ")]
            ),
            what="counts 1/1 and each channel's title on the page",
        )
        assert (snap["nowPlaying"] or {}).get("title") == TITLES[1], snap["nowPlaying"]
        await shot(browser, "a", "channels-2")

        # The host adds a third channel while the party runs: the page shows it.
        await party.set_channels(three)
        snap = await browser.wait_for(
            "b",
            lambda s: (
                [(b["count"], b["now"]) for b in picker(s)["buttons"]]
                == [(1, f"{TITLES[0]} — DJ"), (1, f"{TITLES[1]} — DJ"), (0, f"{TITLES[2]} — DJ")]
            ),
            what="a third button",
        )
        assert (snap["nowPlaying"] or {}).get("title") == TITLES[0], snap["nowPlaying"]

        # b taps Green: same connection, new colour and title; the server has b on Green.
        joins, sockets = snap["joins"], len((await browser.call("network", page="b"))["ws"])
        await browser.call("eval", page="b", expression=RECORD_PHASES)
        before = await browser.call("metrics", page="b")
        await browser.call("tap", page="b", selector=".channel[data-index='2']")
        switched = await browser.wait_for(
            "b", lambda s: picker(s)["confirmed"] == 2, what="the switch", timeout=SWITCH_BOUND_S
        )
        took_ms = picker(switched)["switchMs"]
        assert picker(switched)["colour"] == COLOURS[2]
        assert (switched["nowPlaying"] or {}).get("title") == TITLES[2], switched["nowPlaying"]
        page = await browser.call("eval", page="b", expression=PAGE_STATE)
        assert page["accent"] == COLOURS[2] and page["announced"] == "Now on Green", page
        port = switched["worker"]["port"]
        b_id = await browser.call("eval", page="b", expression=PLAYER_ID)
        assert await server_channel(b_id, port) == 2
        assert await eventually(
            lambda: _is(server_counts(party), [0, 1, 1]), what="server counts 0/1/1"
        )
        await browser.wait_for(
            "b", lambda s: [b["count"] for b in picker(s)["buttons"]] == [0, 1, 1],
            what="the page's counts 0/1/1", timeout=10,
        )  # fmt: skip
        after = await browser.call("metrics", page="b")
        log = await browser.call("eval", page="b", expression=AUDIO_LOG)
        changed_s, heard_s, overlap_s = heard_after_click(log, old=0, new=2)
        assert heard_s < HEARD_BOUND_S, f"Green heard {heard_s:.2f} s after the tap"
        assert -HOLE_BOUND_S < overlap_s < ECHO_BOUND_S, f"Red/Green overlap {overlap_s:.3f} s"
        phases = await browser.call("eval", page="b", expression=STOP_RECORDING)
        assert set(phases) == {"listening"}, f"the guest saw the switch: {phases}"
        network = await browser.call("network", page="b")
        assert len(network["ws"]) == sockets and network["ws"][-1]["closed"] is None, network
        assert (await browser.snapshot("b"))["joins"] == joins, "the switch reconnected"
        await shot(browser, "b", "channels-3")

        # A reload keeps Green (this tab's choice) and puts the new connection on it.
        await browser.call("reload", page="b")
        await browser.call("eval", page="b", expression=RECORD_AUDIO)
        await browser.wait_for("b", lambda s: picker(s)["current"] == 2, what="Green after reload")
        await browser.call("tap", page="b", selector="#start")
        await browser.wait_for(
            "b", lambda s: listening(s) and picker(s)["confirmed"] == 2, what="Green re-applied"
        )
        assert await eventually(
            lambda: _is(server_counts(party), [0, 1, 1]), what="b back on Green"
        )
        log = await browser.call("eval", page="b", expression=AUDIO_LOG)
        assert played(log, 2) and not played(log, 0), "b played Red before Green after reload"

        # The worker dies and comes back knowing nobody: each page puts itself back.
        psutil.Process(_pid_listening_on(port)).kill()
        for page in ("a", "b"):
            await browser.wait_for(
                page, lambda s: listening(s) and s["joins"] >= 2, what="rejoined", timeout=30
            )
        a_id = await browser.call("eval", page="a", expression=PLAYER_ID)
        for player, channel in ((a_id, 1), (b_id, 2)):
            assert await eventually(
                lambda p=player, c=channel: _is(server_channel(p, port), c),
                what=f"{player} back on channel {channel}",
            )

        # The host removes Blue and renames Green: Lime (Green's source) is now the second
        # channel and keeps its guest, Blue's guest lands on the first. Page b cannot follow
        # by name: it learns it from its worker (/api/me's answer).
        await party.set_channels([three[0], replace(three[2], name="Lime")])
        for page, player, index, name in (("a", a_id, 0, "Red"), ("b", b_id, 1, "Lime")):
            snap = await browser.wait_for(
                page,
                lambda s, i=index: len(picker(s)["buttons"]) == 2 and picker(s)["current"] == i,
                what=f"the page on channel {index}",
                timeout=15,
            )
            assert picker(snap)["colour"] == [COLOURS[0], COLOURS[2]][index]
            assert await server_channel(player, port) == index
            page_state = await browser.call("eval", page=page, expression=PAGE_STATE)
            assert page_state["announced"] == f"Now on {name}", page_state
        await assert_offline_clean(browser, ["a", "b"])
        layouts = after["LayoutCount"] - before["LayoutCount"]
        print(
            f"channel switch: tap to the worker's answer {took_ms:.0f} ms; to the new audio"
            f" {changed_s * 1000:.0f} ms, at full level {heard_s * 1000:.0f} ms, old/new overlap"
            f" {overlap_s * 1000:+.0f} ms (the AudioContext's schedule); {layouts:.0f} layouts"
        )


def level_of(rms: float) -> int | None:
    """Which channel a buffer of this RMS (float samples) comes from, if any."""
    for i, level in enumerate(LEVELS):
        if abs(rms - level / 32768 / 2**0.5) < 0.3 * level / 32768 / 2**0.5:
            return i
    return None


def played(log: dict[str, Any], channel: int) -> list[dict[str, Any]]:
    """The buffers of `channel` that really played (not cut before their start)."""
    return [s for s in log["starts"] if level_of(s["rms"]) == channel and s["end"] > s["when"]]


def heard_after_click(log: dict[str, Any], old: int, new: int) -> tuple[float, float, float]:
    """Seconds from the last click to the first audio that is not channel `old` any more
    (the new channel's decoder warming up) and to the first at channel `new`'s level; and the
    overlap of the two channels (negative: a gap) — audio played, not merely scheduled."""
    click = log["clickedAt"]
    after = [s for s in log["starts"] if s["at"] >= click and s["end"] > s["when"]]
    changed = [s["when"] for s in after if level_of(s["rms"]) != old]
    full = [s["when"] for s in after if level_of(s["rms"]) == new]
    assert changed and full, f"no audio of channel {new} after the tap: {log['starts'][-5:]}"
    old_end = max(s["end"] for s in played(log, old))
    return min(changed) - click, min(full) - click, old_end - min(changed)


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected
