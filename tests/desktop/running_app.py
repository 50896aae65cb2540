"""The real `partystream` app in a child process, with its own settings and log folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.helpers import free_base_port, http_json, pids_alive

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90


class AppProcess:
    """The real app in a child process, with its own settings and log folders."""

    def __init__(self, home: Path, *, platform: str = "offscreen", display: str | None = None):
        self.home = home
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "QT_QPA_PLATFORM": platform,
        }
        if display:
            self.env["DISPLAY"] = display
        self.proc: subprocess.Popen[str] | None = None
        self.launched_at = 0.0

    @property
    def settings_file(self) -> Path:
        return self.home / "config" / "PartyStream" / "settings.json"

    @property
    def log_file(self) -> Path:
        return self.home / "state" / "PartyStream" / "log" / "gui.log"

    def write_settings(self, **values: object) -> None:
        self.settings_file.parent.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(values), encoding="utf-8")

    def launch(self) -> subprocess.Popen[str]:
        """The app under test; its output goes to a file (a pipe nobody reads could fill)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "output.log").open("w") as out:
            self.launched_at = time.monotonic()
            self.proc = self._popen(out)
        return self.proc

    def spawn(self) -> subprocess.Popen[str]:
        """Another launch of the same app (user); read its output with communicate()."""
        return self._popen(subprocess.PIPE)

    def _popen(self, out: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "desktop"],
            cwd=REPO,
            env=self.env,
            stdout=out,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_file.exists() and text in self.log_file.read_text(errors="replace"):
                return
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} in the app's log:\n{self.output()}")

    def wait_live(self, port: int, timeout: float = START_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                code, status = http_json(f"http://127.0.0.1:{port}/api/status", timeout=2)
            except OSError:
                code, status = 0, None
            if code == 200 and status and status.get("state") == "live":
                return status
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the party did not go live:\n{self.output()}")

    def launch_live_party(self) -> list[int]:
        """Launch with "start party on launch" (one worker, a free port); wait until phones
        could join; return the app's child processes."""
        port = free_base_port(2)
        self.write_settings(port=port, workers=1, start_on_launch=True)
        self.launch()
        self.wait_live(port)
        return self.descendants()

    def descendants(self) -> list[int]:
        assert self.proc is not None
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the app did not exit in {timeout}s") from None

    def output(self) -> str:
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        output = self.home / "output.log"
        if output.exists():
            log += "\n--- output ---\n" + output.read_text(errors="replace")
        return log

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            children = self.descendants()
            self.proc.kill()
            self.proc.wait(10)
            for pid in pids_alive(children):
                psutil.Process(pid).kill()


def wait_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pids_alive(pids), f"left behind: {pids_alive(pids)}"
