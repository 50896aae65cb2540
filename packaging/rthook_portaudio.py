"""PyInstaller runtime hook: find PortAudio and survive a missing console.

Runs in every process of the frozen app (the GUI, the coordinator, each worker) before any
of our code.

PortAudio (Linux): sounddevice asks `ctypes.util.find_library("portaudio")`, which only
looks at the host's library cache. The host's own libportaudio2 is preferred (it matches the
host's audio stack); without one, the copy bundled next to the executable is used. It still
needs the host's libasound.so.2 and libjack.so.0 (left out of the bundle on purpose: they
must match the host's ALSA plugins and JACK server). If neither loads, live capture reports
itself unavailable, as it does when running from source.

stdout/stderr (Windows windowed build): a GUI executable has no console, so sys.stdout and
sys.stderr are None and any print() would raise. Point them at os.devnull instead; logs go
to the log files.
"""


def _pyi_rthook() -> None:
    import os
    import sys

    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115

    if not sys.platform.startswith("linux"):
        return
    import ctypes.util

    bundled = os.path.join(getattr(sys, "_MEIPASS", ""), "libportaudio.so.2")
    system_find = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        found = system_find(name)
        if found is None and name == "portaudio" and os.path.isfile(bundled):
            return bundled
        return found

    ctypes.util.find_library = find_library


_pyi_rthook()
del _pyi_rthook
