#!/usr/bin/env bash
# Set up everything the tests need (system packages via apt when missing, venv, npm) and run
# the whole suite: lint and the dead-code check, then pytest. Arguments, if any, go to a
# single pytest run instead.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --test
.venv/bin/ruff check .
# Dead code (a field written and never read, a function nobody calls) fails the run too.
.venv/bin/vulture server desktop tests/vulture_allow.py --min-confidence 60
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# The Qt tests run in a process of their own: pytest-qt processes Qt events around every
# later test while a QApplication exists, and a notifier left by a GUI test can crash the
# interpreter there (seen once as a segfault in a non-Qt test).
# Both parts run even when the first fails, so one run reports every failure; the exit code
# is non-zero if either failed.
status=0
.venv/bin/python -m pytest -p no:cacheprovider tests/desktop || status=$?
.venv/bin/python -m pytest -p no:cacheprovider -p no:pytestqt --ignore=tests/desktop || status=$?
exit "$status"
