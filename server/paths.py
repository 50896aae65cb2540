"""Where bundled resources live, in a checkout and in a frozen (PyInstaller) build."""

import sys
from pathlib import Path


def resources_dir() -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def web_root() -> Path:
    return resources_dir() / "web"
