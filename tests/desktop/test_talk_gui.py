"""Talk-over from the tray item and the QR window's hold-to-talk button, on a real party
with a real (PulseAudio) microphone: the party's talk state follows, the mic meter shows."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from desktop.settings import AppPaths
from server.sources.base import SourceSpec
from tests.desktop.test_real_party import START_TIMEOUT, make_shell
from tests.helpers import eventually
from tests.pulse import PulseServer, pulse_fixture, pulse_server_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.audio
MIC = "GUI Talk Mic"


async def test_tray_item_and_hold_button_switch_the_party_talk(
    app_paths: AppPaths, pulse: PulseServer
) -> None:
    mic = pulse.add_mic("guimic", MIC, master="vsink.monitor")
    exits: list[int] = []
    shell = make_shell(app_paths, exits, SourceSpec("demo"))
    host, menu, window = shell.host, shell.menu, shell.window
    host.settings = replace(host.settings, talk_device=MIC)

    def on_air() -> bool | None:
        return (host.talk or {}).get("on")

    try:
        shell.start_up()
        menu.toggle.trigger()
        await eventually(lambda: host.phase == "live", timeout=START_TIMEOUT, what="live")
        await eventually(lambda: host.talk is not None, what="talk in the status")
        window.present()
        assert menu.talk.isEnabled() and not menu.talk.isChecked()
        assert window.talk_button.isVisible() and not window.mic_level.isVisible()

        menu.talk.trigger()  # the tray item: press once to talk ...
        await eventually(on_air, timeout=20, what="on air from the tray")
        assert host.talk is not None and host.talk["device"] == MIC
        await eventually(window.mic_level.isVisible, what="the mic meter while talking")
        assert menu.talk.isChecked() and menu.talk.text().startswith("Talking")
        menu.talk.trigger()  # ... and again to stop
        await eventually(lambda: on_air() is False, what="off air from the tray")
        assert not menu.talk.isChecked() and not window.mic_level.isVisible()

        QTest.mousePress(window.talk_button, Qt.MouseButton.LeftButton)  # held: on air
        await eventually(on_air, what="on air while the button is held")
        QTest.mouseRelease(window.talk_button, Qt.MouseButton.LeftButton)  # let go: off
        await eventually(lambda: on_air() is False, what="off air when released")

        menu.talk_always.trigger()  # "Always on": on air until unticked, and remembered
        await eventually(on_air, what="on air in always-on mode")
        assert host.settings.talk_mode == "always" and not window.talk_button.isEnabled()
        menu.talk_always.trigger()
        await eventually(lambda: on_air() is False, what="off air back in push mode")
        assert host.store.load()[0].talk_mode == "push"

        menu.quit.trigger()
        await eventually(lambda: exits == [0], timeout=20, what="quit")
    finally:
        host.kill()
        await shell.drain()
        window.close()
        with contextlib.suppress(RuntimeError):
            pulse.unload(mic)
