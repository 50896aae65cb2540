#!/usr/bin/env bash
# Set up (first run only) and start Party Stream: the tray app when there is a display,
# otherwise a headless party with the built-in demo music. Extra arguments go to `partystream`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/partystream "$@"
