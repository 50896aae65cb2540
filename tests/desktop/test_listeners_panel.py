"""Listeners…: two real phones (Chromium pages) on a real party, as the host's panel shows
them; one stops, the other is disconnected by the host."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from desktop.listeners_panel import connected_for
from desktop.settings import AppPaths
from server.sources.base import SourceSpec
from tests.browser.bridge import BrowserDriver, listening
from tests.desktop.test_real_party import START_TIMEOUT, make_shell
from tests.helpers import eventually
from tests.test_browser import ALIAS, ANDROID

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
DROP_WITHIN_S = 2.0
GUEST_NAME = "Anna's phone"
NAME_IT = f"""(() => {{
  const input = document.getElementById('guest-name');
  input.value = "{GUEST_NAME}";
  input.dispatchEvent(new Event('change'));
  return input.value;
}})()"""


def test_connected_time_reads_like_a_person_would_say_it() -> None:
    assert connected_for(100.0, 142.9) == "42 s"
    assert connected_for(0.0, 600.0) == "10 min"
    assert connected_for(0.0, 3 * 3600 + 120) == "3 h 2 min"


def column(panel, name: str) -> list[str]:
    from desktop.listeners_panel import COLUMNS

    c = COLUMNS.index(name)
    return [panel.table.item(r, c).text() for r in range(panel.table.rowCount())]


@pytest.mark.browser
async def test_panel_lists_two_phones_follows_one_stopping_and_disconnects_one(
    app_paths: AppPaths,
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    exits: list[int] = []
    shell = make_shell(app_paths, exits, SourceSpec("demo"))
    host, panel = shell.host, shell.listeners
    browser: BrowserDriver | None = None
    try:
        shell.menu.toggle.trigger()
        await eventually(lambda: host.phase == "live", timeout=START_TIMEOUT, what="live")
        shell.menu.show_listeners.trigger()
        assert panel.isVisible() and panel.summary.text() == "No phones yet"

        browser = await BrowserDriver.start(["127.0.0.1", ALIAS])
        front = f"http://127.0.0.1:{host.settings.port}/"
        await browser.call("open", page="a", url=front)
        await browser.call(
            "open", page="b", url=front.replace("127.0.0.1", ALIAS), userAgent=ANDROID
        )
        # The guest with the Android phone names it (the share sheet's field).
        await browser.call("eval", page="b", expression=NAME_IT)
        codecs = []
        for page in ("a", "b"):
            await browser.call("tap", page=page, selector="#start")
            snap = await browser.wait_for(page, listening, what="playback", timeout=30)
            codecs.append(snap["codec"].upper())  # what each page itself decodes

        await eventually(
            lambda: (
                column(panel, "Codec") == codecs
                and column(panel, "State") == ["Playing", "Playing"]
            ),
            timeout=10,
            what="two playing phones with their codecs",
        )
        await eventually(
            lambda: (
                sorted(column(panel, "Name")) == [GUEST_NAME, "Web browser"]
                and all(k.isdigit() and int(k) > 0 for k in column(panel, "kbit/s"))
                and all(s.endswith(" ms") for s in column(panel, "Sync"))
            ),
            timeout=15,
            what="names, kbit/s and the sync error each page reports",
        )
        panel.grab().save(str(ARTIFACTS / "listeners-two-phones.png"))

        # Phone b stops: its row follows (it may come back, so it stays a moment).
        await browser.call("tap", page="b", selector="#stop")
        android = next(r["id"] for r in panel.rows if r["name"] == GUEST_NAME)
        await eventually(
            lambda: all(r["state"] != "playing" for r in panel.rows if r["id"] == android),
            timeout=10,
            what="the stopped phone no longer playing",
        )
        panel.grab().save(str(ARTIFACTS / "listeners-one-stopped.png"))

        # The host mutes phone a: the phone obeys and says so in its state.
        browser_id = next(r["id"] for r in panel.rows if r["name"] == "Web browser")
        panel.select(browser_id)
        assert panel.mute.text() == "Mute"
        panel.mute.click()
        await eventually(
            lambda: column(panel, "State") == ["Playing · muted by you"], timeout=5, what="muted"
        )
        assert panel.mute.text() == "Unmute"

        # The host disconnects phone a: gone from the panel within 2 s.
        began = time.monotonic()
        panel.disconnect_button.click()
        await eventually(
            lambda: all(r["id"] != browser_id for r in panel.rows),
            timeout=DROP_WITHIN_S,
            interval=0.05,
            what=f"the disconnected phone gone within {DROP_WITHIN_S} s",
        )
        print(f"disconnect -> row gone in {time.monotonic() - began:.2f} s")
        await browser.wait_for("a", lambda s: s["refused"] == "kicked", what="phone a told")
        panel.grab().save(str(ARTIFACTS / "listeners-after-disconnect.png"))

        # A PIN set in Settings applies at once, for phones still to come, and the QR code
        # carries it so scanning just works.
        host.update_settings(replace(host.settings, pin="2468", max_listeners=5))
        await eventually(
            lambda: shell.window.qr.text() == f"{front}#pin=2468", timeout=5, what="PIN in QR"
        )
        assert host.status is not None and host.status.access["max_listeners"] == 5
        shell.window.present()
        shell.window.grab().save(str(ARTIFACTS / "qr-window-with-pin.png"))
    finally:
        if browser is not None:
            await browser.close()
        await host.stop()
        await shell.drain()
        panel.close()
        shell.window.close()
