"""`python -m desktop`: the same as the `partystream` command (used for login items)."""

import sys

from desktop.launcher import main

if __name__ == "__main__":
    sys.exit(main())
