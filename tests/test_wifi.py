"""Guests on an emulated Wi-Fi (tests/netns.py + tests/wifi_air.py): real party processes in
this namespace, real Chromium and browser-like phones in namespaces of their own behind one
access point with the `busy` profile (20 +- 15 ms, 1 % loss, 30 Mbit/s shared).

The guests reach the party at 10.214.X.1, not loopback: like http://LAN-IP, not a secure
context, so no WebCodecs — they must still get Opus (the bundle's WASM decoder).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.phone import Phone
from tests import netns
from tests.browser.bridge import BrowserDriver, listening
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(netns.wifi_available() is not None, reason=str(netns.wifi_available())),
]

# Phones' browsers, as sendspin-js tells them apart (codecs, output path) by user agent.
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
ANDROID_FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
SYNC_BOUND_MS = 50.0  # the page's own median; as in test_browser.py
STALL_S = 1.0
DROP_WITHIN_S = 25.0  # TCP_USER_TIMEOUT / stalled-send watch (10 s) plus slack


def in_sync(snap: dict[str, Any]) -> bool:
    return listening(snap) and snap["syncErrorMs"] is not None and snap["syncErrorMs"] < 30


@contextlib.asynccontextmanager
async def chromium_in(net: netns.Wifi, guest: netns.Guest) -> AsyncIterator[BrowserDriver]:
    driver = await BrowserDriver.start([net.host_ip], prefix=tuple(guest.command()))
    try:
        yield driver
    finally:
        await driver.close()


async def bytes_per_s(browser: BrowserDriver, page: str, seconds: float) -> float:
    """WebSocket bytes the browser itself counted arriving for `page`, per second."""

    async def received() -> int:
        network = await browser.call("network", page=page)
        return sum(ws["bytesIn"] for ws in network["ws"])

    before = await received()
    await asyncio.sleep(seconds)
    return (await received() - before) / seconds


async def open_and_play(
    browser: BrowserDriver, page: str, url: str, user_agent: str | None = None
) -> dict[str, Any]:
    agent = {"userAgent": user_agent} if user_agent else {}
    await browser.call("open", page=page, url=url, reducedMotion="reduce", **agent)
    await browser.call("tap", page=page, selector="#start")
    return await browser.wait_for(page, listening, what="playback after the tap", timeout=30)


async def test_chrome_and_firefox_phones_on_busy_wifi_get_opus_over_plain_http_in_sync(
    start_party,
) -> None:
    async with start_party(workers=2) as party:
        with netns.wifi(netns.PROFILES["busy"], guests=1) as net:
            url = f"http://{net.host_ip}:{party.status.port}/"
            async with chromium_in(net, net.guests[0]) as browser:
                snaps = [
                    await open_and_play(browser, "a", url, ANDROID_CHROME),
                    await open_and_play(browser, "b", url, ANDROID_FIREFOX),
                ]
                for snap in snaps:
                    assert not snap["secure"], "a namespace address must not be a secure context"
                    assert snap["codec"] == "opus" and snap["opusDecoder"] == "wasm", snap
                assert {s["worker"]["worker"] for s in snaps} == {0, 1}
                for page in ("a", "b"):
                    await browser.wait_for(page, in_sync, what="sync under 30 ms", timeout=40)
                samples = await browser.sync_samples(["a", "b"])
                print(f"\nsync error on busy Wi-Fi (ms): {samples}")
                # What it costs the air: Opus-sized (~18 KB/s), not FLAC (60-120 KB/s).
                rate = await bytes_per_s(browser, "a", 5.0)
                print(f"page a receives {rate / 1000:.1f} KB/s")
                assert 8_000 < rate < 40_000, rate
                for values in samples.values():
                    assert statistics.median(values) < SYNC_BOUND_MS, samples
                await eventually(lambda: party.status.listeners == 2, what="count 2")
                network = await browser.call("network", page="a")
                assert network["errors"] == []


async def test_one_second_stalls_are_survived_in_sync_and_a_dead_link_is_counted_out(
    start_party,
) -> None:
    async with start_party(workers=1) as party:
        with netns.wifi(netns.PROFILES["busy"], guests=2) as net:
            stalled, other = net.guests
            stop = asyncio.Event()
            phone = Phone(other.name, net.host_ip, party.status.port, "opus", name="steady")
            steady = asyncio.create_task(phone.run(stop))
            try:
                async with chromium_in(net, stalled) as browser:
                    url = f"http://{net.host_ip}:{party.status.port}/"
                    await open_and_play(browser, "a", url)
                    await browser.wait_for("a", in_sync, what="sync under 30 ms", timeout=40)
                    await eventually(lambda: party.status.listeners == 2, what="count 2")
                    gaps_before = phone.gaps
                    net.stall(stalled, STALL_S)
                    # Through the stall and the burst after it: never a rejoin, never silence
                    # long enough for the page to notice, and the count stays right.
                    deadline = time.monotonic() + STALL_S + 3.0
                    while time.monotonic() < deadline:
                        snap = await browser.snapshot("a")
                        assert snap["connected"] and snap["joins"] == 1, snap
                        assert party.status.listeners == 2
                        await asyncio.sleep(0.2)
                    after = await browser.wait_for(
                        "a", in_sync, what="back in sync after the stall", timeout=15
                    )
                    assert after["joins"] == 1 and listening(after), after
                    assert phone.gaps == gaps_before and phone.disconnects == 0
                    print(f"\nafter a {STALL_S:.0f} s stall: {after['syncErrorMs']:.1f} ms")

                    # The same, but what was sent into the stall is lost (out of the AP's
                    # reach for a second): TCP's retransmission timer backs off meanwhile.
                    net.stall(stalled, STALL_S, drop=True)
                    deadline = time.monotonic() + STALL_S + 4.0
                    while time.monotonic() < deadline:
                        snap = await browser.snapshot("a")
                        assert snap["connected"] and snap["joins"] == 1, snap
                        await asyncio.sleep(0.2)
                    after = await browser.wait_for(
                        "a", in_sync, what="back in sync after a lossy stall", timeout=15
                    )
                    assert after["joins"] == 1 and listening(after), after
                    print(f"after a {STALL_S:.0f} s lossy stall: {after['syncErrorMs']:.1f} ms")

                    net.cut(stalled)  # the phone walked out of range
                    t0 = time.monotonic()
                    await eventually(
                        lambda: party.status.listeners == 1,
                        timeout=DROP_WITHIN_S + 5,
                        what="the phone without a link counted out",
                    )
                    drop_s = time.monotonic() - t0
                    print(f"phone without a link dropped after {drop_s:.1f} s")
                    assert drop_s < DROP_WITHIN_S
                    assert phone.connected and phone.gaps == gaps_before
            finally:
                stop.set()
                await asyncio.wait_for(steady, 10)
