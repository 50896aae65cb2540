"""The party PIN, the listener cap and the host's block, as a guest's phone sees them
(headless Chromium against a real party; the server-side rules: tests/test_access.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.bridge import BrowserDriver, listening
from tests.conftest import front_url
from tests.helpers import eventually
from tests.test_browser import ARTIFACTS, shot

pytestmark = pytest.mark.browser
PIN = "2468"
GUESS = """(async () => {
  const codes = [];
  for (let n = 0; n < 20; n += 1) {
    const r = await fetch(`/api/join?id=guest-c&pin=${1000 + n}`, { cache: "no-store" });
    codes.push(r.status);
  }
  return codes;
})()"""


async def type_pin(browser: BrowserDriver, page: str, pin: str) -> None:
    await browser.call(
        "eval", page=page, expression=f"document.getElementById('pin-input').value = '{pin}'"
    )
    await browser.call("tap", page=page, selector="#pin-form button")  # a real gesture


async def test_pin_screen_full_party_and_a_blocked_phone(start_party) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with start_party(workers=1, pin=PIN, max_listeners=1) as party:
        browser = await BrowserDriver.start(["127.0.0.1"])
        try:
            front = front_url(party, "/")
            await browser.call("open", page="a", url=front)
            await browser.call("tap", page="a", selector="#start")
            await browser.wait_for("a", lambda s: s["phase"] == "pin", what="the PIN screen")
            await shot(browser, "a", "access-pin")
            await type_pin(browser, "a", "1111")
            await browser.wait_for(
                "a", lambda s: s["refused"] == "wrong-pin", what="a wrong PIN refused"
            )
            await type_pin(browser, "a", PIN)
            a = await browser.wait_for("a", listening, what="playback with the right PIN")
            assert a["refused"] is None

            # The QR link may carry the PIN: no typing, but the party is full (cap 1).
            await browser.call("open", page="b", url=f"{front}#pin={PIN}")
            await browser.call("tap", page="b", selector="#start")
            await browser.wait_for(
                "b", lambda s: s["phase"] == "refused" and s["refused"] == "full", what="full"
            )
            await shot(browser, "b", "access-full")

            # The host blocks phone a: it stops, and a reload does not bring it back.
            await eventually(lambda: party.status.roster, what="a roster row")
            row = party.status.roster[0]
            party.act_on_listener(row["worker"], row["id"], "block")
            await browser.wait_for(
                "a", lambda s: s["refused"] == "blocked", what="a blocked", timeout=10
            )
            await browser.call(
                "eval", page="a", expression="setTimeout(() => location.reload()), 1"
            )
            await asyncio.sleep(1.0)  # the old page's diagnostics are gone mid-navigation
            await browser.wait_for("a", lambda s: s["phase"] == "idle", what="reloaded")
            await browser.call("tap", page="a", selector="#start")
            await browser.wait_for(
                "a", lambda s: s["refused"] == "blocked", what="still blocked after a reload"
            )
            await shot(browser, "a", "access-blocked")

            # ... while another phone now gets its place.
            await browser.call("tap", page="b", selector="#start")
            await browser.wait_for("b", listening, what="phone b playing once there is room")

            # Guessing from a page: 20 wrong PINs in a row, then even the right one waits.
            await browser.call("open", page="c", url=front)
            codes = await browser.call("eval", page="c", expression=GUESS)
            assert codes[:-1] == [403] * 19 and codes[-1] == 429, codes
            await browser.call("tap", page="c", selector="#start")
            await browser.wait_for("c", lambda s: s["phase"] == "pin", what="the PIN screen")
            await type_pin(browser, "c", PIN)
            await browser.wait_for(
                "c", lambda s: s["refused"] == "throttled", what="the right PIN throttled"
            )
            await shot(browser, "c", "access-throttled")
        finally:
            await browser.close()
