"""Start at login: the file-writing parts for real (temporary HOME), the registry faked."""

from __future__ import annotations

import configparser
import plistlib
import sys
from pathlib import Path
from typing import Any

import pytest

from desktop import autostart
from desktop.autostart import (
    LaunchAgentAutostart,
    WindowsRunKeyAutostart,
    XdgAutostart,
    launch_command,
)

COMMAND = ["/opt/Party Stream/bin/partystream", "--flag=$HOME"]


def split_exec(value: str) -> list[str]:
    """How a desktop reads an Exec value: string unescaping, then the quoting rules."""
    text = value.replace("\\\\", "\\")
    args: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
            current += text[i + 1]
            i += 1
        elif c == '"':
            quoted = not quoted
        elif c == " " and not quoted:
            args.append(current)
            current = ""
        else:
            current += c
        i += 1
    return [*args, current]


def test_xdg_entry_is_written_read_back_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    item = XdgAutostart(COMMAND, home=tmp_path)
    assert item.path == tmp_path / ".config" / "autostart" / "partystream.desktop"
    assert not item.is_enabled()
    item.set_enabled(True)
    assert item.is_enabled()
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(item.path)
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Party Stream"
    # Desktop Entry spec: the space is quoted and a literal `$` is written `\\$` (Exec
    # quoting, then the key file's string escaping); undoing both gives the command back.
    assert section["Exec"] == '"/opt/Party Stream/bin/partystream" "--flag=\\\\$HOME"'
    assert split_exec(section["Exec"]) == COMMAND
    item.set_enabled(False)
    assert not item.path.exists() and not item.is_enabled()
    item.set_enabled(False)  # idempotent


def test_xdg_honours_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    item = XdgAutostart(["partystream"])
    item.set_enabled(True)
    assert (tmp_path / "xdg" / "autostart" / "partystream.desktop").exists()


def test_xdg_entry_disabled_by_the_desktop_counts_as_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    item = XdgAutostart(["partystream"])
    item.set_enabled(True)
    item.path.write_text(item.path.read_text() + "Hidden=true\n")
    assert not item.is_enabled()


def test_launch_agent_plist(tmp_path: Path) -> None:
    item = LaunchAgentAutostart(COMMAND, home=tmp_path)
    assert not item.is_enabled()
    item.set_enabled(True)
    assert item.path.parent == tmp_path / "Library" / "LaunchAgents"
    with item.path.open("rb") as fh:
        data = plistlib.load(fh)
    assert data["ProgramArguments"] == COMMAND and data["RunAtLoad"] is True
    assert data["Label"] == item.path.stem
    assert item.is_enabled()
    item.set_enabled(False)
    assert not item.path.exists() and not item.is_enabled()


def test_launch_agent_damaged_plist_counts_as_off(tmp_path: Path) -> None:
    item = LaunchAgentAutostart(COMMAND, home=tmp_path)
    item.path.parent.mkdir(parents=True)
    item.path.write_bytes(b"not a plist")
    assert not item.is_enabled()


class FakeWinreg:
    """The few winreg calls we use, over a dict (the real module exists only on Windows).

    Method names are winreg's own."""

    HKEY_CURRENT_USER = "HKCU"
    KEY_SET_VALUE = 2
    REG_SZ = 1

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, Any]] = {}

    class _Key:
        def __init__(self, values: dict[str, Any]) -> None:
            self.values = values

        def __enter__(self) -> FakeWinreg._Key:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def OpenKey(self, root: str, path: str) -> _Key:
        if path not in self.keys:
            raise FileNotFoundError(path)
        return self._Key(self.keys[path])

    def CreateKeyEx(self, root: str, path: str, reserved: int, access: int) -> _Key:
        return self._Key(self.keys.setdefault(path, {}))

    def QueryValueEx(self, key: _Key, name: str) -> tuple[Any, int]:
        if name not in key.values:
            raise FileNotFoundError(name)
        return key.values[name], self.REG_SZ

    def SetValueEx(self, key: _Key, name: str, _reserved: int, _kind: int, value: str) -> None:
        key.values[name] = value

    def DeleteValue(self, key: _Key, name: str) -> None:
        if name not in key.values:
            raise FileNotFoundError(name)
        del key.values[name]


def test_windows_run_key() -> None:
    reg = FakeWinreg()
    item = WindowsRunKeyAutostart([r"C:\Program Files\Party Stream\partystream.exe"], reg)
    assert not item.is_enabled()
    item.set_enabled(True)
    assert reg.keys[autostart.WIN_RUN_KEY]["PartyStream"] == (
        r'"C:\Program Files\Party Stream\partystream.exe"'
    )
    assert item.is_enabled()
    item.set_enabled(False)
    assert not item.is_enabled()
    item.set_enabled(False)  # deleting a missing value is fine


def test_platform_choice() -> None:
    assert isinstance(autostart.for_platform("linux", ["x"]), XdgAutostart)
    assert isinstance(autostart.for_platform("darwin", ["x"]), LaunchAgentAutostart)


def test_launch_command_points_at_this_installation() -> None:
    command = launch_command()
    assert Path(command[0]).exists()
    assert command == [str(Path(sys.executable).parent / "partystream")] or command[1:] == [
        "-m",
        "desktop",
    ]
