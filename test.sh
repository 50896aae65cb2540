#!/usr/bin/env bash
# Set up everything the tests need (system packages via apt when missing, venv, npm) and run
# the whole suite: lint, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh --test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
