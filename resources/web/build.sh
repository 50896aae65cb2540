#!/bin/sh
# Rebuild static/vendor/sendspin.js from the pinned, locked npm packages.
# The bundle is committed, so the app itself never needs npm; run this only to update it.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
# One self-contained ESM file: opus-encdec (loaded lazily by sendspin-js) is inlined too,
# so phones never fetch anything but our own origin.
npx --no-install esbuild node_modules/@sendspin/sendspin-js/dist/index.js \
  --bundle --format=esm --platform=browser --target=es2020 --minify \
  --legal-comments=eof --log-level=warning \
  --outfile=static/vendor/sendspin.js
echo "built static/vendor/sendspin.js ($(wc -c < static/vendor/sendspin.js) bytes)"
