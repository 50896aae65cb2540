"""Sync in a real browser: the badge tells the truth, and two phones are heard together.

The badge (resources/web/static/sync.js) must say "Syncing…" from the tap until the
player's estimate has settled, and only then show a figure. Sync as heard is measured by
recording what two Chromium processes play (tests/heard.py, bench/sync_heard.py).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from server.sources.base import SourceSpec
from tests import heard
from tests.browser.bridge import BrowserDriver
from tests.conftest import front_url, worker_url
from tests.listener import Listener
from tests.pulse import pulse_fixture, pulse_server_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

SPREAD_MS = 8  # sync.js
ALIAS = "party.test"  # not a secure context, like a phone on http://LAN-IP: WASM Opus
HOSTS = ("127.0.0.1", ALIAS)  # secure: WebCodecs' Opus decoder; plain http: the WASM one


async def test_badge_says_syncing_until_the_estimate_has_settled(start_party) -> None:
    async with start_party(workers=1) as party:
        browser = await BrowserDriver.start(["127.0.0.1"])
        try:
            await browser.call("open", page="a", url=front_url(party, "/"), reducedMotion="reduce")
            await browser.call("tap", page="a", selector="#start")
            seen: list[tuple[float, dict, bool]] = []  # (s since the tap, sync state, playing)
            start = time.monotonic()
            while time.monotonic() - start < 40:
                snap = await browser.snapshot("a")
                seen.append((time.monotonic() - start, snap["sync"], snap["playing"]))
                if snap["sync"]["badge"].startswith("In sync"):
                    break
                await asyncio.sleep(0.1)
        finally:
            await browser.close()
    badges = [sync["badge"] for _, sync, _ in seen]
    assert badges[0] == "Syncing…", "right after the tap"
    assert badges[-1].startswith("In sync"), f"never settled: last {seen[-1]}"
    assert all(b == "Syncing…" for b in badges[:-1]), sorted(set(badges))
    switched_at, sync, _ = seen[-1]
    assert sync["settled"] and sync["spreadMs"] <= SPREAD_MS and sync["readings"] >= 6
    assert sync["clockErrorMs"] is not None and sync["vouchedMs"] >= sync["clockErrorMs"]
    # While it played but had not settled, the badge said so (and it did play unsettled).
    converging = [s for _, s, playing in seen[:-1] if playing]
    assert converging and not any(s["settled"] for s in converging), seen
    print(f"settled {switched_at:.1f} s after the tap: {sync}")


# Sync as heard: two phones on different workers, recorded sample-aligned: two pages of one
# browser panned left and right, so the sound server's own delays are common to both and
# cancel. One decodes Opus with WebCodecs (secure context), one with the bundled WASM libopus
# (plain http, like real guests). Measured from 5 s: 1-4 ms median, 3-11 ms p95 in most
# runs (4-11 ms median, 11-33 p95 before output-latency-settles-fast smoothed in time: the
# two pages' latency estimates sat ~10 ms apart), but p95 19-29 ms in 3 runs of 13: a page
# that has not yet worked off its start-up error (20-40 ms after the first resync, at 3-5
# ms/s). In the 9 recordings kept for analysis, p95 from 8 s was <= 12 ms where from 5 s it
# reached 29, so the test measures from 8 s; how fast pages converge is the bench's figure
# (bench/README.md, "Sync as heard").
# A codec offset like the 40 ms once heard between FLAC and Opus, a clock that has not
# converged (20 ms for 10 s before), or chunks dropped by our timestamps exceed the bound,
# as did a CI run's 92-109 ms: a page's smoothed audio clock lagging a jump of currentTime
# (fixed by estimated-clock-follows-jumps.mjs; test_a_phone_held_up... below).
# The bound holds for HEARD_SHARE of the windows, not all: the two pages share one browser
# and one sound server, and when that path stalls both pages jump at once (100-150 ms, one
# run of 21 here), notice it and resync within a second or two, each in its own time. That
# one second failed the p95 once. A steady offset, as above, is off in every window.
HEARD_SECONDS = 15.0
HEARD_AFTER_S = 8.0
HEARD_BOUND_MS = 25.0
HEARD_SHARE = 0.75
# A page resyncs 0-1 times in a heard test (2 with a hold); a stall of the rig's one output
# path shows as repeated resyncs on both (see _heard_apart).
RIG_RESYNCS = 3
# A PCM phone (100 ms chunks, server/frames.py) against an Opus one: 10-65 ms apart before the
# patches cutover-starts-mid-chunk and schedule-horizon-short (bench/README.md, "Sync as
# heard"), 0.2-12 ms median from 5 s since, either way from run to run, and once 21 ms (a
# CI run: both pages' own estimates said 2 ms; what this rig hears past the browser moves
# that much). Measured from 8 s too (HEARD_AFTER_S). A steady codec offset like the 40 ms of
# old (a whole chunk started late, corrections heard 5 s late) fails.
PCM_BOUND_MS = 30.0
# Page B's renderer is stopped for HOLD_S, HOLD_AT_S after the taps (a busy phone): measured
# from 3 s after it for 7 s. At 4 s the old clock's start-up error (a page ~75 ms late, item
# 11) and the hold's (~80 ms early) cancelled out: the hold comes after the start-up.
HOLD_AT_S = 6.0
HOLD_S = 0.4
HELD_BOUND_MS = 50.0
# A page on the output-timestamp clock against one on the estimated clock: 4.5-6.6 ms median
# apart (the estimated clock's own few ms), 42-44 ms when the latency was counted twice.
TIMESTAMP_BOUND_MS = 20.0
# sendspin-js has no switch for FLAC; hide it as Safari would (as bench/page_cost.py does), a
# Linux Safari: a Mac one gets a 190 ms default static delay, not 200 ms, and plays 10 ms late.
FLAC_OFF = (
    "Object.defineProperty(navigator, 'userAgent', {get: () => 'Mozilla/5.0 (X11; Linux x86_64) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15'})"
)


async def _heard_apart(
    start_party,
    pulse,
    tmp_path,
    players: list[tuple[str, str]],
    hold_b_at_s: float | None = None,
    seconds: float = HEARD_SECONDS,
    after_s: float = HEARD_AFTER_S,
) -> tuple[list[dict], dict[str, float], int]:
    """Play a party on two workers to two pages (host, script before the tap) and record
    them; return their snapshots, the spread of |A - B| after `after_s`, and its count.
    With `hold_b_at_s`, page B's renderer is stopped for HOLD_S that long after the taps.

    Measured again, once, when both pages resynced RIG_RESYNCS times or more: their shared
    output path stalled again and again (a CI run: 4 and 9 resyncs each, pages 300-550 ms
    off, the context clock at half speed), and each page noticed. The faults these tests
    exist for are the ones a page does not notice, so they are measured, not retried."""
    for last in (False, True):
        result, resyncs = await _heard_once(
            start_party, pulse, tmp_path, players, hold_b_at_s, seconds, after_s
        )
        if last or min(resyncs) < RIG_RESYNCS:
            break
        print(f"both pages resynced {resyncs} times: the rig's output stalled; once more")
    return result


async def _heard_once(
    start_party,
    pulse,
    tmp_path,
    players: list[tuple[str, str]],
    hold_b_at_s: float | None,
    seconds: float,
    after_s: float,
) -> tuple[tuple[list[dict], dict[str, float], int], list[int]]:
    """One measurement for _heard_apart, with each page's resync count (from its last
    status line)."""
    source = SourceSpec("file", str(heard.noise_wav(tmp_path / "noise.wav", 40)))
    if pulse.pid is not None:
        heard.prioritise(pulse.pid)
    async with start_party(source, workers=2) as party:
        reference = await Listener(worker_url(party, 0)).connect()
        try:
            await reference.wait_chunks(5)
            with heard.Ears(pulse) as ears:
                # One browser, two pages panned left and right: one output path for both.
                browser = await BrowserDriver.start(
                    list(HOSTS), env={"PULSE_SINK": heard.MIX}, audible=True
                )
                try:
                    pages = ("a", "b")
                    for side, (page, (host, script)) in enumerate(zip(pages, players, strict=True)):
                        url = f"http://{host}:{party.status.port}/"
                        await browser.call("open", page=page, url=url, reducedMotion="reduce")
                        await browser.call("eval", page=page, expression=heard.pan_js(side))
                        if script:
                            await browser.call("eval", page=page, expression=f"{script}; true")
                    recorder = heard.Recorder(ears).start()
                    # Page B's own renderer process is looked up only when it is to be held.
                    playing = None if hold_b_at_s is None else heard.audio_renderers()
                    await _tap(browser, "a", playing)
                    renderer_b = await _tap(browser, "b", playing)
                    heard.prioritise(browser.pid)
                    if hold_b_at_s is None:
                        await asyncio.sleep(seconds)
                    else:
                        assert renderer_b is not None
                        await asyncio.sleep(hold_b_at_s)
                        with heard.held_up(renderer_b):
                            time.sleep(HOLD_S)  # blocking: nothing of ours may run meanwhile
                        await asyncio.sleep(seconds - hold_b_at_s - HOLD_S)
                    snaps = [await browser.snapshot(page) for page in pages]
                    status = [await _status_lines(browser, page) for page in pages]
                    recording = recorder.stop()
                finally:
                    await browser.close()
        finally:
            await reference.close()
    assert len({s["worker"]["worker"] for s in snaps}) == 2, "two workers"
    ref = heard.timeline(reference.chunks)
    a, b = (
        heard.errors(recording.samples[:, ch], recording.start_us, ref, rate_ppm=recording.rate_ppm)
        for ch in (0, 1)
    )
    assert a and b, "both phones must be heard"
    started = max(a[0][0], b[0][0])
    diff = [d for t, d in heard.difference(a, b) if t >= started + after_s * 1e6]
    spread = heard.spread(diff) | {"within": _share_within(diff, HEARD_BOUND_MS)}
    print(f"A-B after {after_s} s: {spread} over {len(diff)} windows")
    for page, errors, lines in zip(pages, (a, b), status, strict=True):
        # For a failure's diagnosis: what the page heard itself do, second by second, and
        # what sendspin-js said of its clock, output latency and corrections meanwhile.
        per_s = heard.per_second(errors, started)
        print(f"page {page} heard, ms off per second: {per_s}\n  " + "\n  ".join(lines))
    resyncs = [_resyncs(lines) for lines in status]
    return (snaps, spread, len(diff)), resyncs


def _resyncs(status_lines: list[str]) -> int:
    """The resync count of a page's last status line (0 without one)."""
    found = re.findall(r"resyncs=(\d+)", status_lines[-1]) if status_lines else []
    return int(found[0]) if found else 0


