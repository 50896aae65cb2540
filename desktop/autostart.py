"""Start Party Stream when the user logs in, the way each desktop expects it.

- Linux (and other XDG desktops): a `.desktop` file in `$XDG_CONFIG_HOME/autostart`.
- Windows: a value under HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run.
- macOS: a LaunchAgent plist in ~/Library/LaunchAgents.

The OS is the source of truth (the user may remove the entry by hand), so `is_enabled()`
reads it back instead of trusting our settings file.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

APP_ID = "partystream"
DISPLAY_NAME = "Party Stream"
MAC_LABEL = "app.partystream.tray"
WIN_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
WIN_VALUE = "PartyStream"


class AutostartError(OSError):
    """The login item could not be changed; the message is for people."""


def launch_command() -> list[str]:
    """How to start this very installation of the app again, without a terminal."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    bindir = Path(sys.executable).parent
    if sys.platform == "win32":
        script = bindir / "partystream.exe"
        if script.exists():
            return [str(script)]
        pythonw = bindir / "pythonw.exe"  # no console window at login
        return [str(pythonw if pythonw.exists() else sys.executable), "-m", "desktop"]
    script = bindir / "partystream"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "desktop"]


class Autostart(Protocol):
    def is_enabled(self) -> bool: ...
    def set_enabled(self, enabled: bool) -> None: ...


# -- Linux / XDG ---------------------------------------------------------------------------
def _xdg_exec_quote(arg: str) -> str:
    """Quote one argument for a desktop entry's Exec key (Desktop Entry spec rules).

    Two layers: the Exec quoting (backslash before " ` $ \\ inside double quotes), then
    the key file's own string escaping, which doubles every backslash again.
    """
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`%"):
        quoted = arg
    else:
        escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        quoted = '"' + escaped.replace("%", "%%") + '"'
    return quoted.replace("\\", "\\\\")


class XdgAutostart:
    def __init__(self, command: list[str], home: Path | None = None) -> None:
        self.command = command
        config_home = os.environ.get("XDG_CONFIG_HOME")
        base = Path(config_home) if config_home else (home or Path.home()) / ".config"
        self.path = base / "autostart" / f"{APP_ID}.desktop"

    def entry(self) -> str:
        exec_line = " ".join(_xdg_exec_quote(a) for a in self.command)
        return (
            "[Desktop Entry]\n"
            "Type=Application\n"
            f"Name={DISPLAY_NAME}\n"
            "Comment=Host a silent disco: phones scan a QR code and listen in sync\n"
            f"Exec={exec_line}\n"
            f"Icon={APP_ID}\n"
            "Terminal=false\n"
            "Categories=AudioVideo;Audio;\n"
            "X-GNOME-Autostart-enabled=true\n"
        )

    def is_enabled(self) -> bool:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return False
        return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text

    def set_enabled(self, enabled: bool) -> None:
        try:
            if enabled:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(self.entry(), encoding="utf-8")
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not change {self.path}: {exc.strerror}") from exc


# -- macOS -----------------------------------------------------------------------------------
class LaunchAgentAutostart:
    def __init__(self, command: list[str], home: Path | None = None) -> None:
        self.command = command
        self.path = (home or Path.home()) / "Library" / "LaunchAgents" / f"{MAC_LABEL}.plist"

    def plist(self) -> dict[str, Any]:
        return {
            "Label": MAC_LABEL,
            "ProgramArguments": self.command,
            "RunAtLoad": True,
            "ProcessType": "Interactive",
        }

    def is_enabled(self) -> bool:
        try:
            with self.path.open("rb") as fh:
                data = plistlib.load(fh)
        except (OSError, plistlib.InvalidFileException, ValueError):
            return False
        return bool(data.get("RunAtLoad")) and not data.get("Disabled", False)

    def set_enabled(self, enabled: bool) -> None:
        try:
            if enabled:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("wb") as fh:
                    plistlib.dump(self.plist(), fh)
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not change {self.path}: {exc.strerror}") from exc


# -- Windows ---------------------------------------------------------------------------------
class WindowsRunKeyAutostart:
    """HKCU Run value; `registry` is the winreg module (a fake one in tests)."""

    def __init__(self, command: list[str], registry: Any = None) -> None:
        self.command = command
        if registry is None:
            import winreg as registry  # Windows only
        self.reg = registry

    def value(self) -> str:
        return subprocess.list2cmdline(self.command)

    def is_enabled(self) -> bool:
        try:
            with self.reg.OpenKey(self.reg.HKEY_CURRENT_USER, WIN_RUN_KEY) as key:
                current, _ = self.reg.QueryValueEx(key, WIN_VALUE)
        except OSError:
            return False
        return bool(current)

    def set_enabled(self, enabled: bool) -> None:
        access = self.reg.KEY_SET_VALUE
        try:
            with self.reg.CreateKeyEx(self.reg.HKEY_CURRENT_USER, WIN_RUN_KEY, 0, access) as key:
                if enabled:
                    self.reg.SetValueEx(key, WIN_VALUE, 0, self.reg.REG_SZ, self.value())
                else:
                    with contextlib.suppress(FileNotFoundError):
                        self.reg.DeleteValue(key, WIN_VALUE)
        except OSError as exc:
            raise AutostartError(f"Could not change the login items: {exc}") from exc


def for_platform(platform: str = sys.platform, command: list[str] | None = None) -> Autostart:
    cmd = command or launch_command()
    if platform == "win32":
        return WindowsRunKeyAutostart(cmd)
    if platform == "darwin":
        return LaunchAgentAutostart(cmd)
    return XdgAutostart(cmd)
