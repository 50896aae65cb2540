"""The tray driving the real coordinator: Start, live count, Quit leaves no process behind."""

from __future__ import annotations

from pathlib import Path

from desktop.devices import DeviceCache
from desktop.host import PartyHost
from desktop.settings import AppPaths, Settings, SettingsStore, one_channel
from desktop.shell import Shell
from server.sources.base import SourceSpec
from tests.desktop.fakes import FakeAutostart, fake_scan
from tests.helpers import descendants, eventually, free_base_port
from tests.listener import Listener

START_TIMEOUT = 90  # a cold spawn imports the protocol stack; two cores shared with others


def make_shell(paths: AppPaths, exits: list[int], source: SourceSpec) -> Shell:
    settings = Settings(
        channels=one_channel(source), port=free_base_port(3), workers=2, name="Test party"
    )
    host = PartyHost(
        SettingsStore(paths.settings_file), settings, paths.log_dir, public_host="127.0.0.1"
    )
    return Shell(
        host,
        paths,
        autostart=FakeAutostart(),
        devices=DeviceCache(fake_scan),
        use_tray=True,
        exit_app=exits.append,
        open_url=lambda _url: None,
    )


async def test_start_count_and_quit_drains_everything(app_paths: AppPaths) -> None:
    exits: list[int] = []
    shell = make_shell(app_paths, exits, SourceSpec("demo"))
    host, menu, window = shell.host, shell.menu, shell.window
    listener: Listener | None = None
    try:
        shell.start_up()
        menu.toggle.trigger()
        await eventually(lambda: host.phase == "live", timeout=START_TIMEOUT, what="live")
        url = f"http://127.0.0.1:{host.settings.port}/"
        assert window.isVisible() and window.qr.text() == url
        assert len(descendants()) >= 3, "coordinator + 2 workers"

        status = host.status
        assert status is not None
        worker_port = status.workers[0]["port"]
        listener = await Listener(f"ws://127.0.0.1:{worker_port}/sendspin").connect()
        await eventually(lambda: window.count.text() == "1", timeout=20, what="count 1")
        assert window.windowTitle() == "Test party — live, 1 listener"
        assert shell.tray is not None and "1 listener" in shell.tray.icon.toolTip()
        await listener.close()
        listener = None
        await eventually(lambda: window.count.text() == "0", timeout=20, what="count 0")

        menu.quit.trigger()
        await eventually(lambda: exits == [0], timeout=20, what="quit")
        assert not host.running
        await eventually(lambda: not descendants(), timeout=10, what="no child processes")
        assert (Path(app_paths.log_dir) / "coordinator.log").exists(), "children log there too"
    finally:
        if listener is not None:
            await listener.close()
        host.kill()
        await shell.drain()
        window.close()


async def test_missing_file_is_explained_and_nothing_is_left(
    app_paths: AppPaths, tmp_path: Path
) -> None:
    exits: list[int] = []
    shell = make_shell(app_paths, exits, SourceSpec("file", str(tmp_path / "gone.mp3")))
    notices: list[tuple[str, str]] = []
    shell.host.notice.connect(lambda level, message: notices.append((level, message)))
    try:
        shell.menu.toggle.trigger()
        await eventually(
            lambda: shell.host.phase == "error", timeout=START_TIMEOUT, what="error state"
        )
        assert notices and notices[0][0] == "error"
        assert "gone.mp3" in notices[0][1] or "not found" in notices[0][1].lower()
        assert len([n for n in notices if n[0] == "error"]) == 1, "one notice, not two"
        assert shell.menu.toggle.text() == "Start party"
        await eventually(lambda: not descendants(), timeout=10, what="no child processes")
    finally:
        shell.host.kill()
        await shell.drain()
        shell.window.close()
