"""Names, version and platform metadata shared by build.py and the PyInstaller spec.

One place for everything an installer shows: the app's name, its bundle identifier, its
executable, and the version (read from pyproject.toml, the only place it is written).
Standard library only: the spec imports this while PyInstaller runs.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

APP_NAME = "Party Stream"  # what people see: Start menu, Applications, the .dmg
DIST_NAME = "partystream"  # the Python distribution (pyproject [project] name)
PUBLISHER = "Party Stream"
BUNDLE_ID = "app.partystream.PartyStream"  # macOS CFBundleIdentifier
DEFAULT_PORT = 8927  # server/config.py DEFAULT_PORT (checked by tests/test_packaging.py)
MIC_USAGE = (
    "Party Stream streams the sound you choose (a microphone, line-in or a loopback device "
    "such as BlackHole) to your guests' phones."
)


def exe_name(platform: str = sys.platform) -> str:
    """The frozen executable's file name (without .exe)."""
    return "partystream" if platform.startswith("linux") else "PartyStream"


def read_version(pyproject: Path = REPO / "pyproject.toml") -> str:
    """[project] version from pyproject.toml: the only place the version is written."""
    with pyproject.open("rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    if not re.fullmatch(r"\d+(\.\d+){1,3}([abc]|rc|\.dev|\.post)?\d*", version):
        raise ValueError(f"unexpected version {version!r} in {pyproject}")
    return version


def write_dist_info(parent: Path, pyproject: Path = REPO / "pyproject.toml") -> Path:
    """A minimal partystream-<version>.dist-info (METADATA only) for the frozen app.

    importlib.metadata finds it on sys.path (PyInstaller puts sys._MEIPASS there), so
    `importlib.metadata.version("partystream")` answers the version of pyproject.toml.
    """
    with pyproject.open("rb") as fh:
        project = tomllib.load(fh)["project"]
    version = read_version(pyproject)
    dist_info = parent / f"{DIST_NAME}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '')}",
    ]
    if isinstance(project.get("license"), str):
        lines.append(f"License-Expression: {project['license']}")
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (dist_info / "INSTALLER").write_text("packaging/build.py\n", encoding="utf-8")
    return dist_info


def numeric_version(version: str, parts: int = 4) -> tuple[int, ...]:
    """'1.2.3rc1' -> (1, 2, 3, 0): the all-numbers form Windows and macOS insist on."""
    release = re.match(r"\d+(\.\d+)*", version)
    numbers = [int(n) for n in release.group(0).split(".")] if release else []
    numbers = (numbers + [0] * parts)[:parts]
    return tuple(numbers)


def info_plist(version: str) -> dict[str, object]:
    """Keys we add to the Info.plist PyInstaller writes for the macOS .app."""
    short = ".".join(str(n) for n in numeric_version(version, 3))
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleShortVersionString": short,
        "CFBundleVersion": version,
        "CFBundlePackageType": "APPL",
        "CFBundleInfoDictionaryVersion": "6.0",
        "LSMinimumSystemVersion": "11.0",
        "LSApplicationCategoryType": "public.app-category.music",
        # Tray-only: a menu-bar icon, no Dock icon, no app menu.
        "LSUIElement": True,
        "NSHighResolutionCapable": True,
        "NSSupportsAutomaticGraphicsSwitching": True,
        "NSMicrophoneUsageDescription": MIC_USAGE,
        # Phones on the LAN connect to us; macOS 15 asks before apps talk to the local network.
        "NSLocalNetworkUsageDescription": (
            "Guests' phones on your network connect to Party Stream to listen."
        ),
        "NSHumanReadableCopyright": f"© {PUBLISHER}",
    }


def windows_version_info(version: str) -> str:
    """A PyInstaller version-resource file (the Details tab of PartyStream.exe)."""
    nums = numeric_version(version, 4)
    strings = {
        "CompanyName": PUBLISHER,
        "FileDescription": APP_NAME,
        "FileVersion": version,
        "InternalName": exe_name("win32"),
        "OriginalFilename": exe_name("win32") + ".exe",
        "ProductName": APP_NAME,
        "ProductVersion": version,
    }
    string_structs = ",\n".join(
        f"          StringStruct({k!r}, {v!r})" for k, v in strings.items()
    )
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={nums}, prodvers={nums}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([
      StringTable('040904B0', [
{string_structs}
      ])
    ]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""
