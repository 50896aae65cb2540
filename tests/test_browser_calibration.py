"""'Headphones out of time?' in a real browser: a tap-along with a known, injected output
delay is estimated within ESTIMATE_BOUND_MS, applied through the player's own sync delay
(which the server then sees), survives a reload, and can be reset."""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.bridge import BrowserDriver, listening
from tests.conftest import front_url
from tests.helpers import eventually
from tests.test_browser import ARTIFACTS, SYNC_BOUND_MS, shot

pytestmark = pytest.mark.browser
INJECTED_MS = 180  # a typical Bluetooth earbud
ESTIMATE_BOUND_MS = 15
# A guest's taps: human jitter around the true lag, plus two taps that were not listening.
INJECT = """(() => {
  const cal = window.partyStream.calibration;
  const jitter = [-12, 8, -5, 15, 3, -9, 11, -2, 6, -14, 0, 4];
  cal.clicks.forEach((heard, k) => {
    if (k < 2) return;  // the count-in
    let lag = INJECTED + jitter[k % jitter.length];
    if (k === 5) lag = 440;   // late: distracted
    if (k === 9) lag = -110;  // early: guessing
    setTimeout(() => cal.tapAt(heard + lag), Math.max(0, heard + lag - performance.now()));
  });
  return cal.clicks.length;
})()""".replace("INJECTED", str(INJECTED_MS))


def calibration(snap: dict) -> dict:
    return snap["calibration"]


async def test_tap_along_finds_an_injected_delay_applies_it_and_keeps_it(start_party) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with start_party(workers=1) as party:
        browser = await BrowserDriver.start(["127.0.0.1"])
        try:
            await browser.call("open", page="a", url=front_url(party, "/"))
            await browser.call("tap", page="a", selector="#start")
            snap = await browser.wait_for("a", listening, what="playback")
            usual = calibration(snap)["delayMs"]  # sendspin-js's default for this platform
            await browser.call("tap", page="a", selector="#calibrate-open")
            await browser.call("tap", page="a", selector="#calibrate-start")
            assert await browser.call("eval", page="a", expression=INJECT) > 10
            await shot(browser, "a", "calibration-running")
            snap = await browser.wait_for(
                "a",
                lambda s: not calibration(s)["running"] and calibration(s)["result"],
                what="a calibration result",
                timeout=25,
            )
            result = calibration(snap)["result"]
            print(f"injected {INJECTED_MS} ms -> estimate {result}")
            assert abs(result["delayMs"] - INJECTED_MS) <= ESTIMATE_BOUND_MS
            assert result["outliers"] == 2 and result["confidence"] == "high"
            assert calibration(snap)["delayMs"] == result["delayMs"], "applied to the player"
            await shot(browser, "a", "calibration-result")
            applied = result["delayMs"]

            # The server sees it too (the player's client/state), for the host's panel.
            await eventually(
                lambda: [r["offset_ms"] for r in party.status.roster] == [applied],
                timeout=10,
                what="the offset in the roster",
            )
            # The badge still tells the truth: it measures the schedule, offset included.
            await browser.call("tap", page="a", selector="#calibrate-close")
            await asyncio.sleep(3.0)
            snap = await browser.wait_for(
                "a",
                lambda s: listening(s) and s["syncErrorMs"] is not None,
                what="a sync reading after the offset",
            )
            assert snap["syncErrorMs"] < SYNC_BOUND_MS and not snap["muted"]

            # A reload keeps it (the player stores it on the device); reset clears it.
            await browser.call(
                "eval", page="a", expression="setTimeout(() => location.reload()), 1"
            )
            await asyncio.sleep(1.0)
            await browser.wait_for("a", lambda s: s["phase"] == "idle", what="reloaded")
            await browser.call("tap", page="a", selector="#start")
            snap = await browser.wait_for("a", listening, what="playback after the reload")
            assert calibration(snap)["delayMs"] == applied
            assert calibration(snap)["usualMs"] == usual
            await browser.call("tap", page="a", selector="#calibrate-open")
            await browser.call("tap", page="a", selector="#calibrate-reset")
            await browser.call("tap", page="a", selector="#calibrate .nudge[data-ms='10']")
            snap = await browser.snapshot("a")
            assert calibration(snap)["delayMs"] == usual + 10, "reset to the player's default"
        finally:
            await browser.close()
