"""`partystream serve` as a user runs it: messages, exit codes, Ctrl+C, kill -9, bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_base_port, http_json, pids_alive
from tests.processes import Running

START_TIMEOUT = 60
ROOT = Path(__file__).resolve().parent.parent


def Serve(*args: str) -> Running:
    """`python -m server ...` as a user starts it."""
    return Running(
        [sys.executable, "-u", "-m", "server", "--public-host", "127.0.0.1", *args], cwd=ROOT
    )


def run_serve(*args: str, timeout: float = START_TIMEOUT) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return proc.returncode, proc.stdout + proc.stderr


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := pids_alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/song.flac"], "File not found: /nonexistent/song.flac"),
        (["--demo", "--workers", "0"], "--workers must be between 1 and 16"),
        (["--demo", "--workers", "999"], "--workers must be between 1 and 16"),
        (["--demo", "--port", "80"], "--port must be between 1024"),
        (["--channel", "Blue=/nonexistent/song.flac"], "File not found: /nonexistent/song.flac"),
        (["--channel", "A=demo"] * 4, "at most 3 channels"),
        (["demo", "--channel", "A=demo"], "either a source or --channel"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    code, out = run_serve(*args)
    assert code == 2
    assert message in out
    assert "Traceback" not in out


def test_corrupt_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "party.mp3"
    bad.write_bytes(os.urandom(64 * 1024))
    code, out = run_serve(str(bad), "--workers", "1", "--port", str(free_base_port(2)))
    assert code == 1
    assert "not an audio format we can read" in out or "no audio track" in out
    assert "Traceback" not in out


def test_unreachable_url_is_refused() -> None:
    dead = free_base_port(1)  # nothing listens there
    url = f"http://127.0.0.1:{dead}/radio.mp3"
    code, out = run_serve(url, "--workers", "1", "--port", str(free_base_port(2)))
    assert code == 1
    assert f"Cannot open {url!r}" in out
    assert "Traceback" not in out


def test_port_in_use_moves_to_a_free_port_and_says_so() -> None:
    base = free_base_port(6)
    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", base))
        blocker.listen()
        serve = Serve("--demo", "--workers", "1", "--port", str(base))
        try:
            m = serve.wait_for(r"Port (\d+) is in use by another program; using port (\d+) instead")
            assert int(m.group(1)) == base and int(m.group(2)) != base
            url = serve.wait_for(r"Phones open: (http://\S+)").group(1)
            assert url == f"http://127.0.0.1:{m.group(2)}/"
            code, status = http_json(url + "api/status")
            assert code == 200 and status["state"] == "live"
        finally:
            serve.proc.send_signal(signal.SIGINT)
            assert serve.finish() == 0


def test_channels_from_the_command_line_show_their_own_counts() -> None:
    serve = Serve(
        "--channel", "Red=demo", "--channel", "Chill=demo", "--workers", "1",
        "--port", str(free_base_port(2)),
    )  # fmt: skip
    try:
        serve.wait_for(r"is live — Red: Demo music · Chill: Demo music")
        url = serve.wait_for(r"Phones open: (http://\S+)").group(1)
        serve.wait_for(r"^Listeners: 0  \(Red 0 · Chill 0\)  \(servers up: 1/1\)$")
        code, status = http_json(url + "api/status")
        assert code == 200
        assert [(c["name"], c["colour"]) for c in status["channels"]] == [
            ("Red", "#e53935"),
            ("Chill", "#1e88e5"),
        ]
    finally:
        serve.proc.send_signal(signal.SIGINT)
        assert serve.finish() == 0


def test_ctrl_c_once_is_graceful_and_leaves_nothing() -> None:
    serve = Serve("--demo", "--workers", "2", "--port", str(free_base_port(3)))
    serve.wait_for(r"Phones open:")
    children = serve.descendant_pids()
    assert len(children) >= 3
    t0 = time.monotonic()
    serve.proc.send_signal(signal.SIGINT)
    assert serve.finish(timeout=15) == 0
    took = time.monotonic() - t0
    out = serve.output()
    assert "press Ctrl+C again to force quit" in out
    assert "Party stopped." in out
    assert not wait_gone(children, 5), "orphans after Ctrl+C"
    assert took < 15


def test_ctrl_c_twice_exits_at_once_without_orphans() -> None:
    serve = Serve("--demo", "--workers", "2", "--port", str(free_base_port(3)))
    serve.wait_for(r"Phones open:")
    children = serve.descendant_pids()
    serve.proc.send_signal(signal.SIGINT)
    serve.wait_for(r"force quit", timeout=5)
    serve.proc.send_signal(signal.SIGINT)
    assert serve.finish(timeout=5) == 130
    assert "Forced quit." in serve.output()
    assert not wait_gone(children, 8), "orphans after a forced quit"


def test_sigterm_is_graceful() -> None:
    serve = Serve("--demo", "--workers", "1", "--port", str(free_base_port(2)))
    serve.wait_for(r"Phones open:")
    children = serve.descendant_pids()
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.finish(timeout=15) == 0
    assert not wait_gone(children, 5)


def test_kill_9_of_the_parent_leaves_no_orphans() -> None:
    serve = Serve("--demo", "--workers", "2", "--port", str(free_base_port(3)))
    serve.wait_for(r"Phones open:")
    children = serve.descendant_pids()
    assert len(children) >= 3
    serve.proc.kill()
    serve.finish()
    assert not wait_gone(children, 10), "children survived kill -9 of their parent"
