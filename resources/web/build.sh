#!/bin/sh
# Rebuild static/vendor/sendspin.js from the pinned, locked npm packages, applying every
# patch in patches/ (see build.mjs). The bundle is committed, so the app itself never needs
# npm; run this only to update it. `build.sh --check` verifies the committed bundle instead.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
# One self-contained ESM file: opus-encdec (loaded lazily by sendspin-js) is inlined too,
# so phones never fetch anything but our own origin.
node build.mjs "$@"
