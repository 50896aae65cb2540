"""Entry script of the frozen app (PyInstaller runs this as __main__).

Everything goes through `desktop.launcher.main`, which calls
`multiprocessing.freeze_support()` before anything else. In a frozen build every child
process (the coordinator, and the workers it spawns in turn) is this same executable started
with `--multiprocessing-fork ...`; freeze_support (patched by PyInstaller's runtime hook to
work on every platform, not only Windows) recognises that, runs the child's target and
exits, so the launcher never parses those arguments and no second GUI ever starts.

Keep this file free of module-level work: it runs again at the start of every child.
"""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