def _share_within(values: list[float], bound_ms: float) -> float:
    """The share of windows heard less than `bound_ms` apart."""
    return sum(1 for v in values if abs(v) < bound_ms) / len(values) if values else 0.0


async def _tap(browser: BrowserDriver, page: str, playing: set[int] | None) -> int | None:
    """Tap the page's Start. With `playing` (the renderer processes already playing audio),
    wait for the page's own to start playing too, add it there and return its pid."""
    await browser.call("tap", page=page, selector="#start")
    if playing is None:
        return None
    async with asyncio.timeout(10):
        while not (new := heard.audio_renderers() - playing):
            await asyncio.sleep(0.05)
    assert len(new) == 1, new
    playing |= new
    return new.pop()


async def _status_lines(browser: BrowserDriver, page: str) -> list[str]:
    """sendspin-js's own status lines (every 10 s: sync error, clock, output latency)."""
    return [line for line in await browser.call("logs", page=page) if "Sendspin: sync=" in line]


async def test_two_phones_on_different_workers_and_decoders_are_heard_together(
    start_party, pulse, tmp_path
) -> None:
    snaps, spread, windows = await _heard_apart(
        start_party, pulse, tmp_path, [(HOSTS[0], ""), (HOSTS[1], "")]
    )
    assert [(s["codec"], s["opusDecoder"]) for s in snaps] == [("opus", "native"), ("opus", "wasm")]
    assert windows >= 20, "heard too little of both"
    assert spread["within"] >= HEARD_SHARE, spread


