"""`partystream` as a process (offscreen): damaged settings, second launch, Ctrl+C, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop.running_app import AppProcess, wait_gone


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppProcess]:
    made = AppProcess(tmp_path)
    yield made
    made.close()


def test_damaged_settings_second_launch_and_sigterm(app: AppProcess) -> None:
    app.settings_file.parent.mkdir(parents=True)
    app.settings_file.write_text('{"port": 8927, "name": "oops', encoding="utf-8")
    app.launch()
    app.wait_log("started in")
    assert (app.settings_file.parent / "settings.damaged.json").exists()
    assert json.loads(app.settings_file.read_text())["name"] == "Party Stream"

    second = app.spawn()
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0
    assert "already running" in out

    # Idle, Qt asleep in its event loop: the signal must still wake Python at once.
    time.sleep(1.0)
    assert app.proc is not None
    app.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert app.wait_exit(10) == 0
    assert time.monotonic() - sent < 3


def test_ctrl_c_stops_the_party_gracefully(app: AppProcess) -> None:
    children = app.launch_live_party()
    assert children
    assert app.proc is not None
    app.proc.send_signal(signal.SIGINT)
    assert app.wait_exit(15) == 0
    wait_gone(children)


def test_second_ctrl_c_quits_at_once(app: AppProcess) -> None:
    children = app.launch_live_party()
    assert app.proc is not None
    app.proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    app.proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert app.wait_exit(5) == 130
    assert time.monotonic() - started < 3
    wait_gone(children)


def test_the_tray_app_starts_without_the_party_s_heavy_libraries() -> None:
    """Launch time is the host's first impression (and QR-on-launch waits for it): the GUI
    process imports Qt and its own code, never the protocol library, aiohttp or FFmpeg."""
    code = (
        "import sys, desktop.app, desktop.shell, desktop.host; "
        "print(sorted(m for m in ('aiosendspin', 'aiohttp', 'av', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
