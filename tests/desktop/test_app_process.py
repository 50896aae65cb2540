"""`partystream` as a process (offscreen): damaged settings, second launch, Ctrl+C, SIGTERM."""

from __future__ import annotations

import json
import signal
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
