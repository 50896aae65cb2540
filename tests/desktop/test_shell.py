"""The tray app's logic, offscreen: menu actions, state changes, dialogs, notices.

The party is a FakeParty here (see fakes.py), so each state can be held and inspected;
test_quit.py runs the real coordinator.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QUrl
from PySide6.QtWidgets import QDialogButtonBox, QFileDialog, QInputDialog, QMessageBox

from desktop import host as host_module
from desktop import icons
from desktop.devices import DeviceCache
from desktop.host import PartyHost
from desktop.settings import AppPaths, Settings, SettingsStore
from desktop.settings_dialog import SettingsDialog
from desktop.shell import FIRST_RUN_HINT, Shell
from server.sources.base import SourceSpec
from tests.desktop.fakes import FakeAutostart, FakeParty, fake_api, fake_scan
from tests.helpers import eventually


@dataclass
class Rig:
    shell: Shell
    host: PartyHost
    paths: AppPaths
    autostart: FakeAutostart
    exits: list[int] = field(default_factory=list)
    opened: list[QUrl] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)
    tray_messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def menu(self) -> Any:
        return self.shell.menu

    @property
    def party(self) -> FakeParty:
        return FakeParty.made[-1]

    def saved(self) -> Settings:
        return SettingsStore(self.paths.settings_file).load()[0]


async def make_rig(
    paths: AppPaths,
    monkeypatch: pytest.MonkeyPatch,
    *,
    use_tray: bool | None = True,
    tray_available: Any = None,
    prescan: bool = True,
    prepare_ahead: bool = False,
    **settings: Any,
) -> Rig:
    api = fake_api()

    async def party_api() -> Any:
        return api

    monkeypatch.setattr(host_module, "party_api", party_api)
    store = SettingsStore(paths.settings_file)
    host = PartyHost(
        store, Settings(port=21000, **settings), paths.log_dir, prepare_ahead=prepare_ahead
    )
    autostart = FakeAutostart()
    rig = Rig(None, host, paths, autostart)  # type: ignore[arg-type]
    host.notice.connect(lambda level, msg: rig.notices.append((level, msg)))
    devices = DeviceCache(fake_scan)
    if prescan:
        await devices.refresh(force=True)
    rig.shell = Shell(
        host,
        paths,
        autostart=autostart,
        devices=devices,
        use_tray=use_tray,
        exit_app=rig.exits.append,
        **({"tray_available": tray_available} if tray_available else {}),
        open_url=rig.opened.append,
    )
    if rig.shell.tray is not None:
        tray = rig.shell.tray
        show = tray.notify

        def record(level: str, message: str) -> None:
            rig.tray_messages.append((level, message))
            show(level, message)

        tray.notify = record  # type: ignore[method-assign]
    return rig



async def close_rig(rig: Rig) -> None:
    await rig.host.stop()
    await rig.shell.drain()
    rig.shell.window.close()
    if rig.shell.tray is not None:
        rig.shell.tray.hide()
    rig.shell.window.deleteLater()


async def go_live(rig: Rig) -> None:
    rig.menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "live", timeout=5, what="live")


def tray_icon_is(rig: Rig, state: str) -> bool:
    assert rig.shell.tray is not None
    return rig.shell.tray.icon.icon().cacheKey() == icons.state_icon(state).cacheKey()


async def test_start_stop_follow_the_party(rig: Rig) -> None:
    menu, window, tray = rig.menu, rig.shell.window, rig.shell.tray
    assert tray is not None
    rig.shell.start_up()
    assert menu.toggle.text() == "Start party" and menu.status_action.text() == "Not running"
    assert not menu.open_player.isEnabled()
    assert tray_icon_is(rig, "idle")
    assert not window.isVisible()  # not the first run: the app stays in the tray

    FakeParty.hold_start = True
    menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "starting", timeout=5, what="starting")
    assert window.isVisible(), "Start shows the QR window at once"
    assert menu.toggle.text() == "Cancel starting"
    # The QR code shows at once (the address is known before the party is up): early phones
    # wait on the page and start by themselves.
    assert window.stack.currentIndex() == 0 and window.qr.text().endswith(":21000/")
    assert "Warming up" in window.pill.text()
    assert not menu.channels[0].menu.isEnabled()
    assert tray_icon_is(rig, "starting")

    rig.party.go_live()
    await eventually(lambda: rig.host.phase == "live", timeout=5, what="live")
    url = "http://192.0.2.7:21000/"
    assert window.qr.text() == url and window.url_button.text() == url
    assert window.stack.currentIndex() == 0
    assert menu.toggle.text() == "Stop party" and window.primary.text() == "Stop party"
    assert menu.open_player.isEnabled()
    assert tray_icon_is(rig, "live")
    # No figure yet: nothing made up.
    assert window.count.text() == "–" and "counting" in window.caption.text()
    assert window.windowTitle() == "Party Stream — live"
    assert "counting listeners" in tray.icon.toolTip()

    rig.party.report(listeners=2, level={"peak_db": -6.0, "rms_db": -12.0})
    assert window.count.text() == "2" and window.caption.text() == "listeners"
    assert window.windowTitle() == "Party Stream — live, 2 listeners"
    assert window.level.value() == 90
    assert "Live · 2 listeners" in tray.icon.toolTip()
    assert menu.status_action.text() == "Live · 2 listeners"
    rig.party.report(listeners=1)
    assert window.windowTitle().endswith("1 listener")

    menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "idle", timeout=5, what="idle")
    assert rig.party.stops == 1
    assert menu.toggle.text() == "Start party" and tray_icon_is(rig, "idle")
    assert window.qr.text() == "" and window.stack.currentIndex() == 1


async def test_cancel_while_starting_is_not_an_error(rig: Rig) -> None:
    FakeParty.hold_start = True
    rig.menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "starting", timeout=5)
    rig.menu.toggle.trigger()  # "Cancel starting"
    await eventually(lambda: rig.host.phase == "idle", timeout=5, what="idle")
    await rig.shell.drain()
    assert rig.host.error is None
    assert not [n for n in rig.notices if n[0] == "error"]


async def test_failed_start_is_reported_in_plain_language(rig: Rig) -> None:
    FakeParty.fail_start = "Port 21000 and the next ones are in use; choose another port."
    rig.menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "error", timeout=5, what="error")
    await rig.shell.drain()
    assert rig.notices == [("error", FakeParty.made[-1].status.message or rig.host.error)]
    assert "in use" in rig.notices[0][1]
    window = rig.shell.window
    assert "in use" in window.message_body.text()
    assert not window.notice.isVisible(), "said once, on the page"
    assert rig.tray_messages == rig.notices, "errors also go to the tray"
    assert rig.menu.toggle.text() == "Start party"
    assert tray_icon_is(rig, "error")
    assert rig.shell.tray is not None and "in use" in rig.shell.tray.icon.toolTip()


async def test_party_that_dies_is_noticed(rig: Rig) -> None:
    await go_live(rig)
    rig.party.crash("No listener server could keep running; the party stopped.")
    await eventually(lambda: rig.host.phase == "error", timeout=5, what="error")
    assert "No listener server" in (rig.host.problem or "")
    assert rig.menu.toggle.text() == "Start party"
    assert ("error", "No listener server could keep running; the party stopped.") in rig.notices


async def test_broken_source_keeps_the_party_serving(rig: Rig) -> None:
    await go_live(rig)
    message = "The stream stopped answering. Playing silence until you pick another source."
    rig.party.event("error", message)
    rig.party.report(
        source={"kind": "url", "label": "https://radio.example/x", "failed": True},
        message=message,
    )
    window = rig.shell.window
    assert rig.host.phase == "live" and window.stack.currentIndex() == 0, "QR stays up"
    assert "source problem" in window.pill.text()
    assert rig.shell.tray is not None and message in rig.shell.tray.icon.toolTip()
    assert ("error", message) in rig.tray_messages


async def test_source_menu_offers_devices_and_explains_what_is_missing(rig: Rig) -> None:
    menu = rig.menu
    assert menu.channels[0].demo.isChecked()
    assert [a.text() for a in menu.channels[0].mic_actions] == [
        "Default input",
        "Built-in Microphone (default)",
        "USB Audio Mic",
    ]
    assert menu.channels[0].system.text() == "System audio (unavailable)"
    assert "PulseAudio" in menu.channels[0].system.toolTip()

    menu.channels[0].system.trigger()
    assert rig.notices[-1][0] == "warning" and "PulseAudio" in rig.notices[-1][1]
    assert rig.host.settings.source == SourceSpec("demo") and menu.channels[0].demo.isChecked()

    menu.channels[0].mic_actions[2].trigger()
    await eventually(lambda: rig.host.settings.source.kind == "mic", timeout=5)
    assert rig.host.settings.source == SourceSpec("mic", device="USB Audio Mic")
    assert rig.saved().source == SourceSpec("mic", device="USB Audio Mic")
    assert menu.channels[0].mic_actions[2].isChecked()
    assert "USB Audio Mic" in rig.shell.window.source_button.text()


async def test_devices_found_at_start_up_reach_the_menu(
    app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(app_paths, monkeypatch, prescan=False)
    try:
        assert [a.text() for a in rig.menu.channels[0].mic_actions] == ["Default input"]
        assert rig.menu.channels[0].system.text() == "System audio"  # not checked yet: no verdict
        rig.shell.start_up()
        await rig.shell.drain()
        assert len(rig.menu.channels[0].mic_actions) == 3
        assert rig.menu.channels[0].system.text() == "System audio (unavailable)"
    finally:
        await close_rig(rig)


async def test_switching_source_while_live(rig: Rig) -> None:
    await go_live(rig)
    rig.menu.channels[0].mic_actions[0].trigger()
    await eventually(lambda: len(rig.party.sources) == 2, timeout=5, what="switch")
    assert rig.party.sources[-1] == SourceSpec("mic")
    assert rig.saved().source == SourceSpec("mic")
    rig.menu.channels[0].mic_actions[0].trigger()  # what already plays: no restart, still ticked
    await rig.shell.drain()
    assert len(rig.party.sources) == 2 and rig.menu.channels[0].mic_actions[0].isChecked()

    rig.party.fail_switch = "The input 'USB' is not connected."
    rig.menu.channels[0].demo.trigger()
    await rig.shell.drain()
    assert rig.notices[-1] == ("error", "The input 'USB' is not connected.")
    assert [n[1] for n in rig.notices].count("The input 'USB' is not connected.") == 1
    assert rig.host.settings.source == SourceSpec("mic"), "the old source keeps playing"
    assert rig.menu.channels[0].mic_actions[0].isChecked()


async def test_open_file_and_url(rig: Rig, tmp_path: Path) -> None:
    song = tmp_path / "song.flac"
    song.write_bytes(b"fLaC")
    rig.menu.channels[0].open_file.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QFileDialog) and dialog.isVisible()
    assert rig.menu.channels[0].demo.isChecked(), "nothing changes until a file is picked"
    dialog.selectFile(str(song))
    dialog.accept()
    await eventually(lambda: rig.host.settings.source.kind == "file", timeout=5)
    assert rig.host.settings.source == SourceSpec("file", str(song))
    source = rig.menu.channels[0]
    assert source.open_file.isChecked() and "song.flac" in source.open_file.text()

    rig.menu.channels[0].open_url.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QInputDialog)
    dialog.setTextValue("ftp://example.org/radio")
    dialog.accept()
    assert rig.notices[-1][0] == "warning" and "http://" in rig.notices[-1][1]
    assert rig.host.settings.source.kind == "file"

    rig.menu.channels[0].open_url.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, QInputDialog)
    dialog.setTextValue(" https://radio.example.org/live.mp3 ")
    dialog.accept()
    await eventually(lambda: rig.host.settings.source.kind == "url", timeout=5)
    assert rig.saved().source == SourceSpec("url", "https://radio.example.org/live.mp3")


async def test_settings_dialog_saves_and_sets_login_item(rig: Rig) -> None:
    rig.menu.open_settings.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, SettingsDialog) and dialog.isVisible()
    dialog.name.setText("  Rooftop  ")
    dialog.port.setValue(65530)
    dialog.workers.setValue(8)
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    save.click()
    assert dialog.isVisible() and not dialog.error.isHidden()
    assert "port" in dialog.error.text().lower()
    assert rig.host.settings.name == "Party Stream", "nothing saved from an invalid form"

    dialog.port.setValue(21500)
    dialog.start_on_launch.setChecked(True)
    dialog.start_at_login.setChecked(True)
    save.click()
    assert not dialog.isVisible()
    expected = replace(
        rig.host.settings,
        name="Rooftop",
        port=21500,
        workers=8,
        start_on_launch=True,
        start_at_login=True,
    )
    assert rig.host.settings == expected and rig.saved() == expected
    assert rig.autostart.calls == [True]
    assert rig.shell.window.name_label.text() == "Rooftop"


async def test_settings_changed_while_live_apply_next_time(rig: Rig) -> None:
    await go_live(rig)
    rig.shell.apply_settings(replace(rig.host.settings, workers=3))
    assert rig.notices[-1] == ("info", "The new settings apply the next time you start the party.")
    assert rig.party.config.workers != 3


async def test_login_item_removed_by_hand_is_noticed(
    app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(app_paths, monkeypatch, start_at_login=True)
    try:
        rig.shell.start_up()
        await rig.shell.drain()
        assert rig.host.settings.start_at_login is False
        assert rig.saved().start_at_login is False
    finally:
        await close_rig(rig)


async def test_show_qr_open_player_logs_and_about(rig: Rig) -> None:
    rig.menu.show_qr.trigger()
    assert rig.shell.window.isVisible()
    await go_live(rig)
    rig.menu.open_player.trigger()
    assert rig.opened == [QUrl("http://192.0.2.7:21000/")]
    rig.menu.open_logs.trigger()
    assert rig.opened[-1] == QUrl.fromLocalFile(str(rig.paths.log_dir))
    assert rig.paths.log_dir.is_dir()
    rig.menu.about.trigger()
    box = rig.shell.dialog
    assert isinstance(box, QMessageBox)
    assert importlib.metadata.version("partystream") in box.text()
    box.close()


async def test_copy_link(rig: Rig) -> None:
    from PySide6.QtGui import QGuiApplication

    await go_live(rig)
    rig.shell.window.url_button.click()
    assert QGuiApplication.clipboard().text() == "http://192.0.2.7:21000/"
    assert rig.shell.window.url_button.text() == "Link copied ✓"


async def test_first_run_shows_the_window_and_a_hint(rig: Rig) -> None:
    rig.shell.start_up(first_run=True, notice="Your settings file was damaged, so defaults…")
    await rig.shell.drain()
    window = rig.shell.window
    assert window.isVisible()
    assert window.notice.isVisible() and "damaged" in window.notice.text()
    assert ("info", FIRST_RUN_HINT) in rig.notices


async def test_start_on_launch(app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = await make_rig(app_paths, monkeypatch, start_on_launch=True)
    try:
        rig.shell.start_up()
        await eventually(lambda: rig.host.phase == "live", timeout=5, what="live")
        assert rig.shell.window.isVisible()
    finally:
        await close_rig(rig)


async def test_without_a_tray_the_window_is_the_app(
    app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(app_paths, monkeypatch, use_tray=False)
    try:
        assert rig.shell.tray is None
        rig.shell.start_up()
        window = rig.shell.window
        assert window.isVisible()
        # the same controls: start/stop, source menu, and the rest behind "⋯"
        assert window.source_button.menu() is rig.menu.channels[0].menu
        more = [a.text() for a in window.more_menu.actions() if a.text()]
        assert more == [
            "Listeners…",
            "Open player in browser",
            "Settings…",
            "Open logs",
            "About Party Stream",
            "Quit",
        ]
        window.primary.click()
        await eventually(lambda: rig.host.phase == "live", timeout=5, what="live")
        rig.party.event("warning", "Port 21000 is in use by another program; using 21003.")
        assert "21003" in window.notice.text()
        window.close()  # closing the only window quits, after stopping the party
        await eventually(lambda: rig.exits == [0], timeout=5, what="exit")
        assert rig.party.stops == 1 and not rig.host.running
    finally:
        await close_rig(rig)


async def test_a_tray_that_appears_after_launch_is_used(
    app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    available = False
    monkeypatch.setattr("desktop.shell.TRAY_POLL_MS", 50)
    rig = await make_rig(app_paths, monkeypatch, use_tray=None, tray_available=lambda: available)
    try:
        rig.shell.start_up()
        window = rig.shell.window
        assert rig.shell.tray is None and window.isVisible() and window.standalone
        available = True  # the panel finished starting after us
        await eventually(lambda: rig.shell.tray is not None, timeout=5, what="tray")
        assert not window.standalone
        window.close()
        await rig.shell.drain()
        assert rig.exits == [], "now closing the window only hides it"
    finally:
        await close_rig(rig)


async def test_a_party_is_kept_prepared_and_used_by_start(
    app_paths: AppPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(app_paths, monkeypatch, prepare_ahead=True)
    try:
        rig.shell.start_up()
        await eventually(lambda: FakeParty.made and FakeParty.made[0].prepared, what="prepared")
        warm = FakeParty.made[0]
        assert rig.host.phase == "idle" and rig.menu.toggle.text() == "Start party"
        await go_live(rig)
        assert FakeParty.made == [warm], "Start used the prepared party"
        await rig.host.stop()
        await eventually(lambda: len(FakeParty.made) == 2 and FakeParty.made[1].prepared)
        # New settings that change the party replace the prepared one.
        rig.host.update_settings(replace(rig.host.settings, workers=3))
        await eventually(lambda: len(FakeParty.made) == 3 and FakeParty.made[2].prepared)
        assert FakeParty.made[1].stops == 1 and FakeParty.made[2].config.workers == 3
        rig.menu.quit.trigger()
        await eventually(lambda: rig.exits == [0], what="quit")
        assert FakeParty.made[2].stops == 1 and len(FakeParty.made) == 3, "nothing left warm"
    finally:
        await close_rig(rig)


async def test_quit_twice_forces(rig: Rig) -> None:
    await go_live(rig)

    async def never_stops(timeout: float = 8.0) -> None:
        rig.party.report(state="stopping")  # as the real one does, at once
        await eventually(lambda: False, timeout=30)

    rig.party.stop = never_stops  # type: ignore[method-assign]
    rig.menu.quit.trigger()
    assert rig.menu.quit.text() == "Quit now"
    rig.menu.quit.trigger()
    assert rig.party.killed and rig.exits == [130]


def artifacts_dir() -> Path:
    out = Path(__file__).resolve().parents[2] / "test-artifacts" / "desktop"
    out.mkdir(parents=True, exist_ok=True)
    return out


async def test_window_pictures_for_review(rig: Rig) -> None:
    """The window in each state and the settings dialog, saved to test-artifacts/desktop/."""
    out = artifacts_dir()
    window = rig.shell.window
    window.present()
    assert window.grab().save(str(out / "window-idle.png"))

    FakeParty.hold_start = True
    rig.menu.toggle.trigger()
    await eventually(lambda: rig.host.phase == "starting", timeout=5)
    assert window.grab().save(str(out / "window-starting.png"))
    rig.party.go_live()
    await eventually(lambda: rig.host.phase == "live", timeout=5)
    rig.party.report(listeners=12, level={"peak_db": -9.0, "rms_db": -18.0})
    await asyncio.sleep(0.1)  # let the layout settle, as it would on screen
    assert window.grab().save(str(out / "window-live.png"))

    rig.party.crash("The sound device 'USB Audio' was unplugged; the party stopped.")
    await eventually(lambda: rig.host.phase == "error", timeout=5)
    assert not window.notice.isVisible(), "the error is on the page, not twice"
    assert window.grab().save(str(out / "window-error.png"))

    rig.menu.open_settings.trigger()
    dialog = rig.shell.dialog
    assert isinstance(dialog, SettingsDialog)
    assert dialog.grab().save(str(out / "settings-dialog.png"))
    dialog.reject()
