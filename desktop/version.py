"""The installed version, for About and `--version` (no Qt needed)."""

import importlib.metadata


def app_version() -> str:
    try:
        return importlib.metadata.version("partystream")
    except importlib.metadata.PackageNotFoundError:  # running from a plain checkout
        return "development build"
