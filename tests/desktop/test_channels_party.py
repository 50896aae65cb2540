"""Channels from the tray menu on the real coordinator: add, pick a file, rename and remove
while the party runs, the party's status following each step; the QR window's per-channel
counts with real Sendspin listeners; Qt pictures of the Channels section and the window."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QFileDialog, QInputDialog

from desktop.settings import AppPaths, SettingsStore
from server.sources.base import SourceSpec
from tests.desktop.test_real_party import START_TIMEOUT, make_shell
from tests.helpers import eventually
from tests.listener import Listener
from tests.media import tagged_flac

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
CHANGE_TIMEOUT = 20  # a live change opens a source in the coordinator; two busy cores


def names(host) -> list[str]:  # type: ignore[no-untyped-def]
    status = host.status
    return [c["name"] for c in (getattr(status, "channels", None) or [])]


def chips(window) -> list[str]:  # type: ignore[no-untyped-def]
    return [chip.text() for chip in window.chip_labels]


async def switch_channel(port: int, listener: Listener, channel: int) -> None:
    """What the page does when a guest taps a channel button."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/api/channel?id={listener.client_id}&channel={channel}"
    async with aiohttp.ClientSession() as session, session.post(url) as reply:
        assert reply.status == 200, await reply.text()


async def test_channels_from_the_menu_follow_the_party_and_count_listeners(
    app_paths: AppPaths, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    song = tagged_flac(tmp_path / "anna.flac", title="Anna's song", seconds=30.0)
    shell = make_shell(app_paths, [], SourceSpec("demo"))
    host, menu, window = shell.host, shell.menu, shell.window
    listeners: list[Listener] = []
    try:
        shell.start_up()
        # Before the party: a second channel, kept for the start.
        menu.add_channel.trigger()
        await eventually(lambda: len(host.channels) == 2, timeout=5, what="added before start")
        menu.toggle.trigger()
        await eventually(lambda: host.phase == "live", timeout=START_TIMEOUT, what="live")
        await eventually(lambda: names(host) == ["Red", "Blue"], timeout=10, what="started")

        began = time.monotonic()
        menu.add_channel.trigger()
        await eventually(
            lambda: names(host) == ["Red", "Blue", "Green"], timeout=CHANGE_TIMEOUT, what="added"
        )
        print(f"Add channel -> in the party's status in {time.monotonic() - began:.2f} s")
        # Green plays a file, picked with the usual file picker from Green's own submenu.
        menu.channels[2].open_file.trigger()
        dialog = shell.dialog
        assert isinstance(dialog, QFileDialog)
        dialog.selectFile(str(song))
        began = time.monotonic()
        dialog.accept()
        await eventually(
            lambda: host.status.channels[2]["source"] == "anna.flac",  # type: ignore[union-attr]
            timeout=CHANGE_TIMEOUT,
            what="Green plays the file",
        )
        print(f"file picked -> in the party's status in {time.monotonic() - began:.2f} s")
        assert host.status.channels[0]["source"] == "Demo music"  # type: ignore[union-attr]
        menu.channels[2].rename.trigger()
        dialog = shell.dialog
        assert isinstance(dialog, QInputDialog)
        dialog.setTextValue("Anna")
        dialog.accept()
        await eventually(
            lambda: names(host) == ["Red", "Blue", "Anna"], timeout=CHANGE_TIMEOUT, what="renamed"
        )

        # Two real listeners, one per worker; the second taps Anna's channel.
        status = host.status
        assert status is not None
        ports = [w["port"] for w in status.workers]
        for port in ports:
            listener = Listener(f"ws://127.0.0.1:{port}/sendspin", keep_audio=False)
            listeners.append(await listener.connect())
        await eventually(lambda: chips(window) == ["Red  2", "Blue  0", "Anna  0"], timeout=20)
        began = time.monotonic()
        await switch_channel(ports[1], listeners[1], 2)
        await eventually(
            lambda: chips(window) == ["Red  1", "Blue  0", "Anna  1"],
            timeout=20,
            what="one listener on Red, one on Anna",
        )
        print(f"a guest's switch -> the QR window's chips in {time.monotonic() - began:.2f} s")
        assert window.count.text() == "2" and window.chips.isVisibleTo(window)
        assert menu.channels[2].menu.title() == "Anna · anna.flac · 1"
        await listeners[1].wait_chunks(listeners[1].count + 10)  # Anna's audio keeps coming
        # The tray's tooltip says what each channel plays (the file's own title) and to whom.
        assert shell.tray is not None
        tip = shell.tray.icon.toolTip
        await eventually(
            lambda: "Anna: ♪ Anna's song (1)" in tip() and "Red: ♪ " in tip(),
            timeout=15,
            what=f"each channel's title in the tooltip ({tip()!r})",
        )

        menu.menu.popup(QPoint(0, 0))
        await asyncio.sleep(0.2)  # laid out and painted, as on screen
        assert menu.menu.grab().save(str(ARTIFACTS / "channels-menu.png"))
        source = menu.channels[2].menu
        source.popup(QPoint(0, 0))
        await asyncio.sleep(0.2)
        assert source.grab().save(str(ARTIFACTS / "channels-menu-anna-submenu.png"))
        source.hide()
        menu.menu.hide()
        window.present()
        await asyncio.sleep(0.2)
        assert window.grab().save(str(ARTIFACTS / "qr-window-channels.png"))

        # Red goes: its listener moves to the first channel left (Blue).
        began = time.monotonic()
        menu.channels[0].remove.trigger()
        await eventually(
            lambda: chips(window) == ["Blue  1", "Anna  1"], timeout=20, what="Red removed"
        )
        print(f"Remove channel -> the chips in {time.monotonic() - began:.2f} s")
        assert names(host) == ["Blue", "Anna"]
        menu.channels[0].remove.trigger()
        await eventually(lambda: names(host) == ["Anna"], timeout=CHANGE_TIMEOUT, what="one left")
        await eventually(lambda: host.listeners == 2, timeout=20, what="both still listening")
        assert not window.chips.isVisibleTo(window), "one channel looks as before"
        assert "Source: anna.flac" in [a.text() for a in menu.menu.actions()]
        source = menu.channels[0].menu  # "Add a second channel" waits at its end
        source.popup(QPoint(0, 0))
        await asyncio.sleep(0.2)
        assert source.grab().save(str(ARTIFACTS / "channels-one-source-menu.png"))
        source.hide()
        saved = SettingsStore(app_paths.settings_file).load()[0]
        assert [(c.name, c.source) for c in saved.channels] == [
            ("Anna", SourceSpec("file", str(song)))
        ]
    finally:
        for listener in listeners:
            await listener.close()
        await host.stop()
        await shell.drain()
        window.close()