async def test_a_phone_held_up_for_a_moment_is_heard_in_sync_again(
    start_party, pulse, tmp_path
) -> None:
    """A busy phone's OS may not run the page for a moment; afterwards its AudioContext's
    clock catches up in one step. Before estimated-clock-follows-jumps.mjs the player's
    smoothed clock lagged that step by 100-225 ms for 5-10 s and the page played that much
    early while believing itself in sync (bench/README.md, "Sync as heard", item 11).
    Without that patch this failed 1 run of 2 (150 ms early, p95 84 ms); the other run's
    hold moved the page only ~65 ms and it recovered. With it: p95 19-22 ms (4 runs), what
    is left being Chromium's output latency reading, which rises after a hold and makes the
    page ~20 ms early for a while."""
    snaps, spread, windows = await _heard_apart(
        start_party,
        pulse,
        tmp_path,
        [(HOSTS[0], ""), (HOSTS[1], "")],
        hold_b_at_s=HOLD_AT_S,
        seconds=HOLD_AT_S + 10,
        after_s=HOLD_AT_S + 3,
    )
    assert all(s["playing"] for s in snaps), "both play on after the hold"
    assert windows >= 20, "heard too little of both"
    assert spread["p95"] < HELD_BOUND_MS, spread


async def test_a_phone_on_the_output_timestamp_clock_is_heard_with_the_others(
    start_party, pulse, tmp_path
) -> None:
    """sendspin-js moves a page onto getOutputTimestamp() (the speaker's time, already behind
    by the output latency) once its timestamps pass its checks; Chromium's here never do, so
    page B is put there by hand (heard.TIMESTAMP_CLOCK). Before
    timestamp-clock-counts-latency-once.mjs it subtracted the latency again and was heard
    42-44 ms early (median, 3 runs); since, 4.5-6.6 ms apart (bench/README.md, item 13)."""
    forced = f"{heard.PLAYER_HOOK}; {heard.TIMESTAMP_CLOCK}"
    snaps, spread, windows = await _heard_apart(
        start_party, pulse, tmp_path, [(ALIAS, ""), (ALIAS, forced)]
    )
    assert all(s["codec"] == "opus" for s in snaps)
    assert windows >= 20, "heard too little of both"
    assert spread["median"] < TIMESTAMP_BOUND_MS, spread


async def test_a_pcm_phone_is_heard_with_an_opus_phone(start_party, pulse, tmp_path) -> None:
    pcm = f"globalThis.__partystreamWasmOpus = false; {FLAC_OFF}"
    snaps, spread, windows = await _heard_apart(
        start_party, pulse, tmp_path, [(ALIAS, ""), (ALIAS, pcm)]
    )
    assert [s["codec"] for s in snaps] == ["opus", "pcm"]
    assert windows >= 20, "heard too little of both"
    assert spread["median"] < PCM_BOUND_MS, spread
