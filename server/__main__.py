"""`python -m server SOURCE ...`: the headless party without the desktop package."""

import multiprocessing
import sys

from server.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
