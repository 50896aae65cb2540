#!/usr/bin/env bash
# Create .venv (Python >= 3.12) and install Party Stream into it. Idempotent.
# Usage: scripts/bootstrap.sh [--test]   (--test also installs test tools and system packages)
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for cand in "env PYENV_VERSION=3.12.1 python3.12" python3.13 python3.12 python3; do
    if $cand -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "Party Stream needs Python 3.12 or newer (python3.12 not found)." >&2
  return 1
}

SYSTEM_TEST_PACKAGES="xvfb trayer xdotool x11-utils imagemagick zbar-tools libxcb-cursor0
  libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 libxkbcommon-x11-0
  libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libegl1 libgl1 libfontconfig1 libdbus-1-3
  pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 espeak-ng sox chromium
  procps iproute2 ethtool dbus-daemon"

if [ "${1:-}" = "--test" ] && command -v apt-get >/dev/null; then
  missing=$(for p in $SYSTEM_TEST_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  # Node: keep whatever node/npm the machine has (Node 20+ is needed by playwright-core).
  command -v npm >/dev/null || missing="$missing nodejs npm"
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "Installing system packages: $(echo $missing)"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
elif command -v apt-get >/dev/null && ! ldconfig -p 2>/dev/null | grep -q libportaudio.so.2; then
  echo "Note: libportaudio2 is missing: live capture is off until you install it (apt-get install libportaudio2)."
fi

if [ ! -x .venv/bin/python ]; then
  PY=$(find_python)
  $PY -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | md5sum | cut -c1-12)${1:-}
if [ ! -f "$stamp" ]; then
  extras=""; [ "${1:-}" = "--test" ] && extras="[test,package]"
  echo "Installing Party Stream into .venv (first run only)..."
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".$extras"; } \
      > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  touch "$stamp"
fi
# Node packages for tests: the browser driver, and the web bundle's build (its test checks
# that the committed bundle is a fresh build with every patch applied).
if [ "${1:-}" = "--test" ]; then
  for dir in tests/browser resources/web; do
    [ -f "$dir/package-lock.json" ] || continue
    lock=$(md5sum "$dir/package-lock.json" | cut -c1-12)
    if [ ! -f "$dir/node_modules/.lock-$lock" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && touch "node_modules/.lock-$lock")
    fi
  done
fi
