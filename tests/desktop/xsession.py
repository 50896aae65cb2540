"""A real X display for tray tests: Xvfb plus trayer as the system-tray host.

Xvfb picks a free display number itself (-displayfd), so parallel runs never collide;
every wait has a timeout and both servers are stopped even when a test fails.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "xdpyinfo", "import", "zbarimg")
SCREEN = (1024, 768)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass
class Window:
    wid: str
    name: str
    x: int
    y: int
    width: int
    height: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


_LINE = re.compile(r'^\s*(0x[0-9a-f]+) "(.*)": .*?(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)')


@dataclass
class XSession:
    display: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def run(self, *args: str, timeout: float = 10) -> str:
        done = subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return done.stdout

    def windows(self, *, tree: bool = False) -> list[Window]:
        """Named windows: top-level ones, or every level with `tree`."""
        out = self.run("xwininfo", "-root", "-tree" if tree else "-children")
        found = []
        for line in out.splitlines():
            if m := _LINE.match(line):
                wid, name, w, h, x, y = m.groups()
                found.append(Window(wid, name, int(x), int(y), int(w), int(h)))
        return found

    def viewable(self, win: Window) -> bool:
        return "IsViewable" in self.run("xwininfo", "-id", win.wid)

    def find(self, pattern: str, *, tree: bool = False, min_size: int = 0) -> Window | None:
        """A window on screen (mapped, not just created) whose name matches `pattern`."""
        for win in self.windows(tree=tree):
            if (
                re.search(pattern, win.name)
                and min(win.width, win.height) >= min_size
                and self.viewable(win)
            ):
                return win
        return None

    def wait_for(
        self, pattern: str, timeout: float, *, tree: bool = False, min_size: int = 0
    ) -> Window:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (win := self.find(pattern, tree=tree, min_size=min_size)) is not None:
                return win
            time.sleep(0.05)
        names = [w.name for w in self.windows(tree=True)]
        raise AssertionError(f"no window matching {pattern!r} in {timeout}s; have {names}")

    def tray_icon(self, app_name: str) -> Window | None:
        """The app's icon docked inside trayer's panel (a child of the "panel" window)."""
        out = self.run("xwininfo", "-root", "-tree")
        inside_panel = False
        for line in out.splitlines():
            if '"panel"' in line:
                inside_panel = True
                continue
            if inside_panel and (m := _LINE.match(line)) and m.group(2) == app_name:
                wid, name, w, h, x, y = m.groups()
                return Window(wid, name, int(x), int(y), int(w), int(h))
        return None

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run("import", "-window", "root", str(path), timeout=20)
        return path

    def decode_qr(self, path: Path) -> list[str]:
        out = self.run("zbarimg", "-q", "--raw", str(path), timeout=20)
        return [line for line in out.splitlines() if line]

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.run("xdotool", "mousemove", str(x), str(y), "click", str(button))

    def keys(self, *names: str) -> None:
        for name in names:
            self.run("xdotool", "key", name)
            time.sleep(0.1)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def start(tmp: Path, timeout: float = 15) -> XSession:
    """Xvfb on a free display, then trayer docked at the top right; waits for both."""
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write_fd),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "xvfb.log").open("wb"),
    )
    os.close(write_fd)
    session = XSession("", [xvfb])
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError(f"Xvfb did not report a display in {timeout}s")
        session.display = f":{number}"
        _wait(
            lambda: (
                subprocess.run(
                    ["xdpyinfo"], env=session.env, capture_output=True, timeout=5
                ).returncode
                == 0
            ),
            timeout,
            "xdpyinfo",
        )
        trayer = subprocess.Popen(
            [
                "trayer",
                "--edge",
                "top",
                "--align",
                "right",
                "--widthtype",
                "pixel",
                "--width",
                "120",
                "--height",
                "32",
            ],
            env=session.env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "trayer.log").open("wb"),
        )
        session.procs.append(trayer)
        _wait(
            lambda: '"panel"' in session.run("xwininfo", "-root", "-tree"),
            timeout,
            "trayer's panel",
        )
    except BaseException:
        session.close()
        raise
    finally:
        os.close(read_fd)
    return session


def _wait(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")
