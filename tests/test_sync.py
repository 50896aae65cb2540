"""Sync in a real browser: the badge tells the truth, and two phones are heard together.

The badge (resources/web/static/sync.js) must say "Syncing…" from the tap until the
player's estimate has settled, and only then show a figure. Sync as heard is measured by
recording what two Chromium processes play (tests/heard.py, bench/sync_heard.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.browser.bridge import BrowserDriver
from tests.conftest import front_url

pytestmark = pytest.mark.browser

SPREAD_MS = 8  # sync.js


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
