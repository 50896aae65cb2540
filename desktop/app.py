"""`partystream` with a display: the tray app's entry point and its one event loop.

Qt runs the show and asyncio runs inside it (qasync), so PartyController's awaits never
block the GUI. Ctrl+C / SIGTERM reach Python even while Qt sleeps: asyncio's signal
handling wakes the loop through a socket that qasync watches with a QSocketNotifier; where
that is not available (Windows) a short timer lets Python run its handlers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from server import logs, winloop
from server.interrupts import Interrupts

log = logging.getLogger(__name__)

WAKE_INTERVAL_MS = 200


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="partystream",
        description="Party Stream: host a silent disco from the system tray. "
        "`partystream serve --help` runs a party without the tray.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--no-tray", action="store_true", help="use a normal window even if there is a tray"
    )
    args, unknown = parser.parse_known_args(argv)  # macOS may add -psn_… when opened
    if unknown:
        log.info("ignoring arguments %s", unknown)
    return args


def main(argv: list[str] | None = None) -> int:
    launched = time.monotonic()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        from desktop.version import app_version

        print(f"Party Stream {app_version()}")
        return 0

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop import autostart, icons
    from desktop.host import PartyHost
    from desktop.settings import AppPaths, SettingsStore
    from desktop.shell import EXIT_FORCED, Shell
    from desktop.single_instance import SingleInstance, instance_key

    paths = AppPaths.default()
    try:
        logs.setup("gui", str(paths.log_dir))
    except OSError as exc:  # a read-only home must not stop the party
        logs.setup("gui", None)
        log.warning("cannot write logs to %s: %s", paths.log_dir, exc)
    QApplication.setApplicationName("Party Stream")
    QApplication.setOrganizationName("PartyStream")
    QApplication.setDesktopFileName("partystream")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    app.setWindowIcon(icons.app_icon())

    instance = SingleInstance(instance_key(str(paths.config_dir)))
    if not instance.claim():
        print("Party Stream is already running: showing its window.", flush=True)
        return 0

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    winloop.install(loop)
    finished: asyncio.Future[int] = loop.create_future()

    def exit_app(code: int) -> None:
        if not finished.done():
            finished.set_result(code)

    store = SettingsStore(paths.settings_file)
    first_run = not store.exists
    settings, notice = store.load()
    if first_run or notice:  # a damaged file is replaced by the defaults right away
        try:
            store.save(settings)
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)
    host = PartyHost(store, settings, paths.log_dir, prepare_ahead=True)

    def force_exit() -> None:
        host.kill()
        logging.shutdown()
        os._exit(EXIT_FORCED)

    shell = Shell(
        host,
        paths,
        autostart=autostart.for_platform(),
        use_tray=False if args.no_tray else None,
        exit_app=exit_app,
        force_exit=force_exit,
    )
    instance.command_received.connect(lambda _command: shell.window.present())
    interrupts = Interrupts(shell.request_quit, shell.force_quit)
    interrupts.install(loop)
    wake = QTimer(interval=WAKE_INTERVAL_MS)
    if sys.platform == "win32":  # signal.signal handlers only run when Python runs
        wake.timeout.connect(lambda: None)
        wake.start()

    loop.call_soon(lambda: shell.start_up(first_run=first_run, notice=notice))
    log.info(
        "started in %.0f ms (tray: %s)",
        (time.monotonic() - launched) * 1000,
        shell.tray is not None,
    )
    try:
        code = loop.run_until_complete(finished)
    finally:
        wake.stop()
        host.kill()  # nothing is left by now; this only matters if the loop died early
        instance.release()
        loop.close()
    return code
