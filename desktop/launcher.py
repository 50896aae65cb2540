"""The `partystream` command: the tray app, or `partystream serve ...` for a headless party.

Qt is imported only when the GUI actually starts, so `serve` runs on machines with no
display libraries at all.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def has_display() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["--version"], ["-V"]):
        from desktop.version import app_version

        print(f"Party Stream {app_version()}")
        return 0
    if args[:1] == ["serve"]:
        from server.cli import main as serve_main

        return serve_main(args[1:])
    if not has_display():
        print("No display found: running the party headless (partystream serve --demo).")
        print("Start with a file or URL: partystream serve SOURCE — see --help.\n", flush=True)
        from server.cli import main as serve_main

        return serve_main(args or ["--demo"])
    from desktop.app import main as gui_main

    return gui_main(args)


if __name__ == "__main__":
    sys.exit(main())
